// One running VM: a QEMU process (or, after a KVM failure, its TCG successor), its console as
// line events and a stream, a readiness promise, and how it ended.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync, rmSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { StringDecoder } from 'node:string_decoder';
import { VmError } from '../errors.js';
import { kvmFailureIn, type Accel } from './accel.js';
import { ConsoleLines, type ReadyMarker } from './console-lines.js';
import { FileTail } from './file-tail.js';
import { onProcessEnd, type ProcessEndHook } from '../process-end.js';
import { formatCommand } from './qemu-args.js';
import { QmpClient } from './qmp.js';
import { shutdownQemu } from './shutdown.js';
import type { PortForward } from './network.js';

export type { ReadyMarker } from './console-lines.js';

export interface VmExit {
  /** QEMU's exit status (null when it died from a signal). */
  exitCode: number | null;
  signal: string | null;
  /**
   * The value the guest wrote to isa-debug-exit, when the status came from there
   * (QEMU exits with `(value << 1) | 1`). Only meaningful with `debugExit`.
   */
  debugExitCode?: number | undefined;
  /** Who ended it: the guest itself, `stop()`, `kill()`, or this process ending. */
  endedBy: 'guest' | 'stop' | 'kill' | 'process-exit';
  /**
   * QEMU's shutdown reason, when it announced one: `guest-shutdown` (the guest powered off),
   * `guest-reset` (it rebooted or crashed into a triple fault; QEMU runs with -no-reboot),
   * `guest-panic`, `host-qmp-quit`, `host-signal`, … Absent when QEMU ended without one
   * (isa-debug-exit, SIGKILL).
   */
  reason?: string | undefined;
  /** QEMU's last stderr output. */
  stderr: string;
}

export interface StopOptions {
  /** How long the guest gets to power off after ACPI powerdown, in ms (default 5000). */
  graceMs?: number;
}

/** Everything a Vm needs to start; boot.ts works it out. */
export interface VmSpec {
  name: string;
  dir: string;
  image: string;
  disk: string;
  monitor: string;
  /** Our own QMP socket for events (the shutdown reason). */
  events: string;
  pidFile: string;
  qemu: string;
  /** QEMU arguments for an accelerator, booting `kernel` with -kernel or the disk's boot sector. */
  argsFor: (accel: Accel, kernel: string | undefined) => string[];
  accel: Accel;
  /** Retry under TCG when KVM fails (default true). */
  fallbackToTcg: boolean;
  cmdline: string;
  kernel: string | undefined;
  forwards: PortForward[];
  mac: string | undefined;
  ready: ReadyMarker | undefined;
  readyTimeoutMs: number;
  detached: boolean;
  /** Files a detached VM writes its console and QEMU log to. */
  consoleFile: string;
  logFile: string;
  persist: boolean;
  debugExit: boolean;
  interactive: boolean;
  echo: NodeJS.WritableStream | undefined;
  /** Told when KVM failed and TCG takes over, or the kernel failed and the disk boots. */
  onFallback: (reason: string) => void;
  /**
   * When QEMU cannot load the `-kernel`, boot the disk instead (default true). Off for the
   * ZFS builder: its kernel is the point, the disk's own loader would boot the app.
   */
  kernelFallback?: boolean | undefined;
  /**
   * Picks new free host ports for the forwards that asked for one (another process may take a
   * port between our probe and QEMU's bind); updates the arguments argsFor builds.
   */
  replanPorts?: (() => Promise<PortForward[]>) | undefined;
  env: NodeJS.ProcessEnv;
}

const RECENT_LINES = 50;
const STDERR_KEEP = 16 * 1024;

export interface Vm {
  on(event: 'line', listener: (line: string) => void): this;
  on(event: 'exit', listener: (exit: VmExit) => void): this;
  /** KVM failed (TCG takes over) or the kernel did not load (the disk boots); said once each. */
  on(event: 'fallback', listener: (reason: string) => void): this;
}

export class Vm extends EventEmitter {
  readonly name: string;
  /** The instance folder (`<root>/instances/qemu/<name>`). */
  readonly dir: string;
  /** The image the VM boots (the overlay's backing file). */
  readonly image: string;
  /** The disk QEMU writes to: the instance's qcow2 overlay. */
  readonly disk: string;
  /** The QMP socket. */
  readonly monitor: string;
  /** The command line the guest gets (on the overlay, and in `-append` for a kernel boot). */
  readonly cmdline: string;
  /** The kernel ELF booted with `-kernel`, when the fast path is used (unset after falling back to disk boot). */
  kernel: string | undefined;
  /** Port forwards with their host ports decided. */
  readonly forwards: PortForward[];
  readonly mac: string | undefined;
  readonly detached: boolean;
  /** The accelerator of the current QEMU. */
  accel: Accel;
  /** Why KVM was given up for TCG, when it was. */
  fallbackReason: string | undefined;
  /** QEMU's pid (of the current attempt). */
  pid: number | undefined;
  /** The QEMU command line of the current attempt. */
  command = '';
  /** The last console lines (for error reports). */
  readonly recentLines: string[];
  /** Resolves when the readiness marker appeared; rejects if QEMU ended first or it timed out. */
  readonly ready: Promise<void>;
  /** Resolves when QEMU has ended, for whatever reason. */
  readonly exited: Promise<VmExit>;

  private readonly spec: VmSpec;
  private child: ChildProcess | undefined;
  private tails: FileTail[] = [];
  private guard: ProcessEndHook | undefined;
  private decoder = new StringDecoder('utf8');
  private readonly console: ConsoleLines;
  private stderrText = '';
  private sawConsole = false;
  private readySettled = false;
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private resolveExited!: (e: VmExit) => void;
  private readyTimer: NodeJS.Timeout | undefined;
  private endedBy: VmExit['endedBy'] = 'guest';
  private retrying = false;
  private replannedPorts = false;
  private finished = false;
  private serialStream: PassThrough | undefined;
  private events: QmpClient | undefined;
  private shutdownReason: string | undefined;

  constructor(spec: VmSpec) {
    super();
    this.spec = spec;
    this.console = new ConsoleLines({ ready: spec.ready, keep: RECENT_LINES, onLine: (line) => this.emit('line', line), onReady: () => this.settleReady() });
    this.recentLines = this.console.recent;
    this.name = spec.name;
    this.dir = spec.dir;
    this.image = spec.image;
    this.disk = spec.disk;
    this.monitor = spec.monitor;
    this.cmdline = spec.cmdline;
    this.kernel = spec.kernel;
    this.forwards = spec.forwards;
    this.mac = spec.mac;
    this.detached = spec.detached;
    this.accel = spec.accel;
    this.ready = new Promise<void>((resolve, reject) => { this.resolveReady = resolve; this.rejectReady = reject; });
    this.ready.catch(() => {}); // a caller that never asks must not crash the process
    this.exited = new Promise<VmExit>((resolve) => { this.resolveExited = resolve; });
  }

  /**
   * The console output as a byte stream, from the moment it is first asked for. Consume it:
   * what nobody reads is kept in memory.
   */
  get serial(): Readable {
    this.serialStream ??= new PassThrough();
    if (this.finished) this.serialStream.end();
    return this.serialStream;
  }

  /** @internal Starts the first QEMU. */
  start(): void {
    if (!this.spec.detached) {
      this.guard = onProcessEnd(() => this.stopNow());
    }
    if (this.spec.readyTimeoutMs > 0) {
      this.readyTimer = setTimeout(() => {
        this.settleReady(this.failure(`no readiness marker within ${this.spec.readyTimeoutMs} ms`, 'E_VM_READY_TIMEOUT',
          'The VM is still running. Check the marker (`ready` option) against the console lines above, or raise `readyTimeout`.'));
      }, this.spec.readyTimeoutMs);
    }
    this.launch(this.spec.accel);
  }

  /**
   * Stops the VM the way Capstan's `stop` means to: ACPI powerdown through QMP, `quit` if the
   * guest does not power off within `graceMs`, SIGKILL if QEMU is still there after that.
   */
  async stop(options: StopOptions = {}): Promise<VmExit> {
    if (this.finished) return this.exited;
    this.endedBy = 'stop';
    await shutdownQemu({
      monitor: this.monitor,
      pid: this.pid,
      graceMs: options.graceMs ?? 5000,
      exited: this.exited.then(() => undefined),
      kill: () => this.child?.kill('SIGKILL'),
    });
    return this.exited;
  }

  /** Ends QEMU at once (SIGKILL). */
  kill(): Promise<VmExit> {
    if (!this.finished) {
      this.endedBy = 'kill';
      this.child?.kill('SIGKILL');
    }
    return this.exited;
  }

  /** Stops following a detached VM so this process may exit; the VM keeps running. */
  release(): void {
    for (const t of this.tails) t.unref();
    this.child?.unref();
  }

  private launch(accel: Accel): void {
    const spec = this.spec;
    this.accel = accel;
    this.sawConsole = false;
    this.stderrText = '';
    const args = spec.argsFor(accel, this.kernel);
    this.command = formatCommand(spec.qemu, args);
    let consoleFd: number | undefined;
    let logFd: number | undefined;
    if (spec.detached) {
      // QEMU writes the console itself (-chardev file); its stderr goes to a log we follow.
      logFd = openSync(spec.logFile, 'a');
      consoleFd = openSync('/dev/null', 'w');
      this.tails.forEach((t) => t.close());
      const consoleTail = new FileTail(spec.consoleFile, (text) => this.onConsole(text));
      const logTail = new FileTail(spec.logFile, (text) => this.onStderr(text));
      this.tails = [consoleTail, logTail];
    }
    // node's spawn rather than execa: a few milliseconds less per boot (bench/boot), and we
    // need none of execa's buffering or cleanup (the orphan guard does that).
    const child = spawn(spec.qemu, args, {
      stdio: [spec.interactive ? 'inherit' : 'ignore', consoleFd ?? 'pipe', logFd ?? 'pipe'],
      detached: spec.detached,
      env: spec.env,
    });
    if (consoleFd !== undefined) closeSync(consoleFd);
    if (logFd !== undefined) closeSync(logFd);
    this.child = child;
    this.pid = child.pid;
    if (!spec.detached) {
      child.stdout?.on('data', (chunk: Buffer) => this.onConsole(this.decoder.write(chunk)));
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (text: string) => this.onStderr(text));
    }
    let ended = false;
    const end = (code: number | null, signal: string | null, spawnError?: string) => {
      if (ended) return;
      ended = true;
      this.onChildExit(child, accel, code, signal, spawnError);
    };
    // 'close' comes after the console pipe is drained, so no output is lost at the end.
    child.once('close', (code, signal) => end(code, signal));
    child.once('error', (error) => { if (child.pid === undefined) end(null, null, `cannot start ${spec.qemu}: ${error.message}`); });
    void this.watchEvents(child);
  }

  /** Listens on the events QMP socket for SHUTDOWN / GUEST_PANICKED, to say why QEMU ended. */
  private async watchEvents(child: ChildProcess): Promise<void> {
    this.events?.close();
    this.events = undefined;
    this.shutdownReason = undefined;
    const running = () => this.child === child && child.exitCode === null && child.signalCode === null;
    // The socket appears as QEMU initialises; poll for it briefly. Failing here only costs the reason.
    for (let i = 0; i < 600 && running(); i++) {
      try {
        const qmp = await QmpClient.connect(this.spec.events, 1000);
        if (!running()) { qmp.close(); return; }
        qmp.unref();
        qmp.onEvent = (e) => {
          if (e.event === 'GUEST_PANICKED') this.shutdownReason = 'guest-panic';
          else if (e.event === 'SHUTDOWN' && this.shutdownReason === undefined) this.shutdownReason = String(e.data?.['reason'] ?? '');
        };
        this.events = qmp;
        return;
      } catch {
        await delay(5);
      }
    }
  }

  private onConsole(text: string): void {
    if (!text) return;
    this.sawConsole = true;
    this.spec.echo?.write(text);
    this.serialStream?.write(text);
    this.console.write(text);
  }

  private onStderr(text: string): void {
    // The events socket's wait=on makes QEMU announce that it waits for us: not a problem to report.
    text = text.replace(/^.*: info: QEMU waiting for connection on: .*\n?/gm, '');
    if (!text) return;
    this.stderrText = (this.stderrText + text).slice(-STDERR_KEEP);
    if (this.accel === 'kvm' && this.spec.fallbackToTcg && !this.readySettled && !this.retrying) {
      const reason = kvmFailureIn(this.stderrText);
      // QEMU may not exit after a KVM emulation failure: it pauses the guest. So act on stderr.
      if (reason) this.fallBack(reason);
    }
  }

  private fallBack(reason: string): void {
    this.retrying = true;
    this.fallbackReason = reason;
    this.child?.kill('SIGKILL');
  }

  private onChildExit(child: ChildProcess, accel: Accel, exitCode: number | null, signal: string | null, spawnError?: string): void {
    if (child !== this.child) return;
    const stderr = this.stderrText.trim();
    const lastLine = stderr.split('\n').pop() ?? stderr;
    // QEMU refusing to start (an error on stderr, no console output, not stopped by us).
    const failedAtStart = !this.readySettled && !this.sawConsole && exitCode !== 0 && stderr !== '' && this.endedBy === 'guest';
    let next: Accel | undefined;
    if (failedAtStart && /Could not set up host forwarding rule/.test(stderr) && this.spec.replanPorts && !this.replannedPorts) {
      this.replannedPorts = true;
      void this.spec.replanPorts().then(
        (forwards) => { this.forwards.splice(0, this.forwards.length, ...forwards); this.relaunch(accel); },
        () => this.finish(exitCode, signal, spawnError),
      );
      return;
    }
    if (this.retrying) {
      next = 'tcg'; // a KVM failure seen on stderr; fallbackReason is set
    } else if (failedAtStart && accel === 'kvm' && this.spec.fallbackToTcg && (kvmFailureIn(stderr) || (!this.kernel && !optionError(stderr)))) {
      this.fallbackReason = lastLine;
      next = 'tcg';
    } else if (failedAtStart && this.kernel && this.spec.kernelFallback !== false) {
      // The fast path is an optimisation: a kernel QEMU cannot load must not stop the boot.
      const reason = `the kernel ${this.kernel} did not load (${lastLine}); booting from the disk`;
      this.kernel = undefined;
      this.spec.onFallback(reason);
      this.emit('fallback', reason);
      this.relaunch(accel);
      return;
    } else if (failedAtStart && accel === 'kvm' && this.spec.fallbackToTcg && !optionError(stderr)) {
      this.fallbackReason = lastLine;
      next = 'tcg';
    }
    if (next) {
      this.retrying = false;
      const reason = `KVM failed (${this.fallbackReason ?? 'no reason given'}); retrying under TCG`;
      this.spec.onFallback(reason);
      this.emit('fallback', reason);
      this.relaunch(next);
      return;
    }
    this.finish(exitCode, signal, spawnError);
  }

  private relaunch(accel: Accel): void {
    this.decoder = new StringDecoder('utf8');
    this.console.reset();
    this.launch(accel);
  }

  private finish(exitCode: number | null, signal: string | null, spawnError?: string): void {
    this.finished = true;
    this.events?.close();
    for (const t of this.tails) t.close();
    this.tails = [];
    this.console.write(this.decoder.end());
    this.console.end();
    this.guard?.release();
    if (this.readyTimer) clearTimeout(this.readyTimer);
    const exit: VmExit = {
      exitCode,
      signal,
      debugExitCode: this.spec.debugExit && exitCode !== null && exitCode % 2 === 1 ? (exitCode - 1) >> 1 : undefined,
      endedBy: this.endedBy,
      reason: this.shutdownReason || undefined,
      stderr: spawnError ?? this.stderrText.trim(),
    };
    if (!this.readySettled) {
      const how = signal ? `was killed by ${signal}` : `exited with status ${exitCode}`;
      this.settleReady(this.failure(`QEMU ${how} before the VM was ready`, 'E_VM_EXITED', hintFor(exit.stderr), exit.stderr));
    }
    if (!this.spec.persist && !this.spec.detached) rmSync(this.dir, { recursive: true, force: true });
    this.serialStream?.end();
    this.emit('exit', exit);
    this.resolveExited(exit);
  }

  /**
   * Synchronous stop for process exit and signals. SIGTERM, not SIGKILL: QEMU then still
   * flushes the overlay on its own after we are gone (it ends promptly on SIGTERM).
   */
  private stopNow(): void {
    if (this.finished) return;
    this.endedBy = 'process-exit';
    try { if (this.pid) process.kill(this.pid, 'SIGTERM'); } catch { /* already gone */ }
    if (!this.spec.persist) {
      try { rmSync(this.dir, { recursive: true, force: true }); } catch { /* best effort */ }
    }
  }

  private settleReady(error?: Error): void {
    if (this.readySettled) return;
    this.readySettled = true;
    if (this.readyTimer) clearTimeout(this.readyTimer);
    // A detached VM stops holding this process once its readiness is known.
    if (this.spec.detached) this.release();
    if (error) this.rejectReady(error);
    else this.resolveReady();
  }

  private failure(problem: string, code: string, hint: string, stderr = this.stderrText.trim()): VmError {
    const parts = [`VM ${this.name}: ${problem}`];
    if (this.recentLines.length > 0) parts.push(`last console lines:\n    ${this.recentLines.slice(-10).join('\n    ')}`);
    if (stderr) parts.push(`QEMU said:\n    ${stderr.split('\n').slice(-10).join('\n    ')}`);
    parts.push(`command: ${this.command}`);
    return new VmError(parts.join('\n  '), { code, file: this.image, hint });
  }
}

/** QEMU rejecting one of our options (a disk, a device, a port): not something TCG would fix. */
function optionError(stderr: string): boolean {
  return /^qemu[\w-]*: -(drive|netdev|device|chardev|kernel|append|mon|pidfile) /m.test(stderr);
}

function hintFor(stderr: string): string {
  if (/Could not set up host forwarding rule/.test(stderr)) {
    return 'A forwarded host port is in use. Pick another one, or give 0 (e.g. "0:80") for a free port.';
  }
  if (/Could not open|No such file/.test(stderr)) return 'A file QEMU needs is missing or unreadable; see QEMU\'s message above.';
  return 'See the console lines and QEMU output above.';
}
