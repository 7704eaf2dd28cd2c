// bench/watch-reboot: watch mode end to end, as `gulp unikernel:watch` runs it — a native app with
// 1,000 and 10,000 data files: the cold compose + boot, then one-file edits, each measured from
// the write to (a) the new image written and (b) the rebooted VM's readiness (its first console
// line, or with a real OSv the app's own line), debounce included. With the stand-in kernel,
// and with a real OSv when OSV_LOADER/OSV_KERNEL are set. Medians.
//   node --import=tsx bench/watch-reboot.ts        (BENCH_EDITS=5, BENCH_SIZES=1000,10000)
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { buildOptions } from '../lib/commands/compose.js';
import type { CapstanEvent } from '../lib/events.js';
import { watchAndReboot } from '../tasks/watch.js';
import { buildStandInLoader } from '../test/helpers/stand-in.js';
import { writeStandInKernel } from '../test/helpers/stand-in-kernel.js';

const edits = Number(process.env.BENCH_EDITS ?? 5);
const sizes = (process.env.BENCH_SIZES ?? '1000,10000').split(',').map(Number);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function run(files: number, target: { name: string; loader: string; kernel: string; ready?: RegExp }): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capstan-bench-watch-'));
  try {
    const app = path.join(dir, 'app');
    mkdirSync(path.join(app, 'meta'), { recursive: true });
    writeFileSync(path.join(dir, 'hello.c'), '#include <stdio.h>\nint main(){puts("APP-READY");for(;;){}}\n');
    execFileSync('gcc', ['-O2', '-fPIE', '-pie', '-o', path.join(app, 'hello'), path.join(dir, 'hello.c')]);
    writeFileSync(path.join(app, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  default:\n    bootcmd: /hello\n');
    for (let i = 0; i < files; i++) {
      mkdirSync(path.join(app, 'data', `d${i % 50}`), { recursive: true });
      writeFileSync(path.join(app, 'data', `d${i % 50}`, `f${i}.txt`), 'x'.repeat(500 + (i * 37) % 40000));
    }
    await delay(2500); // a watched project's files are not all brand new (see lib/image/incremental.ts)
    const events: Array<CapstanEvent & { at: number }> = [];
    const s = buildOptions({
      cwd: app, loader: target.loader, kernel: target.kernel, accel: 'tcg', root: path.join(dir, 'root'), offline: true, silent: true,
      bootstrap: false, ready: target.ready, events: (e) => events.push({ ...e, at: performance.now() }),
    });
    let stop!: () => void;
    const until = new Promise<void>((r) => { stop = r; });
    const rebuilt: Array<{ at: number; ok: boolean }> = [];
    const out = { events: s.image.events, logTo: undefined, console: new (await import('node:stream')).PassThrough().resume(), line: () => {} };
    const t0 = performance.now();
    const session = watchAndReboot(s, { until, onRebuild: (r) => rebuilt.push({ at: performance.now(), ok: r.ok }) }, out);
    while (rebuilt.length < 1) await delay(20);
    const cold = rebuilt[0]!.at - t0;
    while (!events.some((x) => x.event === 'watching')) await delay(20); // saves are seen from here on
    const imageMs: number[] = [];
    const readyMs: number[] = [];
    for (let e = 0; e < edits; e++) {
      const before = rebuilt.length;
      const mark = events.length;
      const at = performance.now();
      appendFileSync(path.join(app, 'data', 'd7', 'f7.txt'), `edit ${e}\n`);
      while (rebuilt.length === before) await delay(5);
      const image = events.slice(mark).find((x) => x.event === 'image');
      if (image) imageMs.push(image.at - at);
      readyMs.push(rebuilt.at(-1)!.at - at);
      if (process.env.BENCH_VERBOSE) console.log(events.slice(mark).map((x) => `${(x.at - at).toFixed(0)}ms ${x.event} ${'step' in x ? x.step : ''}`).join('  '));
      await delay(2500); // past the 2 s window, as between a person's edits
    }
    stop();
    await session;
    console.log(`${target.name.padEnd(9)} ${String(files).padStart(6)} files   cold ${(cold / 1000).toFixed(2)} s   edit → image ${median(imageMs).toFixed(0)} ms   edit → ready ${median(readyMs).toFixed(0)} ms   cold/edit ${(cold / median(readyMs)).toFixed(1)}×`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'capstan-bench-watch-bin-'));
try {
  console.log(`one-file edits (${edits} each), debounce 200 ms included; TCG; medians`);
  const standIn = { name: 'stand-in', loader: await buildStandInLoader(tmp), kernel: await writeStandInKernel(tmp, { mode: 'wait' }) };
  for (const n of sizes) await run(n, standIn);
  if (process.env.OSV_LOADER && process.env.OSV_KERNEL) {
    for (const n of sizes) await run(n, { name: 'real OSv', loader: process.env.OSV_LOADER, kernel: process.env.OSV_KERNEL, ready: /APP-READY/ });
  } else {
    console.log('real OSv: skipped (set OSV_LOADER and OSV_KERNEL)');
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
