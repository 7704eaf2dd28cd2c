// bench/packages: composing an app that requires one large package (a JDK's size: 1,000 files,
// 400 MB, each half random so gzip leaves about half), beside `tar -xzf` of the same .mpm
// (what Capstan does with a package: extract it to disk before uploading). The point is memory
// as much as time: fetchPackages streams a package's members as its archive is read, so the
// compose's peak RSS stays flat in the package's size. Each compose runs in a fresh Node
// process (its VmHWM is its own); medians of BENCH_ROUNDS (3) alternating rounds.
//   node --import=tsx bench/packages.ts
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importPackage } from '../lib/repository/packages.js';
import { writeLoader } from './compose.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const work = path.join(here, '..', '.bench-tmp', 'packages');
const runs = Number(process.env.BENCH_ROUNDS ?? 3);
const FILES = 1_000;
const FILE_BYTES = 400 * 1024;

const child = `
  import { pipeline } from 'node:stream/promises';
  import { Readable, Writable } from 'node:stream';
  import { readFileSync } from 'node:fs';
  import Vinyl from 'vinyl';
  import { resolveManifest, fetchPackages, layoutFiles, writeImage } from ${JSON.stringify(path.join(here, '..', 'lib', 'index.ts'))};
  const [app, root, loader, out] = process.argv.slice(1);
  const yaml = new Vinyl({ cwd: app, base: app, path: app + '/meta/package.yaml', contents: Buffer.from('name: app\\ntitle: App\\nauthor: bench\\nrequire:\\n  - bench.jdk\\n') });
  const t0 = performance.now();
  await pipeline(Readable.from([yaml]), resolveManifest({ cwd: app, bootstrap: false, run: '/lib/d0/f0.bin', silent: true }), fetchPackages({ root, silent: true }),
    layoutFiles({ silent: true }), writeImage({ out, loader, silent: true }), new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }));
  const ms = performance.now() - t0;
  const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
  console.log(JSON.stringify({ ms, rssMB: hwm }));
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

mkdirSync(work, { recursive: true });
const root = path.join(work, 'root');
const mpm = path.join(root, 'packages', 'bench.jdk.mpm');
if (!existsSync(mpm)) {
  const dir = path.join(work, 'package');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'meta'), { recursive: true });
  writeFileSync(path.join(dir, 'meta', 'package.yaml'), 'name: bench.jdk\ntitle: A JDK-sized package\nauthor: bench\n');
  for (let i = 0; i < FILES; i++) {
    const folder = path.join(dir, 'lib', `d${i % 20}`);
    mkdirSync(folder, { recursive: true });
    const data = Buffer.alloc(FILE_BYTES);
    randomBytes(FILE_BYTES / 2).copy(data);
    writeFileSync(path.join(folder, `f${i}.bin`), data);
  }
  await importPackage(dir, { root });
  rmSync(dir, { recursive: true, force: true });
}
const loader = path.join(work, 'loader.raw');
if (!existsSync(loader)) await writeLoader(loader);
const app = path.join(work, 'app');
mkdirSync(app, { recursive: true });
const out = path.join(work, 'out.qcow2');
const extracted = path.join(work, 'extracted');

const tarMs: number[] = [];
const ourMs: number[] = [];
const rss: number[] = [];
for (let i = 0; i < runs; i++) {
  rmSync(extracted, { recursive: true, force: true });
  mkdirSync(extracted);
  const t0 = performance.now();
  execFileSync('tar', ['-xzf', mpm, '-C', extracted], { stdio: 'ignore' });
  tarMs.push(performance.now() - t0);
  rmSync(out, { force: true });
  const r = spawnSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', child, app, root, loader, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const { ms, rssMB } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; rssMB: number };
  ourMs.push(ms);
  rss.push(rssMB);
}
rmSync(extracted, { recursive: true, force: true });
rmSync(out, { force: true });
const t = median(tarMs);
const o = median(ourMs);
console.log(`one package of ${FILES} files, ${(FILES * FILE_BYTES / 1048576).toFixed(0)} MB (.mpm ${(statSync(mpm).size / 1048576).toFixed(0)} MB), medians of ${runs}:`);
console.log(`  ${'tar -xzf of the .mpm (what Capstan does first)'.padEnd(60)} ${(t / 1000).toFixed(2)} s`);
console.log(`  ${'resolveManifest → fetchPackages → layoutFiles → writeImage'.padEnd(60)} ${(o / 1000).toFixed(2)} s  ${(o / t).toFixed(2)}× tar   peak RSS ${median(rss).toFixed(0)} MB`);
