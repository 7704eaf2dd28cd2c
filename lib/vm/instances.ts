// Instances under `<CAPSTAN_ROOT>/instances/qemu/<name>/` (capstan-behaviour.md §2.5, §2.7,
// §2.8): `disk.qcow2` (overlay over the image), `osv.monitor` (QMP socket), `osv.config`
// (written only for persisted instances), plus our `qemu.pid`, `events.monitor` (a second
// QMP socket we listen on for the shutdown reason), and for detached VMs
// `console.log` / `qemu.log`.
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { VmError } from '../errors.js';
import { capstanRoot, instanceDir } from '../repository/root.js';
import { pidAlive, shutdownQemu, type ShutdownOutcome } from './shutdown.js';
import { qmpAlive } from './qmp.js';
import type { Drive } from './drives.js';
import type { ForwardSpec, PortForward } from './network.js';
import type { DiskFormat } from '../image/disk.js';

export const INSTANCE_FILES = {
  disk: 'disk.qcow2',
  monitor: 'osv.monitor',
  events: 'events.monitor',
  config: 'osv.config',
  pid: 'qemu.pid',
  console: 'console.log',
  log: 'qemu.log',
  vnc: 'vnc-domain-socket',
} as const;

/** A unix socket path must fit in sun_path (108 bytes with the NUL). */
const MAX_SOCKET_PATH = 107;

export interface InstancePaths {
  name: string;
  dir: string;
  disk: string;
  monitor: string;
  events: string;
  config: string;
  pidFile: string;
  consoleFile: string;
  logFile: string;
  vnc: string;
}

export function instancePaths(name: string, root: string): InstancePaths {
  checkInstanceName(name);
  const dir = instanceDir(name, root);
  const p: InstancePaths = {
    name,
    dir,
    disk: path.join(dir, INSTANCE_FILES.disk),
    monitor: path.join(dir, INSTANCE_FILES.monitor),
    events: path.join(dir, INSTANCE_FILES.events),
    config: path.join(dir, INSTANCE_FILES.config),
    pidFile: path.join(dir, INSTANCE_FILES.pid),
    consoleFile: path.join(dir, INSTANCE_FILES.console),
    logFile: path.join(dir, INSTANCE_FILES.log),
    vnc: path.join(dir, INSTANCE_FILES.vnc),
  };
  if (Buffer.byteLength(p.monitor) > MAX_SOCKET_PATH) {
    throw new VmError(`the QMP socket path ${p.monitor} is longer than the ${MAX_SOCKET_PATH} bytes a unix socket allows`, {
      code: 'E_VM_SOCKET_PATH', hint: 'Use a shorter instance name or a CAPSTAN_ROOT closer to /.',
    });
  }
  return p;
}

export function checkInstanceName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.length > 64) {
    throw new VmError(`bad instance name "${name}"`, {
      code: 'E_VM_NAME', hint: 'Use letters, digits, ".", "_" and "-" (at most 64, not starting with a dot or dash).',
    });
  }
}

/** Capstan's instance name for an image: the image name with "/" as "-"; for a file, its base name without extension. */
export function instanceNameFor(image: string): string {
  const base = path.basename(image).replace(/\.(qemu|img|raw|qcow2)$/i, '') || 'osv';
  const cleaned = base.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '');
  return (cleaned || 'osv').slice(0, 48);
}

export interface InstanceOptions {
  /** The Capstan root; default $CAPSTAN_ROOT, else ~/.capstan. */
  root?: string | undefined;
}

/** The stored configuration of a persisted instance (`osv.config`, YAML). */
export interface InstanceConfig {
  name: string;
  image: string;
  memoryMiB: number;
  cpus: number;
  cmdline: string;
  kernel?: string | undefined;
  /**
   * The kernel file's size and mtime when the instance was made: a loader pulled again since
   * replaces the file, perhaps with another release's kernel, and the instance then boots from
   * its disk instead.
   */
  kernelFile?: { size: number; mtimeMs: number } | undefined;
  /** Image format. */
  format?: DiskFormat | undefined;
  network: {
    mode: string;
    /** The forwards as given (host port 0 = pick a free one at each boot). */
    forward?: ForwardSpec[] | undefined;
    /** The forwards as resolved at the last boot. */
    forwards: PortForward[];
    device?: string | undefined;
    mac?: string | undefined;
  };
  volumes: Drive[];
}

export interface InstanceInfo {
  name: string;
  dir: string;
  /** The QMP socket accepts connections (Capstan's "Running"), or the QEMU pid is alive. */
  running: boolean;
  /** Has `osv.config` (`persist`). */
  persisted: boolean;
  pid?: number | undefined;
  config?: InstanceConfig | undefined;
}

/** Every instance folder under `<root>/instances/qemu`, running or not. */
export async function listInstances(options: InstanceOptions = {}): Promise<InstanceInfo[]> {
  const root = capstanRoot(options.root);
  const base = path.join(root, 'instances', 'qemu');
  let names: string[];
  try {
    names = (await readdir(base, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
  return Promise.all(names.map((name) => describeInstance(name, root)));
}

async function describeInstance(name: string, root: string): Promise<InstanceInfo> {
  const dir = instanceDir(name, root);
  const monitor = path.join(dir, INSTANCE_FILES.monitor);
  const pid = await readPid(path.join(dir, INSTANCE_FILES.pid));
  const config = await readInstanceConfig(path.join(dir, INSTANCE_FILES.config));
  const running = (existsSync(monitor) && await qmpAlive(monitor)) || pidAlive(pid);
  return { name, dir, running, persisted: config !== undefined, pid: running ? pid : undefined, config };
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export async function readInstanceConfig(file: string): Promise<InstanceConfig | undefined> {
  try {
    return parse(await readFile(file, 'utf8')) as InstanceConfig;
  } catch {
    return undefined;
  }
}

export async function writeInstanceConfig(file: string, config: InstanceConfig): Promise<void> {
  await writeFile(file, stringify(config));
}

/** True when the named instance's QEMU is running. */
export async function instanceRunning(name: string, root: string): Promise<boolean> {
  return (await describeInstance(name, root)).running;
}

export interface StopInstanceOptions extends InstanceOptions {
  /** Time the guest gets to power off after ACPI powerdown, in ms (default 5000). */
  graceMs?: number | undefined;
}

/**
 * Stops a running instance: QMP system_powerdown, then quit, then SIGKILL by pid. Resolves
 * with how it ended (`gone` when it was not running).
 */
export async function stopInstance(name: string, options: StopInstanceOptions = {}): Promise<ShutdownOutcome> {
  const p = instancePaths(name, capstanRoot(options.root));
  if (!existsSync(p.dir)) {
    throw new VmError(`no instance named "${name}"`, { code: 'E_VM_NO_INSTANCE', file: p.dir, hint: 'See listInstances() for the instances there are.' });
  }
  const pid = await readPid(p.pidFile);
  if (!pidAlive(pid) && !(existsSync(p.monitor) && await qmpAlive(p.monitor))) return 'gone';
  return shutdownQemu({ monitor: p.monitor, pid, graceMs: options.graceMs ?? 5000 });
}

/** Deletes an instance folder (stopping its QEMU first if it runs). */
export async function deleteInstance(name: string, options: StopInstanceOptions = {}): Promise<void> {
  const p = instancePaths(name, capstanRoot(options.root));
  if (!existsSync(p.dir)) {
    throw new VmError(`no instance named "${name}"`, { code: 'E_VM_NO_INSTANCE', file: p.dir, hint: 'See listInstances() for the instances there are.' });
  }
  await stopInstance(name, options);
  await rm(p.dir, { recursive: true, force: true });
}
