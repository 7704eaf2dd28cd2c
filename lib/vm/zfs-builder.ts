// One upload VM session (osv-image-formats.md §4.4): an OSv kernel booted with -kernel on a
// disk, running cpiod, which receives a cpio newc stream over TCP and unpacks it. Used for the
// ZFS builder (a fresh pool) and for --update (the image's own kernel, files into its root).
//
// The recommended procedure: wait for cpiod's serial line `Waiting for connection from
// host...` (QEMU's user-mode network accepts on the host port before cpiod listens, so a
// connection made earlier may be dropped), connect (with retries), stream, half-close, wait for
// cpiod to close its end (EOF: it has unpacked and synced), then wait — bounded — for QEMU to
// exit (the commands after cpiod unmount and export the pool), and kill it when it does not.
// A guest that aborts (cpiod throws on a bad stream or a full disk) halts with QEMU still
// running and the socket open: the console is watched for such lines, which end every wait.
//
// Every session has its own free host port, QMP sockets and temp folder, so builds run in
// parallel. QEMU, its arguments and the KVM → TCG fallback are the VM domain's (qemu-args,
// network, vm.ts); what is not wanted here (instance overlay, claims) is left out.
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CapstanError, VmError } from '../errors.js';
import type { DiskFormat } from '../image/disk.js';
import { chooseAccel, type AccelChoice } from './accel.js';
import { type Drive } from './drives.js';
import { planNetwork, type PortForward } from './network.js';
import { qemuArgs } from './qemu-args.js';
import { findQemu } from './qemu-binary.js';
import { Vm, type VmExit } from './vm.js';

/** cpiod's line once it listens. */
export const CPIOD_READY = 'Waiting for connection from host...';
/** cpiod's line once it has unpacked and synced. */
export const CPIOD_FINISHED = 'cpiod finished';
/** cpiod's port inside the guest. */
export const CPIOD_PORT = 10000;

export interface UploadVmOptions {
  /** The kernel ELF to boot with -kernel (the ZFS builder, or the image's own kernel); undefined: boot the disk. */
  kernel: string | undefined;
  /** Its command line (-append). */
  append: string;
  /** The disk, attached as the only virtio-blk device, without bootindex. */
  disk: { path: string; format: DiskFormat };
  /** QEMU executable; default $CAPSTAN_QEMU_PATH, else Capstan's default locations. */
  qemu?: string | undefined;
  /** `auto` (default): KVM when usable (falling back to TCG when it fails), else TCG. */
  accel?: AccelChoice | undefined;
  /** Guest memory in MiB; default 512, as Capstan and OSv's upload_manifest.py use. */
  memoryMiB?: number | undefined;
  /** ms to wait for cpiod's ready line; default 120000. */
  readyTimeoutMs?: number | undefined;
  /** Connection attempts once cpiod is ready, and the pause between them; default 20 × 500 ms (Capstan's). */
  connectAttempts?: number | undefined;
  connectIntervalMs?: number | undefined;
  /** ms a write may wait for the guest to take data; default 120000. */
  stallTimeoutMs?: number | undefined;
  /** ms to wait for cpiod to close the connection after our half-close; default 600000 (it syncs the pool). */
  eofTimeoutMs?: number | undefined;
  /** ms to wait for QEMU to exit after that, before it is killed; default 120000 (as upload_manifest.py). */
  exitTimeoutMs?: number | undefined;
  /** Every console line, as it comes. */
  onLine?: ((line: string) => void) | undefined;
  /** Told when KVM failed and TCG takes over. */
  onFallback?: ((reason: string) => void) | undefined;
  /** Environment to read CAPSTAN_* from and to run QEMU with; default process.env. */
  hostEnv?: NodeJS.ProcessEnv | undefined;
  /** Name in messages; default `zfs-builder`. */
  name?: string | undefined;
}

/** Receives the stream's bytes; resolves once the guest may take more (socket backpressure). */
export type UploadSink = (chunk: Buffer) => Promise<void>;

export type UploadStage = 'start' | 'ready' | 'connect' | 'stream' | 'eof' | 'exit';

export interface UploadVmResult {
  exit: VmExit;
  /** Console lines (the last 2000). */
  lines: string[];
  /** The host port cpiod's port was forwarded from. */
  port: number;
  accel: string;
  /** ms from start to cpiod ready, to the end of the stream, to EOF, to QEMU's exit. */
  timings: { ready: number; streamed: number; eof: number; exited: number };
}

/** The session failed; `stage` says where, `failureLine` what the guest said, if it said anything. */
export class UploadVmError extends VmError {
  override name = 'UploadVmError';
  readonly stage: UploadStage;
  readonly failureLine: string | undefined;
  readonly lines: string[];
  readonly exit: VmExit | undefined;
  readonly reason: string;

  constructor(stage: UploadStage, reason: string, details: { lines: string[]; exit?: VmExit | undefined; command: string; cause?: unknown; code?: string }) {
    const failureLine = guestFailureLine(details.lines);
    const tail = details.lines.slice(-15);
    const parts = [`${reason}${failureLine ? `; the guest said: ${failureLine}` : ''}`];
    if (tail.length > 0) parts.push(`last console lines:\n    ${tail.join('\n    ')}`);
    if (details.exit?.stderr) parts.push(`QEMU said:\n    ${details.exit.stderr.split('\n').slice(-5).join('\n    ')}`);
    parts.push(`command: ${details.command}`);
    super(parts.join('\n  '), { code: details.code ?? 'E_UPLOAD_VM', cause: details.cause });
    this.stage = stage;
    this.failureLine = failureLine;
    this.lines = details.lines;
    this.exit = details.exit;
    this.reason = reason;
  }
}

/** Console lines after which the guest will not go on (it halts, QEMU keeps running). */
const FATAL = [/^Aborted\b/, /^\[backtrace\]$/, /terminate called after throwing/, /^\s*what\(\):/, /failed looking up symbol/, /page fault outside application/, /Assertion failed/i, /\bpanic\b/i, /^Halting\.?$/];

/** Lines that say what went wrong, best first. */
const FAILURE_PATTERNS = [
  /what\(\):.*/,
  /.*(No space left on device|out of space|ENOSPC).*/i,
  /.*cannot (create|open|import|mount|export)\b.*/i,
  /.*failed looking up symbol.*/i,
  /.*Failed to load object.*/i,
  /.*umount .* failed.*/i,
  /.*(error|failed)\b.*/i,
  /^Aborted\b.*/,
];

/** The console line that best says why the guest failed, if one does. */
export function guestFailureLine(lines: readonly string[]): string | undefined {
  for (const re of FAILURE_PATTERNS) {
    const hit = lines.find((l) => re.test(l) && !/^Waiting for connection/.test(l));
    if (hit) return hit.trim();
  }
  return undefined;
}

const KEEP_LINES = 2000;

/**
 * Runs one upload session: boots the kernel on the disk, and once cpiod listens calls `send`
 * with a sink for the stream (the caller writes the cpio members and trailer). Resolves when
 * QEMU has exited by itself after cpiod finished; anything else throws an UploadVmError (QEMU
 * is not left running).
 */
export async function runUploadVm(options: UploadVmOptions, send: (sink: UploadSink) => Promise<void>): Promise<UploadVmResult> {
  const hostEnv = options.hostEnv ?? process.env;
  const qemu = findQemu(options.qemu, hostEnv);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-upload-'));
  const name = options.name ?? 'zfs-builder';
  const forward = { host: 0, guest: CPIOD_PORT, protocol: 'tcp' as const, address: '127.0.0.1' };
  let network = await planNetwork({ mode: 'nat', forward: [forward] });
  const disk: Drive = { path: options.disk.path, format: options.disk.format, aio: 'threads', cache: 'writeback' };
  const accel = chooseAccel(options.accel ?? 'auto', hostEnv);
  const monitor = path.join(dir, 'monitor.sock');
  const events = path.join(dir, 'events.sock');
  const pidFile = path.join(dir, 'qemu.pid');
  const lines: string[] = [];
  let fatal: string | undefined;
  let onFatal: (() => void) | undefined;
  const vm = new Vm({
    name, dir, image: options.disk.path, disk: options.disk.path, monitor, events, pidFile, qemu,
    argsFor: (a) => qemuArgs({
      memoryMiB: options.memoryMiB ?? 512, cpus: 1, accel: a, kvmCpu: 'host', disk, volumes: [],
      kernel: options.kernel ? { path: options.kernel, append: options.append } : undefined, network, monitor, events, pidFile,
      console: { kind: 'stdio' }, debugExit: false, rebootOnReset: false, extra: [],
    }, hostEnv),
    accel, fallbackToTcg: true, cmdline: options.append, kernel: options.kernel, kernelFallback: false,
    forwards: network.forwards, mac: undefined, ready: CPIOD_READY, readyTimeoutMs: options.readyTimeoutMs ?? 120_000,
    detached: false, consoleFile: path.join(dir, 'console.log'), logFile: path.join(dir, 'qemu.log'),
    persist: false, debugExit: false, interactive: false, echo: undefined,
    onFallback: (reason) => options.onFallback?.(reason),
    replanPorts: async () => {
      network = await planNetwork({ mode: 'nat', forward: [forward] });
      return network.forwards;
    },
    env: hostEnv,
  });
  vm.on('line', (line) => {
    lines.push(line);
    if (lines.length > KEEP_LINES) lines.shift();
    options.onLine?.(line);
    if (fatal === undefined && FATAL.some((re) => re.test(line))) { fatal = line; onFatal?.(); }
  });
  let exited = false;
  void vm.exited.then(() => { exited = true; });
  const exitedNow = () => exited;
  const started = Date.now();
  const timings = { ready: 0, streamed: 0, eof: 0, exited: 0 };
  const fail = async (stage: UploadStage, reason: string, cause?: unknown, code?: string): Promise<never> => {
    // Let the last console lines arrive (the guest's reason often follows the event we saw).
    await within(vm.exited, 300);
    const exit = await vm.kill();
    throw new UploadVmError(stage, reason, { lines, exit, command: vm.command, cause, code });
  };
  vm.start();
  let socket: net.Socket | undefined;
  try {
    try {
      await vm.ready;
    } catch (error) {
      const exited = await Promise.race([vm.exited.then(() => true), delay(0).then(() => false)]);
      return await fail(exited ? 'start' : 'ready', exited ? 'QEMU ended before cpiod was ready' : `cpiod was not ready within ${options.readyTimeoutMs ?? 120_000} ms`, error,
        exited ? 'E_UPLOAD_VM_EXITED' : 'E_UPLOAD_VM_READY_TIMEOUT');
    }
    timings.ready = Date.now() - started;
    const port = vm.forwards[0]!.host;
    socket = await connectWithRetries(port, options.connectAttempts ?? 20, options.connectIntervalMs ?? 500, () => fatal !== undefined || exitedNow())
      .catch((error: unknown) => fail('connect', `could not connect to cpiod on 127.0.0.1:${port}: ${(error as Error).message}`, error, 'E_UPLOAD_VM_CONNECT'));
    const conn = socket;
    // One promise per thing that can end the session early: the guest aborting, QEMU exiting, the socket failing.
    let socketError: Error | undefined;
    let eof = false;
    let wakeSocket: (() => void) | undefined;
    const wake = () => { const w = wakeSocket; wakeSocket = undefined; w?.(); };
    onFatal = wake;
    void vm.exited.then(wake);
    conn.on('error', (error) => { socketError ??= error; wake(); });
    conn.on('end', () => { eof = true; wake(); });
    conn.on('close', () => { wake(); });
    conn.on('data', () => { /* cpiod sends nothing; reading keeps 'end' coming */ });
    const stallMs = options.stallTimeoutMs ?? 120_000;
    const problem = (): string | undefined =>
      fatal !== undefined ? `the guest stopped: ${fatal}` : socketError ? `the connection to cpiod failed (${socketError.message})` : exitedNow() ? 'QEMU exited' : undefined;
    const waitFor = async (done: () => boolean, timeoutMs: number, what: string, stop: () => string | undefined = problem): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        const p = stop();
        if (p) throw new Error(p);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${what} for ${timeoutMs} ms`);
        await new Promise<void>((resolve) => { wakeSocket = resolve; setTimeout(resolve, Math.min(left, 1000)).unref(); });
      }
    };
    const sink: UploadSink = async (chunk) => {
      const p = problem();
      if (p) throw new Error(p);
      if (conn.write(chunk)) return;
      let drained = false;
      conn.once('drain', () => { drained = true; wake(); });
      await waitFor(() => drained, stallMs, 'the guest took no data');
    };
    try {
      await send(sink);
    } catch (error) {
      conn.destroy();
      // Our own side failed (a source file changed, …): that error is the one to report.
      if (error instanceof CapstanError && problem() === undefined) { await vm.kill(); throw error; }
      return await fail('stream', `the stream to cpiod was cut short: ${(error as Error).message}`, error, 'E_UPLOAD_VM_STREAM');
    }
    timings.streamed = Date.now() - started;
    conn.end(); // half-close: cpiod reads the trailer, unpacks, syncs, then closes its end
    // The socket closing (or failing, or QEMU ending) ends this wait; whether cpiod really
    // finished is judged below from its console line and QEMU's exit.
    try {
      await waitFor(() => eof || conn.destroyed || socketError !== undefined || exitedNow(), options.eofTimeoutMs ?? 600_000,
        'cpiod did not close the connection', () => (fatal !== undefined ? `the guest stopped: ${fatal}` : undefined));
    } catch (error) {
      return await fail('eof', (error as Error).message, error, 'E_UPLOAD_VM_EOF');
    }
    timings.eof = Date.now() - started;
    const exitMs = options.exitTimeoutMs ?? 120_000;
    const exit = await within(vm.exited, exitMs);
    if (!exit) return await fail('exit', `QEMU did not exit within ${exitMs} ms after cpiod finished`, undefined, 'E_UPLOAD_VM_EXIT_TIMEOUT');
    timings.exited = Date.now() - started;
    if (fatal !== undefined) return await fail('exit', `the guest stopped: ${fatal}`, undefined, 'E_UPLOAD_VM_GUEST');
    if (!lines.some((l) => l.includes(CPIOD_FINISHED))) return await fail('exit', `QEMU exited (status ${exit.exitCode ?? exit.signal}) but cpiod never said "${CPIOD_FINISHED}"`, undefined, 'E_UPLOAD_VM_GUEST');
    if (exit.exitCode !== 0 || exit.reason === 'guest-reset' || exit.reason === 'guest-panic') {
      return await fail('exit', `the guest did not power off cleanly (QEMU ${exit.signal ? `killed by ${exit.signal}` : `status ${exit.exitCode}`}${exit.reason ? `, ${exit.reason}` : ''})`, undefined, 'E_UPLOAD_VM_GUEST');
    }
    return { exit, lines, port, accel: vm.accel, timings };
  } finally {
    socket?.destroy();
    if (!exitedNow()) await vm.kill();
  }
}

/** `promise`'s value, or undefined after `ms` (the timer does not outlive the wait). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => { timer = setTimeout(resolve, ms, undefined); })]);
  } finally {
    clearTimeout(timer);
  }
}

async function connectWithRetries(port: number, attempts: number, intervalMs: number, giveUp: () => boolean): Promise<net.Socket> {
  let last: Error | undefined;
  for (let i = 0; i < attempts; i++) {
    if (giveUp()) break;
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
        s.once('error', (error) => { s.destroy(); reject(error); });
      });
    } catch (error) {
      last = error as Error;
      await delay(intervalMs);
    }
  }
  throw last ?? new Error('the guest stopped before a connection was made');
}

export type { PortForward };
