// Incremental images (writeImage({incremental})): a qcow2 overlay over the previous image that
// reuses unchanged files' blocks. Every incremental image is compared with a full build of the
// same tree, file for file, through our reader and through QEMU's own block layer
// (`qemu-img convert` flattens the backing chain), and passes `qemu-img check`. The source
// trees are real files listed as `read: false` vinyls, as the watch session hands them over.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, symlink, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import Vinyl from 'vinyl';
import { annotate, APP_LAYER } from '../lib/carrier.js';
import { ImageComposer } from '../lib/image/compose.js';
import { OsvImage } from '../lib/image/describe.js';
import { decodeBuildRecord, recordPathFor } from '../lib/image/build-record.js';
import { RACY_WINDOW_MS } from '../lib/image/incremental.js';
import { openQcow2 } from '../lib/image/qcow2.js';
import { writeImage, type WriteImageOptions } from '../lib/steps/write-image.js';
import { boot } from '../lib/vm/boot.js';
import { bootStandIn, buildStandInLoader, STAND_IN_EXIT_OK } from './helpers/stand-in.js';
import { runSteps } from './helpers/streams.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function setup(t: ExecutionContext) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-incremental-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const out = path.join(dir, 'build');
  await mkdir(out);
  return { dir, loader, out };
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

/**
 * A few hundred entries: nested folders (UTF-8 names among them), small and empty files, a
 * large file spanning many qcow2 clusters, relative and absolute symlinks. Left older than the
 * racy window, as a watched project's files are.
 */
async function makeTree(root: string, seed = 1): Promise<void> {
  const r = rng(seed);
  const dirs = ['', 'lib', 'lib/données', 'usr/日本語', 'usr/bin', `deep/${'é'.repeat(40)}/x`, 'a b'];
  for (const d of dirs) await mkdir(path.join(root, d), { recursive: true });
  for (let i = 0; i < 300; i++) {
    const d = dirs[Math.floor(r() * dirs.length)]!;
    const size = i % 10 === 0 ? 0 : Math.floor(r() * 6000);
    await writeFile(path.join(root, d, `f${i}-ünï.bin`), randomBytes(size));
  }
  await writeFile(path.join(root, 'lib', 'big.so'), randomBytes(1_500_000)); // 23 clusters of 64 KiB
  await symlink('big.so', path.join(root, 'lib', 'libbig.so.1'));
  await symlink('/lib/big.so', path.join(root, 'usr', 'bin', 'tool'));
  await makeOld(root);
}

/** Moves every entry's times back (its ctime stays: callers wait out the racy window too). */
async function makeOld(root: string): Promise<void> {
  const old = new Date(Date.now() - 3600_000);
  for (const e of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!e.isSymbolicLink()) await utimes(path.join(e.parentPath, e.name), old, old);
  }
  await new Promise((resolve) => setTimeout(resolve, RACY_WINDOW_MS + 100));
}

/** The tree as the watch session holds it: read: false vinyls with fresh stats, guest paths set. */
function listTree(root: string): Vinyl[] {
  const vinyls: Vinyl[] = [];
  const entries = readdirSync(root, { recursive: true, withFileTypes: true })
    .map((e) => path.join(e.parentPath, e.name)).sort();
  for (const full of entries) {
    const file = new Vinyl({ cwd: root, base: root, path: full, contents: null, stat: lstatSync(full) });
    if (file.stat!.isSymbolicLink()) file.symlink = readlinkSync(full);
    annotate(file, { kind: 'app', guestPath: '/' + path.relative(root, full).split(path.sep).join('/'), layer: APP_LAYER });
    vinyls.push(file);
  }
  return vinyls;
}

interface Built { line: string; mode: 'incremental' | 'full'; reused: number; written: number; generation: number }

/** Runs writeImage on `vinyls`; the summary line says how the image was made. */
async function build(vinyls: Vinyl[], options: WriteImageOptions): Promise<Built> {
  let text = '';
  const logTo = new Writable({ write(chunk, _e, cb) { text += String(chunk); cb(); } });
  await runSteps(vinyls, writeImage({ cmdline: '/lib/big.so', ...options, logTo }));
  const line = text.split('\n').find((l) => l.includes('writeImage:')) ?? '';
  const inc = /incremental: generation (\d+), (\d+) files reused, (\d+) written/.exec(line);
  return inc
    ? { line, mode: 'incremental', generation: Number(inc[1]), reused: Number(inc[2]), written: Number(inc[3]) }
    : { line, mode: 'full', generation: 0, reused: 0, written: 0 };
}

type TreeRow = [path: string, type: string, size: number, mode: number, target: string | undefined, digest: string | undefined];

/** Every entry of an image's ROFS volume, with each file's SHA-256, read through our reader. */
async function treeOf(image: string): Promise<TreeRow[]> {
  const img = await OsvImage.open(image);
  try {
    const d = await img.describe();
    const rows: TreeRow[] = [];
    for (const e of d.rofs!.entries) {
      rows.push([e.path, e.type, e.size, e.mode, e.target, e.type === 'file' ? sha(await img.readFile(e.path)) : undefined]);
    }
    return rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  } finally {
    await img.close();
  }
}

/**
 * The incremental image at `image` holds the same tree as a full build of `vinyls`: through
 * our reader, through QEMU's (flattened by qemu-img convert), and qemu-img check is clean.
 */
async function assertSameAsFull(t: ExecutionContext, image: string, vinyls: Vinyl[], options: WriteImageOptions, what: string): Promise<TreeRow[]> {
  const full = path.join(path.dirname(image), `full-${path.basename(image)}`);
  await build(vinyls, { ...options, out: full, incremental: false });
  const expected = await treeOf(full);
  t.deepEqual(await treeOf(image), expected, `${what}: our reader`);
  const check = await execa('qemu-img', ['check', image], { reject: false });
  t.is(check.exitCode, 0, `${what}: qemu-img check\n${check.stdout}${check.stderr}`);
  const flat = `${full}.flat.raw`;
  await execa('qemu-img', ['convert', '-O', 'raw', image, flat]);
  t.deepEqual(await treeOf(flat), expected, `${what}: QEMU's reading of the chain`);
  await rm(flat);
  await rm(full);
  return expected;
}

const generationFiles = async (dir: string) => (await readdir(dir)).filter((n) => /^\.app\.qemu\.gen-\d+\.qcow2$/.test(n)).sort();

test('edits, additions, deletions, a symlink target, a renamed folder: each incremental image equals a full build', async (t) => {
  const { dir, loader, out } = await setup(t);
  const src = path.join(dir, 'src');
  await makeTree(src);
  const image = path.join(out, 'app.qemu');
  // Flattening is tested below: here every step must chain (the large file's edit kills half the data).
  // Permission bits are kept, so that modes are compared too.
  const options = { out: image, loader, permissions: true, incremental: { maxGenerations: 16, maxDeadFraction: 1 } };
  let vinyls = listTree(src);
  const files = vinyls.filter((v) => v.stat!.isFile()).length;
  const first = await build(vinyls, options);
  t.is(first.mode, 'full');
  t.regex(first.line, /full build \(no earlier build recorded\)/);
  await assertSameAsFull(t, image, vinyls, options, 'first build');

  // Regular files of the first listing (not the large one), by position: each step picks its own.
  const small = vinyls.filter((v) => v.stat!.isFile() && !v.path.endsWith('big.so') && !v.path.includes('données')).map((v) => v.path);
  const steps: [what: string, change: () => Promise<void>, changed: number][] = [
    ['one file edited, same size', async () => { await writeFile(small[1]!, randomBytes((await stat(small[1]!)).size)); }, 1],
    ['one file edited, other size', async () => { await writeFile(small[2]!, randomBytes(77_777)); }, 1],
    ['the large file edited in its middle', async () => {
      const big = await readFile(path.join(src, 'lib', 'big.so'));
      randomBytes(1000).copy(big, 700_000);
      await writeFile(path.join(src, 'lib', 'big.so'), big);
    }, 1],
    ['a mode changed', async () => { await chmod(small[5]!, 0o700); }, 1],
    ['one file added', async () => { await writeFile(path.join(src, 'usr', 'bin', 'new-ñ'), 'a new file\n'); }, 1],
    ['one file emptied', async () => { await truncate(small[3]!, 0); }, 1],
    ['one file deleted', async () => { await unlink(path.join(src, 'usr', 'bin', 'new-ñ')); }, 0],
    ['another file deleted', async () => { await unlink(small[4]!); }, 0],
    ['a symlink target changed', async () => {
      await unlink(path.join(src, 'usr', 'bin', 'tool'));
      await symlink('/usr/日本語', path.join(src, 'usr', 'bin', 'tool'));
    }, 0],
    ['a folder renamed', async () => { await rename(path.join(src, 'lib', 'données'), path.join(src, 'lib', 'data')); }, -1],
  ];
  let generation = 0;
  let touched = 0; // files written in earlier steps may be read again (changed within the racy window)
  for (const [what, change, changed] of steps) {
    await change();
    vinyls = listTree(src);
    const moved = changed === -1 ? vinyls.filter((v) => v.path.includes(`${path.sep}data${path.sep}`) && v.stat!.isFile()).length : changed;
    const result = await build(vinyls, options);
    generation += 1;
    t.is(result.mode, 'incremental', `${what}: ${result.line}`);
    t.is(result.generation, generation, what);
    const now = vinyls.filter((v) => v.stat!.isFile()).length;
    t.is(result.reused + result.written, now, what);
    t.true(result.written >= moved && result.written <= moved + touched, `${what}: ${result.written} written`);
    touched += moved;
    await assertSameAsFull(t, image, vinyls, options, what);
  }
  t.is(files, 301);
  // Each generation file is frozen as it was and named relative to the image.
  t.is((await generationFiles(out)).length, steps.length);
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', '--backing-chain', image])).stdout) as { 'backing-filename'?: string }[];
  t.is(info.length, steps.length + 1);
  t.regex(info[0]!['backing-filename']!, /^\.app\.qemu\.gen-\d+\.qcow2$/);
});

test('unchanged files are neither read nor rewritten: their inodes keep their blocks, their data stays in the backing file', async (t) => {
  const { dir, loader, out } = await setup(t);
  const src = path.join(dir, 'src');
  await makeTree(src, 2);
  const image = path.join(out, 'app.qemu');
  const options = { out: image, loader, incremental: true };
  const vinyls = listTree(src);
  await build(vinyls, options);
  const before = await treeOf(image);
  const blocksBefore = new Map((await describeEntries(image)).map((e) => [e.path, e.block]));
  const bigBytes = await readFile(path.join(src, 'lib', 'big.so'));

  // The large file disappears from the disk, but its vinyl (and stat) is unchanged: were it
  // read, the build would fail (E_SOURCE_CHANGED); reused, it keeps its old bytes.
  await unlink(path.join(src, 'lib', 'big.so'));
  const edited = vinyls.find((v) => v.relative.endsWith('f5-ünï.bin'))!;
  await writeFile(edited.path, 'edited');
  edited.stat = lstatSync(edited.path);
  const result = await build(vinyls, options);
  t.is(result.mode, 'incremental');
  t.is(result.written, 1);
  const entries = await describeEntries(image);
  for (const e of entries) {
    if (e.type === 'file' && !e.path.endsWith('f5-ünï.bin')) t.is(e.block, blocksBefore.get(e.path), `${e.path} keeps its blocks`);
  }
  const img = await OsvImage.open(image);
  t.true((await img.readFile('/lib/big.so')).equals(bigBytes));
  await img.close();
  t.deepEqual((await treeOf(image)).filter((r) => !r[0].endsWith('f5-ünï.bin')), before.filter((r) => !r[0].endsWith('f5-ünï.bin')));

  // The overlay holds none of the large file's clusters (they come from the backing file), and
  // is a small fraction of the full image.
  const part = (await describeImageOf(image)).partition!.start;
  const big = entries.find((e) => e.path === '/lib/big.so')!;
  const top = await openQcow2(image);
  for (let off = 65536; off < big.size - 65536; off += 65536) {
    t.is(await top.hostOffset(part + big.block! * 512 + off), undefined, `big.so +${off} comes from the backing file`);
  }
  await top.close();
  const sizes = await Promise.all([stat(image), stat(path.join(out, (await generationFiles(out))[0]!))]);
  t.true(sizes[0].size * 3 < sizes[1].size, `overlay ${sizes[0].size} bytes, base ${sizes[1].size}`);
});

async function describeImageOf(image: string) {
  const img = await OsvImage.open(image);
  try { return await img.describe(); } finally { await img.close(); }
}
async function describeEntries(image: string) {
  return (await describeImageOf(image)).rofs!.entries;
}

test('generations chain, then flatten after maxGenerations or when too much data is dead; old generation files go', async (t) => {
  const { dir, loader, out } = await setup(t);
  const src = path.join(dir, 'src');
  await makeTree(src, 3);
  const image = path.join(out, 'app.qemu');
  const options = { out: image, loader, incremental: { maxGenerations: 3, maxDeadFraction: 0.25 } };
  const edit = async (i: number) => {
    await writeFile(path.join(src, 'usr', 'bin', `edit-${i}`), `edit ${i}`);
    return listTree(src);
  };
  t.is((await build(listTree(src), options)).mode, 'full');
  for (let g = 1; g <= 3; g++) {
    const r = await build(await edit(g), options);
    t.is(r.mode, 'incremental');
    t.is(r.generation, g);
    t.is((await generationFiles(out)).length, g);
  }
  const vinyls = await edit(4);
  const flat = await build(vinyls, options);
  t.is(flat.mode, 'full');
  t.regex(flat.line, /full build \(3 generations: flattening\)/);
  t.deepEqual(await generationFiles(out), [], 'a full image needs no generation file');
  t.is((await openQcow2(image).then(async (r) => { await r.close(); return r.header.backingFile; })), undefined);
  await assertSameAsFull(t, image, vinyls, options, 'flattened');

  // Rewriting the large file (over a quarter of the data) leaves too much dead data: the next
  // build flattens.
  await writeFile(path.join(src, 'lib', 'big.so'), randomBytes(1_500_000));
  const r1 = await build(listTree(src), options);
  t.is(r1.mode, 'incremental');
  const r2 = await build(await edit(5), options);
  t.is(r2.mode, 'full');
  t.regex(r2.line, /% of the data is dead: flattening/);

  // The folder can move: the backing file is named relative to the image.
  await build(await edit(6), options);
  t.is((await generationFiles(out)).length, 1);
  const moved = path.join(dir, 'moved');
  const expected = await treeOf(image);
  await rename(out, moved);
  t.deepEqual(await treeOf(path.join(moved, 'app.qemu')), expected);
  await execa('qemu-img', ['check', path.join(moved, 'app.qemu')]);
  await rename(moved, out);
});

test('a failed build leaves the previous image, its record and its generation files as they were', async (t) => {
  const { dir, loader, out } = await setup(t);
  const src = path.join(dir, 'src');
  await makeTree(src, 4);
  const image = path.join(out, 'app.qemu');
  const options = { out: image, loader, incremental: true };
  await build(listTree(src), options);
  await writeFile(path.join(src, 'lib', 'f7-ünï.bin'), 'one');
  await build(listTree(src), options);
  const snapshot = async () => ({
    names: (await readdir(out)).sort(),
    image: sha(await readFile(image)),
    record: sha(await readFile(recordPathFor(image))),
    generations: await Promise.all((await generationFiles(out)).map(async (n) => sha(await readFile(path.join(out, n))))),
  });
  const before = await snapshot();
  const tree = await treeOf(image);

  // A file changes after it was listed: reading it fails the build mid-way.
  await writeFile(path.join(src, 'lib', 'f8-ünï.bin'), 'listed');
  const vinyls = listTree(src);
  await writeFile(path.join(src, 'lib', 'f8-ünï.bin'), 'changed after the listing');
  await t.throwsAsync(build(vinyls, options), { any: true, message: /changed after gulp\.src listed it|was modified/ });
  t.deepEqual(await snapshot(), before);
  t.deepEqual(await treeOf(image), tree);
  await execa('qemu-img', ['check', image]);

  // No command line: the build fails at the very end.
  await t.throwsAsync(runSteps(listTree(src), writeImage({ out: image, loader, incremental: true, silent: true })), { any: true, message: /no command line/ });
  t.deepEqual(await snapshot(), before);

  // And the next build is still incremental.
  const next = await build(listTree(src), options);
  t.is(next.mode, 'incremental');
  t.is(next.generation, 2);
  await assertSameAsFull(t, image, listTree(src), options, 'after the failures');
});

test('a missing, corrupt or stale record, or a lost generation file, means a full build of the same tree', async (t) => {
  const { dir, loader, out } = await setup(t);
  const src = path.join(dir, 'src');
  await makeTree(src, 5);
  const image = path.join(out, 'app.qemu');
  const options = { out: image, loader, incremental: true };
  const vinyls = listTree(src);
  await build(vinyls, options);
  t.is((await build(vinyls, options)).mode, 'incremental');

  const record = await readFile(recordPathFor(image));
  t.true(typeof decodeBuildRecord(record) === 'object');
  const corrupt = Buffer.from(record);
  corrupt[corrupt.length - 1024] = 0xff; // damage the string table (or its UTF-8)
  corrupt.writeUInt32LE(corrupt.readUInt32LE(16) + 1, 16); // and the entry count
  await writeFile(recordPathFor(image), corrupt);
  const r1 = await build(vinyls, options);
  t.is(r1.mode, 'full');
  t.regex(r1.line, /full build \(the build record is unusable/);
  await assertSameAsFull(t, image, vinyls, options, 'after a corrupt record');

  await writeFile(recordPathFor(image), 'not a record at all');
  t.regex((await build(vinyls, options)).line, /full build \(the build record is unusable \(not a build record\)\)/);

  // Another (non-incremental) build replaced the image: its record and generation files go.
  t.is((await build(vinyls, options)).mode, 'incremental');
  t.is((await generationFiles(out)).length, 1);
  await build(vinyls, { out: image, loader });
  t.false(existsSync(recordPathFor(image)));
  t.deepEqual(await generationFiles(out), []);
  t.regex((await build(vinyls, options)).line, /full build \(no earlier build recorded\)/);

  // The image was replaced behind the record's back.
  t.is((await build(vinyls, options)).mode, 'incremental');
  const copy = path.join(dir, 'copy.qemu');
  await build(vinyls, { out: copy, loader });
  const recordBefore = await readFile(recordPathFor(image));
  await rename(copy, image);
  t.regex((await build(vinyls, options)).line, /full build \(the image at `out` is not the one the build record describes\)/);
  t.notDeepEqual(await readFile(recordPathFor(image)), recordBefore);

  // The loader's bytes are in the image: a changed loader means a full build.
  t.is((await build(vinyls, options)).mode, 'incremental');
  await utimes(loader, new Date(), new Date(Date.now() - 60_000));
  t.regex((await build(vinyls, options)).line, /full build \(the loader changed\)/);

  // A generation file the image needs was deleted.
  await writeFile(path.join(src, 'x'), 'x');
  t.is((await build(listTree(src), options)).mode, 'incremental');
  await writeFile(path.join(src, 'y'), 'y');
  t.is((await build(listTree(src), options)).mode, 'incremental');
  await unlink(path.join(out, (await generationFiles(out))[0]!));
  const r2 = await build(listTree(src), options);
  t.is(r2.mode, 'full');
  t.regex(r2.line, /full build \(the earlier image cannot be read/);
  await assertSameAsFull(t, image, listTree(src), options, 'after a lost generation file');
});

test('a file whose stat matches is reused unread, unless it had changed within the racy window before the last build', async (t) => {
  const { loader, out } = await setup(t);
  const image = path.join(out, 'app.qemu');
  // The same stat facts with other bytes: what a second same-size write within one timestamp
  // tick looks like. An old stat is trusted (its content reused, not read); a recent one is not.
  const old = { size: 4, mtimeMs: Date.now() - 3600_000, ctimeMs: Date.now() - 3600_000, ino: 1234, dev: 1 };
  const recent = { size: 4, mtimeMs: Date.now(), ctimeMs: Date.now(), ino: 5678, dev: 1 };
  const compose = async (oldBytes: string, recentBytes: string) => {
    const c = await ImageComposer.open({ out: image, loader, incremental: true });
    await c.addFile('/old', Readable.from([Buffer.from(oldBytes)]), { facts: old });
    await c.addFile('/recent', Readable.from([Buffer.from(recentBytes)]), { facts: recent });
    return c.finish('/old');
  };
  await compose('AAAA', 'aaaa');
  const second = await compose('BBBB', 'bbbb');
  t.like(second.incremental, { mode: 'incremental', reused: 1, written: 1 });
  const img = await OsvImage.open(image);
  t.is((await img.readFile('/old')).toString(), 'AAAA', 'reused: its content was not read');
  t.is((await img.readFile('/recent')).toString(), 'bbbb', 'read again');
  await img.close();
});

test('buffers are compared by hash, streams always written; a replaced lower-layer file is reused too', async (t) => {
  const { loader, out } = await setup(t);
  const image = path.join(out, 'app.qemu');
  const big = randomBytes(200_000);
  const compose = async (hosts: string, app: string) => {
    const c = await ImageComposer.open({ out: image, loader, incremental: true });
    await c.addFile('/etc/hosts', Buffer.from(hosts), { layer: 1 }); // a package's file …
    await c.addFile('/etc/hosts', Buffer.from(app), { layer: APP_LAYER }); // … replaced by the app's
    await c.addFile('/big', big);
    await c.addFile('/streamed', Readable.from([Buffer.from('chunk 1 '), Buffer.from('chunk 2')]));
    c.addDirectory('/data');
    c.addSymlink('/data/link', '/big');
    return c.finish('/big');
  };
  const first = await compose('package hosts', 'app hosts');
  t.is(first.incremental?.mode, 'full');
  const second = await compose('package hosts', 'app hosts');
  t.like(second.incremental, { mode: 'incremental', generation: 1, reused: 3, written: 1 });
  t.is(second.rofs.deadBlocks - first.rofs.deadBlocks, 1, 'only the stream was written again (1 block)');
  const third = await compose('package hosts', 'app hosts, edited');
  t.like(third.incremental, { mode: 'incremental', generation: 2, reused: 2, written: 2 });
  const img = await OsvImage.open(image);
  t.is((await img.readFile('/etc/hosts')).toString(), 'app hosts, edited');
  t.is((await img.readFile('/streamed')).toString(), 'chunk 1 chunk 2');
  t.true((await img.readFile('/big')).equals(big));
  await img.close();
  await execa('qemu-img', ['check', image]);
});

test('other formats are built in full with one line saying why; two builds of different outs in one process do not meet', async (t) => {
  const { dir, loader, out } = await setup(t);
  const src = path.join(dir, 'src');
  await makeTree(src, 7);
  const raw = await build(listTree(src), { out: path.join(out, 'app.raw'), loader, format: 'raw', incremental: true });
  t.regex(raw.line, /full build \(incremental images are qcow2 only: this raw image is built in full\)/);
  t.false(existsSync(recordPathFor(path.join(out, 'app.raw'))));

  const other = path.join(dir, 'other');
  await makeTree(other, 8);
  const a = { out: path.join(out, 'a.qemu'), loader, incremental: true };
  const b = { out: path.join(out, 'b.qemu'), loader, incremental: true };
  await Promise.all([build(listTree(src), a), build(listTree(other), b)]);
  await writeFile(path.join(src, 'lib', 'f1-ünï.bin'), 'a');
  await writeFile(path.join(other, 'lib', 'f1-ünï.bin'), 'b');
  const [ra, rb] = await Promise.all([build(listTree(src), a), build(listTree(other), b)]);
  t.is(ra.mode, 'incremental');
  t.is(rb.mode, 'incremental');
  await assertSameAsFull(t, a.out, listTree(src), a, 'a');
  await assertSameAsFull(t, b.out, listTree(other), b, 'b');
  t.is((await readdir(out)).filter((n) => n.includes('.gen-')).length, 2);
});

test('an incremental image boots the stand-in loader, directly and as the base of an instance overlay', async (t) => {
  const { dir, loader, out } = await setup(t);
  const src = path.join(dir, 'src');
  await makeTree(src, 9);
  const image = path.join(out, 'app.qemu');
  await build(listTree(src), { out: image, loader, incremental: true, cmdline: '/lib/big.so first' });
  await writeFile(path.join(src, 'usr', 'bin', 'added'), 'added');
  const r = await build(listTree(src), { out: image, loader, incremental: true, cmdline: '/usr/bin/added --second "ü"' });
  t.is(r.mode, 'incremental');

  const direct = await bootStandIn(image, 'qcow2');
  t.is(direct.exitCode, STAND_IN_EXIT_OK, direct.serial);
  t.is(direct.cmdline, '/usr/bin/added --second "ü"');
  t.is(direct.partitionHead?.slice(0, 8), 'adbeadde', 'the ROFS superblock, read through the backing chain');

  const vm = await boot(image, { root: path.join(dir, 'capstan'), accel: 'tcg', debugExit: true, silent: true });
  const exit = await vm.exited;
  t.is(exit.exitCode, STAND_IN_EXIT_OK, vm.recentLines.join('\n'));
  t.is(vm.recentLines[0], 'CMDLINE:/usr/bin/added --second "ü"');
  t.regex(vm.recentLines[1] ?? '', /^PART:adbeadde/);
});
