// The pieces of the ZFS path, one by one: FastLZ (vectors worked out by hand from the format),
// the bootfs finder and kernel facts, the vdev-label decoder, Capstan's hash cache and the
// update planner, the layout decisions and command lines, and the upload VM session's bounded
// waits (with the QEMU stand-in). Real OSv binaries check the same code in zfs-real.test.ts.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decompressOsvLz, fastlzDecompress } from '../lib/image/fastlz.js';
import { directoryHash, formatHashCache, parseHashCache, planZfsUpdate, type HashCache } from '../lib/image/hash-cache.js';
import { bootfsFile, findBootfs, inspectKernel, kernelOfLoader } from '../lib/image/osv-kernel.js';
import { decodeLabelNvlist } from '../lib/image/zfs-label.js';
import { builderCmdline, decideZfsLayout, zfsImageCmdline } from '../lib/image/zfs-layout.js';
import { planZfsDisk } from '../lib/image/zfs-disk.js';
import { runUploadVm, guestFailureLine } from '../lib/vm/zfs-builder.js';
import { bootfsTable, fakeRuns, writeFakeCpiodQemu } from './helpers/fake-cpiod.js';
import { encodeLabelNvlist } from './helpers/zfs-label-vector.js';

const md5 = (s: string | Buffer) => createHash('md5').update(s).digest('hex');

test('FastLZ level 1: literal runs, overlapping matches, extended lengths', (t) => {
  // "abc", then a 6-byte match 3 back (ctrl 0x80: (4 + 2) bytes, distance code 2 + 1).
  t.is(fastlzDecompress(Buffer.from([0x02, 0x61, 0x62, 0x63, 0x80, 0x02]), 100).toString(), 'abcabcabc');
  // "x", then a run: ctrl 0xE0 (length 7 + 2 + next byte 10), distance 1.
  t.is(fastlzDecompress(Buffer.from([0x00, 0x78, 0xe0, 10, 0x00]), 100).toString(), 'x'.repeat(20));
  t.throws(() => fastlzDecompress(Buffer.from([0x00, 0x78, 0x80, 0x05]), 100), { message: /match before the start/ });
  t.throws(() => fastlzDecompress(Buffer.from([0x05, 0x78]), 100), { message: /past the end of the input/ });
  t.throws(() => fastlzDecompress(Buffer.from([0x02, 0x61, 0x62, 0x63, 0x80, 0x02]), 5), { message: /overrun/ });
});

test('FastLZ level 2: the level bits, 255-chained lengths and 16-bit far distances', (t) => {
  t.is(fastlzDecompress(Buffer.from([0x22, 0x61, 0x62, 0x63, 0x80, 0x02]), 100).toString(), 'abcabcabc');
  // Length 6 + 255 + 4 + 3 = 268 from distance 1.
  t.is(fastlzDecompress(Buffer.from([0x20, 0x7a, 0xe0, 255, 4, 0x00]), 1000).toString(), 'z'.repeat(269));
  // 8224 literal bytes (257 runs of 32), then 3 bytes from 8192 back: ctrl 0x3F, code 255, ofs 0.
  const literal = randomBytes(257 * 32);
  const parts: Buffer[] = [];
  for (let i = 0; i < 257; i++) parts.push(Buffer.from([i === 0 ? 0x20 | 31 : 31]), literal.subarray(i * 32, i * 32 + 32));
  parts.push(Buffer.from([0x3f, 255, 0, 0]));
  const out = fastlzDecompress(Buffer.concat(parts), 10_000);
  t.is(out.length, literal.length + 3);
  t.deepEqual(out.subarray(literal.length), literal.subarray(literal.length - 8192, literal.length - 8192 + 3));
});

test('OSv\'s segmented container: compressed and stored segments, in order', (t) => {
  const seg1 = Buffer.from([0x02, 0x61, 0x62, 0x63, 0x80, 0x02]); // → 9 bytes
  const seg2 = Buffer.from('stored!'); // stored: its size is not below the uncompressed size
  const table = Buffer.alloc(4 + 16);
  table.writeInt32LE(2, 0);
  table.writeInt32LE(9, 4); table.writeInt32LE(seg1.length, 8);
  table.writeInt32LE(seg2.length, 12); table.writeInt32LE(seg2.length, 16);
  const head = Buffer.alloc(4);
  head.writeInt32LE(4 + seg1.length + seg2.length, 0);
  t.is(decompressOsvLz(Buffer.concat([head, seg1, seg2, table])).toString(), 'abcabcabcstored!');
  t.throws(() => decompressOsvLz(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0])), { message: /segment table offset/ });
});

test('bootfs: found by its shape in kernel bytes, its files readable; kernel facts from it', (t) => {
  const table = bootfsTable(['/libvdso.so', '/usr/lib/fs/libsolaris.so', '/tools/cpiod.so']);
  const kernel = Buffer.concat([Buffer.from('\x7fELF junk with a /slash and OSv v0.57.0-398-g0e34e4dc banner\0', 'latin1'), Buffer.alloc(333), table, Buffer.from('tail osv/zfs\0')]);
  const bootfs = findBootfs(kernel)!;
  t.deepEqual(bootfs.entries.map((e) => e.name), ['/libvdso.so', '/usr/lib/fs/libsolaris.so', '/tools/cpiod.so']);
  t.is(bootfsFile(kernel, bootfs, '/tools/cpiod.so')!.toString(), 'contents of /tools/cpiod.so\n');
  t.like(inspectKernel(kernel), { version: 'v0.57.0-398-g0e34e4dc', zfs: true, zfsRootDataset: 'osv/zfs' });
  // osv/zfs only inside the bootfs (the builder's mkfs.so) does not make it a v0.57 kernel.
  const inside = bootfsTable(['/usr/lib/fs/libsolaris.so', '/tools/mkfs.so']);
  const mkfsAt = inside.indexOf('contents of /tools/mkfs.so');
  inside.write('osv/zfs\0', mkfsAt, 'latin1');
  t.like(inspectKernel(Buffer.concat([Buffer.alloc(100), inside])), { zfs: true, zfsRootDataset: 'osv' });
  t.like(inspectKernel(Buffer.concat([Buffer.alloc(100), bootfsTable(['/libenviron.so'])])), { zfs: false, zfsRootDataset: undefined });
  t.is(findBootfs(Buffer.from('no table /here at all')), undefined);
});

test('a loader whose kernel is an uncompressed ELF64 at 0x10000 is read as is; a loader without an ELF there has no kernel', (t) => {
  const loader = Buffer.alloc(0x10000 + 4096);
  t.is(kernelOfLoader(loader), undefined);
  Buffer.from('\x7fELF\x02\x01\x01', 'latin1').copy(loader, 0x10000);
  t.is(kernelOfLoader(loader)!.length, 4096);
});

test('vdev label nvlist: the leading scalars are decoded, the nested tree ends the walk', (t) => {
  const nv = decodeLabelNvlist(Buffer.concat([encodeLabelNvlist({ name: 'osv', state: 1n, txg: 42n }), Buffer.alloc(1000)]));
  t.deepEqual(nv, { version: 5000n, name: 'osv', state: 1n, txg: 42n, pool_guid: 0x1234n });
  t.deepEqual(decodeLabelNvlist(Buffer.alloc(1000)), {}, 'a blank label');
});

test('hash cache: Capstan\'s YAML map (sorted, go-yaml styles), symlinks marked in a comment Capstan ignores', (t) => {
  const cache: HashCache = new Map([
    ['/usr/lib/libz.so', { md5: md5('z'), symlink: false }],
    ['/etc', { md5: directoryHash('/etc'), symlink: false }],
    ['/etc/mnttab', { md5: md5('/proc/mounts'), symlink: true }],
    ['/a: b', { md5: md5('x'), symlink: false }],
  ]);
  const text = formatHashCache(cache);
  t.is(text, `'/a: b': ${md5('x')}\n/etc: ${directoryHash('/etc')}\n/etc/mnttab: ${md5('/proc/mounts')} # symlink\n/usr/lib/libz.so: ${md5('z')}\n`);
  t.deepEqual(parseHashCache(text), new Map([...cache].sort(([a], [b]) => (a < b ? -1 : 1))));
  // A cache Capstan wrote (no comments) reads as files and folders.
  t.deepEqual(parseHashCache(`/etc/hosts: ${md5('h')}\n`), new Map([['/etc/hosts', { md5: md5('h'), symlink: false }]]));
  for (const bad of ['', '{}\n', '- a\n', `/x: not-a-hash\n`, 'x: [1]\n', 'relative: 0e7b7c1d0e7b7c1d0e7b7c1d0e7b7c1d\n']) t.is(parseHashCache(bad), undefined, JSON.stringify(bad));
});

test('update plan: new and changed files are sent, same ones skipped; gone paths kept; what cpiod cannot do asks for a rebuild', (t) => {
  const prev: HashCache = new Map([
    ['/a', { md5: md5('a1'), symlink: false }],
    ['/b', { md5: md5('b'), symlink: false }],
    ['/d', { md5: directoryHash('/d'), symlink: false }],
    ['/l', { md5: md5('target'), symlink: true }],
    ['/gone', { md5: md5('g'), symlink: false }],
  ]);
  const plan = planZfsUpdate(prev, [
    { path: '/a', type: 'file', md5: md5('a2') },
    { path: '/b', type: 'file', md5: md5('b') },
    { path: '/d', type: 'dir', md5: directoryHash('/d') },
    { path: '/l', type: 'symlink', md5: md5('target') },
    { path: '/new', type: 'file', md5: md5('n') },
  ]);
  t.deepEqual([...plan.send].sort(), ['/a', '/new']);
  t.is(plan.unchanged, 3);
  t.deepEqual(plan.gone, ['/gone']);
  t.is(plan.rebuild, undefined);
  t.deepEqual(plan.cache.get('/gone'), prev.get('/gone'), 'still in the image, so still in the cache');
  t.regex(planZfsUpdate(prev, [{ path: '/l', type: 'symlink', md5: md5('other') }]).rebuild ?? '', /symlink \/l changed its target/);
  t.regex(planZfsUpdate(prev, [{ path: '/d', type: 'file', md5: md5('x') }]).rebuild ?? '', /\/d was a folder and is now a file/);
  t.regex(planZfsUpdate(prev, [{ path: '/b', type: 'symlink', md5: md5('b') }]).rebuild ?? '', /\/b was a file and is now a symlink/);
  t.regex(planZfsUpdate(prev, [{ path: '/l', type: 'file', md5: md5('x') }]).rebuild ?? '', /\/l was a symlink and is now a file/);
});

test('layouts and command lines', (t) => {
  t.is(zfsImageCmdline('/hello'), '--rootfs=zfs /hello');
  t.is(zfsImageCmdline('--env=A=1 /hello'), '--rootfs=zfs --env=A=1 /hello');
  t.is(zfsImageCmdline('--rootfs=zfs --verbose /x'), '--rootfs=zfs --verbose /x');
  t.is(zfsImageCmdline('/x --rootfs=rofs'), '--rootfs=zfs /x --rootfs=rofs', 'only the loader options count');
  t.is(builderCmdline('master'), '--console=serial --norandom --nomount --noinit --preload-zfs-library /tools/mkfs.so; /tools/cpiod.so --prefix /zfs/; /zfs.so set compression=off osv; /tools/umount.so /zfs/zfs; /tools/umount.so /zfs; /zpool.so export osv');
  t.is(builderCmdline('v0.57'), '--console=serial --norandom --nomount --noinit --preload-zfs-library /tools/mkfs.so; /tools/cpiod.so --prefix /zfs/zfs; /zfs.so set compression=off osv');
  const where = { loader: '/l' };
  const master = { zfs: true, zfsRootDataset: 'osv' as const };
  const old = { zfs: true, zfsRootDataset: 'osv/zfs' as const };
  t.deepEqual(decideZfsLayout(master, old, undefined, where), { layout: 'master', from: 'loader' });
  t.deepEqual(decideZfsLayout(undefined, old, undefined, where), { layout: 'v0.57', from: 'builder' });
  t.deepEqual(decideZfsLayout(undefined, old, 'master', where), { layout: 'master', from: 'option' });
  t.throws(() => decideZfsLayout(old, undefined, 'master', where), { message: /mounts dataset osv\/zfs/ });
  t.throws(() => decideZfsLayout(undefined, undefined, undefined, where), { message: /cannot tell which ZFS dataset/ });
});

test('disk plan: the partition from the loader (2 MiB aligned) to the end; too small for ZFS is refused; GCE whole GiB', (t) => {
  t.deepEqual(planZfsDisk(4358144, 10 * 1024 ** 3, 'qcow2'), { total: 10 * 1024 ** 3, partitionStart: 6291456, partitionSize: 10 * 1024 ** 3 - 6291456 });
  t.is(planZfsDisk(4358144, 512 * 1048576 + 100, 'raw').total, 512 * 1048576, 'a multiple of 512');
  t.is(planZfsDisk(4358144, 512 * 1048576, 'gce').total, 1024 ** 3);
  t.throws(() => planZfsDisk(4358144, 64 * 1048576, 'qcow2'), { message: /ZFS needs at least 64 MiB/ });
});

test('guest failure lines: the most telling line wins', (t) => {
  t.is(guestFailureLine(['Waiting for connection from host...', 'Adding /x...', "terminate called after throwing an instance of 'std::system_error'", '  what():  mkdirp /zfs/x: No space left on device', 'Aborted']), 'what():  mkdirp /zfs/x: No space left on device');
  t.is(guestFailureLine(['/tools/cpiod.so: failed looking up symbol mkdirp', '[backtrace]']), '/tools/cpiod.so: failed looking up symbol mkdirp');
  t.is(guestFailureLine(['OSv v0.57.0', 'cpiod finished']), undefined);
});

test('upload VM: QEMU that does not exit after cpiod finished is killed after the bounded wait', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-upload-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const qemu = await writeFakeCpiodQemu(dir);
  const disk = path.join(dir, 'disk.raw');
  await writeFile(disk, Buffer.alloc(1024 * 1024));
  const env = { ...process.env, FAKE_CPIOD_DIR: path.join(dir, 'runs'), FAKE_CPIOD_MODE: 'hang' };
  const started = Date.now();
  const error = await t.throwsAsync(runUploadVm({ kernel: '/k', append: 'x', disk: { path: disk, format: 'raw' }, qemu, hostEnv: env, exitTimeoutMs: 1500 }, async (sink) => {
    const { CPIO_TRAILER } = await import('../lib/image/cpio.js');
    await sink(CPIO_TRAILER);
  }), { message: /QEMU did not exit within 1500 ms after cpiod finished/ });
  t.is((error as { stage?: string }).stage, 'exit');
  t.true(Date.now() - started < 30_000);
  const [run] = await fakeRuns(path.join(dir, 'runs'));
  t.throws(() => process.kill((run as unknown as { pid: number }).pid, 0), undefined, 'killed');
});

test('upload VM: QEMU that ends before cpiod is ready is an error naming the stage', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-upload-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const qemu = path.join(dir, 'qemu-fails');
  await writeFile(qemu, '#!/bin/sh\necho "qemu-system-x86_64: -kernel /k: could not load kernel" >&2\nexit 1\n', { mode: 0o755 });
  const error = await t.throwsAsync(runUploadVm({ kernel: '/k', append: 'x', disk: { path: qemu, format: 'raw' }, qemu, accel: 'tcg' }, async () => {}), { message: /QEMU ended before cpiod was ready[\s\S]*could not load kernel/ });
  t.is((error as { stage?: string }).stage, 'start');
});

test('the ZFS builder is pulled from the release the loader came from, not the newest one', async (t) => {
  const { TestServer, serveReleases, gzipSync } = await import('./helpers/remote-server.js');
  const { buildStandInLoader } = await import('./helpers/stand-in.js');
  const { writeFakeBuilder } = await import('./helpers/fake-cpiod.js');
  const { RepositoryClient, ensureZfsBuilder } = await import('../lib/repository/pull.js');
  const { readFile: read } = await import('node:fs/promises');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-zfs-pull-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const loader = await read(await buildStandInLoader(path.join(dir, 'l')));
  const newer = await read(await writeFakeBuilder(path.join(dir, 'new.elf'), 'master'));
  const older = await read(await writeFakeBuilder(path.join(dir, 'old.elf'), 'v0.57'));
  const server = await TestServer.start();
  t.teardown(() => server.close());
  const releasesUrl = serveReleases(server, [
    { tag: 'v0.58.0', assets: [{ name: 'osv-zfs-builder.elf.x86_64.gz', data: gzipSync(newer) }] },
    { tag: 'v0.57.0', assets: [{ name: 'osv-loader.qemu.x86_64', data: loader }, { name: 'osv-zfs-builder.elf.x86_64.gz', data: gzipSync(older) }] },
  ]);
  const opts = { root: path.join(dir, 'capstan'), releasesUrl, silent: true as const, http: { attempts: 2, backoffMs: 10, connectTimeoutMs: 2000, idleTimeoutMs: 500 } };
  const client = new RepositoryClient(opts);
  const pulled = await client.pullLoader('osv-loader');
  t.is(pulled.release, 'v0.57.0');
  const builder = await ensureZfsBuilder(undefined, { root: opts.root, client, loaderPath: pulled.path });
  t.deepEqual(await read(builder), older, 'v0.57.0\'s builder, the loader\'s release');
  t.regex(await read(path.join(path.dirname(builder), 'index.yaml'), 'utf8'), /release: v0\.57\.0/);
  // A loader of unknown origin (a path): the newest release's builder.
  const other = path.join(dir, 'capstan2');
  const any = await ensureZfsBuilder(undefined, { root: other, client: new RepositoryClient({ ...opts, root: other }), loaderPath: path.join(dir, 'l', 'x.raw') });
  t.deepEqual(await read(any), newer);
  // A path that does not exist, or pulling off: clear errors.
  await t.throwsAsync(ensureZfsBuilder('/no/such/builder.elf', { loaderPath: pulled.path }), { message: /the ZFS builder was not found/ });
  await t.throwsAsync(ensureZfsBuilder(undefined, { root: path.join(dir, 'none'), loaderPath: pulled.path }), { message: /not in the local repository/ });
});
