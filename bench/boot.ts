// bench/boot: time from boot() to the readiness marker (the first console line), beside a bare
// qemu-system-x86_64 of the same image in the same run, for disk boot and the -kernel fast
// path. Prints medians and minima, the overhead ratio (target ≤ 1.1) and peak RSS.
//   node --import=tsx bench/boot.ts [runs] [accel]     (defaults: 11 runs (at most 5 under KVM), tcg and auto)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { boot, type BootOptions } from '../lib/vm/index.js';
import { chooseAccel, type Accel } from '../lib/vm/accel.js';
import { findQemu } from '../lib/vm/qemu-binary.js';
import { buildStandInLoader } from '../test/helpers/stand-in.js';
import { writeStandInDisk, writeStandInKernel } from '../test/helpers/stand-in-kernel.js';

const runs = Number(process.argv[2] ?? 11);
const accels: Accel[] = process.argv[3] ? [chooseAccel(process.argv[3] as Accel)] : [...new Set<Accel>(['tcg', chooseAccel('auto')])];
const dir = mkdtempSync(path.join(os.tmpdir(), 'capstan-bench-boot-'));
const qemu = findQemu();

/** QEMU's peak resident set (VmHWM), in MiB, while it runs. */
function qemuPeakMiB(pid: number | undefined): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function ours(image: string, options: BootOptions): Promise<{ ms: number; qemuMiB: number }> {
  const t0 = performance.now();
  const vm = await boot(image, { root: dir, debugExit: true, silent: true, ...options });
  await vm.ready;
  const ms = performance.now() - t0;
  const qemuMiB = qemuPeakMiB(vm.pid);
  await vm.kill();
  return { ms, qemuMiB };
}

function bare(args: string[]): Promise<{ ms: number; qemuMiB: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let done = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!done && out.includes('\n')) {
        done = true;
        const ms = performance.now() - t0;
        const qemuMiB = qemuPeakMiB(child.pid);
        child.kill('SIGKILL');
        child.once('exit', () => resolve({ ms, qemuMiB }));
      }
    });
    child.once('exit', (code) => { if (!done) reject(new Error(`bare QEMU exited (${code}) before printing a line`)); });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

try {
  const loader = await buildStandInLoader(dir);
  const image = await writeStandInDisk(loader, path.join(dir, 'app.raw'), '/hello.so');
  const kernel = await writeStandInKernel(dir, { mode: 'wait' });
  console.log(`QEMU ${qemu}, ${runs} runs each, alternating; readiness = first console line`);
  for (const accel of accels) {
    const accelArgs = accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg'];
    // "Bare": the same VM hardware started by hand (OSv's documented command line: virtio disk,
    // user network with a virtio NIC, plus the rng boot() adds), without our overlay, QMP
    // socket, pid file or Node in between. That difference is what the ratio measures.
    const sameVm = ['-nodefaults', '-display', 'none', ...accelArgs, '-m', '1024', '-smp', '2', '-serial', 'stdio',
      '-drive', `file=${image},format=raw,if=virtio,cache=none`, '-netdev', 'user,id=un0', '-device', 'virtio-net-pci,netdev=un0,romfile=',
      '-device', 'virtio-rng-pci', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'];
    // For context: the least QEMU can do (no NIC, no rng, page-cached disk).
    const minimal = ['-nodefaults', '-display', 'none', ...accelArgs, '-m', '1024', '-smp', '2', '-serial', 'stdio',
      '-drive', `file=${image},format=raw,if=virtio`, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'];
    const cases: Array<[string, BootOptions, string[]]> = [
      ['disk boot', { accel, kernel: false }, sameVm],
      ['-kernel fast path', { accel, kernel }, [...sameVm, '-kernel', kernel, '-append', '/hello.so']],
      ['disk boot, minimal bare', { accel, kernel: false }, minimal],
    ];
    for (const [label, options, bareArgs] of cases) {
      const a: number[] = [];
      const b: number[] = [];
      let oursMiB = 0;
      let bareMiB = 0;
      await ours(image, options); // warm the page cache for both
      // KVM takes seconds to start a VM on some hosts: fewer runs there keep the bench short.
      const n = accel === 'kvm' ? Math.min(runs, 5) : runs;
      for (let i = 0; i < n; i++) {
        // Alternate which goes first, so neither always runs on a freshly idle machine.
        const [o, r] = i % 2 === 0
          ? [await ours(image, options), await bare(bareArgs)]
          : await bare(bareArgs).then(async (r0) => [await ours(image, options), r0] as const);
        a.push(o.ms);
        b.push(r.ms);
        if (Number.isFinite(o.qemuMiB)) oursMiB = Math.max(oursMiB, o.qemuMiB);
        if (Number.isFinite(r.qemuMiB)) bareMiB = Math.max(bareMiB, r.qemuMiB);
      }
      const mo = median(a);
      const mb = median(b);
      // The minimum is the least disturbed by other load on the machine; both are shown.
      const lo = Math.min(...a);
      const lb = Math.min(...b);
      console.log(`${accel.padEnd(3)} ${label.padEnd(24)} median: boot() ${mo.toFixed(1).padStart(7)} ms, bare ${mb.toFixed(1).padStart(7)} ms, ` +
        `ratio ${(mo / mb).toFixed(3)}   min: ${lo.toFixed(1)} / ${lb.toFixed(1)} ms, ratio ${(lo / lb).toFixed(3)}   ` +
        `QEMU peak RSS ${oursMiB.toFixed(0)} / ${bareMiB.toFixed(0)} MiB`);
    }
  }
  console.log(`node peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
