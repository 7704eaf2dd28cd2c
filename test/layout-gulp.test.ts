// layoutFiles behind a real gulp.src of a temporary folder: binary contents pass byte-exact
// (buffered and streamed), symlinks are read as links, Capstanfile `files` entries missing
// from the stream are read from disk.
import test from 'ava';
import { src as gulpSrc } from 'gulp';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { objectTransform } from 'through2';
import type Vinyl from 'vinyl';
import { annotate, capstanOf } from '../lib/carrier.js';
import type { Manifest } from '../lib/manifest/types.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { imageListing, manifestOf } from './fixtures/layout/builders.js';

const src = gulpSrc as (globs: string | string[], options: Record<string, unknown>) => NodeJS.ReadableStream;

const everyByte = Buffer.from(Array.from({ length: 256 * 4 }, (_, i) => i % 256));

async function tempTree(t: { teardown(fn: () => Promise<void>): void }, files: Record<string, Buffer | string | { link: string }>): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'capstan-layout-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  for (const [relative, spec] of Object.entries(files)) {
    const full = path.join(root, relative);
    await mkdir(path.dirname(full), { recursive: true });
    if (typeof spec === 'object' && !Buffer.isBuffer(spec)) await symlink(spec.link, full);
    else await writeFile(full, spec);
  }
  return root;
}

/** Stands in for resolveManifest: annotates every file as an application file of `manifest`. */
function asApp(manifest: Manifest): Transform {
  return objectTransform(async (file: Vinyl) => {
    annotate(file, { kind: 'app', manifest });
    return file;
  }) as unknown as Transform;
}

/**
 * Runs the streams and collects what comes out. Stream contents are read as each file arrives,
 * as writeImage does (vinyl-fs opens them lazily and they must be drained while src runs).
 */
async function collect(...streams: Array<NodeJS.ReadableStream | Transform>): Promise<Array<Vinyl & { bytes?: Buffer }>> {
  const out: Array<Vinyl & { bytes?: Buffer }> = [];
  const sink = new Writable({
    objectMode: true,
    write(file: Vinyl & { bytes?: Buffer }, _e, cb) {
      out.push(file);
      if (!file.isStream()) return cb();
      contentsOf(file).then((bytes) => { file.bytes = bytes; cb(); }, cb);
    },
  });
  await (pipeline as unknown as (...s: unknown[]) => Promise<void>)(...streams, sink);
  return out;
}

async function contentsOf(file: Vinyl & { bytes?: Buffer }): Promise<Buffer> {
  if (file.bytes) return file.bytes;
  if (file.isBuffer()) return file.contents;
  // Piped, not async-iterated: `for await` over a vinyl-fs 4 (streamx Composer) contents stream never ends.
  const chunks: Buffer[] = [];
  await pipeline(file.contents as NodeJS.ReadableStream, new Writable({ write(chunk: Buffer, _e, cb) { chunks.push(Buffer.from(chunk)); cb(); } }));
  return Buffer.concat(chunks);
}

for (const buffer of [true, false]) {
  test(`binary files pass byte-exact through gulp.src({encoding: false, buffer: ${buffer}})`, async (t) => {
    const big = randomBytes(3 * 1024 * 1024 + 7);
    const root = await tempTree(t, { 'lib/every-byte.so': everyByte, 'data/big.bin': big, 'empty': '' });
    await chmod(path.join(root, 'lib/every-byte.so'), 0o751);
    const m = manifestOf({ root });
    const out = await collect(src(`${root}/**`, { base: root, encoding: false, buffer, dot: true, resolveSymlinks: false }), asApp(m), layoutFiles({ skeleton: false }));
    const byPath = new Map(out.map((f) => [capstanOf(f)?.guestPath, f]));
    const so = byPath.get('/lib/every-byte.so')!;
    t.is(so.isStream(), !buffer);
    t.true((await contentsOf(so)).equals(everyByte));
    t.true((await contentsOf(byPath.get('/data/big.bin')!)).equals(big));
    t.is((await contentsOf(byPath.get('/empty')!)).length, 0);
    t.is(so.stat!.mode & 0o7777, 0o751);
    t.is(capstanOf(so)?.mode, undefined, 'the mode comes from stat');
    t.true(byPath.get('/lib')!.isDirectory());
  });
}

// (vinyl-fs 4 cannot read dangling links in either mode, so every link here has a target.)
test('symlinks from gulp.src({resolveSymlinks: false}) stay links', async (t) => {
  const root = await tempTree(t, {
    'lib/libfoo.so.1': 'foo', 'lib/libfoo.so': { link: 'libfoo.so.1' }, 'proc/mounts': 'm', 'etc/mnttab': { link: '../proc/mounts' },
    'abs': { link: '/proc/mounts' },
  });
  const m = manifestOf({ root });
  const out = await collect(src(`${root}/**`, { base: root, encoding: false, resolveSymlinks: false }), asApp(m), layoutFiles({ skeleton: false }));
  const listing = imageListing(out);
  t.is(listing['/lib/libfoo.so'], 'link libfoo.so.1');
  t.is(listing['/etc/mnttab'], 'link /proc/mounts');
  t.is(listing['/abs'], 'link /proc/mounts');
  t.is(listing['/lib/libfoo.so.1'], 'file 644 foo');
});

test('Capstanfile: stream files map through rootfs and files; missing files entries are read from disk', async (t) => {
  const root = await tempTree(t, {
    'ROOTFS/bin/hello': everyByte, 'ROOTFS/etc/app.conf': 'conf', 'ROOTFS/lib/hello': { link: '../bin/hello' },
    'build/app.jar': 'JAR', 'hello.so': 'HELLO', 'src/main.c': 'int main;', 'outside/extra.txt': 'extra', 'docs/readme': 'r',
  });
  const m = manifestOf({
    root,
    capstanfile: {
      cmdline: '/hello.so',
      rootfs: path.join(root, 'ROOTFS'),
      files: {
        '/app/app.jar': path.join(root, 'build/app.jar'),
        '/tools/hello.so': path.join(root, 'hello.so'),
        '/tools/copy.so': path.join(root, 'hello.so'),
        '/extra.txt': path.join(root, 'outside/extra.txt'),
        '/opt/docs': path.join(root, 'docs'),
        '/bin/again': path.join(root, 'ROOTFS/bin/hello'),
      },
    },
  });
  const stream = src([`${root}/**`, `!${root}/outside/**`], { base: root, encoding: false, resolveSymlinks: false });
  const out = await collect(stream, asApp(m), layoutFiles({ skeleton: false }));
  const listing = imageListing(out);
  t.deepEqual(Object.keys(listing), [
    '/app', '/app/app.jar', '/bin', '/bin/again', '/bin/hello', '/etc', '/etc/app.conf', '/extra.txt', '/lib', '/lib/hello',
    '/opt', '/opt/docs', '/tools', '/tools/copy.so', '/tools/hello.so',
  ]);
  const byPath = new Map(out.map((f) => [capstanOf(f)?.guestPath, f]));
  t.is((await contentsOf(byPath.get('/extra.txt')!)).toString(), 'extra');
  t.is((await contentsOf(byPath.get('/tools/copy.so')!)).toString(), 'HELLO');
  t.true((await contentsOf(byPath.get('/bin/again')!)).equals(everyByte));
  t.true((await contentsOf(byPath.get('/bin/hello')!)).equals(everyByte));
  t.is(listing['/lib/hello'], 'link /bin/hello');
  t.is(listing['/opt/docs'], 'dir 755', 'a folder in files is created empty, as Capstan does');
  t.false('/src/main.c' in listing);
});

test('Capstanfile: a files entry whose host file is missing is an error naming the Capstanfile', async (t) => {
  const root = await tempTree(t, { 'a.so': 'a' });
  const m = manifestOf({ root, capstanfile: { cmdline: '/a.so', files: { '/b.so': path.join(root, 'b.so') } } });
  await t.throwsAsync(collect(src(`${root}/**`, { base: root, encoding: false }), asApp(m), layoutFiles()), {
    any: true, message: new RegExp(`${root}/Capstanfile: files entry '/b\\.so': host path ${root}/b\\.so does not exist`),
  });
});

test('Capstanfile: a rootfs file and a files entry on the same guest path is an error', async (t) => {
  const root = await tempTree(t, { 'ROOTFS/app.so': 'rootfs', 'build/app.so': 'build' });
  const m = manifestOf({ root, capstanfile: { cmdline: '/app.so', rootfs: path.join(root, 'ROOTFS'), files: { '/app.so': path.join(root, 'build/app.so') } } });
  await t.throwsAsync(collect(src(`${root}/**`, { base: root, encoding: false }), asApp(m), layoutFiles()), {
    any: true, message: /guest path \/app\.so is claimed by two application files/,
  });
});
