// bench/compose: how long the user's path takes to turn a tree into an OSv image, against
// `tar -cf` of the same tree (reads every file and writes one file: the floor for any image
// writer) and a plain gulp `src() → dest()` copy (what a gulp user already pays to touch every
// file), plus the image writer alone fed by a plain fs walk. The user's path runs with src()
// buffered, with `buffer: false`, and with `read: false` (writeImage reads the files itself).
// Rows give wall time and CPU time (user + system, all threads): on a shared machine the CPU
// time is the steadier measure of cost. Runs alternate, with a warm page cache; each pipeline runs in its own Node process (lib compiled to JS in a temp folder, plain
// Node, as users run it) so its peak RSS is its own; times are measured inside that process,
// without Node's start-up.
//
//   node --import=tsx bench/compose.ts            10,000 files / 200 MB, then a 2 GB tree
//   BENCH_ROUNDS=5 BENCH_SKIP_2G=1 node --import=tsx bench/compose.ts
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const MB = 1024 * 1024;

/** Wall time, CPU time (user + system, every thread; for tar and Python their children's), peak RSS. */
interface ChildResult { ms: number; cpuMs: number; maxRssMB: number; imageBytes?: number }

/**
 * CPU time of the waited-for children so far (/proc/self/stat cutime + cstime), in ms. On a
 * machine shared with other work, wall time mostly measures the others; CPU time is the cost.
 */
function childrenCpuMs(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10; // fields 16 and 17 of stat(5), in 100 Hz ticks
  } catch {
    return NaN;
  }
}

/** Seeded PRNG so the tree's shape is the same on every run. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

/** `files` files totalling `totalBytes`, sizes spread log-uniformly 64 B … 4 MB, in nested folders. */
export async function generateTree(root: string, files: number, totalBytes: number, seed: number): Promise<void> {
  const r = rng(seed);
  const raw = Array.from({ length: files }, () => Math.exp(Math.log(64) + r() * (Math.log(4 * MB) - Math.log(64))));
  const scale = totalBytes / raw.reduce((a, b) => a + b, 0);
  const sizes = raw.map((s) => Math.max(1, Math.round(s * scale)));
  const dirs: string[] = [''];
  for (let i = 0; i < Math.max(1, Math.floor(files / 20)); i++) {
    const parent = dirs[Math.floor(r() * dirs.length)]!;
    dirs.push(path.join(parent, `d${i}`));
  }
  for (const d of dirs) await mkdir(path.join(root, d), { recursive: true });
  // Random bytes (incompressible, no all-zero clusters), generated in one pool and sliced.
  const pool = randomBytes(8 * MB);
  for (let i = 0; i < files; i++) {
    const dir = dirs[Math.floor(r() * dirs.length)]!;
    const file = await open(path.join(root, dir, `f${i}.bin`), 'w');
    let left = sizes[i]!;
    let from = Math.floor(r() * pool.length);
    while (left > 0) {
      const n = Math.min(left, pool.length - from);
      await file.write(pool, from, n);
      left -= n;
      from = 0;
    }
    await file.close();
  }
}

/** A stand-in for the 3.7 MB release loader: boot signature and count32 = 113 (v0.57.0). */
export async function writeLoader(file: string): Promise<void> {
  const loader = Buffer.alloc(65536 + 113 * 32768);
  loader.writeUInt16LE(113, 0x10);
  loader[510] = 0x55;
  loader[511] = 0xaa;
  randomBytes(113 * 32768).copy(loader, 65536);
  await writeFile(file, loader);
}

/**
 * The child side: one pipeline in a fresh process, importing the library from `lib` (a
 * folder of compiled JS when available, so we measure what users run: plain Node, no tsx).
 */
function childSource(lib: string): string {
  return `
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { existsSync, statSync } from 'node:fs';
import gulp from 'gulp';
import { resolveManifest } from ${JSON.stringify(pathToFileURL(path.join(lib, 'steps/resolve-manifest.js')).href)};
import { layoutFiles } from ${JSON.stringify(pathToFileURL(path.join(lib, 'steps/layout-files.js')).href)};
import { writeImage } from ${JSON.stringify(pathToFileURL(path.join(lib, 'steps/write-image.js')).href)};
import { ImageComposer } from ${JSON.stringify(pathToFileURL(path.join(lib, 'image/compose.js')).href)};
import { HOST_READ_BUFFER_BYTES, hostFileChunks } from ${JSON.stringify(pathToFileURL(path.join(lib, 'vinyl/host-file.js')).href)};
import { src as capstanSrc } from ${JSON.stringify(pathToFileURL(path.join(lib, 'vinyl/src.js')).href)};
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
const [variant, tree, out, loader] = process.argv.slice(2);
const started = performance.now();
const cpu0 = process.cpuUsage();
const buffer = !variant.endsWith('-stream');
// read: false — vinyl-fs only lists and stats; writeImage reads each file from its path.
const read = !variant.endsWith('-noread');
// capstan.src (csrc): its defaults, no contents (writeImage reads each file from its path).
const source = () => variant.endsWith('csrc')
  ? capstanSrc('**/*', { cwd: tree, base: tree, dot: true })
  : gulp.src('**/*', { cwd: tree, base: tree, encoding: false, buffer, read, resolveSymlinks: false, dot: true });
if (variant === 'copy') {
  await pipeline(source(), gulp.dest(out));
} else if (variant.startsWith('src') || variant === 'csrc') {
  // src() alone, drained: what vinyl-fs costs before any step runs (nothing is written).
  await pipeline(source(), new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }));
} else if (variant === 'floor') {
  // What any writer in Node pays at least: tar's own work (readdir, lstat, open, read, write,
  // close per file, blocking, one 1 MiB buffer), with no image format, no vinyl, no gulp.
  const { openSync, readSync, writeSync, closeSync, lstatSync } = await import('node:fs');
  const fd = openSync(out, 'w');
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = dir + '/' + e.name;
      const st = lstatSync(full);
      if (st.isDirectory()) { walk(full); continue; }
      if (!st.isFile()) continue;
      const f = openSync(full, 'r');
      for (let n; (n = readSync(f, buf, 0, buf.length, null)) > 0; pos += n) writeSync(fd, buf, 0, n, pos);
      closeSync(f);
    }
  };
  walk(tree);
  closeSync(fd);
} else if (variant === 'writer') {
  // The image writer alone, fed by a plain blocking walk of the tree (no gulp, no vinyl), each
  // file read the way writeImage reads a capstan.src vinyl: lstat, then open, check, read
  // through one reused buffer, added synchronously.
  const { lstatSync } = await import('node:fs');
  const composer = await ImageComposer.open({ out, loader });
  const scratch = Buffer.allocUnsafe(HOST_READ_BUFFER_BYTES);
  const walk = async (dir, guest) => {
    for (const name of readdirSync(dir)) {
      const full = dir + '/' + name;
      const g = guest + '/' + name;
      const st = lstatSync(full);
      if (st.isDirectory()) { composer.addDirectory(g); await walk(full, g); }
      else if (!st.isFile()) continue;
      else if (st.size <= HOST_READ_BUFFER_BYTES) composer.addFileSync(g, hostFileChunks(full, st, scratch));
      else await composer.addFile(g, (async function* () { yield* hostFileChunks(full, st, scratch); })());
    }
  };
  await walk(tree, '');
  await composer.finish('/d0/f0.bin');
} else {
  await pipeline(
    source(),
    resolveManifest({ cwd: tree, run: '/d0/f0.bin', bootstrap: false, silent: true }),
    layoutFiles({ silent: true }),
    writeImage({ out, loader, format: variant.startsWith('image-raw') ? 'raw' : 'qcow2', silent: true }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
}
const ms = performance.now() - started;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, maxRssMB: process.resourceUsage().maxRSS / 1024, imageBytes: existsSync(out) ? statSync(out).size : 0 }) + '\\n');
`;
}

interface ChildRunner { run(variant: string, tree: string, out: string, loader: string): ChildResult; mode: string }

/** Compiles lib/ to `work/dist` and returns a runner for children on plain Node; tsx if that fails. */
function prepareChildren(work: string): ChildRunner {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const dist = path.join(work, 'dist');
  const tsc = spawnSync(process.execPath, [path.join(repo, 'node_modules/typescript/bin/tsc'), '-p', path.join(repo, 'tsconfig.build.json'), '--outDir', dist, '--declaration', 'false', '--sourceMap', 'false'], { encoding: 'utf8' });
  let lib = path.join(dist, 'lib');
  let nodeArgs: string[] = [];
  let mode = 'compiled JS on plain Node';
  if (!existsSync(path.join(lib, 'steps/write-image.js'))) {
    lib = path.join(repo, 'lib');
    nodeArgs = ['--import=tsx'];
    mode = `TypeScript through tsx (compiling failed: ${tsc.stdout.split('\n')[0]})`;
  }
  // Resolve gulp and the other packages from the repository's node_modules.
  symlinkSync(path.join(repo, 'node_modules'), path.join(work, 'node_modules'));
  const script = path.join(work, nodeArgs.length ? 'child.mts' : 'child.mjs');
  writeFileSync(script, childSource(lib));
  return {
    mode,
    run(variant, tree, out, loader) {
      const r = spawnSync(process.execPath, [...nodeArgs, script, variant, tree, out, loader], { encoding: 'utf8', maxBuffer: 16 * MB, cwd: repo });
      if (r.status !== 0) throw new Error(`bench child ${variant} failed:\n${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
    },
  };
}

function runTar(tree: string, out: string): ChildResult {
  const t0 = performance.now();
  const c0 = childrenCpuMs();
  const r = spawnSync('tar', ['-cf', out, '-C', tree, '.']);
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return { ms: performance.now() - t0, cpuMs: childrenCpuMs() - c0, maxRssMB: NaN };
}

/**
 * OSv's own ROFS writer, when OSV_SRC points to an OSv checkout (nothing of OSv is in this
 * repository): `scripts/gen-rofs-img.py` on a manifest of the same tree. It writes only the
 * ROFS volume (no loader, no qcow2), so it is a generous baseline.
 */
async function osvPythonRunner(osvSrc: string, tree: string, work: string): Promise<(out: string) => ChildResult> {
  const script = path.join(osvSrc, 'scripts', 'gen-rofs-img.py');
  const manifest = path.join(work, 'osv-usr.manifest');
  const lines: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(path.join(dir, e.name), r);
      else lines.push(`${r}: ${path.join(dir, e.name)}`);
    }
  };
  await walk(tree, '');
  await writeFile(manifest, lines.join('\n') + '\n');
  return (out) => {
    const t0 = performance.now();
    const c0 = childrenCpuMs();
    const r = spawnSync('python3', [script, '-o', out, '-m', manifest], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`gen-rofs-img.py failed: ${r.stderr}`);
    return { ms: performance.now() - t0, cpuMs: childrenCpuMs() - c0, maxRssMB: NaN };
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export async function main(): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const work = await mkdtemp(path.join(os.tmpdir(), 'capstan-bench-'));
  try {
    const loader = path.join(work, 'loader.img');
    await writeLoader(loader);
    const tree = path.join(work, 'tree');
    console.log('generating 10,000 files / 200 MB …');
    await generateTree(tree, 10_000, 200 * MB, 1);
    const children = prepareChildren(work);
    const runChild = children.run;
    const outDir = path.join(work, 'out');
    await mkdir(outDir);
    runTar(tree, path.join(outDir, 'warm.tar')); // warm the page cache
    const osvPython = process.env.OSV_SRC ? await osvPythonRunner(process.env.OSV_SRC, tree, work) : undefined;
    const all = ['tar', 'floor', 'copy', 'src', 'src-noread', 'csrc', 'image', 'image-raw', 'image-stream', 'image-noread', 'image-csrc', 'writer', ...(osvPython ? ['osv-python'] : [])];
    // BENCH_ONLY=csrc,image-csrc: those rows (and tar, the yardstick) only.
    const only = process.env.BENCH_ONLY?.split(',');
    const variants = only ? all.filter((v) => v === 'tar' || only.includes(v)) : all;
    const results: Record<string, ChildResult[]> = Object.fromEntries(variants.map((v) => [v, []]));
    for (let round = 0; round < rounds; round++) {
      for (const v of variants) {
        const out = path.join(outDir, v === 'tar' ? 'tree.tar' : v === 'floor' ? 'floor.bin' : v === 'copy' || v.startsWith('src') ? v : `app.${v}`);
        await rm(out, { recursive: true, force: true });
        results[v]!.push(v === 'tar' ? runTar(tree, out) : v === 'osv-python' ? osvPython!(out) : runChild(v, tree, out, loader));
        await rm(out, { recursive: true, force: true });
      }
    }
    const tar = median(results.tar!.map((r) => r.ms));
    const tarCpu = median(results.tar!.map((r) => r.cpuMs));
    const label: Record<string, string> = {
      tar: 'tar -cf',
      floor: "tar's work in plain blocking Node (no format, no vinyl)",
      copy: 'src() → dest()',
      src: 'src() alone, drained (buffered)',
      'src-noread': 'src({read: false}) alone, drained',
      csrc: 'capstan.src() alone, drained',
      image: 'src → resolveManifest → layoutFiles → writeImage (qcow2)',
      'image-raw': '… → writeImage (raw)',
      'image-stream': '… with src({buffer: false}) (qcow2)',
      'image-noread': '… with src({read: false}), writeImage reads (qcow2)',
      'image-csrc': '… with capstan.src(), writeImage reads (qcow2)',
      writer: 'ImageComposer alone, blocking fs walk, no gulp (qcow2)',
      'osv-python': "OSv's gen-rofs-img.py, ROFS volume only (OSV_SRC)",
    };
    console.log(`\n10,000 files / 200 MB, median of ${rounds} alternating rounds (warm cache, ${os.cpus().length} CPUs; pipelines run as ${children.mode}; wall time, then CPU time against tar's):`);
    for (const v of variants) {
      const ms = median(results[v]!.map((r) => r.ms));
      const cpu = median(results[v]!.map((r) => r.cpuMs));
      const rss = median(results[v]!.map((r) => r.maxRssMB));
      console.log(`  ${label[v]!.padEnd(58)} ${fmt(ms).padStart(8)}  ${(ms / tar).toFixed(2).padStart(5)}× tar   cpu ${fmt(cpu).padStart(7)} ${(cpu / tarCpu).toFixed(2).padStart(5)}×${Number.isNaN(rss) ? '' : `  peak RSS ${rss.toFixed(0)} MB`}`);
      // BENCH_VERBOSE=1: every round, wall/cpu, to see the spread on a busy machine.
      if (process.env.BENCH_VERBOSE) console.log(`      rounds: ${results[v]!.map((r) => `${fmt(r.ms)}/${fmt(r.cpuMs)}`).join('  ')}`);
    }
    // The issue's targets (#13), from the medians above.
    const wall = (v: string) => (results[v] ? median(results[v]!.map((r) => r.ms)) : NaN);
    const verdict = (value: number, limit: number) => (Number.isNaN(value) ? 'not run' : `${value.toFixed(2)} (target ≤ ${limit}: ${value <= limit ? 'met' : 'not met'})`);
    console.log('\ntargets:');
    console.log(`  capstan.src → image, × tar:                          ${verdict(wall('image-csrc') / tar, 1.3)}`);
    console.log(`  gulp.src({read: false}) → image, × tar:              ${verdict(wall('image-noread') / tar, 2.5)}`);
    console.log(`  buffered gulp.src → image, × buffered src drained:   ${verdict(wall('image') / wall('src'), 1.2)}`);
    if (results['osv-python']) {
      const python = wall('osv-python');
      const paths = ['image-csrc', 'image-noread', 'image-stream', 'image'].filter((v) => results[v]);
      console.log(`  ahead of gen-rofs-img.py (${fmt(python)}): ${paths.map((v) => `${v} ${fmt(wall(v))} ${wall(v) < python ? 'yes' : 'no'}`).join(', ')}`);
    }
    await rm(tree, { recursive: true, force: true });

    if (!process.env.BENCH_SKIP_2G) {
      console.log('\ngenerating 2 GB tree (2,000 files) …');
      const big = path.join(work, 'big');
      await generateTree(big, 2_000, 2048 * MB, 2);
      runTar(big, path.join(outDir, 'warm.tar'));
      await rm(path.join(outDir, 'warm.tar'), { force: true });
      const t = runTar(big, path.join(outDir, 'big.tar'));
      const row = (what: string, r: ChildResult) => console.log(`2 GB tree: ${what} ${fmt(r.ms)} (${(r.ms / t.ms).toFixed(2)}× tar), cpu ${fmt(r.cpuMs)} (${(r.cpuMs / t.cpuMs).toFixed(2)}× tar's), peak RSS ${r.maxRssMB.toFixed(0)} MB`);
      console.log(`2 GB tree: tar -cf ${fmt(t.ms)}, cpu ${fmt(t.cpuMs)}`);
      await rm(path.join(outDir, 'big.tar'), { force: true });
      const s = runChild('image-stream', big, path.join(outDir, 'big.qcow2'), loader);
      row('src({buffer:false}) → … → writeImage (qcow2)', s);
      await rm(path.join(outDir, 'big.qcow2'), { force: true });
      const n = runChild('image-noread', big, path.join(outDir, 'big.qcow2'), loader);
      row('src({read:false}) → … → writeImage (qcow2)', n);
      await rm(path.join(outDir, 'big.qcow2'), { force: true });
      const c = runChild('image-csrc', big, path.join(outDir, 'big.qcow2'), loader);
      row('capstan.src() → … → writeImage (qcow2)', c);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
