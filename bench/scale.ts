// bench/scale: cost against tree size — 1,000 / 10,000 / 100,000 files (20 MB, 200 MB, 2 GB)
// — capstan.src → resolveManifest → layoutFiles → writeImage, each size beside `tar -cf` of
// the same tree, in the same run; each compose in a fresh Node process so its peak RSS
// (VmHWM) is its own. Linear means the per-file and per-MB costs stay put as the tree grows.
//   node --import=tsx bench/scale.ts            (BENCH_SCALE_MAX=10000 to stop at 10k)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTree, writeLoader } from './compose.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const work = path.join(here, '..', '.bench-tmp', 'scale');
const sizes = [[1_000, 20], [10_000, 200], [100_000, 2000]].filter(([n]) => n! <= Number(process.env.BENCH_SCALE_MAX ?? Infinity)) as Array<[number, number]>;
const runs = Number(process.env.BENCH_ROUNDS ?? 3);

const child = `
  import { pipeline } from 'node:stream/promises';
  import { Writable } from 'node:stream';
  import { readFileSync } from 'node:fs';
  import { src, resolveManifest, layoutFiles, writeImage } from ${JSON.stringify(path.join(here, '..', 'lib', 'index.ts'))};
  const [tree, loader, out] = process.argv.slice(1);
  const t0 = performance.now();
  await pipeline(src('**', { cwd: tree, dot: true }), resolveManifest({ cwd: tree, bootstrap: false, run: '/x', silent: true, node: false }),
    layoutFiles({ silent: true }), writeImage({ out, loader, silent: true }), new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }));
  const ms = performance.now() - t0;
  const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
  console.log(JSON.stringify({ ms, rssMB: hwm }));
`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

mkdirSync(work, { recursive: true });
const loader = path.join(work, 'loader.raw');
if (!existsSync(loader)) await writeLoader(loader);
console.log(`capstan.src → image, ${runs} runs per size (alternating with tar), medians; peak RSS of the compose process`);
console.log('files     MB    tar -cf   compose   ratio   µs/file   ms/100MB   peak RSS');
for (const [files, mb] of sizes) {
  const tree = path.join(work, `tree-${files}`);
  if (!existsSync(tree)) await generateTree(tree, files, mb * 1024 * 1024, files);
  const tarMs: number[] = [];
  const ourMs: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    execFileSync('tar', ['-cf', path.join(work, 'tree.tar'), '-C', tree, '.']);
    tarMs.push(performance.now() - t0);
    const r = spawnSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', child, tree, loader, path.join(work, 'out.qcow2')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    const { ms, rssMB } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; rssMB: number };
    ourMs.push(ms);
    rss.push(rssMB);
  }
  const t = median(tarMs);
  const o = median(ourMs);
  console.log(`${String(files).padEnd(9)} ${String(mb).padEnd(5)} ${(t / 1000).toFixed(2).padStart(7)} s ${(o / 1000).toFixed(2).padStart(7)} s ${(o / t).toFixed(2).padStart(6)}× ${(o * 1000 / files).toFixed(0).padStart(8)} ${(o / mb * 100).toFixed(0).padStart(9)} ${median(rss).toFixed(0).padStart(8)} MB`);
}
