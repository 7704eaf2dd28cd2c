// writeImage({ fs: 'zfs' }) end to end without OSv: QEMU is a stand-in (test/helpers/
// fake-cpiod-qemu.ts) that listens on the forwarded host port as QEMU's user-mode network
// does, plays cpiod's console lines, and extracts what it receives with GNU cpio. So these
// tests check our side of the builder protocol for real: the QEMU arguments (-kernel, -append,
// no bootindex, a free port per build), the cpio stream (compared file for file, by an
// independent extractor), the host-side sequence and its failures, the disk we write, the
// checks before `out` is replaced, and --update's decisions. test/zfs-real.test.ts does the
// same against OSv's real ZFS builder when one is given.
import test from 'ava';
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import Vinyl from 'vinyl';
import { annotate, APP_LAYER } from '../lib/carrier.js';
import { decodeCmdline } from '../lib/image/cmdline.js';
import { describeImage } from '../lib/image/describe.js';
import { openDiskImage } from '../lib/image/disk.js';
import { decodePartitionEntry } from '../lib/image/mbr.js';
import { UPDATE_CMDLINE, builderCmdline } from '../lib/image/zfs-layout.js';
import { writeImage, type WriteImageOptions } from '../lib/steps/write-image.js';
import { buildStandInLoader } from './helpers/stand-in.js';
import { bootfsTable, fakeRuns, writeFakeBuilder, writeFakeCpiodQemu, type FakeRun } from './helpers/fake-cpiod.js';
import { runSteps, vinylDir, vinylFile, vinylSymlink } from './helpers/streams.js';

interface World {
  dir: string;
  loader: string;
  qemu: string;
  builder: string;
  runs: string;
  out: string;
  opts: (extra?: Partial<WriteImageOptions> & { mode?: string }) => WriteImageOptions;
}

async function world(t: { teardown(fn: () => Promise<void>): void }): Promise<World> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-zfs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const qemu = await writeFakeCpiodQemu(dir);
  const builder = await writeFakeBuilder(path.join(dir, 'zfs_builder.elf'));
  const runs = path.join(dir, 'runs');
  const out = path.join(dir, 'app.qemu');
  return {
    dir, loader, qemu, builder, runs, out,
    opts: ({ mode, ...extra } = {}) => ({
      out, loader, fs: 'zfs', size: '128M', zfsBuilder: builder, qemu, cmdline: '/hello', silent: true,
      env: { ...process.env, FAKE_CPIOD_DIR: runs, FAKE_CPIOD_MODE: mode ?? 'ok' }, ...extra,
    }),
  };
}

const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

/** Files beside `out` that are ours: the image, its cache, temp files. */
async function besideOut(out: string): Promise<string[]> {
  const base = path.basename(out);
  return (await readdir(path.dirname(out))).filter((n) => n.startsWith(base) || n.startsWith(`.${base}.`)).sort();
}

/** The extracted tree as guest path → description, for comparing with what was laid out. */
async function treeOf(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, prefix: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const full = path.join(dir, name);
      const guest = `${prefix}/${name}`;
      const st = await lstat(full);
      const mode = (st.mode & 0o777).toString(8);
      if (st.isSymbolicLink()) out[guest] = `link ${await readlink(full)}`;
      else if (st.isDirectory()) { out[guest] = `dir ${mode}`; await walk(full, guest); }
      else out[guest] = `file ${mode} ${createHash('sha256').update(await readFile(full)).digest('hex')}`;
    }
  };
  await walk(root, '');
  return out;
}

/** Member names of a cpio stream, as GNU cpio lists them. */
async function members(stream: string): Promise<string[]> {
  const { stdout } = await execa('cpio', ['-it', '--quiet'], { inputFile: stream });
  return stdout.split('\n').filter(Boolean);
}

type Failure = Error & { code?: string; hint?: string };
/**
 * The error `promise` rejects with, checked for `code`. Not t.throwsAsync: our errors reach the
 * stream as gulp PluginErrors, which are not native errors, and ava cannot report a mismatch on those.
 */
async function failsWith(t: import('ava').ExecutionContext, promise: Promise<unknown>, code: string): Promise<Failure> {
  try {
    await promise;
  } catch (error) {
    const e = error as Failure;
    t.is(e.code, code, `${e.message}`);
    return e;
  }
  t.fail(`expected an error ${code}`);
  return new Error('none');
}

/** runSteps, with a failure turned into a native Error that ava can report (see failsWith). */
async function build(files: Vinyl[], step: import('node:stream').Transform): Promise<Vinyl[]> {
  try {
    return await runSteps(files, step);
  } catch (error) {
    throw new Error(`the build failed: ${(error as Error).message}`);
  }
}

const h = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

function placed(v: Vinyl, guestPath: string, layer = APP_LAYER): Vinyl {
  annotate(v, { kind: 'app', guestPath, layer });
  return v;
}

test('a ZFS image: the builder gets -kernel/-append on our disk, and the stream holds exactly the laid-out winners', async (t) => {
  const w = await world(t);
  const big = randomBytes(300_000);
  const streamed = randomBytes(200_000);
  const hostFile = path.join(w.dir, 'host.bin');
  const hostBytes = randomBytes(150_000);
  await writeFile(hostFile, hostBytes);
  const hostStat = await stat(hostFile);
  const fromHost = new Vinyl({ cwd: w.dir, base: w.dir, path: hostFile, contents: null, stat: hostStat });
  const fromStream = new Vinyl({ cwd: w.dir, base: w.dir, path: path.join(w.dir, 'streamed.bin'), contents: Readable.from([streamed.subarray(0, 70_000), streamed.subarray(70_000)]), stat: hostStat });
  const files = [
    vinylDir(w.dir, 'usr'),
    vinylFile(w.dir, 'usr/lib/libx.so', big, 0o755),
    vinylSymlink(w.dir, 'usr/lib/liby.so', 'libx.so'),
    vinylFile(w.dir, 'empty', ''),
    vinylFile(w.dir, 'données/été.txt', 'UTF-8 names\n', 0o600),
    placed(vinylFile(w.dir, 'x', 'from a package\n'), '/etc/conf', 5),
    placed(vinylFile(w.dir, 'y', 'from the app\n'), '/etc/conf'),
    placed(vinylFile(w.dir, 'z', 'a lower layer, late\n'), '/etc/conf', 1),
    placed(fromHost, '/opt/host.bin'),
    placed(fromStream, '/opt/streamed.bin'),
  ];
  const output = await build(files, writeImage(w.opts()));
  const info = output[0]!.capstan?.image;
  t.like(info, { format: 'qcow2', fs: 'zfs', virtualSize: 128 * 1048576, cmdline: '--rootfs=zfs /hello', partition: { start: 2097152, size: 128 * 1048576 - 2097152 } });

  const [run, ...more] = await fakeRuns(w.runs);
  t.is(more.length, 0);
  t.is(run!.kernel, w.builder);
  t.is(run!.append, builderCmdline('master'), 'the layout comes from the builder here (the stand-in loader has no kernel to read)');
  t.regex(run!.append!, /--prefix \/zfs\/;.*\/zpool\.so export osv$/);
  const device = run!.args.find((a) => a.startsWith('virtio-blk-pci'));
  t.is(device, 'virtio-blk-pci,id=blk0,drive=hd0', 'no bootindex with -kernel');
  t.is(run!.diskCmdline, '--rootfs=zfs /hello', 'the final command line is on the disk before the builder runs');
  t.not(run!.disk.path, w.out, 'the builder writes a temp file, not out');

  t.deepEqual(await treeOf(run!.tree), {
    '/données': 'dir 755',
    '/données/été.txt': `file 600 ${h('UTF-8 names\n')}`,
    '/empty': `file 644 ${h('')}`,
    '/etc': 'dir 755',
    '/etc/conf': `file 644 ${h('from the app\n')}`,
    '/opt': 'dir 755',
    '/opt/host.bin': `file 644 ${h(hostBytes)}`,
    '/opt/streamed.bin': `file 644 ${h(streamed)}`,
    '/usr': 'dir 755',
    '/usr/lib': 'dir 755',
    '/usr/lib/libx.so': `file 755 ${h(big)}`,
    '/usr/lib/liby.so': 'link libx.so',
  });
  const names = await members(run!.stream);
  t.false(names.includes('.') || names.includes('/'), 'the root is never sent');
  t.is(names.filter((n) => n === '/etc/conf').length, 1, 'only the winner of a path is sent');
  t.is(names.length, 12);

  // The disk: our MBR entry and command line, the builder's pool (labels checked before the rename).
  const disk = await openDiskImage(w.out);
  const head = await disk.read(0, 32768);
  await disk.close();
  t.like(decodePartitionEntry(head), { start: 2097152, size: 128 * 1048576 - 2097152 });
  t.is(decodeCmdline(head), '--rootfs=zfs /hello');
  await t.notThrowsAsync(execa('qemu-img', ['check', w.out]));
  t.like((await describeImage(w.out)).zfs, { name: 'osv', state: 'exported' }, 'describeImage reads the pool from its vdev label');
  // Capstan's hash cache beside it: guest path → MD5 (a folder: of its path), keys sorted.
  const cache = await readFile(`${w.out}.cache`, 'utf8');
  const md5 = (s: string | Buffer) => createHash('md5').update(s).digest('hex');
  t.true(cache.startsWith(`/donn`), cache);
  t.regex(cache, new RegExp(`^/usr/lib/libx\\.so: ${md5(big)}$`, 'm'));
  t.regex(cache, new RegExp(`^/opt/host\\.bin: ${md5(hostBytes)}$`, 'm'), 'host files are hashed while they are sent');
  t.regex(cache, new RegExp(`^/usr: ${md5('/usr')}$`, 'm'));
  t.regex(cache, new RegExp(`^/usr/lib/liby\\.so: ${md5('libx.so')} # symlink$`, 'm'));
  t.deepEqual(await besideOut(w.out), ['app.qemu', 'app.qemu.cache'], 'no temp or spool file is left');
});

test('raw, vmdk, vdi and gce ZFS images hold the same disk (converted from what QEMU wrote, holes kept)', async (t) => {
  const w = await world(t);
  const files = () => [vinylFile(w.dir, 'a.txt', 'a\n'), vinylFile(w.dir, 'b.bin', randomBytes(100_000))];
  const raw = path.join(w.dir, 'app.raw');
  await build(files(), writeImage(w.opts({ out: raw, format: 'raw' })));
  t.true((await stat(raw)).blocks * 512 < 16 * 1048576, 'the 128 MiB raw disk stays sparse');
  for (const format of ['vmdk', 'vdi'] as const) {
    const out = path.join(w.dir, `app.${format}`);
    await build(files(), writeImage(w.opts({ out, format })));
    await t.notThrowsAsync(execa('qemu-img', ['check', out]), format);
    const { stdout } = await execa('qemu-img', ['compare', '-f', 'raw', '-F', format, raw, out]);
    t.regex(stdout, /Images are identical/, format);
  }
  const gce = path.join(w.dir, 'app.tar.gz');
  await build(files(), writeImage(w.opts({ out: gce, format: 'gce' })));
  const x = path.join(w.dir, 'gce');
  await mkdir(x);
  await execa('tar', ['-xzf', gce, '-C', x]);
  t.is((await stat(path.join(x, 'disk.raw'))).size, 1024 ** 3, 'GCE disks are whole GiB: the pool partition covers 1 GiB');
  const runs = await fakeRuns(w.runs);
  t.is(runs.length, 4);
  t.true(runs.slice(1).every((r) => r.disk.format === 'qcow2'), 'QEMU writes a qcow2 working disk for outputs it cannot write in place');
});

test('two builds at once get their own free host ports and both succeed', async (t) => {
  const w = await world(t);
  const outs = [path.join(w.dir, 'one.qemu'), path.join(w.dir, 'two.qemu')];
  await Promise.all(outs.map((out, i) => build([vinylFile(w.dir, 'n.txt', `build ${i}\n`)], writeImage(w.opts({ out })))));
  const runs = await fakeRuns(w.runs);
  t.is(runs.length, 2);
  t.not(runs[0]!.port, runs[1]!.port);
  t.true(runs.every((r) => r.port !== 10000), 'not Capstan\'s fixed port');
  const texts = await Promise.all(runs.map((r) => readFile(path.join(r.tree, 'n.txt'), 'utf8')));
  t.deepEqual(texts.sort(), ['build 0\n', 'build 1\n']);
  for (const out of outs) t.true((await stat(out)).isFile());
});

test('a receiver that dies mid-stream: an error, and the previous image and cache stay as they were', async (t) => {
  const w = await world(t);
  await build([vinylFile(w.dir, 'v.txt', 'version 1\n')], writeImage(w.opts()));
  const before = { image: await sha(w.out), cache: await readFile(`${w.out}.cache`, 'utf8') };
  const error = await failsWith(t, runSteps([vinylFile(w.dir, 'big.bin', randomBytes(1_000_000))], writeImage(w.opts({ mode: 'die' }))), 'E_ZFS_BUILDER_FAILED');
  t.regex(error.message, /the OSv ZFS builder failed \(disk 128 MiB, ZFS partition 126 MiB\)/);
  t.regex(error.message, /stream to cpiod was cut short|QEMU ended|connection/);
  t.is(await sha(w.out), before.image);
  t.is(await readFile(`${w.out}.cache`, 'utf8'), before.cache);
  t.deepEqual(await besideOut(w.out), ['app.qemu', 'app.qemu.cache']);
});

test('the guest running out of space: its line, the disk size and "a larger size" are reported; nothing at out', async (t) => {
  const w = await world(t);
  const started = Date.now();
  const error = await failsWith(t, runSteps([vinylFile(w.dir, 'big.bin', randomBytes(400_000))], writeImage(w.opts({ mode: 'full' }))), 'E_ZFS_FULL');
  t.regex(error.message, /"what\(\): {2}mkdirp \/zfs\/big: No space left on device"/);
  t.regex(error.message, /disk 128 MiB, ZFS partition 126 MiB/);
  t.regex(error.hint ?? '', /larger `size`/);
  t.true(Date.now() - started < 30_000, 'the abort on the console ends the wait (the socket stays open in the guest)');
  t.deepEqual(await besideOut(w.out), []);
});

test('a builder that aborts is reported with its line and killed at once', async (t) => {
  const w = await world(t);
  const error = await failsWith(t, runSteps([vinylFile(w.dir, 'big.bin', randomBytes(400_000))], writeImage(w.opts({ mode: 'abort' }))), 'E_ZFS_BUILDER_FAILED');
  t.regex(error.message, /"what\(\): {2}bad cpio header"/);
  const [run] = await fakeRuns(w.runs);
  t.throws(() => process.kill(JSON.parse(JSON.stringify(run)).pid, 0), undefined, 'the stand-in QEMU was killed');
  t.deepEqual(await besideOut(w.out), []);
});

test('a builder that leaves no pool on the disk: the image does not check out and is not published', async (t) => {
  const w = await world(t);
  const error = await failsWith(t, runSteps([vinylFile(w.dir, 'a', 'a')], writeImage(w.opts({ mode: 'nolabel' }))), 'E_ZFS_IMAGE_CHECK');
  t.regex(error.message, /no ZFS label at the start of the partition/);
  t.deepEqual(await besideOut(w.out), []);
});

test('a file of 4 GiB or more is refused before the VM starts', async (t) => {
  const w = await world(t);
  const huge = path.join(w.dir, 'huge.bin');
  await writeFile(huge, '');
  await truncate(huge, 4 * 1024 ** 3);
  const file = new Vinyl({ cwd: w.dir, base: w.dir, path: huge, contents: null, stat: await stat(huge) });
  const error = await failsWith(t, runSteps([file], writeImage(w.opts())), 'E_CPIO_TOO_LARGE');
  t.regex(error.message, /4 GiB or more cannot be sent/);
  t.deepEqual(await fakeRuns(w.runs), [], 'no VM was started');
});

test('a host file changed after it was listed is that error (E_SOURCE_CHANGED), not a builder failure; nothing at out', async (t) => {
  const w = await world(t);
  const file = path.join(w.dir, 'changing.bin');
  await writeFile(file, randomBytes(100_000));
  const listed = new Vinyl({ cwd: w.dir, base: w.dir, path: file, contents: null, stat: await stat(file) });
  await writeFile(file, randomBytes(50_000)); // changed after "src" listed it
  const error = await failsWith(t, runSteps([listed], writeImage(w.opts())), 'E_SOURCE_CHANGED');
  t.regex(error.message, /changing\.bin/);
  const runs = await fakeRuns(w.runs);
  t.is(runs.length, 1, 'found while streaming to the builder');
  t.throws(() => process.kill(JSON.parse(JSON.stringify(runs[0])).pid, 0), undefined, 'whose QEMU was stopped');
  t.deepEqual(await besideOut(w.out), []);
});

test('layouts: v0.57 by option (prefix /zfs/zfs, no export) or from a v0.57 builder; a builder that cannot write the layout is refused before booting', async (t) => {
  const w = await world(t);
  await build([vinylFile(w.dir, 'a', 'a')], writeImage(w.opts({ zfsLayout: 'v0.57' })));
  const old = await writeFakeBuilder(path.join(w.dir, 'old-builder.elf'), 'v0.57');
  await build([vinylFile(w.dir, 'a', 'a')], writeImage(w.opts({ zfsBuilder: old })));
  const runs = await fakeRuns(w.runs);
  t.is(runs[0]!.append, builderCmdline('v0.57'));
  t.regex(runs[0]!.append!, /cpiod\.so --prefix \/zfs\/zfs; \/zfs\.so set compression=off osv$/);
  t.is(runs[1]!.append, builderCmdline('v0.57'), 'detected from the builder\'s kernel (it names osv/zfs)');
  const error = await failsWith(t, runSteps([vinylFile(w.dir, 'a', 'a')], writeImage(w.opts({ zfsBuilder: old, zfsLayout: 'master' }))), 'E_ZFS_BUILDER_INVALID');
  t.regex(error.message, /no \/tools\/umount\.so/);
  t.is((await fakeRuns(w.runs)).length, 2);
});

/** A loader whose "kernel" at 0x10000 is an ELF64 with a bootfs (with or without libsolaris.so) and, for v0.57, `osv/zfs`. */
async function loaderWithKernel(w: World, kind: 'master' | 'v0.57' | 'rofs'): Promise<string> {
  const loader = await readFile(w.loader);
  const tools = kind === 'rofs' ? ['/libenviron.so'] : ['/usr/lib/fs/libsolaris.so'];
  const kernel = Buffer.concat([Buffer.from(`\x7fELF\x02\x01\x01${'\0'.repeat(57)}OSv v0.57.0-test\0${kind === 'v0.57' ? 'osv/zfs\0' : ''}`, 'latin1'), Buffer.alloc(1000), bootfsTable(tools)]);
  kernel.copy(loader, 0x10000);
  const file = path.join(w.dir, `loader-${kind}.raw`);
  await writeFile(file, loader);
  return file;
}

test('the layout is read from the loader\'s kernel: a loader without ZFS, or one contradicting zfsLayout, fails before any VM', async (t) => {
  const w = await world(t);
  const rofs = await loaderWithKernel(w, 'rofs');
  const noZfs = await failsWith(t, runSteps([vinylFile(w.dir, 'a', 'a')], writeImage(w.opts({ loader: rofs }))), 'E_ZFS_LOADER');
  t.regex(noZfs.message, /cannot mount a ZFS root.*fs=rofs/);
  const v057 = await loaderWithKernel(w, 'v0.57');
  const clash = await failsWith(t, runSteps([vinylFile(w.dir, 'a', 'a')], writeImage(w.opts({ loader: v057, zfsLayout: 'master' }))), 'E_ZFS_LAYOUT');
  t.regex(clash.message, /mounts dataset osv\/zfs/);
  t.deepEqual(await fakeRuns(w.runs), []);
  // Without the option, the loader decides (v0.57) although the builder is a master one.
  await build([vinylFile(w.dir, 'a', 'a')], writeImage(w.opts({ loader: v057 })));
  t.is((await fakeRuns(w.runs))[0]!.append, builderCmdline('v0.57'));
});

// ---- --update ----

const TOOLS = ['/tools/cpiod.so', '/libzfs.so', '/libuutil.so'];
function appFiles(w: World, version: string, extra: Vinyl[] = []): Vinyl[] {
  return [
    ...TOOLS.map((p) => placed(vinylFile(w.dir, p.slice(1), `stand-in ${p}\n`, 0o755), p, 1)),
    vinylFile(w.dir, 'app/main.txt', `main ${version}\n`),
    vinylFile(w.dir, 'app/same.txt', 'unchanged\n'),
    vinylSymlink(w.dir, 'app/link', 'same.txt'),
    ...extra,
  ];
}

async function lastRun(w: World): Promise<FakeRun> {
  return (await fakeRuns(w.runs)).at(-1)!;
}

test('update: only the changed file is sent, through the image itself (cpiod --prefix /), and the image keeps its command line', async (t) => {
  const w = await world(t);
  await build(appFiles(w, '1'), writeImage(w.opts()));
  const first = await readFile(`${w.out}.cache`, 'utf8');
  const output = await build(appFiles(w, '2'), writeImage(w.opts({ update: true, cmdline: '/hello again' })));
  const runs = await fakeRuns(w.runs);
  t.is(runs.length, 2);
  const upd = runs[1]!;
  t.is(upd.append, undefined, 'the stand-in loader has no kernel to read: the image boots from its disk');
  t.is(upd.diskCmdline, UPDATE_CMDLINE, 'so the update command line is on the disk it boots');
  t.true(upd.args.includes('virtio-blk-pci,id=blk0,bootindex=0,drive=hd0'));
  t.deepEqual(await members(upd.stream), ['/app/main.txt']);
  t.is(await readFile(path.join(upd.tree, 'app/main.txt'), 'utf8'), 'main 2\n');
  const disk = await openDiskImage(w.out);
  t.is(decodeCmdline(await disk.read(0, 32768)), '--rootfs=zfs /hello again');
  await disk.close();
  t.is(output[0]!.capstan?.image?.cmdline, '--rootfs=zfs /hello again');
  const md5 = (s: string) => createHash('md5').update(s).digest('hex');
  const second = await readFile(`${w.out}.cache`, 'utf8');
  t.regex(second, new RegExp(`^/app/main\\.txt: ${md5('main 2\n')}$`, 'm'));
  t.is(second.replace(/^\/app\/main\.txt: .*\n/m, ''), first.replace(/^\/app\/main\.txt: .*\n/m, ''), 'every other line is as before');
  t.deepEqual(await besideOut(w.out), ['app.qemu', 'app.qemu.cache']);
});

test('update with the loader\'s kernel: booted with -kernel (the kernel decompressed from the loader), no bootindex', async (t) => {
  const w = await world(t);
  const loader = await loaderWithKernel(w, 'master');
  await build(appFiles(w, '1'), writeImage(w.opts({ loader })));
  await build(appFiles(w, '2'), writeImage(w.opts({ loader, update: true })));
  const upd = await lastRun(w);
  t.is(upd.append, UPDATE_CMDLINE);
  t.truthy(upd.kernel);
  t.not(upd.kernel, w.builder);
  t.true(upd.args.includes('virtio-blk-pci,id=blk0,drive=hd0'));
  t.deepEqual(await members(upd.stream), ['/app/main.txt']);
});

test('update with nothing changed starts no VM; a file gone from the build stays in the image (Capstan) unless updateDeleted is "rebuild"', async (t) => {
  const w = await world(t);
  const gone = vinylFile(w.dir, 'app/old.txt', 'old\n');
  await build(appFiles(w, '1', [gone]), writeImage(w.opts()));
  const image = await sha(w.out);
  await build(appFiles(w, '1', [vinylFile(w.dir, 'app/old.txt', 'old\n')]), writeImage(w.opts({ update: true })));
  t.is((await fakeRuns(w.runs)).length, 1, 'no VM for an update with nothing to send');
  t.is(await sha(w.out), image);
  await build(appFiles(w, '1'), writeImage(w.opts({ update: true })));
  t.is((await fakeRuns(w.runs)).length, 1, 'a deleted file alone sends nothing');
  t.regex(await readFile(`${w.out}.cache`, 'utf8'), /^\/app\/old\.txt: /m, 'the cache still lists it: it is still in the image');
  await build(appFiles(w, '1'), writeImage(w.opts({ update: true, updateDeleted: 'rebuild' })));
  const rebuild = await lastRun(w);
  t.is(rebuild.append, builderCmdline('master'), 'rebuilt through the builder');
  t.false((await members(rebuild.stream)).includes('/app/old.txt'));
  t.notRegex(await readFile(`${w.out}.cache`, 'utf8'), /old\.txt/);
});

test('update falls back to a full build when it cannot be done in place: a changed symlink, a type change, no cpiod in the image, no cache', async (t) => {
  const w = await world(t);
  const builds = async () => (await fakeRuns(w.runs)).filter((r) => r.append === builderCmdline('master')).length;
  await build(appFiles(w, '1'), writeImage(w.opts()));
  t.is(await builds(), 1);
  const relinked = appFiles(w, '1').map((f) => (f.relative === 'app/link' ? vinylSymlink(w.dir, 'app/link', 'main.txt') : f));
  await build(relinked, writeImage(w.opts({ update: true })));
  t.is(await builds(), 2, 'cpiod cannot replace a symlink');
  const typeChange = [...appFiles(w, '1').filter((f) => f.relative !== 'app/same.txt'), vinylDir(w.dir, 'app/same.txt')];
  await build(typeChange, writeImage(w.opts({ update: true })));
  t.is(await builds(), 3, 'a file became a folder');
  await build([vinylFile(w.dir, 'plain.txt', 'no tools\n')], writeImage(w.opts()));
  await build([vinylFile(w.dir, 'plain.txt', 'changed\n')], writeImage(w.opts({ update: true })));
  t.is(await builds(), 5, 'no /tools/cpiod.so (nor libzfs.so) in the image to receive it');
  await rm(`${w.out}.cache`);
  await build(appFiles(w, '3'), writeImage(w.opts({ update: true })));
  t.is(await builds(), 6, 'no cache');
  await rm(w.out);
  await rm(`${w.out}.cache`);
  await build(appFiles(w, '3'), writeImage(w.opts({ update: true })));
  t.is(await builds(), 7, 'no image');
});

test('ZFS options are checked when the stream is made', (t) => {
  t.throws(() => writeImage({ out: '/tmp/x', fs: 'ext' as 'zfs' }), { any: true, message: /unknown fs "ext"/ });
  t.throws(() => writeImage({ out: '/tmp/x', fs: 'zfs', zfsLayout: 'v1' as 'master' }), { any: true, message: /unknown zfsLayout "v1"/ });
  t.throws(() => writeImage({ out: '/tmp/x', zfsBuilder: 'b' }), { any: true, message: /`zfsBuilder` is a ZFS option, but fs is "rofs"/ });
});
