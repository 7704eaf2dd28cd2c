// Host programs and their libraries: the ELF reader against readelf, the closure against ldd
// (minus what OSv's kernel provides), guest placement as OSv's loader searches, the ld.so.cache
// reader against ldconfig, errors for what OSv cannot run, and hostFiles through layoutFiles and
// writeImage into an image read back byte for byte.
import test from 'ava';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
// @ts-ignore -- gulp 5 ships no type declarations
import { src as gulpSrc } from 'gulp';
import type Vinyl from 'vinyl';
import { capstanOf } from '../lib/carrier.js';
import { HostError } from '../lib/errors.js';
import {
  captureClosure, checkOsvCanLoad, hostClosure, ldCacheIndex, LD_CACHE_FLAGS_X86_64, OSV_KERNEL_LIBSTDCXX, OSV_KERNEL_SONAMES,
  parseLdCache, readElf, readElfFrom, readLdCache, type ClosureEntry, type ClosureOptions,
} from '../lib/host/index.js';
import { describeImage, OsvImage } from '../lib/image/describe.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { resolveManifest } from '../lib/steps/resolve-manifest.js';
import { writeImage } from '../lib/steps/write-image.js';
import { hostFiles } from '../lib/vinyl/host-files.js';
import { buildFixtures, ldconfigPrint, ldd, readelf, type Fixtures } from './helpers/host-programs.js';
import { buildStandInLoader } from './helpers/stand-in.js';

const src = gulpSrc as (globs: string | string[], options: Record<string, unknown>) => NodeJS.ReadableStream;
const NODE = existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath;

let fixtures: Fixtures;
let work: string;
test.before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'capstan-host-'));
  fixtures = await buildFixtures(work);
});
test.after.always(async () => { await rm(work, { recursive: true, force: true }); });

/** What the closure should be, from independent tools: ldd's resolution, readelf's DT_NEEDED, minus what `provided` lists. */
async function expectedClosure(program: string, provided: ReadonlySet<string>, env?: Record<string, string>): Promise<Map<string, string>> {
  const resolved = await ldd(program, env);
  const expected = new Map<string, string>();
  const queue = [program];
  const interp = (await readelf(program)).interpreter;
  for (let file = queue.shift(); file; file = queue.shift()) {
    for (const name of (await readelf(file)).needed) {
      if (provided.has(name) || expected.has(name) || (interp && path.basename(interp) === name)) continue;
      const at = resolved.get(name);
      if (!at) throw new Error(`ldd does not resolve ${name} for ${program}`);
      expected.set(name, realpathSync(at));
      queue.push(at);
    }
  }
  return expected;
}

function librariesOf(entries: ClosureEntry[]): Map<string, string> {
  return new Map(entries.filter((e) => e.type === 'library').map((e) => [e.soname!, e.hostPath]));
}

const kernel = (hidden: boolean) => new Set([...OSV_KERNEL_SONAMES, ...(hidden ? [] : [OSV_KERNEL_LIBSTDCXX])]);

// ---- the ELF reader -------------------------------------------------------------------------

test('readElf agrees with readelf on node and on every compiled fixture', async (t) => {
  const files = [NODE, fixtures.prog, fixtures.prog2, fixtures.nonPie, ...['libfoo.so', 'libbar.so.1.0.0', 'libcxx.so'].map((n) => path.join(work, 'app/lib', n))];
  for (const file of files) {
    const ours = readElf(file);
    const theirs = await readelf(file);
    t.deepEqual(ours.dynamic?.needed ?? [], theirs.needed, `${file} DT_NEEDED`);
    t.is(ours.dynamic?.soname, theirs.soname, `${file} DT_SONAME`);
    t.is(ours.dynamic?.runpath, theirs.runpath, `${file} DT_RUNPATH`);
    t.is(ours.dynamic?.rpath, theirs.rpath, `${file} DT_RPATH`);
    t.is(ours.interpreter, theirs.interpreter, `${file} PT_INTERP`);
    t.is(ours.header.type === 2 ? 'EXEC' : ours.header.type === 3 ? 'DYN' : '?', theirs.type);
    t.is(theirs.machine, 'Advanced Micro Devices X86-64');
    t.deepEqual(ours.loads.map((p) => ({ vaddr: p.vaddr, memsz: p.memsz })), theirs.loads, `${file} PT_LOAD`);
  }
});

test('readElf reads the headers and the few strings it needs, not the whole (100 MB) node binary', (t) => {
  const fd = openSync(NODE, 'r');
  let bytes = 0;
  let reads = 0;
  try {
    const elf = readElfFrom((buffer, offset, length, position) => { reads++; const n = readSync(fd, buffer, offset, length, position); bytes += n; return n; }, NODE);
    t.deepEqual(elf.dynamic, readElf(NODE).dynamic);
  } finally {
    closeSync(fd);
  }
  t.log(`${reads} reads, ${bytes} bytes of ${statSync(NODE).size}`);
  t.true(bytes < 16 * 1024, `${bytes} bytes read`);
});

// ---- the closure against ldd ------------------------------------------------------------------

for (const hiddenKernel of [false, true]) {
  test(`the closure of ${NODE} is what ldd resolves, minus the kernel's sonames${hiddenKernel ? ' (hidden-symbols kernel: libstdc++ included)' : ''}`, async (t) => {
    const closure = captureClosure([NODE], { hiddenKernel });
    t.deepEqual(librariesOf(closure.entries), await expectedClosure(NODE, kernel(hiddenKernel)));
    const program = closure.entries[0]!;
    t.like(program, { type: 'program', guestPath: path.resolve(NODE), hostPath: realpathSync(NODE) });
    for (const lib of closure.entries.filter((e) => e.type === 'library')) t.true(lib.guestPath.startsWith('/usr/lib/'), lib.guestPath);
    t.true(closure.skipped.some((s) => s.name === 'libc.so.6' && s.reason === 'kernel'));
    t.is(closure.skipped.some((s) => s.name === 'libstdc++.so.6'), !hiddenKernel);
  });
}

test('compiled programs: the closure matches ldd minus the kernel list, guest paths follow RUNPATH $ORIGIN', async (t) => {
  for (const hiddenKernel of [false, true]) {
    const closure = captureClosure([{ path: fixtures.prog, at: '/app/bin/prog' }], { hiddenKernel });
    t.deepEqual(librariesOf(closure.entries), await expectedClosure(fixtures.prog, kernel(hiddenKernel)), `hiddenKernel ${hiddenKernel}`);
  }
  const entries = hostClosure([{ path: fixtures.prog, at: '/app/bin/prog' }]);
  const byGuest = new Map(entries.map((e) => [e.guestPath, e]));
  const lib = (n: string) => path.join(work, 'app/lib', n);
  t.like(byGuest.get('/app/bin/prog'), { type: 'program', hostPath: fixtures.prog });
  // Through prog's own RUNPATH $ORIGIN/../lib: the same place relative to the program.
  t.like(byGuest.get('/app/lib/libfoo.so'), { type: 'library', hostPath: lib('libfoo.so'), soname: 'libfoo.so', foundVia: 'runpath', neededBy: [fixtures.prog] });
  t.like(byGuest.get('/app/lib/libcxx.so'), { type: 'library', hostPath: lib('libcxx.so'), foundVia: 'runpath' });
  // Through libfoo's own RUNPATH $ORIGIN: beside libfoo, real name plus the soname link, as on the host.
  t.like(byGuest.get('/app/lib/libbar.so.1.0.0'), { type: 'library', hostPath: lib('libbar.so.1.0.0'), soname: 'libbar.so.1', foundAt: lib('libbar.so.1'), neededBy: [lib('libfoo.so')] });
  t.like(byGuest.get('/app/lib/libbar.so.1'), { type: 'symlink', target: 'libbar.so.1.0.0', hostPath: lib('libbar.so.1.0.0') });
  // Through an absolute RUNPATH: /usr/lib, where OSv always looks.
  t.like(byGuest.get('/usr/lib/libabs.so'), { type: 'library', hostPath: path.join(work, 'abs/libabs.so'), foundVia: 'runpath' });
  // libcxx (C++ with exceptions) needs libgcc_s, which no OSv kernel provides.
  t.like(byGuest.get('/usr/lib/libgcc_s.so.1'), { type: 'library', soname: 'libgcc_s.so.1', neededBy: [lib('libcxx.so')] });
  t.false(entries.some((e) => e.soname === 'libstdc++.so.6'), 'the default kernel provides libstdc++');
  t.is(entries.length, 7);
  // And the program really runs on the host with that closure.
  t.is((await execa(fixtures.prog, { reject: false })).exitCode, 0);
});

test('DT_RPATH is inherited down the chain (glibc), but OSv only searches the needer: such a library goes to /usr/lib', async (t) => {
  const closure = captureClosure([{ path: fixtures.prog2, at: '/opt/old/bin/prog2' }]);
  t.deepEqual(librariesOf(closure.entries), await expectedClosure(fixtures.prog2, kernel(false)));
  const byGuest = new Map(closure.entries.map((e) => [e.guestPath, e]));
  t.like(byGuest.get('/opt/old/lib/libbaz.so'), { foundVia: 'rpath', neededBy: [fixtures.prog2] });
  // libbaz has no RPATH/RUNPATH: glibc finds libqux through prog2's RPATH; OSv would look in /, /usr/lib.
  t.like(byGuest.get('/usr/lib/libqux.so'), { type: 'library', foundVia: 'rpath', neededBy: [path.join(work, 'old/lib/libbaz.so')] });
  t.is(closure.entries.length, 3);
});

test('a library placed beside the program gets a /usr/lib link when another needer cannot reach it (OSv loads depth-first)', async (t) => {
  const closure = captureClosure([{ path: fixtures.prog3, at: '/opt/old/bin/prog3' }]);
  t.deepEqual(librariesOf(closure.entries), await expectedClosure(fixtures.prog3, kernel(false)));
  const byGuest = new Map(closure.entries.map((e) => [e.guestPath, e]));
  t.like(byGuest.get('/opt/old/lib/libqux.so'), { type: 'library', neededBy: [fixtures.prog3, path.join(work, 'old/lib/libbaz.so')] });
  t.like(byGuest.get('/usr/lib/libqux.so'), { type: 'symlink', target: '/opt/old/lib/libqux.so' });
  t.is(closure.entries.length, 4);
});

test('LD_LIBRARY_PATH is searched only when asked, before RUNPATH, and a foreign-architecture file there is passed over as glibc does', async (t) => {
  const llp = path.join(work, 'llp');
  await mkdir(llp, { recursive: true });
  await writeFile(path.join(llp, 'libfoo.so'), elfHeader({ machine: 183 })); // an AArch64 "libfoo.so": skipped
  await execa('gcc', ['-shared', '-fPIC', '-o', path.join(llp, 'libabs.so'), '-Wl,-soname,libabs.so', path.join(work, 'src/abs.c')]);
  const env = { LD_LIBRARY_PATH: llp };
  const withLlp = captureClosure([fixtures.prog], { ldLibraryPath: llp });
  t.deepEqual(librariesOf(withLlp.entries), await expectedClosure(fixtures.prog, kernel(false), env));
  t.is(librariesOf(withLlp.entries).get('libabs.so'), path.join(llp, 'libabs.so'));
  t.is(librariesOf(withLlp.entries).get('libfoo.so'), path.join(work, 'app/lib/libfoo.so'));
  t.is(librariesOf(captureClosure([fixtures.prog]).entries).get('libabs.so'), path.join(work, 'abs/libabs.so'), 'not searched by default');
});

test('a program given twice, or two programs sharing libraries, capture each file once', (t) => {
  const once = hostClosure([fixtures.prog2]);
  const twice = hostClosure([fixtures.prog2, fixtures.prog2]);
  t.deepEqual(twice, once);
  const both = hostClosure([{ path: fixtures.prog2, at: '/a/bin/p2' }, { path: fixtures.prog3, at: '/b/bin/p3' }]);
  t.is(both.filter((e) => e.type === 'library' && e.soname === 'libbaz.so').length, 1);
});

test('withGccS adds /usr/lib/libgcc_s.so.1 even when nothing needs it', (t) => {
  t.false(hostClosure([fixtures.prog2]).some((e) => e.soname === 'libgcc_s.so.1'));
  const entries = hostClosure([fixtures.prog2], { withGccS: true });
  const gccS = entries.find((e) => e.guestPath === '/usr/lib/libgcc_s.so.1');
  t.like(gccS, { type: 'library', foundVia: 'withGccS', neededBy: [] });
  t.is(gccS!.hostPath, realpathSync((ldCacheIndex(readLdCache()).get('libgcc_s.so.1') ?? [])[0]!));
});

// ---- errors for what OSv cannot run -----------------------------------------------------------

test('a missing library names itself, who needs it, and every place searched (RUNPATH is not inherited)', async (t) => {
  t.is((await ldd(fixtures.prog4)).get('libqux.so'), null, 'ldd agrees: not found');
  const error = t.throws(() => captureClosure([fixtures.prog4]), { instanceOf: HostError })!;
  t.is(error.code, 'E_LIB_NOT_FOUND');
  t.is(error.file, path.join(work, 'old/lib/libbaz.so'));
  t.regex(error.message, /libqux\.so, needed by .*old\/lib\/libbaz\.so \(loaded for .*old\/bin\/prog4\), was not found/);
  t.regex(error.message, /the loader cache \/etc\/ld\.so\.cache; the standard folders \(\/lib\/x86_64-linux-gnu/);
  t.notRegex(error.message, /DT_RUNPATH of .*prog4/, "prog4's RUNPATH is not searched for libbaz's needs");
  t.regex(error.message, /ldLibraryPath/);
});

test('foreign architectures, ELF32, big-endian, relocatable objects and non-ELF files are refused clearly', async (t) => {
  const dir = path.join(work, 'crafted');
  await mkdir(dir, { recursive: true });
  const cases: Array<[string, Buffer, string, RegExp]> = [
    ['aarch64', elfHeader({ machine: 183 }), 'E_ELF_MACHINE', /built for AArch64, not x86-64/],
    ['i386', elfHeader({ cls: 1, machine: 3 }), 'E_ELF_CLASS', /32-bit ELF file \(ELF32, i386\)/],
    ['ppc64', elfHeader({ data: 2, machine: 21 }), 'E_ELF_DATA', /big-endian ELF file \(PowerPC64\)/],
    ['object.o', elfHeader({ type: 1 }), 'E_ELF_TYPE', /relocatable object/],
    ['short', elfHeader({}).subarray(0, 30), 'E_ELF_CORRUPT', /cut short/],
    ['data.bin', Buffer.from('just some bytes\n'), 'E_HOST_NOT_ELF', /not an ELF program/],
    ['sframe', elfHeader({ phdrs: [{ type: 0x6474e554 }] }), 'E_ELF_P_TYPE', /type 0x6474e554.*Unknown p_type/],
  ];
  for (const [name, bytes, code, message] of cases) {
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    const error = t.throws(() => captureClosure([file]), { instanceOf: HostError }, name)!;
    t.is(error.code, code, name);
    t.regex(error.message, message, name);
    t.is(error.file, file);
  }
  t.is(hostClosure([path.join(work, 'app/lib/libfoo.so')])[0]?.type, 'program', 'a shared library is a valid OSv program (/hello.so)');
});

test('a shell script is refused with a hint to capture its interpreter', async (t) => {
  const script = path.join(work, 'misc/start.sh');
  await writeFile(script, '#!/usr/bin/env node\nconsole.log(1)\n');
  await chmod(script, 0o755);
  const error = t.throws(() => captureClosure([script]), { instanceOf: HostError })!;
  t.is(error.code, 'E_HOST_NOT_ELF');
  t.regex(error.message, /is a script \(#!\/usr\/bin\/env node\).*OSv has no shell/);
  t.regex(error.hint!, /hostFiles\(\['\/usr\/bin\/node'\]\)/);
  t.like(t.throws(() => captureClosure([path.join(work, 'nope')]), { instanceOf: HostError }), { code: 'E_HOST_NOT_FOUND' });
});

test('static executables are refused unless allowed (OSv master only); non-PIE ones over the kernel always', async (t) => {
  const crafted = path.join(work, 'misc/crafted-static');
  await writeFile(crafted, elfHeader({ type: 2, phdrs: [{ type: 1, vaddr: 0x400000, memsz: 0x1000 }] }));
  for (const file of [fixtures.staticExe, crafted].filter((f): f is string => f !== undefined)) {
    const error = t.throws(() => captureClosure([file]), { instanceOf: HostError })!;
    t.is(error.code, 'E_ELF_STATIC', file);
    t.regex(error.message, /statically linked executable/);
    t.regex(error.hint!, /allowStatic/);
    t.deepEqual(hostClosure([file], { allowStatic: true }).map((e) => e.type), ['program']);
  }
  if (!fixtures.staticExe) t.log('no libc.a on this host: checked a crafted static header only');
  const over = t.throws(() => captureClosure([fixtures.overKernel]), { instanceOf: HostError })!;
  t.is(over.code, 'E_ELF_KERNEL_COLLISION');
  t.regex(over.message, /non-PIE\) executable mapped at 0x40400000.*collides with kernel/);
  t.is(checkOsvCanLoad(readElf(fixtures.nonPie)), 'executable', 'a non-PIE at 0x400000 is fine (OSv ≥ 0.54)');
  t.is(checkOsvCanLoad(readElf(fixtures.prog)), 'pie');
});

test('one name resolved to two different files by two programs is an error, not a guess', async (t) => {
  // A second libbaz.so, found by the other program's RPATH.
  const other = path.join(work, 'other');
  await mkdir(path.join(other, 'lib'), { recursive: true });
  await mkdir(path.join(other, 'bin'), { recursive: true });
  await execa('gcc', ['-shared', '-fPIC', '-o', path.join(other, 'lib/libbaz.so'), '-Wl,-soname,libbaz.so', path.join(work, 'src/qux.c')]);
  await execa('gcc', ['-o', path.join(other, 'bin/p'), path.join(work, 'src/plain.c'), `-L${path.join(other, 'lib')}`, '-Wl,--no-as-needed', '-lbaz', '-Wl,-rpath,$ORIGIN/../lib']);
  const error = t.throws(() => captureClosure([{ path: fixtures.prog2, at: '/p2' }, { path: path.join(other, 'bin/p'), at: '/p' }]), { instanceOf: HostError })!;
  t.is(error.code, 'E_LIB_CONFLICT');
  t.regex(error.message, /libbaz\.so resolves to two different files: .*old\/lib\/libbaz\.so .* and .*other\/lib\/libbaz\.so/);
});

// ---- ld.so.cache ------------------------------------------------------------------------------

test('the host ld.so.cache reads as ldconfig -p lists it', async (t) => {
  if (!existsSync('/etc/ld.so.cache')) { t.pass('no /etc/ld.so.cache on this host'); return; }
  const cache = readLdCache()!;
  const printed = await ldconfigPrint();
  t.is(cache.entries.length, printed.count);
  t.deepEqual(cache.entries.map((e) => [e.name, e.path]), printed.entries.map((e) => [e.name, e.path]));
  t.deepEqual(cache.entries.map((e) => e.flags === LD_CACHE_FLAGS_X86_64), printed.entries.map((e) => e.desc === 'libc6,x86-64'));
});

test('a cache written by ldconfig for our folder, and the same inside an old-format cache, give the loader our libraries', async (t) => {
  const dir = path.join(work, 'ldconf');
  await mkdir(dir, { recursive: true });
  const conf = path.join(dir, 'ld.so.conf');
  const cacheFile = path.join(dir, 'ld.so.cache');
  await writeFile(conf, `${path.join(work, 'app/lib')}\n${path.join(work, 'old/lib')}\n`);
  await execa('ldconfig', ['-X', '-f', conf, '-C', cacheFile], { env: { PATH: `/sbin:/usr/sbin:${process.env.PATH}` } });
  const bytes = await readFile(cacheFile);
  const parsed = parseLdCache(bytes, cacheFile);
  const printed = await ldconfigPrint(cacheFile);
  t.is(parsed.format, 'new');
  t.deepEqual(parsed.entries.map((e) => [e.name, e.path]), printed.entries.map((e) => [e.name, e.path]));
  t.true(parsed.entries.some((e) => e.name === 'libbar.so.1' && e.path === path.join(work, 'app/lib/libbar.so.1')));

  // glibc < 2.32 wrote "ld.so-1.7.0" entries first, then the new cache aligned to 8 (dl-cache.h).
  const old = Buffer.alloc(16 + parsed.entries.length * 12);
  old.write('ld.so-1.7.0', 0, 'latin1');
  old.writeUInt32LE(parsed.entries.length, 12);
  const padded = Buffer.concat([old, Buffer.alloc(((old.length + 7) & ~7) - old.length), bytes]);
  const embedded = parseLdCache(padded);
  t.is(embedded.format, 'old+new');
  t.deepEqual(embedded.entries, parsed.entries);

  // An old-only cache: strings count from the end of the entries.
  const strings = Buffer.from('libqux.so\0/x/libqux.so\0');
  const oldOnly = Buffer.alloc(16 + 12);
  oldOnly.write('ld.so-1.7.0', 0, 'latin1');
  oldOnly.writeUInt32LE(1, 12);
  oldOnly.writeInt32LE(0x0303, 16);
  oldOnly.writeUInt32LE(0, 20);
  oldOnly.writeUInt32LE(10, 24);
  t.deepEqual(parseLdCache(Buffer.concat([oldOnly, strings])).entries, [{ flags: 0x0303, name: 'libqux.so', path: '/x/libqux.so' }]);
  t.like(t.throws(() => parseLdCache(Buffer.from('garbage'), '/etc/x')), { code: 'E_LD_CACHE_INVALID', file: '/etc/x' });

  // prog2 without its RPATH's help: only our cache can find libbaz (and no standard folder has it).
  const options: ClosureOptions = { ldCache: cacheFile, defaultDirs: [] };
  const bare = path.join(work, 'misc/bare');
  await execa('gcc', ['-o', bare, path.join(work, 'src/prog2.c'), `-L${path.join(work, 'old/lib')}`, '-lbaz', `-Wl,-rpath-link,${path.join(work, 'old/lib')}`]);
  t.like(hostClosure([bare], options).find((e) => e.soname === 'libbaz.so'), { foundVia: 'ld.so.cache', guestPath: '/usr/lib/libbaz.so' });
  t.like(t.throws(() => hostClosure([bare], { ldCache: false, defaultDirs: [] })), { code: 'E_LIB_NOT_FOUND' });
});

// ---- hostFiles → layoutFiles → writeImage ----------------------------------------------------

async function collect(stream: NodeJS.ReadableStream): Promise<Vinyl[]> {
  const out: Vinyl[] = [];
  await pipeline(stream, new Writable({ objectMode: true, write(f: Vinyl, _e, cb) { out.push(f); cb(); } }));
  return out;
}

test('hostFiles emits read:false vinyls annotated with their guest paths', async (t) => {
  const files = await collect(hostFiles([{ path: fixtures.prog, at: '/app/bin/prog' }]));
  const expected = hostClosure([{ path: fixtures.prog, at: '/app/bin/prog' }]);
  t.deepEqual(files.map((f) => capstanOf(f)?.guestPath), expected.map((e) => e.guestPath));
  for (const file of files) {
    t.is(capstanOf(file)?.kind, 'app');
    t.true(file.isNull(), 'no contents are read up front');
    if (!file.isSymbolic()) t.true(file.stat!.isFile());
  }
  await t.throwsAsync(collect(hostFiles([fixtures.prog4])), { any: true, message: /libqux\.so, needed by/ });
});

test('hostFiles through layoutFiles and writeImage: every file byte-exact at its guest path, links as on the host', async (t) => {
  const loader = await buildStandInLoader(path.join(work, 'loader'));
  const out = path.join(work, 'host.qemu');
  const started = Date.now();
  const programs = [{ path: fixtures.prog, at: '/app/bin/prog' }, { path: NODE, at: '/usr/bin/node' }, { path: fixtures.prog3, at: '/opt/old/bin/prog3' }];
  await collect(hostFiles(programs, { hiddenKernel: true }).pipe(layoutFiles({ silent: true, ignore: ['/usr/**'] }))
    .pipe(writeImage({ out, loader, cmdline: '/usr/bin/node --version', silent: true })));
  t.log(`image with node (${((await readFile(NODE)).length / 1048576).toFixed(0)} MiB) written in ${Date.now() - started} ms`);
  const entries = hostClosure(programs, { hiddenKernel: true });
  const listing = new Map((await describeImage(out)).rofs!.entries.map((e) => [e.path, e]));
  const image = await OsvImage.open(out);
  try {
    for (const entry of entries) {
      const inImage = listing.get(entry.guestPath);
      if (entry.type === 'symlink') {
        t.like(inImage, { type: 'symlink', target: entry.target }, entry.guestPath);
        continue;
      }
      t.is(inImage?.type, 'file', entry.guestPath);
      const [ours, host] = [await image.readFile(entry.guestPath), await readFile(entry.hostPath)];
      t.is(sha(ours), sha(host), `${entry.guestPath} is ${entry.hostPath}`);
    }
  } finally {
    await image.close();
  }
  t.true(listing.has('/usr/lib/libstdc++.so.6'), 'the hidden-symbols kernel gets its libstdc++ (ignore patterns do not drop preset guest paths)');
  t.true(listing.has('/etc/fstab'), 'the ROFS skeleton is added as usual');
});

test('in a whole build: hostFiles first, then the app through gulp.src, resolveManifest, layoutFiles, writeImage', async (t) => {
  const app = path.join(work, 'hostapp');
  await mkdir(path.join(app, 'meta'), { recursive: true });
  await writeFile(path.join(app, 'meta/package.yaml'), 'name: hostapp\ntitle: hostapp\nauthor: me\n');
  await writeFile(path.join(app, 'meta/run.yaml'), 'runtime: native\nconfig_set:\n  default:\n    bootcmd: /app/bin/prog\nconfig_set_default: default\n');
  await writeFile(path.join(app, 'data.txt'), 'the app\'s own file\n');
  const loader = await buildStandInLoader(path.join(work, 'loader2'));
  const out = path.join(work, 'whole.qemu');
  const images = await collect(hostFiles([{ path: fixtures.prog, at: '/app/bin/prog' }])
    .pipe(src('**', { cwd: app, base: app, encoding: false, dot: true, resolveSymlinks: false }) as unknown as NodeJS.WritableStream & NodeJS.ReadableStream)
    .pipe(resolveManifest({ bootstrap: false, silent: true }))
    .pipe(layoutFiles({ silent: true }))
    .pipe(writeImage({ out, loader, silent: true })));
  t.is(images.length, 1);
  const d = await describeImage(out);
  t.is(d.cmdline, 'runscript /run/default;');
  const paths = new Set(d.rofs!.entries.map((e) => e.path));
  for (const p of ['/app/bin/prog', '/app/lib/libfoo.so', '/app/lib/libbar.so.1', '/usr/lib/libgcc_s.so.1', '/data.txt', '/run/default']) t.true(paths.has(p), p);
  const image = await OsvImage.open(out);
  try {
    t.regex((await image.readFile('/run/default')).toString(), /\/app\/bin\/prog/);
    t.is(sha(await image.readFile('/app/bin/prog')), sha(await readFile(fixtures.prog)));
  } finally {
    await image.close();
  }
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A 64-byte ELF header (plus program headers), x86-64 ET_DYN by default. */
function elfHeader(o: { cls?: number; data?: number; machine?: number; type?: number; phdrs?: Array<{ type: number; vaddr?: number; memsz?: number }> }): Buffer {
  const phdrs = o.phdrs ?? [];
  const b = Buffer.alloc(64 + 56 * phdrs.length);
  b.set([0x7f, 0x45, 0x4c, 0x46, o.cls ?? 2, o.data ?? 1, 1, 0]);
  const be = (o.data ?? 1) === 2;
  const u16 = (v: number, at: number) => (be ? b.writeUInt16BE(v, at) : b.writeUInt16LE(v, at));
  u16(o.type ?? 3, 16);
  u16(o.machine ?? 62, 18);
  if (be) b.writeUInt32BE(1, 20); else b.writeUInt32LE(1, 20); // e_version EV_CURRENT (glibc refuses others outright)
  if (!be) {
    b.writeBigUInt64LE(64n, 32);
    u16(56, 54);
    u16(phdrs.length, 56);
    phdrs.forEach((p, i) => {
      const at = 64 + i * 56;
      b.writeUInt32LE(p.type, at);
      b.writeBigUInt64LE(BigInt(p.vaddr ?? 0), at + 16);
      b.writeBigUInt64LE(BigInt(p.memsz ?? 0), at + 40);
    });
  }
  return b;
}
