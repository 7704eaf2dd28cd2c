// Whole images: composed by ImageComposer, read back by describeImage, and cross-checked with
// independent tools (qemu-img info/compare/convert, file(1), plain byte reads).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { ImageComposer } from '../lib/image/compose.js';
import { describeImage, OsvImage } from '../lib/image/describe.js';
import { ImageError } from '../lib/errors.js';
import { buildStandInLoader } from './helpers/stand-in.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-compose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A seeded generator, so a failing tree can be reproduced. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

type TreeEntry = { path: string; type: 'file'; data: Buffer } | { path: string; type: 'dir' } | { path: string; type: 'symlink'; target: string };

/** A random tree: nested folders, UTF-8 names, empty and multi-block files, symlinks. */
function randomTree(seed: number, count: number): TreeEntry[] {
  const r = rng(seed);
  const names = ['lib', 'usr', 'bin', 'données', '日本語', 'a b', 'x', 'node_modules', 'é'.repeat(40), 'deep'];
  const dirs = ['/'];
  const entries: TreeEntry[] = [];
  const used = new Set<string>(['/']);
  for (let i = 0; entries.length < count; i++) {
    const parent = dirs[Math.floor(r() * dirs.length)]!;
    const name = `${names[Math.floor(r() * names.length)]}-${i}`;
    const p = (parent === '/' ? '' : parent) + '/' + name;
    if (used.has(p)) continue;
    used.add(p);
    const pick = r();
    if (pick < 0.15) { dirs.push(p); entries.push({ path: p, type: 'dir' }); }
    else if (pick < 0.22) entries.push({ path: p, type: 'symlink', target: r() < 0.5 ? '../lib/libfoo.so' : `/usr/lib/${name}` });
    else {
      const size = pick < 0.3 ? 0 : pick < 0.9 ? Math.floor(r() * 5000) : Math.floor(r() * 300_000);
      entries.push({ path: p, type: 'file', data: randomBytes(size) });
    }
  }
  return entries;
}

async function compose(out: string, loader: string, entries: TreeEntry[], format: 'raw' | 'qcow2', cmdline: string, size?: string) {
  const composer = await ImageComposer.open({ out, loader, format, size });
  for (const e of entries) {
    if (e.type === 'dir') composer.addDirectory(e.path);
    else if (e.type === 'symlink') composer.addSymlink(e.path, e.target);
    else {
      // Stream larger files in uneven chunks, as vinyl streams arrive.
      const data = e.data;
      await composer.addFile(e.path, data.length > 70_000 ? (async function* () {
        for (let o = 0; o < data.length; o += 10_007) yield data.subarray(o, o + 10_007);
      })() : data);
    }
  }
  return composer.finish(cmdline);
}

test('a large random tree round-trips through describeImage, identical in raw and qcow2', async (t) => {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const entries = randomTree(42, 2500);
  const cmdline = '--rootfs=rofs /usr/bin/app --flag "quoted arg" ünïcode';
  const raw = path.join(dir, 'tree.raw');
  const qcow = path.join(dir, 'tree.qcow2');
  const rawResult = await compose(raw, loader, entries, 'raw', cmdline);
  const qcowResult = await compose(qcow, loader, entries, 'qcow2', cmdline);
  t.deepEqual(rawResult.info.partition, qcowResult.info.partition);

  // qemu-img: clean, same virtual disk as the raw file, sizes agree.
  t.regex((await execa('qemu-img', ['check', qcow])).stdout, /No errors/);
  t.regex((await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, qcow])).stdout, /Images are identical/);
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', qcow])).stdout);
  t.is(info['virtual-size'], qcowResult.info.virtualSize);
  t.is((await stat(raw)).size, rawResult.info.virtualSize);

  for (const image of [raw, qcow]) {
    const reader = await OsvImage.open(image);
    t.teardown(() => reader.close());
    const d = await reader.describe();
    t.is(d.cmdline, cmdline);
    t.deepEqual(d.partition, rawResult.info.partition);
    const listed = new Map(d.rofs!.entries.map((e) => [e.path, e]));
    t.is(d.rofs!.entries.length, entries.length + 1); // + the root
    t.is(listed.get('/')?.type, 'dir');
    for (const e of entries) {
      const got = listed.get(e.path);
      if (!got) { t.fail(`${e.path} missing`); continue; }
      t.is(got.type, e.type, e.path);
      if (e.type === 'symlink') t.is(got.target, e.target);
      if (e.type === 'file') {
        t.is(got.size, e.data.length, e.path);
        t.is(sha(await reader.readFile(e.path)), sha(e.data), e.path);
      }
    }
  }

  // Independent reads of the raw file: command line at 512, MBR entry as file(1) decodes it.
  const head = Buffer.alloc(32768);
  const fh = await (await import('node:fs/promises')).open(raw, 'r');
  await fh.read(head, 0, head.length, 0);
  await fh.close();
  t.is(head.toString('utf8', 512, 512 + Buffer.byteLength(cmdline)), cmdline);
  t.is(head[512 + Buffer.byteLength(cmdline)], 0);
  // file(1) decodes the MBR independently (it is not installed everywhere: then skip this check).
  const described = await execa('file', ['-b', raw], { reject: false });
  if (described.exitCode === 0 && !described.failed) {
    t.regex(described.stdout, new RegExp(`partition 2 : ID=0x83.*startsector ${rawResult.info.partition.start / 512}, ${rawResult.info.partition.size / 512} sectors`));
  } else {
    t.log('file(1) is not available; MBR cross-check skipped');
  }
  // The loader's bytes after the command-line area are unchanged.
  const loaderBytes = await readFile(loader);
  const disk = Buffer.alloc(loaderBytes.length);
  const fh2 = await (await import('node:fs/promises')).open(raw, 'r');
  await fh2.read(disk, 0, disk.length, 0);
  await fh2.close();
  t.true(disk.subarray(32768).equals(loaderBytes.subarray(32768)));
  t.true(disk.subarray(0, 0x1be).equals(loaderBytes.subarray(0, 0x1be)));
});

test('reproducible: the same inputs give the same bytes', async (t) => {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const entries = randomTree(7, 300);
  for (const format of ['raw', 'qcow2'] as const) {
    const a = path.join(dir, `a.${format}`);
    const b = path.join(dir, `b.${format}`);
    await compose(a, loader, entries, format, '/bin/app');
    await compose(b, loader, entries, format, '/bin/app');
    t.is(sha(await readFile(a)), sha(await readFile(b)), format);
  }
});

test('size: a larger virtual disk when asked; too small is an error that leaves nothing', async (t) => {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const out = path.join(dir, 'sized.qcow2');
  const { info } = await compose(out, loader, randomTree(3, 20), 'qcow2', '/x', '64M');
  t.is(info.virtualSize, 64 * 1024 * 1024);
  t.is((await describeImage(out)).virtualSize, 64 * 1024 * 1024);
  const small = path.join(dir, 'small.qcow2');
  const err = await t.throwsAsync(compose(small, loader, randomTree(3, 20), 'qcow2', '/x', '1M'), { instanceOf: ImageError });
  t.is(err.code, 'E_SIZE_TOO_SMALL');
  t.false((await readdir(dir)).some((n) => n.startsWith('small') || n.startsWith('.small')));
});

test('loaders: a qcow2 loader gives the same image; a non-loader and a missing loader are clear errors', async (t) => {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const qcowLoader = path.join(dir, 'loader.qcow2');
  await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', loader, qcowLoader]);
  const entries = randomTree(9, 50);
  await compose(path.join(dir, 'from-raw.raw'), loader, entries, 'raw', '/a');
  await compose(path.join(dir, 'from-qcow2.raw'), qcowLoader, entries, 'raw', '/a');
  t.is(sha(await readFile(path.join(dir, 'from-raw.raw'))), sha(await readFile(path.join(dir, 'from-qcow2.raw'))));

  const text = path.join(dir, 'notes.txt');
  await writeFile(text, 'this is not a loader\n'.repeat(5000));
  const bad = await t.throwsAsync(ImageComposer.open({ out: path.join(dir, 'x.qcow2'), loader: text }), { instanceOf: ImageError });
  t.is(bad.code, 'E_LOADER_INVALID');
  t.regex(bad.message, /not an OSv loader: it has no boot sector/);

  const truncated = path.join(dir, 'truncated.img');
  await writeFile(truncated, (await readFile(loader)).subarray(0, 70_000));
  const trunc = await t.throwsAsync(ImageComposer.open({ out: path.join(dir, 'x.qcow2'), loader: truncated }), { instanceOf: ImageError });
  t.regex(trunc.message, /loads 3 kernel chunks \(up to byte 163840\) but the file has only 70000 bytes/);

  const missing = await t.throwsAsync(ImageComposer.open({ out: path.join(dir, 'x.qcow2'), root: path.join(dir, 'capstan-root') }), { instanceOf: ImageError });
  t.is(missing.code, 'E_LOADER_MISSING');
  t.true(missing.message.includes(path.join(dir, 'capstan-root', 'repository', 'osv-loader', 'osv-loader.qemu')));
  t.regex(missing.message, /osv-loader\.qemu\.x86_64/);
  t.deepEqual((await readdir(dir)).filter((n) => n.startsWith('x.') || n.startsWith('.x.')), []);
});

test('abort() unlinks the temp file before it returns its promise; an aborted image takes no more writes', async (t) => {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  // Every format writes synchronously (VMDK and VDI: their unit allocator blocks; the staged
  // ones, streamOptimized VMDK and GCE, write a raw staging file).
  for (const [format, vmdkSubformat] of [['qcow2'], ['raw'], ['vmdk'], ['vdi'], ['vmdk', 'streamOptimized'], ['gce']] as const) {
    const out = path.join(dir, `app.${format}`);
    const composer = await ImageComposer.open({ out, loader, format, vmdkSubformat });
    t.true(composer.canAddSync, `${format} ${vmdkSubformat ?? ''}`);
    t.is(composer.addFileSync('/a', Buffer.from('a file')), 'added');
    // A file in progress when the build is stopped (a stream destroyed mid-file): its next chunk must not reach the closed descriptor.
    let aborting: Promise<void> | undefined;
    const midFile = composer.addFile('/b', (async function* () {
      yield Buffer.alloc(70_000, 1);
      aborting = composer.abort();
      t.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'unlinked before abort() was awaited');
      yield Buffer.alloc(70_000, 2);
    })());
    const refused = await t.throwsAsync(midFile, { instanceOf: ImageError });
    t.is(refused?.code, 'E_IMAGE_CLOSED');
    await aborting;
    const late = t.throws(() => composer.addFileSync('/c', Buffer.from('late')), { instanceOf: ImageError });
    t.is(late?.code, 'E_IMAGE_STATE');
    t.throws(() => composer.addDirectory('/d'), { instanceOf: ImageError });
    t.deepEqual((await readdir(dir)).filter((n) => n.startsWith(`app.${format}`) || n.endsWith('.tmp')), []);
  }
});

test('an error keeps the previous image at out untouched', async (t) => {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const out = path.join(dir, 'app.qcow2');
  await compose(out, loader, randomTree(5, 30), 'qcow2', '/first');
  const before = sha(await readFile(out));
  const composer = await ImageComposer.open({ out, loader });
  await composer.addFile('/ok', Buffer.from('fine'));
  await t.throwsAsync(composer.addFile('/broken', (async function* () {
    yield Buffer.from('partial');
    throw Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
  })()));
  await composer.abort();
  t.is(sha(await readFile(out)), before);
  t.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
  t.is((await describeImage(out)).cmdline, '/first');
});

/** A folder with a loader and a previous image at out ('/previous'), and where to put a writer script that interrupts the next one. */
async function previousImage(t: Parameters<typeof tempDir>[0], seed: number, count: number) {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const out = path.join(dir, 'app.qcow2');
  await compose(out, loader, randomTree(seed, count), 'qcow2', '/previous');
  const before = sha(await readFile(out));
  return { dir, loader, out, before, script: path.join(dir, 'writer.mts'), composeModule: new URL('../lib/image/compose.ts', import.meta.url).href };
}

test('a process killed while writing leaves the previous image at out (only a temp file as residue)', async (t) => {
  const { dir, loader, out, before, script, composeModule } = await previousImage(t, 11, 20);
  await writeFile(script, `
    import { ImageComposer } from ${JSON.stringify(composeModule)};
    const c = await ImageComposer.open({ out: ${JSON.stringify(out)}, loader: ${JSON.stringify(loader)} });
    await c.addFile('/big', Buffer.alloc(3 * 1024 * 1024, 7));
    await c.addFile('/endless', (async function* () {
      process.stdout.write('writing\\n');
      for (;;) { yield Buffer.alloc(65536, 1); await new Promise((r) => setTimeout(r, 50)); }
    })());
  `);
  const child = execa(process.execPath, ['--import=tsx', script], { reject: false });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('writing')) resolve(); });
    child.then((r) => reject(new Error(`writer exited early: ${r.stderr}`)), reject);
  });
  child.kill('SIGKILL');
  await child;
  t.is(sha(await readFile(out)), before);
  t.is((await describeImage(out)).cmdline, '/previous');
  const residue = (await readdir(dir)).filter((n) => n.startsWith('.app.qcow2.') && n.endsWith('.tmp'));
  t.is(residue.length, 1, 'the killed writer leaves only its temp file');
});

// How gulp ends a failed task (process.exit while a step downstream of the failure still
// writes), and Ctrl+C / kill: the unfinished image's temp file goes with the process. SIGKILL
// (above) is the one ending nothing can clean up after.
for (const ending of ['process.exit(1)', 'SIGINT', 'SIGTERM', 'SIGINT with a listener of the app\'s own'] as const) {
  test(`a process that ends while writing (${ending}) leaves no temp file, and the previous image at out`, async (t) => {
    const { dir, loader, out, before, script, composeModule } = await previousImage(t, 12, 10);
    const ownListener = ending.includes('listener');
    await writeFile(script, `
      import { ImageComposer } from ${JSON.stringify(composeModule)};
      ${ownListener ? "process.on('SIGINT', () => { process.stdout.write('app got SIGINT\\n'); setTimeout(() => process.exit(3), 300); });" : ''}
      const c = await ImageComposer.open({ out: ${JSON.stringify(out)}, loader: ${JSON.stringify(loader)} });
      await c.addFile('/big', Buffer.alloc(3 * 1024 * 1024, 7));
      await c.addFile('/endless', (async function* () {
        process.stdout.write('writing\\n');
        ${ending === 'process.exit(1)' ? 'setTimeout(() => process.exit(1), 100);' : ''}
        for (;;) { yield Buffer.alloc(65536, 1); await new Promise((r) => setTimeout(r, 50)); }
      })());
    `);
    const child = execa(process.execPath, ['--import=tsx', script], { reject: false });
    const residue = async () => (await readdir(dir)).filter((n) => n.startsWith('.app.qcow2.'));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('writing')) resolve(); });
      child.then((r) => (ending === 'process.exit(1)' ? resolve() : reject(new Error(`writer exited early: ${r.stderr}`))), reject);
    });
    if (ending.startsWith('SIGINT')) child.kill('SIGINT');
    if (ending === 'SIGTERM') child.kill('SIGTERM');
    if (ownListener) {
      // The app's listener keeps the process for now: its build goes on, temp file and all.
      await new Promise((r) => setTimeout(r, 100));
      t.is((await residue()).length, 1, 'the temp file stays while the process lives');
    }
    const result = await child;
    if (ending === 'process.exit(1)') t.is(result.exitCode, 1);
    else if (ownListener) t.is(result.exitCode, 3, 'the app decided how to end');
    else t.is(result.signal, ending as NodeJS.Signals, 'the process still dies of the signal');
    t.deepEqual(await residue(), []);
    t.is(sha(await readFile(out)), before);
  });
}
