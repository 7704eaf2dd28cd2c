// The writeImage step: vinyl in, one image vinyl out; the command line from the option or the
// manifest; bad inputs give clear errors and leave nothing at `out`.
import test from 'ava';
// @ts-ignore -- gulp 5 ships no type declarations (and @types/gulp is not a dependency here)
import { src as gulpSrc } from 'gulp';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Vinyl from 'vinyl';
import { annotate, APP_LAYER, capstanOf } from '../lib/carrier.js';
import type { Manifest } from '../lib/manifest/types.js';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { writeImage } from '../lib/steps/write-image.js';
import { resolveManifest } from '../lib/steps/resolve-manifest.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { buildStandInLoader } from './helpers/stand-in.js';
import { runSteps, vinylDir, vinylFile, vinylSymlink } from './helpers/streams.js';

const src = gulpSrc as (globs: string | string[], options: Record<string, unknown>) => NodeJS.ReadableStream;

async function setup(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-write-image-'));
  // Retries: a step's cleanup after an upstream failure may still be removing its temp file.
  t.teardown(() => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  return { dir, loader };
}

function manifestWith(bootCommand: string): Manifest {
  return {
    root: '/app', package: { name: 'app', title: 'app', author: 'me', require: [] },
    ignore: [], require: [], bootCommand,
  };
}

/** Files in `dir` named like `out` or its temp files. */
async function leftovers(dir: string, base: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n === base || (n.startsWith(`.${base}.`) && n.endsWith(".tmp")));
}

test('emits one image vinyl carrying ImageInfo; files, folders, symlinks land at their guest paths', async (t) => {
  const { dir, loader } = await setup(t);
  const out = path.join(dir, 'app.qemu');
  const binary = randomBytes(100_000);
  const files = [
    vinylDir(dir, 'usr'),
    vinylFile(dir, 'usr/lib/libx.so', binary, 0o755),
    vinylFile(dir, 'empty', ''),
    vinylSymlink(dir, 'usr/lib/liby.so', 'libx.so'),
  ];
  const placed = vinylFile(dir, 'anything', 'placed by layout');
  annotate(placed, { kind: 'generated', guestPath: '/etc/placed', layer: 0 });
  files.push(placed);
  const output = await runSteps(files, writeImage({ out, loader, cmdline: '/usr/lib/libx.so', silent: true }));
  t.is(output.length, 1);
  const image = output[0]!;
  t.is(image.path, out);
  t.true(image.isNull());
  const meta = capstanOf(image)!;
  t.is(meta.kind, 'image');
  t.like(meta.image, { format: 'qcow2', cmdline: '/usr/lib/libx.so', loader, partition: { start: 2 * 1024 * 1024 } });
  t.is(meta.image!.inodes, 8); // / usr lib libx liby empty etc placed

  const d = await describeImage(out);
  t.is(d.format, 'qcow2');
  t.deepEqual(d.partition, meta.image!.partition);
  t.is(d.virtualSize, meta.image!.virtualSize);
  t.deepEqual(d.rofs!.entries.map((e) => [e.path, e.type, e.target]), [
    ['/', 'dir', undefined], ['/usr', 'dir', undefined], ['/usr/lib', 'dir', undefined], ['/usr/lib/libx.so', 'file', undefined],
    ['/usr/lib/liby.so', 'symlink', 'libx.so'], ['/empty', 'file', undefined], ['/etc', 'dir', undefined], ['/etc/placed', 'file', undefined],
  ]);
  t.true((await readImageFile(out, '/usr/lib/libx.so')).equals(binary));
  t.is((await readImageFile(out, '/etc/placed')).toString(), 'placed by layout');
});

test('the command line comes from the manifest unless the option overrides it; without either, a clear error', async (t) => {
  const { dir, loader } = await setup(t);
  const manifest = manifestWith('runscript /run/default;');
  const make = () => {
    const m = new Vinyl({ cwd: dir, base: dir, path: path.join(dir, 'capstan-manifest.json'), contents: Buffer.from('{}') });
    annotate(m, { kind: 'manifest', manifest });
    const f = vinylFile(dir, 'hello', 'hi');
    annotate(f, { kind: 'app', manifest });
    return [m, f];
  };
  const a = path.join(dir, 'a.raw');
  const [imageA] = await runSteps(make(), writeImage({ out: a, loader, format: 'raw', silent: true }));
  t.is(capstanOf(imageA!)!.image!.cmdline, 'runscript /run/default;');
  t.is(capstanOf(imageA!)!.manifest, manifest);
  t.deepEqual((await describeImage(a)).rofs!.entries.map((e) => e.path), ['/', '/hello']); // the manifest vinyl is not a file of the image
  const b = path.join(dir, 'b.raw');
  const [imageB] = await runSteps(make(), writeImage({ out: b, loader, format: 'raw', cmdline: '/hello --x', silent: true }));
  t.is((await describeImage(b)).cmdline, '/hello --x');
  t.is(capstanOf(imageB!)!.image!.cmdline, '/hello --x');

  const c = path.join(dir, 'c.raw');
  await t.throwsAsync(runSteps([vinylFile(dir, 'hello', 'hi')], writeImage({ out: c, loader, silent: true })), {
    any: true, message: /no command line for the image[\s\S]*Pass `cmdline` to writeImage/,
  });
  t.deepEqual(await leftovers(dir, 'c.raw'), []);
});

test('application files win over package files at the same guest path', async (t) => {
  const { dir, loader } = await setup(t);
  const pkg = vinylFile(dir, 'pkg/etc/config', 'from the package');
  annotate(pkg, { kind: 'package-file', guestPath: '/etc/config', layer: 0, package: { name: 'p', layer: 0 } });
  const app = vinylFile(dir, 'etc/config', 'from the app');
  annotate(app, { kind: 'app', guestPath: '/etc/config', layer: APP_LAYER });
  const late = vinylFile(dir, 'pkg2/etc/config', 'from a package after the app');
  annotate(late, { kind: 'package-file', guestPath: '/etc/config', layer: 1 });
  const out = path.join(dir, 'p.qcow2');
  await runSteps([pkg, app, late], writeImage({ out, loader, cmdline: '/x', silent: true }));
  t.is((await readImageFile(out, '/etc/config')).toString(), 'from the app');
});

test('bad inputs: clear errors and nothing at out', async (t) => {
  const { dir, loader } = await setup(t);
  const out = path.join(dir, 'bad.qcow2');
  // Over-long command line: refused when the step is created.
  t.throws(() => writeImage({ out, loader, cmdline: 'x'.repeat(1024) }), { any: true, message: /1024 bytes long; OSv accepts at most 1023/ });
  t.throws(() => writeImage({ out, loader, cmdline: '/x', size: 'ten gigs' }), { any: true, message: /"ten gigs" is not understood/ });
  t.throws(() => writeImage({ out: '' }), { any: true, message: /needs `out`/ });
  // A name longer than 255 bytes.
  await t.throwsAsync(runSteps([vinylFile(dir, 'ok', 'fine'), vinylFile(dir, 'n'.repeat(256), 'x')], writeImage({ out, loader, cmdline: '/x', silent: true })), {
    any: true, message: /256 bytes long; ROFS names are at most 255 bytes/,
  });
  t.deepEqual(await leftovers(dir, 'bad.qcow2'), []);
  // A file whose content stream fails half-way (it disappeared while being read).
  const vanishing = new Vinyl({
    cwd: dir, base: dir, path: path.join(dir, 'vanishing.bin'),
    contents: new Readable({
      read() {
        this.push(randomBytes(70_000));
        this.destroy(Object.assign(new Error(`ENOENT: no such file or directory, open '${path.join(dir, 'vanishing.bin')}'`), { code: 'ENOENT' }));
      },
    }),
  });
  const err = await t.throwsAsync(runSteps([vinylFile(dir, 'ok', 'fine'), vanishing], writeImage({ out, loader, cmdline: '/x', silent: true })), {
    any: true, message: /could not read the file while writing the image: ENOENT/,
  }) as { fileName?: string };
  t.is(err.fileName, path.join(dir, 'vanishing.bin'));
  t.deepEqual(await leftovers(dir, 'bad.qcow2'), []);
  // `out` in a folder that does not exist.
  await t.throwsAsync(runSteps([vinylFile(dir, 'ok', 'fine')], writeImage({ out: path.join(dir, 'missing', 'x.qcow2'), loader, cmdline: '/x', silent: true })), {
    any: true, message: /the folder for the image does not exist: .*missing[\s\S]*Create the folder first/,
  });
  // A loader that is not a loader.
  const notLoader = path.join(dir, 'README.md');
  await writeFile(notLoader, '# not a loader\n'.repeat(100));
  await t.throwsAsync(runSteps([vinylFile(dir, 'ok', 'fine')], writeImage({ out, loader: notLoader, cmdline: '/x', silent: true })), {
    any: true, message: /README\.md: this is not an OSv loader/,
  });
  t.deepEqual(await leftovers(dir, 'bad.qcow2'), []);
});

test('through gulp.src (encoding:false, buffer:false, resolveSymlinks:false) → resolveManifest → layoutFiles → writeImage', async (t) => {
  const { dir, loader } = await setup(t);
  const app = path.join(dir, 'app');
  const binary = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
  await mkdir(path.join(app, 'lib'), { recursive: true });
  await writeFile(path.join(app, 'lib', 'bin.so'), binary);
  await writeFile(path.join(app, 'hello.sh'), '#!/bin/sh\necho hi\n');
  await symlink('bin.so', path.join(app, 'lib', 'link.so'));
  const out = path.join(dir, 'app.qemu');
  const images: Vinyl[] = [];
  await pipeline(
    src('**/*', { cwd: app, base: app, encoding: false, buffer: false, resolveSymlinks: false, dot: true }),
    resolveManifest({ cwd: app, run: '/lib/bin.so --serve', bootstrap: false, silent: true }),
    layoutFiles({ silent: true }),
    writeImage({ out, loader, silent: true }),
    new Writable({ objectMode: true, write(f: Vinyl, _e, cb) { images.push(f); cb(); } }),
  );
  t.is(images.length, 1);
  const d = await describeImage(out);
  t.is(d.cmdline, '/lib/bin.so --serve');
  const byPath = new Map(d.rofs!.entries.map((e) => [e.path, e]));
  t.is(byPath.get('/lib/link.so')?.target, 'bin.so');
  t.is(byPath.get('/lib/bin.so')?.size, binary.length);
  t.true((await readImageFile(out, '/lib/bin.so')).equals(binary));
  t.is((await readImageFile(out, '/hello.sh')).toString(), '#!/bin/sh\necho hi\n');
  t.truthy(byPath.get('/etc/fstab'), 'the ROFS skeleton from layoutFiles is in the image');
  const sha = createHash('sha256').update(await readFile(out)).digest('hex');
  t.log(`image sha256 ${sha}`);
});

/** An app folder with binary files, a link and a folder, for the src({read: false}) tests. */
async function readFalseApp(dir: string, name = 'app') {
  const app = path.join(dir, name);
  await mkdir(path.join(app, 'lib', 'empty'), { recursive: true });
  const files: Record<string, Buffer> = {
    'lib/big.so': randomBytes(3 * 1024 * 1024 + 777), // several chunks of the host reader
    'lib/small.so': randomBytes(5000),
    'hello.sh': Buffer.from('#!/bin/sh\necho hi\n'),
    'empty.txt': Buffer.alloc(0),
  };
  for (const [rel, bytes] of Object.entries(files)) await writeFile(path.join(app, rel), bytes);
  await symlink('small.so', path.join(app, 'lib', 'link.so'));
  return { app, files };
}

/** src(read: false) → resolveManifest → `between` → layoutFiles → writeImage. */
function readFalsePipeline(app: string, out: string, loader: string, between?: (file: Vinyl) => Promise<void>) {
  return pipeline(
    src('**/*', { cwd: app, base: app, read: false, resolveSymlinks: false, dot: true }),
    resolveManifest({ cwd: app, run: '/lib/small.so', bootstrap: false, silent: true }),
    new Transform({ objectMode: true, transform(f: Vinyl, _e, cb) { (between ? between(f) : Promise.resolve()).then(() => cb(null, f), cb); } }),
    layoutFiles({ silent: true }),
    writeImage({ out, loader, silent: true }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
}

test('src({read: false}): writeImage reads the files itself; the image equals the one from buffered src', async (t) => {
  const { dir, loader } = await setup(t);
  const { app, files } = await readFalseApp(dir);
  const out = path.join(dir, 'read-false.qcow2');
  await readFalsePipeline(app, out, loader);
  for (const [rel, bytes] of Object.entries(files)) t.true((await readImageFile(out, '/' + rel)).equals(bytes), rel);
  const byPath = new Map((await describeImage(out)).rofs!.entries.map((e) => [e.path, e]));
  t.is(byPath.get('/lib/link.so')?.target, 'small.so', 'link targets are read too');
  t.is(byPath.get('/lib/empty')?.type, 'dir');

  const buffered = path.join(dir, 'buffered.qcow2');
  await pipeline(
    src('**/*', { cwd: app, base: app, encoding: false, resolveSymlinks: false, dot: true }),
    resolveManifest({ cwd: app, run: '/lib/small.so', bootstrap: false, silent: true }),
    layoutFiles({ silent: true }),
    writeImage({ out: buffered, loader, silent: true }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
  t.true((await readFile(out)).equals(await readFile(buffered)), 'byte-identical to the buffered path');
});

test('src({read: false}): a file removed or changed after src listed it is a clear error, nothing at out', async (t) => {
  const { dir, loader } = await setup(t);
  const { app } = await readFalseApp(dir);
  const out = path.join(dir, 'changed.qcow2');
  const removed = path.join(app, 'lib', 'small.so');
  await t.throwsAsync(readFalsePipeline(app, out, loader, async (f) => { if (f.path === removed) await rm(removed); }), {
    any: true, message: /small\.so: was removed after gulp\.src listed it[\s\S]*run the build again/,
  });
  t.deepEqual(await leftovers(dir, 'changed.qcow2'), []);

  const app2 = (await readFalseApp(dir, 'app2')).app;
  const grown = path.join(app2, 'hello.sh');
  await t.throwsAsync(readFalsePipeline(app2, out, loader, async (f) => { if (f.path === grown) await appendFile(grown, 'echo more\n'); }), {
    any: true, message: /hello\.sh: changed after gulp\.src listed it \(its size was 18 bytes, now 28\)/,
  });
  t.deepEqual(await leftovers(dir, 'changed.qcow2'), []);

  const app3 = (await readFalseApp(dir, 'app3')).app;
  const replaced = path.join(app3, 'lib', 'big.so');
  await t.throwsAsync(readFalsePipeline(app3, out, loader, async (f) => {
    // Same size, new inode (written beside it, then renamed over it, as editors and builds do).
    if (f.path === replaced) { await writeFile(replaced + '.new', randomBytes(f.stat!.size)); await rename(replaced + '.new', replaced); }
  }), { any: true, message: /big\.so: changed after gulp\.src listed it \(it was replaced by another file\)/ });
  t.deepEqual(await leftovers(dir, 'changed.qcow2'), []);
});

test('an error upstream (the stream before writeImage fails) leaves no temp file and nothing at out, as soon as the pipeline rejects', async (t) => {
  const { dir, loader } = await setup(t);
  // Failing while the image is still being opened (its loader read in flight), and while the
  // step waits on a slow file (its stream contents still coming: the step cannot unwind yet).
  for (const [name, whenOpen] of [['opening.qcow2', false], ['writing.qcow2', true], ['writing.raw', true]] as const) {
    const out = path.join(dir, name);
    // The step's per-file log line for /a says the image is open and has a file in it.
    const log = new PassThrough();
    let logged = '';
    const added = new Promise<void>((resolve) => log.on('data', (d: Buffer) => { logged += d.toString(); if (logged.includes('/a')) resolve(); }));
    const slow = new PassThrough();
    slow.write(Buffer.alloc(1000, 1));
    async function* failing() {
      yield vinylFile(dir, 'a', 'first file');
      if (whenOpen) await added;
      const b = vinylFile(dir, 'b', '');
      b.contents = slow;
      yield b;
      await new Promise((r) => setTimeout(r, 50));
      throw new Error('upstream broke');
    }
    await t.throwsAsync(pipeline(Readable.from(failing()), writeImage({ out, loader, cmdline: '/x', verbose: true, logTo: log, format: name.endsWith('.raw') ? 'raw' : 'qcow2' }),
      new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } })), { message: /upstream broke/ });
    if (whenOpen) {
      t.deepEqual(await leftovers(dir, name), [], name); // no waiting: the temp file went when the step was destroyed
      t.true(slow.destroyed, 'the slow file was let go, so the step does not wait on it');
    } else {
      if (!slow.destroyed) slow.end();
      // The image was still being opened and is removed once open, which under load may be a
      // while after the rejection (156-247 ms seen): look after it must have opened.
      await new Promise((r) => setTimeout(r, 1000));
      for (let i = 0; i < 50 && (await leftovers(dir, name)).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 200)); // nor does anything appear later
    t.deepEqual(await leftovers(dir, name), [], name);
  }
});
