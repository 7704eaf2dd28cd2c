// The pure layout API on its own: guest paths, symlink targets, /run scripts, skeleton, tree.
import test from 'ava';
import { APP_LAYER } from '../lib/carrier.js';
import { LayoutError } from '../lib/errors.js';
import {
  GuestTree, ROFS_FSTAB, capstanfileGuestPaths, capstanfileLayout, guestPathOf, isMetaPath, parentDirectories,
  rewriteSymlinkTarget, rofsSkeleton, runScriptEntries,
} from '../lib/layout/index.js';

test('guestPathOf normalises and refuses to climb out of the base', (t) => {
  t.is(guestPathOf('a/b/../c.so'), '/a/c.so');
  t.is(guestPathOf(''), '/');
  t.is(guestPathOf('dir/'), '/dir');
  t.is(guestPathOf('odd\\name'), '/odd\\name', 'a backslash is a file-name character on POSIX');
  t.throws(() => guestPathOf('../x', '/host/x'), { instanceOf: LayoutError, message: /^\/host\/x: '\.\.\/x' lies outside its base folder/ });
});

test('parent folders and /meta detection', (t) => {
  t.deepEqual(parentDirectories('/a/b/c'), ['/a', '/a/b']);
  t.deepEqual(parentDirectories('/a'), []);
  t.true(isMetaPath('/meta'));
  t.true(isMetaPath('/meta/run.yaml'));
  t.false(isMetaPath('/metadata'));
});

test('symlink targets: ..-relative → absolute guest path, the rest verbatim', (t) => {
  t.is(rewriteSymlinkTarget('/etc/mnttab', '../proc/mounts'), '/proc/mounts');
  t.is(rewriteSymlinkTarget('/usr/lib/x', '../../../../../etc'), '/etc');
  t.is(rewriteSymlinkTarget('/a/b', '..'), '/');
  t.is(rewriteSymlinkTarget('/a/b/c', '../d/'), '/a/d/');
  t.is(rewriteSymlinkTarget('/a/b', '/proc/mounts'), '/proc/mounts');
  t.is(rewriteSymlinkTarget('/a/b', 'c/../d'), 'c/../d');
  t.is(rewriteSymlinkTarget('/a/b', '..hidden'), '..hidden', 'a name starting with .. is not a parent reference');
});

test('Capstanfile mapping: rootfs mirror, files (a host file may serve several guest paths)', (t) => {
  const layout = capstanfileLayout({ cmdline: 'x', rootfs: '/p/ROOTFS', files: { '/a/x.so': '/p/x.so', 'b/y.so': '/p/x.so' } });
  t.deepEqual(capstanfileGuestPaths(layout, '/p/ROOTFS/etc/conf'), { rootfs: '/etc/conf', files: [] });
  t.deepEqual(capstanfileGuestPaths(layout, '/p/x.so'), { rootfs: undefined, files: ['/a/x.so', '/b/y.so'] });
  t.deepEqual(capstanfileGuestPaths(layout, '/p/ROOTFS'), { rootfs: undefined, files: [] });
  t.deepEqual(capstanfileGuestPaths(layout, '/p/ROOTFS2/x'), { rootfs: undefined, files: [] });
  t.throws(() => capstanfileLayout({ cmdline: 'x', files: { '/': '/p/x' } }, '/p/Capstanfile'), { message: /^\/p\/Capstanfile: Capstanfile files entry '\/' targets the image root/ });
});

test('runScriptEntries: one 0700 file per name, later sources win, overrides reported', (t) => {
  const { entries, overrides } = runScriptEntries([
    { origin: 'package a', configSets: [{ name: 'x', script: 'A' }, { name: 'y', script: 'Ay' }] },
    { origin: 'app', configSets: [{ name: 'x', script: 'APP' }] },
  ]);
  t.deepEqual(entries.map((e) => [e.guestPath, e.mode, e.contents.toString()]), [['/run/y', 0o700, 'Ay'], ['/run/x', 0o700, 'APP']]);
  t.deepEqual(overrides, [{ name: 'x', winner: 'app', loser: 'package a' }]);
  t.throws(() => runScriptEntries([{ origin: 'package b', file: 'b: meta/run.yaml', configSets: [{ name: 'a/b', script: '' }] }]), {
    instanceOf: LayoutError, message: /^b: meta\/run\.yaml: config set name 'a\/b' of package b cannot be a file name under \/run/,
  });
});

test('rofsSkeleton is OSv\'s ROFS skeleton without binaries', (t) => {
  const entries = rofsSkeleton();
  t.deepEqual(entries.map((e) => `${e.type} ${e.guestPath}`), [
    'directory /dev', 'directory /proc', 'directory /sys', 'directory /tmp', 'directory /data', 'file /etc/fstab', 'file /etc/hosts', 'symlink /etc/mnttab',
  ]);
  t.true(ROFS_FSTAB.includes('none         /tmp       ramfs     defaults 0 0\n'));
  t.regex(ROFS_FSTAB, /^\/dev\/vblk0\.1 \/ +rofs/);
});

test('GuestTree: layers, clashes, implied folders, non-folder parents', (t) => {
  const tree = new GuestTree();
  t.is(tree.claim('/usr/lib/a', { type: 'file', layer: 0, source: 'p0' }).kind, 'new');
  t.is(tree.claim('/usr/lib/a', { type: 'file', layer: 1, source: 'p1' }).kind, 'overrides');
  t.is(tree.claim('/usr/lib/a', { type: 'file', layer: 0, source: 'p0 again' }).kind, 'shadowed');
  t.is(tree.claim('/x', { type: 'file', layer: APP_LAYER, source: 'a' }).kind, 'new');
  t.is(tree.claim('/x', { type: 'file', layer: APP_LAYER, source: 'b' }).kind, 'app-clash');
  t.is(tree.claim('/x', { type: 'file', layer: APP_LAYER, source: 'run' }, { winsTies: true }).kind, 'overrides');
  t.is(tree.claim('/d', { type: 'directory', layer: APP_LAYER, source: 'a' }).kind, 'new');
  t.is(tree.claim('/d', { type: 'directory', layer: APP_LAYER, source: 'b' }).kind, 'duplicate-directory');
  t.is(tree.claim('/x/y', { type: 'file', layer: 0, source: 'p' }).kind, 'new');
  t.deepEqual(tree.impliedDirectories(), ['/usr', '/usr/lib']);
  t.deepEqual(tree.nonDirectoryParents().map((p) => p.parent), ['/x']);
});
