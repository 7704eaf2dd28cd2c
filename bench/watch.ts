// bench/watch: the image side of watch mode. For trees of 1,000 and 10,000 files (~20 KB each
// on average: 20 MB and 200 MB), writeImage is fed an in-memory list of laid-out `read: false`
// vinyls (what the watch session hands it: already listed, stats already taken, no directory
// walk per rebuild) and measured alone:
//   - cold: the first build with `incremental: true` (a full image, plus its build record);
//   - incremental: edit one file (same size or not), re-stat it, build again (median of the
//     edits; target < 100 ms whatever the tree size);
//   - flatten: the build after `maxGenerations` generations (a full build, old generations deleted);
//   - full rebuild: the same tree without `incremental`, to another `out`, in the same run.
// Each tree size runs in its own Node process, so its peak RSS is its own. The tree is left
// 2.5 s old before the cold build, as a watched project's files are (files changed within 2 s
// of a build are re-read by the next one; see lib/image/incremental.ts).
//
//   node --import=tsx bench/watch.ts            both sizes
//   BENCH_EDITS=20 node --import=tsx bench/watch.ts 10000
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Vinyl from 'vinyl';
import { annotate, APP_LAYER } from '../lib/carrier.js';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { writeImage } from '../lib/steps/write-image.js';
import { generateTree, writeLoader } from './compose.js';

const MB = 1024 * 1024;
const here = fileURLToPath(import.meta.url);

interface ChildReport {
  files: number;
  bytes: number;
  coldMs: number;
  incremental: number[];
  /** CPU time (user + system, every thread of the process) of each incremental build. */
  incrementalCpu: number[];
  flatten: number[];
  full: number[];
  recordBytes: number;
  /** Peak RSS after listing the tree, after the cold build, after the rebuilds (before the final checks). */
  rssListedMB: number;
  rssColdMB: number;
  maxRssMB: number;
}

/** The tree as the watch session holds it: one read: false vinyl per entry, laid out (guest path set). */
function listTree(tree: string): Vinyl[] {
  const vinyls: Vinyl[] = [];
  for (const e of readdirSync(tree, { recursive: true, withFileTypes: true })) {
    const full = path.join(e.parentPath, e.name);
    const stat = lstatSync(full);
    const file = new Vinyl({ cwd: tree, base: tree, path: full, contents: null, stat });
    annotate(file, { kind: 'app', guestPath: '/' + path.relative(tree, full).split(path.sep).join('/'), layer: APP_LAYER });
    vinyls.push(file);
  }
  return vinyls;
}

let lastCpuMs = 0;

async function build(vinyls: Vinyl[], out: string, loader: string, incremental: boolean): Promise<number> {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await pipeline(
    Readable.from(vinyls),
    writeImage({ out, loader, cmdline: '/d0/f0.bin', silent: true, incremental }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
  const ms = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  lastCpuMs = (used.user + used.system) / 1000;
  return ms;
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

async function child(files: number): Promise<void> {
  const edits = Number(process.env.BENCH_EDITS ?? 20);
  const work = await mkdtemp(path.join(os.tmpdir(), 'capstan-bench-watch-'));
  try {
    const loader = path.join(work, 'loader.img');
    await writeLoader(loader);
    const tree = path.join(work, 'tree');
    await generateTree(tree, files, files * 20 * 1024, 7);
    const vinyls = listTree(tree);
    const regular = vinyls.filter((v) => v.stat!.isFile());
    const bytes = regular.reduce((n, v) => n + v.stat!.size, 0);
    const rssListedMB = process.resourceUsage().maxRSS / 1024;
    await delay(2500);
    const outDir = path.join(work, 'out');
    await mkdir(outDir);
    const out = path.join(outDir, 'app.qemu');
    const fullOut = path.join(outDir, 'app-full.qemu');
    const coldMs = await build(vinyls, out, loader, true);
    const report: ChildReport = {
      files, bytes, coldMs, incremental: [], incrementalCpu: [], flatten: [], full: [], recordBytes: 0,
      rssListedMB, rssColdMB: process.resourceUsage().maxRSS / 1024, maxRssMB: 0,
    };
    const r = rng(11);
    let generation = 0;
    for (let i = 0; i < edits; i++) {
      // Edit one file of the usual size (≤ 64 KiB), as a developer saves a source file.
      const small = regular.filter((v) => v.stat!.size <= 64 * 1024);
      const victim = small[Math.floor(r() * small.length)]!;
      const size = i % 2 === 0 ? victim.stat!.size : Math.max(1, Math.floor(victim.stat!.size * (0.5 + r())));
      writeFileSync(victim.path, randomBytes(size));
      victim.stat = statSync(victim.path); // the watch session re-stats what changed
      const ms = await build(vinyls, out, loader, true);
      generation = generation >= 8 ? 0 : generation + 1;
      if (generation === 0) report.flatten.push(ms);
      else { report.incremental.push(ms); report.incrementalCpu.push(lastCpuMs); }
      if (i % 4 === 0) report.full.push(await build(vinyls, fullOut, loader, false));
    }
    report.maxRssMB = process.resourceUsage().maxRSS / 1024;
    // The incremental image holds the same tree as a full build of it.
    report.full.push(await build(vinyls, fullOut, loader, false));
    const [a, b] = [await describeImage(out), await describeImage(fullOut)];
    const shape = (d: typeof a) => JSON.stringify(d.rofs!.entries.map((e) => [e.path, e.type, e.size, e.target]).sort());
    if (shape(a) !== shape(b)) throw new Error('the incremental image lists another tree than the full build');
    const last = regular[Math.floor(r() * regular.length)]!;
    const guest = '/' + path.relative(tree, last.path).split(path.sep).join('/');
    if (!(await readImageFile(out, guest)).equals(await readImageFile(fullOut, guest))) throw new Error(`${guest} differs`);
    report.recordBytes = statSync(path.join(outDir, '.app.qemu.build-record')).size;
    process.stdout.write(JSON.stringify(report) + '\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  console.log(`writeImage alone on an in-memory list of read: false vinyls (${os.cpus().length} CPUs, warm cache, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}):`);
  for (const files of sizes.length ? sizes : [1000, 10_000]) {
    const r = spawnSync(process.execPath, ['--import=tsx', here, 'child', String(files)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * MB });
    if (r.status !== 0) throw new Error(`bench/watch child (${files} files) failed`);
    const rep = JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildReport;
    const inc = median(rep.incremental);
    const full = median(rep.full);
    console.log(`  ${rep.files.toLocaleString('en')} files / ${(rep.bytes / MB).toFixed(0)} MB: cold ${ms(rep.coldMs)}; ` +
      `one-file edit → incremental image ${ms(inc)} (median of ${rep.incremental.length}, min ${ms(Math.min(...rep.incremental))}, max ${ms(Math.max(...rep.incremental))}; ` +
      `CPU ${ms(median(rep.incrementalCpu))} median); ` +
      `full rebuild ${ms(full)} (median of ${rep.full.length}) = ${(full / inc).toFixed(0)}× the incremental; ` +
      `flatten ${rep.flatten.length ? rep.flatten.map(ms).join(', ') : 'n/a'}; record ${(rep.recordBytes / 1024).toFixed(0)} KiB; ` +
      `peak RSS ${rep.maxRssMB.toFixed(0)} MB (${rep.rssListedMB.toFixed(0)} MB once the tree was listed, ${rep.rssColdMB.toFixed(0)} MB after the cold build)`);
  }
  console.log(`(load average afterwards ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}: wall times above CPU time mean other processes had the CPUs)`);
}

if (process.argv[2] === 'child') await child(Number(process.argv[3]));
else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
