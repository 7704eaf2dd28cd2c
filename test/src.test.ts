// capstan.src against gulp.src on the same temporary trees: the same files in the same order
// with the same bases, stats, link targets and contents; where they differ on purpose (links
// to folders, dangling links, unreadable folders) both behaviours are asserted. Then through
// the pipeline: the image from capstan.src is byte-identical to the one from gulp.src.
import test from 'ava';
// @ts-ignore -- gulp 5 ships no type declarations
import { dest as gulpDest, src as gulpSrc } from 'gulp';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import Vinyl from 'vinyl';
import { src as capstanSrc, type SrcOptions } from '../lib/index.js';
import { createSource } from '../lib/vinyl/src.js';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { resolveManifest } from '../lib/steps/resolve-manifest.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { writeImage } from '../lib/steps/write-image.js';
import { buildStandInLoader } from './helpers/stand-in.js';

const gulp = gulpSrc as (globs: string | string[], options: Record<string, unknown>) => NodeJS.ReadableStream;
const here = path.dirname(fileURLToPath(import.meta.url));

type Spec = Buffer | string | { link: string } | { dir: true };

async function tempTree(t: { teardown(fn: () => Promise<void>): void }, files: Record<string, Spec>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'capstan-src-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  for (const [relative, spec] of Object.entries(files)) {
    const full = path.join(root, relative);
    await mkdir(path.dirname(full), { recursive: true });
    if (typeof spec === 'object' && 'link' in spec) await symlink(spec.link, full);
    else if (typeof spec === 'object' && 'dir' in spec) await mkdir(full, { recursive: true });
    else await writeFile(full, spec);
  }
  return root;
}

/** A tree with the usual suspects: nesting, dotfiles and dot folders, spaces, UTF-8, empty things, links to files. */
const TREE: Record<string, Spec> = {
  'index.js': 'console.log(1)\n',
  'README.md': '# app\n',
  '.env': 'SECRET=1\n',
  '.config/settings.json': '{}\n',
  'lib/a.js': 'a', 'lib/b.txt': 'b', 'lib/deep/c.js': 'c', 'lib/deep/.hidden.js': 'h',
  'lib/deep/deeper/d.md': 'd',
  'with space/a b.js': 'spaced',
  'ünïcødé/文件 名.txt': 'utf-8 name',
  'bin/tool.so': randomBytes(70_000),
  'empty.txt': '',
  'empty-dir': { dir: true },
  'lib/link-to-a.js': { link: 'a.js' },
  'lib/abs-link': { link: '/etc/hostname' },
  'node_modules/x/index.js': 'x', 'node_modules/x/package.json': '{"name":"x"}',
  'node_modules/.bin/x': { link: '../x/index.js' },
};

interface Row { relative: string; base: string; cwd: string; path: string; type: string; stat: Record<string, number>; symlink: string | null }

/** What gulp.src and capstan.src must agree on, per file (atime left out: a readdir may touch it). */
function rowOf(f: Vinyl): Row {
  const s = f.stat!;
  return {
    relative: f.relative, base: f.base, cwd: f.cwd, path: f.path,
    type: s.isSymbolicLink() ? 'symlink' : s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other',
    stat: { dev: s.dev, ino: s.ino, mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, blocks: s.blocks },
    symlink: f.symlink ?? null,
  };
}

async function collect(stream: NodeJS.ReadableStream): Promise<Vinyl[]> {
  const out: Vinyl[] = [];
  await pipeline(stream, new Writable({ objectMode: true, write(f: Vinyl, _e, cb) { out.push(f); cb(); } }));
  return out;
}

/** gulp.src as our pipelines call it (contents read, so link targets are too). */
function gulpOf(globs: string | string[], options: Record<string, unknown>) {
  return gulp(globs, { encoding: false, resolveSymlinks: false, ...options });
}

const CASES: Array<[string, string | string[], SrcOptions]> = [
  ['everything, dot', '**/*', { dot: true }],
  ['everything, no dot', '**/*', {}],
  ['**, dot', '**', { dot: true }],
  ['extension', '**/*.js', { dot: true }],
  ['braces', '**/*.{js,md}', {}],
  ['one level', '*', { dot: true }],
  ['a folder', 'lib/**', {}],
  ['a folder, dot', 'lib/**/*', { dot: true }],
  ['negation', ['**/*', '!**/*.txt'], { dot: true }],
  ['negated folder', ['**/*', '!node_modules/**'], { dot: true }],
  ['ignore option', '**/*', { dot: true, ignore: ['**/*.md', 'node_modules/**'] }],
  ['two parents', ['lib/*.js', 'with space/*'], {}],
  ['nested parents (first match gives the base)', ['lib/**', '**/*.md'], { dot: true }],
  ['same parent twice', ['**/*.js', '**/*.txt'], { dot: true }],
  ['singular file and folder', ['lib/a.js', 'lib/deep'], {}],
  ['singular and glob', ['README.md', 'lib/**/*.js'], {}],
  ['explicit base', 'lib/deep/**', { base: '.' }],
  ['explicit base with a trailing slash', 'lib/deep/**', { base: 'lib/' }],
  ['singular paths with . and ..', ['lib/deep/../a.js', './README.md'], {}],
  ['cwdbase', 'lib/deep/*', { cwdbase: true }],
  ['spaces and UTF-8', ['with space/**', 'ünïcødé/**'], {}],
  ['glob matching nothing', '**/*.nothing', {}],
  ['missing folder', 'missing/**/*', {}],
];

/**
 * capstan.src makes its vinyls without the constructor (src.ts, vinylMaker): each must have
 * exactly the own fields, in the same order, that `new Vinyl` gives the same file.
 */
function sameAsConstructed(t: { deepEqual(a: unknown, b: unknown, m?: string): void; true(v: boolean, m?: string): void }, f: Vinyl): void {
  const made: Vinyl = new Vinyl({ cwd: f.cwd, base: f.base, path: f.path, stat: f.stat ?? undefined, contents: null }) as Vinyl;
  if (typeof f.symlink === 'string') made.symlink = f.symlink;
  t.deepEqual(Object.entries(f), Object.entries(made), f.path);
  t.true(Object.getPrototypeOf(f) === Vinyl.prototype && Vinyl.isVinyl(f), f.path);
}

for (const [name, globs, options] of CASES) {
  test(`same files, order, bases, stats and link targets as gulp.src: ${name}`, async (t) => {
    const root = await tempTree(t, TREE);
    const theirs = await collect(gulpOf(globs, { ...options, cwd: root }));
    const ours = await collect(capstanSrc(globs, { ...options, cwd: root }));
    t.deepEqual(ours.map(rowOf), theirs.map(rowOf));
    for (const f of ours) t.true(f.isNull(), 'no contents by default');
    for (const f of ours) sameAsConstructed(t, f);
    if (!name.includes('nothing') && !name.includes('missing')) t.true(ours.length > 0);
  });
}

test('a cwd given with a trailing slash: the same vinyls as gulp.src, fields as the constructor makes them', async (t) => {
  const root = await tempTree(t, TREE);
  const theirs = await collect(gulpOf('**/*', { cwd: root + '/', dot: true }));
  const ours = await collect(capstanSrc('**/*', { cwd: root + '/', dot: true }));
  t.deepEqual(ours.map(rowOf), theirs.map(rowOf));
  for (const f of ours) sameAsConstructed(t, f);
});

test('lstat in parallel (as on a cold cache) and blocking (warm cache) give the same files', async (t) => {
  const root = await tempTree(t, TREE);
  const theirs = (await collect(gulpOf('**/*', { cwd: root, dot: true }))).map(rowOf);
  for (const mode of ['parallel', 'sync'] as const) {
    t.deepEqual((await collect(createSource('**/*', { cwd: root, dot: true }, mode))).map(rowOf), theirs, mode);
    const withContents = await collect(createSource('**/*', { cwd: root, dot: true, read: true }, mode));
    t.is(withContents.find((f) => f.relative === 'index.js')?.contents?.toString(), 'console.log(1)\n', mode);
  }
});

// Serial, so that nothing else in this file runs while fs is patched (ava runs serial tests first).
test.serial('slow blocking lstats (a cold cache) switch the source to lstats in parallel', async (t) => {
  const many: Record<string, Spec> = {};
  for (let i = 0; i < 1000; i++) many[`d${i % 10}/f${i}`] = '';
  const root = await tempTree(t, many);
  const original = { lstat: fs.lstat, lstatSync: fs.lstatSync };
  const patchable = fs as { -readonly [K in keyof typeof fs]: (typeof fs)[K] };
  let blocking = 0;
  let parallel = 0;
  const run = async (slowMs: number) => {
    blocking = 0;
    parallel = 0;
    patchable.lstatSync = ((p: string) => {
      blocking++;
      const until = performance.now() + slowMs;
      while (performance.now() < until); // a disk wait, as the main thread sees it
      return original.lstatSync(p);
    }) as typeof fs.lstatSync;
    patchable.lstat = ((...args: Parameters<typeof fs.lstat>) => { parallel++; return (original.lstat as (...a: unknown[]) => void)(...args); }) as typeof fs.lstat;
    syncBuiltinESMExports();
    try {
      return (await collect(capstanSrc('**/*', { cwd: root }))).length;
    } finally {
      Object.assign(fs, original);
      syncBuiltinESMExports();
    }
  };
  t.is(await run(0.3), 1010);
  t.true(blocking >= 32 && blocking <= 2 * 128, `${blocking} blocking lstats before the switch`);
  t.true(parallel >= 1010 - blocking, `${parallel} lstats in parallel after it`);
  t.is(await run(0), 1010);
  // (Not exactly 1010: on a busy machine two preempted batches in a row may switch it late.)
  t.true(blocking >= 500, `a warm cache stays on blocking lstats (${blocking} of 1010)`);
});

test('read: true gives the same Buffer contents as gulp.src({encoding: false})', async (t) => {
  const root = await tempTree(t, TREE);
  const theirs = await collect(gulpOf('**/*', { cwd: root, dot: true }));
  const ours = await collect(capstanSrc('**/*', { cwd: root, dot: true, read: true }));
  t.deepEqual(ours.map(rowOf), theirs.map(rowOf));
  t.deepEqual(ours.map((f) => (f.isBuffer() ? f.contents.toString('base64') : null)), theirs.map((f) => (f.isBuffer() ? f.contents.toString('base64') : null)));
  t.true(ours.some((f) => f.isBuffer() && f.contents.length === 70_000));
});

test('read: true, buffer: false: streams that open their file only when read, with the right bytes', async (t) => {
  const many: Record<string, Spec> = {};
  for (let i = 0; i < 300; i++) many[`f${i}.bin`] = randomBytes(i * 97);
  const root = await tempTree(t, many);
  const fds = async () => (await readdir('/proc/self/fd')).length;
  const before = await fds();
  const ours = await collect(capstanSrc('*', { cwd: root, read: true, buffer: false }));
  t.is(ours.length, 300);
  t.true(ours.every((f) => f.isStream()));
  t.true((await fds()) - before < 20, 'no descriptor is open for contents nobody read');
  for (const f of ours) {
    const chunks: Buffer[] = [];
    for await (const c of f.contents as unknown as Readable) chunks.push(c as Buffer);
    t.true(Buffer.concat(chunks).equals(many[f.relative] as Buffer), f.relative);
  }
  t.true((await fds()) - before < 20, 'every stream closed its file at the end');
});

test('other plugins accept the vinyls: capstan.src({read: true}) → gulp.dest copies the tree, links as links', async (t) => {
  const root = await tempTree(t, { ...TREE, 'alias': { link: 'lib' }, 'dangling': { link: 'nowhere' } });
  const out = await mkdtemp(path.join(os.tmpdir(), 'capstan-src-dest-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  await pipeline(capstanSrc('**/*', { cwd: root, dot: true, read: true }), (gulpDest as (folder: string) => NodeJS.WritableStream)(out));
  const listing = async (dir: string) => (await readdir(dir, { recursive: true })).sort();
  t.deepEqual(await listing(out), await listing(root));
  t.true((await readFile(path.join(out, 'bin/tool.so'))).equals(TREE['bin/tool.so'] as Buffer));
  t.is(await readlink(path.join(out, 'alias')), 'lib');
  t.is(await readlink(path.join(out, 'dangling')), 'nowhere');
  t.is(await readlink(path.join(out, 'node_modules/.bin/x')), '../x/index.js');
});

test('a symlink to a folder stays one symlink; gulp.src walks through it', async (t) => {
  const root = await tempTree(t, { 'real/x.txt': 'x', 'real/sub/y.txt': 'y', 'alias': { link: 'real' } });
  const theirs = await collect(gulpOf('**/*', { cwd: root }));
  const ours = await collect(capstanSrc('**/*', { cwd: root }));
  t.true(theirs.some((f) => f.relative === path.join('alias', 'x.txt')), 'gulp.src lists the folder again through the link');
  // Ours: exactly gulp's entries minus what it found through the link.
  t.deepEqual(ours.map(rowOf), theirs.filter((f) => !f.relative.startsWith('alias' + path.sep)).map(rowOf));
  const alias = ours.find((f) => f.relative === 'alias')!;
  t.true(alias.isSymbolic());
  t.is(alias.symlink, 'real');
});

test('a dangling symlink is kept (target, lstat); gulp.src fails the whole stream with a bare ENOENT', async (t) => {
  const root = await tempTree(t, { 'a.txt': 'a', 'bin/gone': { link: '../lib/removed.js' }, 'z.txt': 'z' });
  await t.throwsAsync(collect(gulpOf('**/*', { cwd: root })), { any: true, message: /ENOENT/ });
  const ours = await collect(capstanSrc('**/*', { cwd: root }));
  const gone = ours.find((f) => f.relative === path.join('bin', 'gone'))!;
  t.true(gone.isSymbolic());
  t.is(gone.symlink, '../lib/removed.js');
  t.true(gone.stat!.isSymbolicLink());
  t.deepEqual(ours.map((f) => f.relative).sort(), ['a.txt', 'bin', path.join('bin', 'gone'), 'z.txt']);
  // As a singular glob too (gulp.src stats through the link and reports it "not found").
  const single = await collect(capstanSrc('bin/gone', { cwd: root }));
  t.is(single[0]?.symlink, '../lib/removed.js');
});

test('since: only entries whose mtime or ctime is after it, as gulp.src', async (t) => {
  const root = await tempTree(t, { 'old/a.txt': 'a', 'old/b.txt': 'b', 'keep.txt': 'k' });
  await new Promise((r) => setTimeout(r, 30));
  const since = new Date();
  await new Promise((r) => setTimeout(r, 30));
  await writeFile(path.join(root, 'old', 'new.txt'), 'new');
  await writeFile(path.join(root, 'keep.txt'), 'changed');
  await utimes(path.join(root, 'old', 'b.txt'), new Date(0), new Date(0)); // old mtime, new ctime: still in
  for (const value of [since, since.getTime()]) {
    const theirs = await collect(gulpOf('**/*', { cwd: root, since: value }));
    const ours = await collect(capstanSrc('**/*', { cwd: root, since: value }));
    t.deepEqual(ours.map(rowOf), theirs.map(rowOf));
    t.deepEqual(ours.map((f) => f.relative).sort(), ['keep.txt', 'old', path.join('old', 'b.txt'), path.join('old', 'new.txt')]);
  }
  t.deepEqual(await collect(capstanSrc('**/*', { cwd: root, since: Date.now() + 60_000 })), []);
});

test('a singular glob that matches nothing is an error with gulp.src\'s words, unless allowEmpty; a glob that matches nothing is not', async (t) => {
  const root = await tempTree(t, { 'a.txt': 'a' });
  const gulpError = (await t.throwsAsync(collect(gulpOf(['a.txt', 'missing.txt'], { cwd: root })), { any: true })) as Error;
  const ourError = (await t.throwsAsync(collect(capstanSrc(['a.txt', 'missing.txt'], { cwd: root })), { any: true })) as Error;
  const expected = `File not found with singular glob: ${path.join(root, 'missing.txt')}`;
  t.true(gulpError!.message.startsWith(expected), gulpError!.message);
  t.regex(ourError!.message, new RegExp(`^missing\\.txt: ${expected.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\n.*allowEmpty`));
  t.is((ourError as unknown as { plugin?: string }).plugin, 'gulp-capstan');
  const allowed = await collect(capstanSrc(['a.txt', 'missing.txt'], { cwd: root, allowEmpty: true }));
  t.deepEqual(allowed.map(rowOf), (await collect(gulpOf(['a.txt', 'missing.txt'], { cwd: root, allowEmpty: true }))).map(rowOf));
  t.deepEqual(await collect(capstanSrc('nowhere/**/*', { cwd: root })), []);
});

test('bad globs and options throw when the source is made, saying what to do', (t) => {
  t.throws(() => capstanSrc([] as string[]), { any: true, message: /invalid glob argument/ });
  t.throws(() => capstanSrc(['!**/*.map']), { any: true, message: /no positive glob[\s\S]*add what to take/ });
  t.throws(() => capstanSrc('**', { encoding: 'utf8' } as unknown as SrcOptions), { any: true, message: /`encoding` is not supported[\s\S]*bytes through unchanged/ });
  t.throws(() => capstanSrc('**', { resolveSymlinks: true } as unknown as SrcOptions), { any: true, message: /resolveSymlinks` can only be false[\s\S]*gulp\.src/ });
  t.throws(() => capstanSrc('**', { nodir: true } as unknown as SrcOptions), { any: true, message: /unknown option `nodir`/ });
  t.throws(() => capstanSrc('**', { since: 'yesterday' } as unknown as SrcOptions), { any: true, message: /`since` must be a Date/ });
  t.throws(() => capstanSrc('**', { dot: 'yes' } as unknown as SrcOptions), { any: true, message: /`dot` must be true or false/ });
});

test('a glob parent that is a file is a clear error', async (t) => {
  const root = await tempTree(t, { 'a.txt': 'a' });
  await t.throwsAsync(collect(capstanSrc('a.txt/**', { cwd: root })), { any: true, message: /a\.txt: is a file, but a glob treats it as a folder/ });
});

test('backpressure: a consumer that stops reading holds the source back', async (t) => {
  const many: Record<string, Spec> = {};
  for (let i = 0; i < 2000; i++) many[`d${i % 10}/f${i}`] = '';
  const root = await tempTree(t, many);
  const stream = capstanSrc('**/*', { cwd: root }) as Readable;
  let seen = 0;
  await new Promise<void>((resolve) => {
    stream.once('readable', () => { stream.read(); seen++; resolve(); });
  });
  await new Promise((r) => setTimeout(r, 200));
  t.true(stream.readableLength <= stream.readableHighWaterMark, `${stream.readableLength} vinyls buffered`);
  let rest = 0;
  for await (const _ of stream) rest++;
  t.is(seen + rest, 2010);
});

// Unreadable folders and entries. Root reads anything, so these run in a child that drops to
// `nobody` first (after loading the modules); without root the child runs as the user.
function runAsNobody(t: { log(...a: unknown[]): void }, root: string, args: string[]): { ours: string; gulp: string } {
  const script = path.join(here, 'helpers', 'src-unprivileged.ts');
  const r = spawnSync(process.execPath, ['--import=tsx', script, root, ...args], { encoding: 'utf8', cwd: path.join(here, '..') });
  if (r.status !== 0) t.log(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { ours: string; gulp: string };
}

async function unprivilegedTree(t: { teardown(fn: () => Promise<void>): void }, files: Record<string, Spec>) {
  const root = await tempTree(t, files);
  await chmod(root, 0o755);
  const all = await readdir(root, { recursive: true });
  for (const rel of all) await chmod(path.join(root, rel), 0o755).catch(() => {});
  t.teardown(async () => { for (const rel of all) await chmod(path.join(root, rel), 0o755).catch(() => {}); });
  return root;
}

test('a folder that cannot be listed is an error naming it (gulp.src leaves it out silently)', async (t) => {
  const root = await unprivilegedTree(t, { 'ok.txt': 'ok', 'locked/secret.txt': 's' });
  await chmod(path.join(root, 'locked'), 0o000);
  const r = runAsNobody(t, root, ['**/*']);
  t.regex(r.ours, new RegExp(`^ERROR ${path.join(root, 'locked')}: cannot be read: permission denied\\n`));
  t.is(r.gulp.split(',').sort().join(','), 'locked,ok.txt', 'gulp.src emits the folder but nothing of what is inside, without a word');
});

test('an entry that cannot be stat\'ed (folder readable but not searchable) is an error naming it', async (t) => {
  const root = await unprivilegedTree(t, { 'ok.txt': 'ok', 'noexec/inside.txt': 'i' });
  await chmod(path.join(root, 'noexec'), 0o644);
  const r = runAsNobody(t, root, ['**/*']);
  t.regex(r.ours, /^ERROR .*noexec(\/inside\.txt)?: cannot be read: permission denied\n/);
});

test('read: true on a file that cannot be read is an error naming it', async (t) => {
  const root = await unprivilegedTree(t, { 'ok.txt': 'ok', 'private.key': 'k' });
  await chmod(path.join(root, 'private.key'), 0o000);
  const r = runAsNobody(t, root, ['**/*', 'read']);
  t.regex(r.ours, new RegExp(`^ERROR ${path.join(root, 'private.key')}: cannot be read: permission denied\\n`));
});

// Through the pipeline.

async function imageOf(source: NodeJS.ReadableStream, app: string, out: string, loader: string): Promise<Buffer> {
  await pipeline(
    source,
    resolveManifest({ cwd: app, run: '/lib/small.so', bootstrap: false, silent: true }),
    layoutFiles({ silent: true }),
    writeImage({ out, loader, silent: true }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
  return readFile(out);
}

test('capstan.src → resolveManifest → layoutFiles → writeImage: the same image bytes as gulp.src({read: false})', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-src-image-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const files: Record<string, Spec> = {
    'lib/big.so': randomBytes(3 * 1024 * 1024 + 777), 'lib/small.so': randomBytes(5000), 'lib/link.so': { link: 'small.so' },
    'hello.sh': '#!/bin/sh\necho hi\n', 'empty.txt': '', 'lib/empty': { dir: true }, '.dotfile': 'dot',
    'data/a b/ü 文.txt': 'utf-8', 'meta/run.yaml': 'runtime: native\nconfig_set:\n  default:\n    bootcmd: /lib/small.so\nconfig_set_default: default\n',
  };
  for (let i = 0; i < 50; i++) files[`data/n${i % 7}/f${i}.bin`] = randomBytes(i * 331);
  const app = path.join(dir, 'app');
  await mkdir(app);
  for (const [rel, spec] of Object.entries(files)) {
    const full = path.join(app, rel);
    await mkdir(path.dirname(full), { recursive: true });
    if (typeof spec === 'object' && 'link' in spec) await symlink(spec.link, full);
    else if (typeof spec === 'object' && 'dir' in spec) await mkdir(full, { recursive: true });
    else await writeFile(full, spec);
  }
  const opts = { cwd: app, base: app, dot: true };
  const theirs = await imageOf(gulp('**/*', { ...opts, read: false, resolveSymlinks: false }), app, path.join(dir, 'gulp.qcow2'), loader);
  const ours = await imageOf(capstanSrc('**/*', opts), app, path.join(dir, 'ours.qcow2'), loader);
  t.true(ours.equals(theirs), 'byte-identical to the image from gulp.src({read: false})');
  const buffered = await imageOf(capstanSrc('**/*', { ...opts, read: true }), app, path.join(dir, 'buffered.qcow2'), loader);
  t.true(buffered.equals(theirs), 'read: true gives the same image');
  const streamed = await imageOf(capstanSrc('**/*', { ...opts, read: true, buffer: false }), app, path.join(dir, 'streamed.qcow2'), loader);
  t.true(streamed.equals(theirs), 'read: true, buffer: false gives the same image');
  const out = path.join(dir, 'ours.qcow2');
  t.true((await readImageFile(out, '/lib/big.so')).equals(files['lib/big.so'] as Buffer));
  t.is((await readImageFile(out, '/data/a b/ü 文.txt')).toString(), 'utf-8');
  const byPath = new Map((await describeImage(out)).rofs!.entries.map((e) => [e.path, e]));
  t.is(byPath.get('/lib/link.so')?.target, 'small.so');
  t.is(byPath.get('/lib/empty')?.type, 'dir');
});

test('a dangling symlink from capstan.src reaches the image as a symlink', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-src-dangling-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const app = path.join(dir, 'app');
  await mkdir(path.join(app, 'lib'), { recursive: true });
  await writeFile(path.join(app, 'lib', 'small.so'), randomBytes(100));
  await symlink('/usr/lib/not-on-this-host.so', path.join(app, 'lib', 'dangling.so'));
  const out = path.join(dir, 'app.qcow2');
  await imageOf(capstanSrc('**/*', { cwd: app, base: app }), app, out, loader);
  const byPath = new Map((await describeImage(out)).rofs!.entries.map((e) => [e.path, e]));
  t.is(byPath.get('/lib/dangling.so')?.type, 'symlink');
  t.is(byPath.get('/lib/dangling.so')?.target, '/usr/lib/not-on-this-host.so');
});
