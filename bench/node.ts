// bench/node: an Express-sized Node.js project (a few thousand files in node_modules, with dev
// dependencies to leave out) composed by compose() — the image of the project, the host's node
// and its closure — beside `tar -cf` of the same tree; then, when a real OSv is given
// (OSV_LOADER, OSV_KERNEL), boot with -kernel under TCG → first HTTP response through the
// forwarded port, beside `node server.js` on the host, in the same run. Medians, peak RSS.
//   node --import=tsx bench/node.ts [runs]        (default 7)
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { compose } from '../lib/commands/compose.js';
import { boot } from '../lib/vm/boot.js';
import { buildStandInLoader } from '../test/helpers/stand-in.js';

const runs = Number(process.argv[2] ?? 7);
const dir = mkdtempSync(path.join(os.tmpdir(), 'capstan-bench-node-'));
const project = path.join(dir, 'app');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** 70 production packages of 45 files (with nested folders and a few .json), 20 dev packages. */
function makeProject(): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const write = (file: string, text: string) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    files++;
    bytes += text.length;
  };
  const pkg = (name: string, deps: string[]) => {
    const root = path.join(project, 'node_modules', name);
    write(path.join(root, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: 'index.js', dependencies: Object.fromEntries(deps.map((d) => [d, '*'])) }));
    for (let i = 0; i < 44; i++) write(path.join(root, i < 20 ? 'lib' : `lib/sub${i % 4}`, `m${i}.js`), `module.exports = ${JSON.stringify('x'.repeat(200 + (i * 97) % 3000))};\n`);
  };
  const prod = Array.from({ length: 70 }, (_, i) => `dep-${i}`);
  prod.forEach((name, i) => pkg(name, i + 1 < prod.length && i % 3 === 0 ? [prod[i + 1]!] : []));
  const dev = Array.from({ length: 20 }, (_, i) => `devdep-${i}`);
  dev.forEach((name) => pkg(name, []));
  write(path.join(project, 'package.json'), JSON.stringify({
    name: 'bench-app', version: '1.0.0', scripts: { start: 'node server.js' },
    dependencies: Object.fromEntries(prod.filter((_, i) => i % 3 === 0 || i % 5 === 0).map((d) => [d, '*'])),
    devDependencies: Object.fromEntries(dev.map((d) => [d, '*'])),
  }));
  write(path.join(project, 'server.js'), "require('http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT || 8080), () => console.log('LISTENING'));\n");
  return { files, bytes };
}

/**
 * From spawn to the first HTTP answer on `port`. Each attempt gives up after 250 ms: QEMU's
 * user network accepts on the host at once and retries its SYN to a guest that is not up yet
 * with backoff, so one early attempt could otherwise wait seconds after the server is ready.
 */
async function firstResponse(port: number, started: number): Promise<number> {
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(250) });
      await res.text();
      return performance.now() - started;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

try {
  const { files, bytes } = makeProject();
  const loader = process.env.OSV_LOADER ?? await buildStandInLoader(path.join(dir, 'loader'));
  const root = path.join(dir, 'capstan');
  console.log(`project: ${files} files, ${(bytes / 1048576).toFixed(1)} MB (70 production and 20 dev packages); node ${process.version}; ${runs} runs, alternating`);
  const tarMs: number[] = [];
  const composeMs: number[] = [];
  let imageBytes = 0;
  for (let i = 0; i < runs; i++) {
    let t0 = performance.now();
    execFileSync('tar', ['-cf', path.join(dir, 'tree.tar'), '-C', project, '.']);
    tarMs.push(performance.now() - t0);
    t0 = performance.now();
    const image = await compose({ cwd: project, loader, root, silent: true, offline: true });
    composeMs.push(performance.now() - t0);
    imageBytes = image.virtualSize;
  }
  const rss = process.memoryUsage().rss;
  const t = median(tarMs);
  const c = median(composeMs);
  console.log(`tar -cf of the tree                 ${(t / 1000).toFixed(3)} s   1.00`);
  console.log(`compose() → image (+ node, 94 MiB)  ${(c / 1000).toFixed(3)} s   ${(c / t).toFixed(2)}×   (target < 1 s)   image ${(imageBytes / 1048576).toFixed(0)} MiB virtual, peak RSS ${(rss / 1048576).toFixed(0)} MB`);

  const kernel = process.env.OSV_KERNEL;
  if (!process.env.OSV_LOADER || !kernel) {
    console.log('boot → first HTTP response: skipped (set OSV_LOADER and OSV_KERNEL to a real OSv build)');
  } else {
    const image = await compose({ cwd: project, loader, root, silent: true, offline: true });
    const hostMs: number[] = [];
    const osvMs: number[] = [];
    for (let i = 0; i < Math.min(runs, 5); i++) {
      const port = 20000 + Math.floor(Math.random() * 20000);
      let t0 = performance.now();
      const child = spawn(process.execPath, ['server.js'], { cwd: project, env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
      hostMs.push(await firstResponse(port, t0));
      child.kill('SIGKILL');
      t0 = performance.now();
      const vm = await boot({ path: image.path, info: image }, { kernel, accel: 'tcg', forward: ['0:8080'], root, silent: true, readyTimeout: 120_000 });
      osvMs.push(await firstResponse(vm.forwards[0]!.host, t0));
      await vm.kill();
    }
    const h = median(hostMs);
    const o = median(osvMs);
    console.log(`node server.js on the host → first response   ${(h / 1000).toFixed(3)} s   1.00`);
    console.log(`OSv (-kernel, TCG) → first response            ${(o / 1000).toFixed(3)} s   ${(o / h).toFixed(1)}×   (target < 1.5 s)`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
