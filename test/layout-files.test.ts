// layoutFiles as a stream step: guest paths, layers, what is dropped, what is generated.
import test from 'ava';
import gulplog from 'gulplog';
import { fileURLToPath } from 'node:url';
import type Vinyl from 'vinyl';
import { annotate, APP_LAYER, capstanOf } from '../lib/carrier.js';
import { SKELETON_LAYER, ROFS_FSTAB } from '../lib/layout/index.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { runSteps, vinylFile } from './helpers/streams.js';
import {
  APP_ROOT, appFiles, describeEntry, imageListing, manifestOf, manifestVinyl, packageFiles, runOf,
} from './fixtures/layout/builders.js';

const byPath = (files: Vinyl[]) => new Map(files.map((f) => [capstanOf(f)?.guestPath ?? '?', f]));
const noSkeleton = () => layoutFiles({ skeleton: false });

test('application files get "/" + relative, the application layer and the manifest', async (t) => {
  const m = manifestOf();
  const out = await runSteps([manifestVinyl(m), ...appFiles(m, { 'hello.so': 'ELF', 'lib/libx.so': 'X', lib: { dir: true } })], noSkeleton());
  const hello = byPath(out).get('/hello.so')!;
  t.is(capstanOf(hello)?.layer, APP_LAYER);
  t.is(capstanOf(hello)?.kind, 'app');
  t.is(capstanOf(hello)?.manifest, m);
  t.is(capstanOf(byPath(out).get('/lib/libx.so')!)?.guestPath, '/lib/libx.so');
  t.false(out.some((f) => capstanOf(f)?.kind === 'manifest'), 'the manifest vinyl is not image content');
  // every entry, generated ones included, carries the manifest (writeImage reads bootCommand from it)
  t.true(out.every((f) => capstanOf(f)?.manifest === m));
});

test('package descriptors and package meta/* are dropped; package files keep their layer', async (t) => {
  const m = manifestOf();
  const input = packageFiles(m, 'osv.bootstrap', 0, { 'meta/package.yaml': 'name: x', meta: { dir: true }, 'tools/cpiod.so': 'C' });
  const out = await runSteps(input, noSkeleton());
  const paths = out.map((f) => capstanOf(f)?.guestPath).sort();
  t.deepEqual(paths, ['/run', '/tools', '/tools/cpiod.so']);
  t.is(capstanOf(byPath(out).get('/tools/cpiod.so')!)?.layer, 0);
  t.is(capstanOf(byPath(out).get('/tools/cpiod.so')!)?.kind, 'package-file');
});

test('.capstanignore patterns from the manifest and the ignore option apply to application files only', async (t) => {
  const m = manifestOf({ ignore: ['/build/*', '/*.log'] });
  const input = [
    manifestVinyl(m),
    ...packageFiles(m, 'pkg', 0, { 'x.log': 'from package', '.git/keep': 'pkg' }),
    ...appFiles(m, {
      build: { dir: true }, 'build/out.o': 'o', 'build/sub/deep.o': 'o', 'run.log': 'l', 'logs/a.log': 'a',
      'test/t.js': 't', '.git/HEAD': 'ref', '.gitignore': 'x', 'meta/run.yaml': 'r', meta: { dir: true }, 'app.js': 'js',
    }),
  ];
  const out = await runSteps(input, layoutFiles({ ignore: ['/test'], skeleton: false }));
  t.deepEqual(Object.keys(imageListing(out)), ['/.git', '/.git/keep', '/app.js', '/build', '/logs', '/logs/a.log', '/run', '/x.log']);
});

test.serial('verbose mode logs every ignored path', async (t) => {
  const lines: string[] = [];
  const listen = (message: string) => lines.push(message);
  // gulplog is a glogg EventEmitter at runtime; its typings only declare the log functions.
  const events = gulplog as unknown as NodeJS.EventEmitter;
  events.on('info', listen);
  t.teardown(() => events.removeListener('info', listen));
  const m = manifestOf({ ignore: ['/docs'] });
  await runSteps([manifestVinyl(m), ...appFiles(m, { 'docs/a.md': 'a', 'docs/b/c.md': 'c', 'a.js': 'a' })], layoutFiles({ verbose: true, skeleton: false }));
  t.true(lines.some((l) => l.includes('ignore /docs/a.md (inside /docs): .capstanignore pattern /docs')));
  t.true(lines.some((l) => l.includes('ignore /docs/b/c.md')));
  t.true(lines.some((l) => /layoutFiles: 1 application and 0 package entries.*2 ignored/.test(l)), lines.join('\n'));
});

test('/meta as an ignore option is rejected when the step is created', (t) => {
  t.throws(() => layoutFiles({ ignore: ['/x', '/meta'] }), { any: true, message: /layoutFiles option ignore\[1\]: ignore pattern '\/meta' is not allowed/ });
  t.throws(() => layoutFiles({ ignore: '/x' as unknown as string[] }), { any: true, message: /must be an array of strings/ });
  t.throws(() => layoutFiles({ skeleton: 'no' as unknown as boolean }), { any: true, message: /`skeleton` must be true or false/ });
});

test('an invalid manifest pattern is reported at its .capstanignore line', async (t) => {
  const root = fileURLToPath(new URL('./fixtures/layout/bad-ignore', import.meta.url));
  const m = manifestOf({ root, ignore: ['/build/*', '/src/(*.o'] });
  await t.throwsAsync(runSteps([manifestVinyl(m), ...appFiles(m, { 'a.js': 'a' })], layoutFiles()), {
    any: true, message: new RegExp(`${root}/\\.capstanignore:4:4: ignore pattern '/src/\\(\\*\\.o' is not a valid pattern`),
  });
});

test('symlinks stay symlinks; ..-relative targets become absolute guest paths, others stay verbatim', async (t) => {
  const m = manifestOf();
  const out = await runSteps([manifestVinyl(m), ...appFiles(m, {
    'etc/mnttab': { link: '../proc/mounts' },
    'usr/lib/libfoo.so': { link: 'libfoo.so.1' },
    'usr/bin/tool': { link: '/tools/tool' },
    'a/escape': { link: '../../../x' },
    'up': { link: '..' },
  })], noSkeleton());
  const links = Object.fromEntries(out.filter((f) => f.isSymbolic()).map((f) => [capstanOf(f)?.guestPath, f.symlink]));
  t.deepEqual(links, {
    '/etc/mnttab': '/proc/mounts', '/usr/lib/libfoo.so': 'libfoo.so.1', '/usr/bin/tool': '/tools/tool', '/a/escape': '/x', '/up': '/',
  });
  const verbatim = await runSteps(appFiles(m, { 'etc/mnttab': { link: '../proc/mounts' } }), layoutFiles({ rewriteSymlinks: false, skeleton: false }));
  t.is(verbatim.find((f) => f.isSymbolic())?.symlink, '../proc/mounts');
});

test('every folder a path implies is generated (0755) unless some entry provides it', async (t) => {
  const m = manifestOf();
  const out = await runSteps([manifestVinyl(m), ...appFiles(m, { 'usr/lib/jvm/x.so': 'x', usr: { dir: true, mode: 0o750 } })], noSkeleton());
  const listing = imageListing(out);
  t.is(listing['/usr'], 'dir 750');
  t.is(listing['/usr/lib'], 'dir 755');
  t.is(listing['/usr/lib/jvm'], 'dir 755');
  const generated = out.filter((f) => capstanOf(f)?.kind === 'generated' && f.isDirectory()).map((f) => capstanOf(f)?.guestPath);
  t.deepEqual(generated, ['/run', '/usr/lib', '/usr/lib/jvm']);
  for (const f of out.filter((x) => capstanOf(x)?.kind === 'generated')) t.is(capstanOf(f)?.layer, SKELETON_LAYER);
});

test('/run scripts for every config set of packages and app, 0700, later wins, app last', async (t) => {
  const m = manifestOf({ run: runOf(['default', '/app.so'], ['shared', 'from app']) });
  const input = [
    manifestVinyl(m),
    ...packageFiles(m, 'osv.httpserver', 0, {}, [['httpserver', '/libhttpserver.so'], ['shared', 'from httpserver']]),
    ...packageFiles(m, 'osv.cli', 1, {}, [['cli', '/cli.so'], ['shared', 'from cli']]),
    ...appFiles(m, { 'app.so': 'ELF' }),
  ];
  const out = await runSteps(input, noSkeleton());
  const runs = out.filter((f) => capstanOf(f)?.guestPath?.startsWith('/run/'));
  t.deepEqual(runs.map(describeEntry).sort(), ['file 700 /app.so', 'file 700 /cli.so', 'file 700 /libhttpserver.so', 'file 700 from app']);
  t.is(byPath(out).get('/run/shared')?.contents?.toString(), 'from app');
  for (const f of runs) {
    t.is(capstanOf(f)?.kind, 'generated');
    t.is(capstanOf(f)?.mode, 0o700);
    t.is(capstanOf(f)?.layer, APP_LAYER);
    t.is(f.stat?.mode, 0o100700);
  }
  // without the app's set, the later package wins
  const m2 = manifestOf();
  const out2 = await runSteps([manifestVinyl(m2), ...packageFiles(m2, 'a', 0, {}, [['x', 'A']]), ...packageFiles(m2, 'b', 1, {}, [['x', 'B']])], noSkeleton());
  t.is(byPath(out2).get('/run/x')?.contents?.toString(), 'B');
});

test('a /run script replaces an application file of the same name (Capstan writes scripts last)', async (t) => {
  const m = manifestOf({ run: runOf(['default', '/app.so']) });
  const out = await runSteps([manifestVinyl(m), ...appFiles(m, { 'run/default': 'stale' })], noSkeleton());
  t.is(imageListing(out)['/run/default'], 'file 700 /app.so');
});

test('precedence: packages in resolution order, application last; losers still held are dropped', async (t) => {
  const m = manifestOf();
  const input = [
    manifestVinyl(m),
    ...packageFiles(m, 'p0', 0, { 'etc/a': 'p0', 'etc/b': 'p0', 'etc/c': 'p0' }),
    ...packageFiles(m, 'p1', 1, { 'etc/a': 'p1', 'etc/b': 'p1' }),
    ...appFiles(m, { 'etc/a': 'app' }),
  ];
  const out = await runSteps(input, noSkeleton());
  const listing = imageListing(out);
  t.is(listing['/etc/a'], 'file 644 app');
  t.is(listing['/etc/b'], 'file 644 p1');
  t.is(listing['/etc/c'], 'file 644 p0');
  t.deepEqual(out.filter((f) => capstanOf(f)?.guestPath === '/etc/a').map((f) => capstanOf(f)?.layer), [0, 1, APP_LAYER]);
  // a lower layer arriving after a higher one cannot win, so it is not passed on
  const late = await runSteps([...appFiles(m, { 'etc/a': 'app' }), ...packageFiles(m, 'p0', 0, { 'etc/a': 'p0' })], noSkeleton());
  t.deepEqual(late.filter((f) => capstanOf(f)?.guestPath === '/etc/a').map((f) => f.contents?.toString()), ['app']);
});

test('ROFS skeleton: added when nothing provides it, skipped per path when something does', async (t) => {
  const m = manifestOf();
  const bare = imageListing(await runSteps([manifestVinyl(m), ...appFiles(m, { 'a.so': 'a' })], layoutFiles()));
  t.is(bare['/etc/fstab'], `file 644 ${ROFS_FSTAB}`);
  t.is(bare['/etc/hosts'], 'file 644 127.0.0.1 localhost osv.local\n');
  t.is(bare['/etc/mnttab'], 'link /proc/mounts');
  for (const dir of ['/dev', '/proc', '/sys', '/tmp', '/data', '/etc']) t.is(bare[dir], 'dir 755', dir);

  const input = [
    manifestVinyl(m),
    ...packageFiles(m, 'osv.bootstrap', 0, { 'etc/fstab': 'zfs fstab', dev: { dir: true }, 'etc/mnttab': { link: '../proc/mounts' } }),
    ...appFiles(m, { 'etc/hosts': '10.0.0.1 me\n' }),
  ];
  const out = await runSteps(input, layoutFiles());
  const listing = imageListing(out);
  t.is(listing['/etc/fstab'], 'file 644 zfs fstab');
  t.is(listing['/etc/hosts'], 'file 644 10.0.0.1 me\n');
  const skeleton = out.filter((f) => capstanOf(f)?.kind === 'generated' && capstanOf(f)?.guestPath !== '/run').map((f) => capstanOf(f)?.guestPath).sort();
  t.deepEqual(skeleton, ['/data', '/etc', '/proc', '/sys', '/tmp']); // /etc: implied folder

  const off = imageListing(await runSteps([manifestVinyl(m), ...appFiles(m, { 'a.so': 'a' })], layoutFiles({ skeleton: false })));
  t.deepEqual(Object.keys(off), ['/a.so', '/run']);
});

test('two application files claiming one guest path is an error naming both', async (t) => {
  const m = manifestOf();
  const input = [...appFiles(m, { 'x.so': 'one' }), ...appFiles(m, { 'x.so': 'two' }, '/elsewhere')];
  await t.throwsAsync(runSteps(input, layoutFiles()), {
    any: true, message: /guest path \/x\.so is claimed by two application files: \/work\/app\/x\.so and \/elsewhere\/x\.so/,
  });
});

test('a regular file without contents (src with read:false) is placed for writeImage to read; without a stat it is an error', async (t) => {
  const listed = vinylFile(APP_ROOT, 'a.so', 'x');
  listed.contents = null; // what gulp.src(..., {read: false}) emits: null contents, the file's stat
  const [placed] = (await runSteps([listed], layoutFiles({ skeleton: false }))).filter((f) => capstanOf(f)?.kind !== 'generated');
  t.is(capstanOf(placed!)?.guestPath, '/a.so');
  t.true(placed!.isNull());

  const bare = vinylFile(APP_ROOT, 'b.so', 'x');
  bare.contents = null;
  bare.stat = null;
  await t.throwsAsync(runSteps([bare], layoutFiles()), { any: true, message: /b\.so: file has no contents[\s\S]*read: false/ });
});

test('a file outside its base is an error', async (t) => {
  const file = vinylFile(APP_ROOT, 'a.so', 'x');
  file.base = `${APP_ROOT}/sub`;
  await t.throwsAsync(runSteps([file], layoutFiles()), { any: true, message: /lies outside its base folder/ });
});

test('files without any annotation are laid out as application files', async (t) => {
  const out = await runSteps([vinylFile('/tmp/x', 'bin/tool', 'T', 0o755)], layoutFiles({ skeleton: false }));
  t.deepEqual(imageListing(out), { '/bin': 'dir 755', '/bin/tool': 'file 755 T' });
});

test('an empty stream produces nothing', async (t) => {
  t.deepEqual(await runSteps([], layoutFiles()), []);
});

test('Capstanfile mode: the ignore option matches image paths below rootfs; .capstanignore and built-ins do not apply', async (t) => {
  const m = manifestOf({
    ignore: ['/etc'],
    capstanfile: { cmdline: '/a.so', files: { '/a.so': `${APP_ROOT}/a.so` }, rootfs: `${APP_ROOT}/ROOTFS` },
  });
  const input = [manifestVinyl(m), ...appFiles(m, {
    ROOTFS: { dir: true }, 'ROOTFS/etc/conf': 'c', 'ROOTFS/.git/HEAD': 'h', 'ROOTFS/tmp': { dir: true }, 'ROOTFS/tmp/cache/x': 'x', 'a.so': 'A', 'README': 'r',
  })];
  const out = await runSteps(input, layoutFiles({ ignore: ['/tmp/*'], skeleton: false }));
  t.deepEqual(imageListing(out), {
    '/.git': 'dir 755', '/.git/HEAD': 'file 644 h', '/a.so': 'file 644 A', '/etc': 'dir 755', '/etc/conf': 'file 644 c', '/tmp': 'dir 755',
  });
});

test('/run scripts of sets that inherit another package\'s set (base, java/node runtimes) are computed from it', async (t) => {
  const app = runOf();
  app.configSets.push({ name: 'default', script: '', env: { MAIN: 'Hello' }, inherits: { package: 'openjdk8-zulu-compact1', configSet: 'java' } });
  const m = manifestOf({ run: app });
  const input = [
    manifestVinyl(m),
    ...packageFiles(m, 'openjdk8-zulu-compact1', 0, {}, [['java', '/java.so -cp $CLASSPATH $MAIN']]),
    ...appFiles(m, { 'Hello.class': 'CAFEBABE' }),
  ];
  const out = await runSteps(input, noSkeleton());
  t.is(imageListing(out)['/run/default'], 'file 700 --env=MAIN?=Hello /java.so -cp $CLASSPATH $MAIN');
  t.is(imageListing(out)['/run/java'], 'file 700 /java.so -cp $CLASSPATH $MAIN');
  // a base naming a package that is not there is reported, not written as an empty script
  const orphan = manifestOf({ run: app });
  await t.throwsAsync(runSteps([manifestVinyl(orphan)], noSkeleton()), { any: true, message: /inherits 'openjdk8-zulu-compact1:java', but package 'openjdk8-zulu-compact1' is not included/ });
});

test('an application file that already carries a guest path keeps it (hostFiles), whatever its relative path or the ignore rules', async (t) => {
  const m = { ...manifestOf(), ignore: ['/usr/**'] };
  const node = vinylFile('/', 'opt/node/bin/node', 'ELF');
  annotate(node, { kind: 'app', guestPath: '/usr/bin/node' });
  const out = await runSteps([manifestVinyl(m), node], layoutFiles({ skeleton: false, ignore: ['/opt'] }));
  const placed = byPath(out).get('/usr/bin/node');
  t.is(placed, node);
  t.like(capstanOf(placed!), { kind: 'app', layer: APP_LAYER, manifest: m });
  t.false(out.some((f) => capstanOf(f)?.guestPath?.startsWith('/opt')));

  const bad = vinylFile('/', 'x', 'x');
  annotate(bad, { kind: 'app', guestPath: 'relative/x' });
  await t.throwsAsync(runSteps([bad], layoutFiles()), { any: true, message: /capstan\.guestPath "relative\/x" is not an absolute path/ });
});
