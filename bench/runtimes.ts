// bench/runtimes: Java and Python from the host. Image size and compose time for a jar project
// with the host's JDK whole (trim: false), trimmed (the default) and jlink'ed (java.base), and
// for a Python project; then, when OSV_KERNEL and OSV_LOADER name a real OSv, boot → first
// output of the program (and → power-off) under TCG with -kernel, beside the same program run
// on the host. Rows are medians; the CPU column is this process's user + system time (compose
// runs in-process), steadier than wall time on a shared machine.
//
//   node --import=tsx bench/runtimes.ts
//   OSV_LOADER=…/loader.img OSV_KERNEL=…/loader-stripped.elf BENCH_ROUNDS=5 node --import=tsx bench/runtimes.ts
import { spawn, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compose } from '../lib/commands/compose.js';
import type { UnikernelOptions } from '../lib/commands/options.js';
import { findJavaHome, javaRuntimeFiles } from '../lib/runtimes/java.js';
import { pythonRuntimeFiles, queryPython } from '../lib/runtimes/python.js';
import { boot } from '../lib/vm/boot.js';
import { writeLoader } from './compose.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BOOT_ROUNDS = Number(process.env.BENCH_BOOT_ROUNDS ?? 3);
const OSV_LOADER = process.env.OSV_LOADER;
const OSV_KERNEL = process.env.OSV_KERNEL;

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN; };
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const sec = (ms: number) => (ms / 1000).toFixed(2);

interface Case { name: string; dir: string; options: UnikernelOptions; host: string[]; marker: RegExp }

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'bench-runtimes-'));
  try {
    const loader = OSV_LOADER ?? path.join(work, 'loader.img');
    if (!OSV_LOADER) await writeLoader(loader);
    const cases: Case[] = [];
    let jdk: string | undefined;
    try { jdk = findJavaHome(undefined, process.cwd()); } catch { console.log('no JDK on this host: Java rows skipped'); }
    if (jdk) {
      const dir = path.join(work, 'java');
      await mkdir(path.join(dir, 'src'), { recursive: true });
      await writeFile(path.join(dir, 'pom.xml'), '<project/>');
      await writeFile(path.join(dir, 'src', 'Hello.java'), 'public class Hello { public static void main(String[] a) { System.out.println("HELLO " + System.getProperty("java.version")); } }\n');
      spawnSync(path.join(jdk, 'bin', 'javac'), ['-d', path.join(dir, 'target', 'classes'), path.join(dir, 'src', 'Hello.java')], { stdio: 'inherit' });
      spawnSync(path.join(jdk, 'bin', 'jar'), ['--create', '--file', path.join(dir, 'target', 'hello.jar'), '--main-class', 'Hello', '-C', path.join(dir, 'target', 'classes'), '.'], { stdio: 'inherit' });
      const host = [path.join(jdk, 'bin', 'java'), '-jar', path.join(dir, 'target', 'hello.jar')];
      cases.push({ name: 'java, whole JDK (trim: false)', dir, options: { java: { trim: false } }, host, marker: /^HELLO/ });
      cases.push({ name: 'java, trimmed JDK (default)', dir, options: {}, host, marker: /^HELLO/ });
      cases.push({ name: 'java, jlink java.base', dir, options: { java: { modules: ['java.base'] } }, host, marker: /^HELLO/ });
      // Made once before timing: the jlink output is cached, as in a second build.
      javaRuntimeFiles({ kind: 'java', root: dir, modules: ['java.base'] });
    }
    let python: string | undefined;
    try { python = queryPython(undefined, undefined, process.cwd()).executable; } catch { console.log('no Python 3 on this host: Python rows skipped'); }
    if (python) {
      const dir = path.join(work, 'python');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'pyproject.toml'), '[project]\nname = "hello"\nversion = "1"\n');
      await writeFile(path.join(dir, 'main.py'), 'import platform\nprint("HELLO", platform.python_version())\n');
      cases.push({ name: 'python 3 (trimmed stdlib)', dir, options: { python: { venv: false } }, host: [python, path.join(dir, 'main.py')], marker: /^HELLO/ });
    }

    console.log(`\ncompose (${ROUNDS} rounds, median; loader ${OSV_LOADER ? 'real' : 'stand-in'}):`);
    console.log('case                              | capture ms | compose s | CPU s | image MB | runtime files');
    const images = new Map<string, string>();
    for (const c of cases) {
      const capture: number[] = [];
      const wall: number[] = [];
      const cpu: number[] = [];
      let size = 0;
      let files = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const t0 = performance.now();
        const runtime = c.name.startsWith('java')
          ? javaRuntimeFiles({ kind: 'java', root: c.dir, ...(c.options.java || {}) })
          : pythonRuntimeFiles({ kind: 'python', root: c.dir, venv: false });
        capture.push(performance.now() - t0);
        files = runtime.tree.length + runtime.closure.length;
        const out = path.join(work, `${c.name.replace(/\W+/g, '-')}.qcow2`);
        const c0 = process.cpuUsage();
        const t1 = performance.now();
        await compose({ cwd: c.dir, out, loader, silent: true, offline: true, pullMissing: false, ...c.options });
        wall.push(performance.now() - t1);
        const used = process.cpuUsage(c0);
        cpu.push((used.user + used.system) / 1000);
        size = statSync(out).size;
        images.set(c.name, out);
      }
      console.log(`${c.name.padEnd(33)} | ${median(capture).toFixed(0).padStart(10)} | ${sec(median(wall)).padStart(9)} | ${sec(median(cpu)).padStart(5)} | ${mb(size).padStart(8)} | ${files}`);
    }

    if (!OSV_LOADER || !OSV_KERNEL) {
      console.log('\nboot → first output: set OSV_LOADER and OSV_KERNEL to a real OSv to measure it');
      return;
    }
    console.log(`\nboot → first output under TCG with -kernel (${BOOT_ROUNDS} runs, median), beside the host:`);
    console.log('case                              | OSv banner s | program output s | powered off s | host output s | host exit s');
    for (const c of cases) {
      const banner: number[] = [];
      const output: number[] = [];
      const off: number[] = [];
      for (let i = 0; i < BOOT_ROUNDS; i++) {
        const image = images.get(c.name)!;
        const t0 = performance.now();
        const vm = await boot({ path: image }, { kernel: OSV_KERNEL, accel: 'tcg', silent: true, readyTimeout: 180_000, name: `bench-rt-${i}`, root: path.join(work, 'capstan') });
        let first = NaN;
        let app = NaN;
        vm.on('line', (l: string) => {
          if (Number.isNaN(first)) first = performance.now() - t0;
          if (Number.isNaN(app) && c.marker.test(l)) app = performance.now() - t0;
        });
        const exit = await Promise.race([vm.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 180_000))]);
        if (!exit) await vm.stop({ graceMs: 200 });
        banner.push(first);
        output.push(app);
        off.push(exit ? performance.now() - t0 : NaN);
      }
      const host = await runOnHost(c.host, c.marker);
      console.log(`${c.name.padEnd(33)} | ${sec(median(banner)).padStart(12)} | ${sec(median(output)).padStart(16)} | ${sec(median(off)).padStart(13)} | ${sec(host.output).padStart(13)} | ${sec(host.exit).padStart(11)}`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The same program on the host: time to its first matching line and to its exit (median of BOOT_ROUNDS). */
async function runOnHost(command: string[], marker: RegExp): Promise<{ output: number; exit: number }> {
  const outputs: number[] = [];
  const exits: number[] = [];
  for (let i = 0; i < BOOT_ROUNDS; i++) {
    const t0 = performance.now();
    let out = NaN;
    await new Promise<void>((resolve, reject) => {
      const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (Number.isNaN(out) && text.split('\n').some((l) => marker.test(l))) out = performance.now() - t0;
      });
      child.on('error', reject);
      child.on('close', () => resolve());
    });
    outputs.push(out);
    exits.push(performance.now() - t0);
  }
  return { output: median(outputs), exit: median(exits) };
}

await main();
