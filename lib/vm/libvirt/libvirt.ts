// The libvirt run target: bootLibvirt(image, { uri }) copies the image into a storage pool of
// the (possibly remote) host — with the run's command line written into the copy on the way —
// defines a domain from our QEMU settings, starts it, and follows its serial console, which
// QEMU writes into a file that is itself a volume of the pool, so it can be read back over the
// libvirt API from anywhere (vol-download), not only on the host. The instance (domain, disk
// and console volumes) goes away when the guest ends, unless `persist`.
import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { StringDecoder } from 'node:string_decoder';
import type { ImageInfo } from '../../carrier.js';
import { CloudError } from '../../errors.js';
import type { EventSink } from '../../events.js';
import { formatBytes, stepLogger, type LogOptions } from '../../log.js';
import { prepareUpload } from '../../cloud/image-upload.js';
import { checkInstanceName, instanceNameFor } from '../instances.js';
import { parseMemory } from '../memory.js';
import { randomMac } from '../network.js';
import { runtimeCmdline, type RuntimeCmdlineOptions } from '../runtime-cmdline.js';
import { ConsoleLines, type ReadyMarker } from '../console-lines.js';
import { domainXml, METADATA_NS, parseDomainMetadata, TITLE_PREFIX, type DomainMetadata, type LibvirtNetwork } from './domain-xml.js';
import { libvirtService, Virsh, type VirshOptions } from './virsh.js';

export interface LibvirtOptions extends VirshOptions, LogOptions {}

export interface LibvirtBootOptions extends LibvirtOptions, RuntimeCmdlineOptions {
  /** Domain name; default the image's base name. */
  name?: string | undefined;
  /** Storage pool for the disk and console volumes. Default `default`. */
  pool?: string | undefined;
  /** `1G`, `512M`, or MiB. Default 1G. */
  memory?: string | number | undefined;
  /** Default 2. */
  cpus?: number | undefined;
  /** `auto` (default): kvm when the host offers it (falling back to qemu if it fails to start), else qemu (TCG). */
  accel?: 'auto' | 'kvm' | 'tcg' | undefined;
  /** `nat` (default: the libvirt network `networkDevice`, default `default`), `bridge` (host bridge `networkDevice`, default virbr0), or `none`. */
  network?: 'nat' | 'bridge' | 'none' | undefined;
  networkDevice?: string | undefined;
  mac?: string | undefined;
  /** Keep the domain and its volumes after the guest ends (Capstan --persist). Default false. */
  persist?: boolean | undefined;
  /** If a domain of this name exists, delete it first instead of failing. Default false. */
  replace?: boolean | undefined;
  /** Readiness marker on the console; default the first line. */
  ready?: ReadyMarker | undefined;
  /** ms to wait for it (0: for ever). Default 120000. */
  readyTimeout?: number | undefined;
  /** Copy console output here (true: process.stdout). */
  echo?: boolean | NodeJS.WritableStream | undefined;
  /** How often the console and the domain state are read, ms. Default 1000. */
  pollMs?: number | undefined;
}

export interface LibvirtExit {
  /** The domain state when it ended (`shut off`, `crashed`, or `gone` when it was undefined meanwhile). */
  state: string;
  /** libvirt's reason (`shutdown`, `destroyed`, `crashed`, …). */
  reason: string | undefined;
  endedBy: 'guest' | 'stop' | 'kill';
}

export interface LibvirtVm {
  on(event: 'line', listener: (line: string) => void): this;
  on(event: 'exit', listener: (exit: LibvirtExit) => void): this;
}

/** A domain we started, followed from here. */
export class LibvirtVm extends EventEmitter {
  readonly target = 'libvirt' as const;
  readonly ready: Promise<void>;
  readonly exited: Promise<LibvirtExit>;
  readonly recentLines: string[];
  /** No local process: the domain's QEMU runs under libvirtd. */
  readonly pid = undefined;
  readonly forwards: never[] = [];
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private resolveExited!: (e: LibvirtExit) => void;
  private readySettled = false;
  private finished = false;
  private endedBy: LibvirtExit['endedBy'] = 'guest';
  private following = true;
  private offset = 0;
  private readonly console: ConsoleLines;
  private readonly decoder = new StringDecoder('utf8');
  private serialStream: PassThrough | undefined;
  private readyTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly virsh: Virsh,
    readonly name: string,
    readonly image: string,
    readonly pool: string,
    readonly diskVolume: string,
    readonly consoleVolume: string | undefined,
    readonly consolePath: string,
    readonly cmdline: string,
    readonly virtType: 'kvm' | 'qemu',
    private readonly o: { persist: boolean; ready: ReadyMarker | undefined; readyTimeoutMs: number; echo: NodeJS.WritableStream | undefined; pollMs: number; tmp: string },
  ) {
    super();
    this.console = new ConsoleLines({ ready: o.ready, onLine: (line) => this.emit('line', line), onReady: () => this.settleReady() });
    this.recentLines = this.console.recent;
    this.ready = new Promise((resolve, reject) => { this.resolveReady = resolve; this.rejectReady = reject; });
    this.ready.catch(() => {});
    this.exited = new Promise((resolve) => { this.resolveExited = resolve; });
  }

  get uri(): string { return this.virsh.uri; }
  get detached(): boolean { return this.o.persist; }
  get persist(): boolean { return this.o.persist; }

  /** The console as a byte stream, from when it is first asked for. */
  get serial(): Readable {
    this.serialStream ??= new PassThrough();
    if (this.finished) this.serialStream.end();
    return this.serialStream;
  }

  /** @internal */
  follow(): void {
    if (this.o.readyTimeoutMs > 0) {
      this.readyTimer = setTimeout(() => this.settleReady(new CloudError(`no readiness marker on the console of ${this.name} within ${this.o.readyTimeoutMs} ms`, {
        code: 'E_VM_READY_TIMEOUT', service: libvirtService(this.uri), hint: 'The domain still runs. Check the marker against its console, or raise readyTimeout.',
      })), this.o.readyTimeoutMs);
    }
    void this.loop();
  }

  private async loop(): Promise<void> {
    let exit: LibvirtExit | undefined;
    while (this.following && !exit) {
      await this.readConsole().catch(() => {});
      const state = await domainState(this.virsh, this.name).catch(() => undefined);
      if (state && !/^(running|idle|paused|in shutdown|blocked|pmsuspended)/.test(state.state)) {
        exit = { state: state.state, reason: state.reason, endedBy: this.endedBy };
        break;
      }
      if (state === undefined && !(await domainExists(this.virsh, this.name))) {
        exit = { state: 'gone', reason: undefined, endedBy: this.endedBy };
        break;
      }
      await delay(this.o.pollMs);
    }
    if (!exit) return; // released: the domain goes on without us
    await this.readConsole().catch(() => {});
    await this.finish(exit);
  }

  /** Reads what the console file gained since the last read (vol-download --offset). */
  private async readConsole(): Promise<void> {
    if (!this.consoleVolume) {
      // A pool that is no folder: the file is on the host, readable only when that is here.
      const text = await readFile(this.consolePath).catch(() => undefined);
      if (text && text.length > this.offset) { this.onText(text.subarray(this.offset)); this.offset = text.length; }
      return;
    }
    const out = path.join(this.o.tmp, 'console.part');
    await this.virsh.run(['vol-download', '--pool', this.pool, '--offset', String(this.offset), this.consoleVolume, out], 'read the console');
    const bytes = await readFile(out);
    if (bytes.length) { this.offset += bytes.length; this.onText(bytes); }
  }

  private onText(bytes: Buffer): void {
    const text = this.decoder.write(bytes);
    if (!text) return;
    this.o.echo?.write(text);
    this.serialStream?.write(text);
    this.console.write(text);
  }

  private settleReady(error?: Error): void {
    if (this.readySettled) return;
    this.readySettled = true;
    clearTimeout(this.readyTimer);
    if (error) this.rejectReady(error); else this.resolveReady();
  }

  private async finish(exit: LibvirtExit): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.console.write(this.decoder.end());
    this.console.end();
    this.settleReady(new CloudError(`the domain ${this.name} ended (${exit.state}${exit.reason ? `, ${exit.reason}` : ''}) before its readiness marker`, {
      code: 'E_VM_EXITED', service: libvirtService(this.uri), hint: this.recentLines.length ? `Its last console lines: ${this.recentLines.slice(-3).join(' | ')}` : 'It printed nothing on its console.',
    }));
    if (!this.o.persist) await removeDomain(this.virsh, this.name, { pool: this.pool, diskVolume: this.diskVolume, consoleVolume: this.consoleVolume }).catch(() => {});
    await rm(this.o.tmp, { recursive: true, force: true });
    this.serialStream?.end();
    this.emit('exit', exit);
    this.resolveExited(exit);
  }

  /** ACPI shutdown (`virsh shutdown`), then `destroy` after `graceMs`. */
  async stop(options: { graceMs?: number } = {}): Promise<LibvirtExit> {
    if (this.finished) return this.exited;
    this.endedBy = 'stop';
    await this.virsh.run(['shutdown', this.name], `shut down ${this.name}`, { accept: /not running|domain is not running/i }).catch(() => {});
    const gone = await Promise.race([this.exited.then(() => true), delay(options.graceMs ?? 5000).then(() => false)]);
    if (!gone) await this.virsh.run(['destroy', this.name], `destroy ${this.name}`, { accept: /not running/i }).catch(() => {});
    return this.exited;
  }

  /** Ends the domain at once (`virsh destroy`). */
  async kill(): Promise<LibvirtExit> {
    if (this.finished) return this.exited;
    this.endedBy = 'kill';
    await this.virsh.run(['destroy', this.name], `destroy ${this.name}`, { accept: /not running/i });
    return this.exited;
  }

  /** Stops following: the domain keeps running on the host, managed by name from then on. */
  release(): void {
    this.following = false;
    clearTimeout(this.readyTimer);
  }
}

/** An image to boot on libvirt: a path, or writeImage's image. */
export type LibvirtImage = string | { path: string; info?: ImageInfo | undefined };

/** Uploads the image into the pool, defines the domain and starts it. */
export async function bootLibvirt(image: LibvirtImage, options: LibvirtBootOptions = {}): Promise<LibvirtVm> {
  const log = stepLogger('libvirt', options);
  const started = Date.now();
  const file = path.resolve(typeof image === 'string' ? image : image.path);
  const virsh = new Virsh(options);
  const name = options.name ?? instanceNameFor(file);
  checkInstanceName(name);
  const memoryMiB = parseMemory(options.memory ?? '1G');
  const cpus = options.cpus ?? 2;
  if (!Number.isInteger(cpus) || cpus < 1) throw new CloudError(`bad CPU count ${cpus}`, { code: 'E_VM_CPUS', hint: 'Give a whole number ≥ 1.' });
  const network = networkOf(options);
  let source = await prepareUpload(file);
  const wanted = runtimeCmdline(options, source.cmdline);
  if (wanted !== undefined) source = await prepareUpload(file, wanted);

  const pool = options.pool ?? 'default';
  const poolInfo = await poolTarget(virsh, pool);
  if (await domainExists(virsh, name)) {
    if (!options.replace) {
      throw new CloudError(`a domain named "${name}" exists on ${virsh.uri}`, {
        code: 'E_VM_NAME_TAKEN', service: libvirtService(virsh.uri), hint: 'Pick another name, pass replace: true, or delete it (capstan delete --target libvirt).',
      });
    }
    await deleteLibvirtInstance(name, options);
  }
  const diskVolume = `${name}.${source.format}`;
  const consoleVolume = poolInfo.dirLike ? `${name}.console.log` : undefined;
  const consolePath = consoleVolume ? path.posix.join(poolInfo.path, consoleVolume) : `/var/log/libvirt/qemu/${name}.console.log`;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'capstan-libvirt-'));
  const created: { disk?: boolean; console?: boolean; domain?: boolean } = {};
  try {
    // The disk: a volume of the image's size, filled with its bytes (the command line patched in).
    await virsh.run(['vol-create-as', pool, diskVolume, String(source.size), '--format', source.format], `create the volume ${diskVolume} in pool ${pool}`);
    created.disk = true;
    // virsh reads the upload from a file (it cannot open a socket as /dev/stdin, which is what a
    // Node child's stdin is): the image goes as it is, then the command-line area is written
    // over its place in the volume (vol-upload --offset), so no local copy is made.
    options.events?.({ event: 'upload', target: 'libvirt', image: diskVolume, bytes: 0, total: source.size, done: false });
    await virsh.run(['vol-upload', '--pool', pool, diskVolume, file], `upload the image into ${pool}/${diskVolume}`, { timeoutMs: 3_600_000 });
    for (const [i, p] of source.patches.entries()) {
      const piece = path.join(tmp, `patch-${i}`);
      await writeFile(piece, p.data);
      await virsh.run(['vol-upload', '--pool', pool, '--offset', String(p.at), '--length', String(p.data.length), diskVolume, piece],
        `write the command line into ${pool}/${diskVolume}`);
    }
    options.events?.({ event: 'upload', target: 'libvirt', image: diskVolume, bytes: source.size, total: source.size, done: true });
    log.detail(`${name}: ${formatBytes(source.size)} uploaded into ${pool}/${diskVolume}`);
    if (consoleVolume) {
      await virsh.run(['vol-create-as', pool, consoleVolume, '0', '--format', 'raw'], `create the console volume ${consoleVolume}`);
      created.console = true;
    }
    const accel = options.accel ?? 'auto';
    let virtType: 'kvm' | 'qemu' = accel === 'tcg' ? 'qemu' : accel === 'kvm' ? 'kvm' : (await hostHasKvm(virsh)) ? 'kvm' : 'qemu';
    const spec = { name, memoryMiB, cpus, pool, diskVolume, diskFormat: source.format, consolePath, consoleVolume, network, image: file, cmdline: source.cmdline };
    const define = async (type: 'kvm' | 'qemu') => {
      const xmlFile = path.join(tmp, 'domain.xml');
      await writeFile(xmlFile, domainXml({ ...spec, virtType: type }));
      await virsh.run(['define', xmlFile], `define the domain ${name}`);
      created.domain = true;
    };
    await define(virtType);
    try {
      await virsh.run(['start', name], `start the domain ${name}`);
    } catch (error) {
      if (virtType !== 'kvm' || accel === 'kvm' || !/kvm/i.test((error as Error).message)) throw error;
      log.warn(`${name}: KVM failed (${(error as Error).message.split('\n')[0]}); starting under TCG`);
      await virsh.run(['undefine', name], `undefine ${name}`);
      virtType = 'qemu';
      await define(virtType);
      await virsh.run(['start', name], `start the domain ${name}`);
    }
    const echo = options.echo === true ? process.stdout : options.echo || undefined;
    const vm = new LibvirtVm(virsh, name, file, pool, diskVolume, consoleVolume, consolePath, source.cmdline, virtType, {
      persist: options.persist ?? false, ready: options.ready, readyTimeoutMs: options.readyTimeout ?? 120_000, echo, pollMs: options.pollMs ?? 1000, tmp,
    });
    vm.follow();
    reportLibvirtVm(vm, options.events, started);
    log.note(`${name}: started on ${virsh.uri} (${virtType}, pool ${pool}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return vm;
  } catch (error) {
    // Nothing half-made stays on the host.
    await removeDomain(virsh, name, { pool, diskVolume: created.disk ? diskVolume : undefined, consoleVolume: created.console ? consoleVolume : undefined }, created.domain).catch(() => {});
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
}

function reportLibvirtVm(vm: LibvirtVm, events: EventSink | undefined, started: number): void {
  if (!events) return;
  events({ event: 'vm-start', pid: undefined, instance: vm.name, forwards: [] });
  vm.ready.then(() => events({ event: 'vm-ready', instance: vm.name, ms: Date.now() - started }), () => {});
  vm.exited.then((exit) => events({ event: 'vm-exit', instance: vm.name, status: null, reason: exit.reason ?? exit.state }), () => {});
}

function networkOf(o: LibvirtBootOptions): LibvirtNetwork {
  const mode = o.network ?? 'nat';
  if (mode === 'none') return { mode };
  const mac = o.mac ?? randomMac();
  if (mode === 'nat') return { mode, network: o.networkDevice ?? 'default', mac };
  if (mode === 'bridge') return { mode, bridge: o.networkDevice ?? 'virbr0', mac };
  throw new CloudError(`unknown network mode "${String(mode)}" for libvirt`, { code: 'E_VM_NETWORK', hint: 'Use nat (a libvirt network), bridge (a host bridge) or none.' });
}

/** The pool's folder on the host, and whether its volumes are plain files there. */
async function poolTarget(virsh: Virsh, pool: string): Promise<{ path: string; dirLike: boolean }> {
  let xml: string;
  try {
    xml = await virsh.run(['pool-dumpxml', pool], `read the storage pool ${pool}`);
  } catch (error) {
    if (error instanceof CloudError && error.code === 'E_LIBVIRT_NOT_FOUND') {
      throw new CloudError(`${libvirtService(virsh.uri)} has no storage pool "${pool}"`, {
        code: 'E_LIBVIRT_NO_POOL', service: libvirtService(virsh.uri), cause: error,
        hint: `Create it on the host: virsh pool-define-as ${pool} dir --target /var/lib/libvirt/images && virsh pool-start ${pool}; or choose another pool.`,
      });
    }
    throw error;
  }
  const type = /<pool\s+type=['"]([^'"]+)['"]/.exec(xml)?.[1] ?? '';
  const target = /<target>\s*<path>([^<]+)<\/path>/.exec(xml)?.[1] ?? '';
  const info = await virsh.run(['pool-info', pool], `read the state of pool ${pool}`);
  if (!/State:\s+running/.test(info)) {
    throw new CloudError(`the storage pool "${pool}" is not running`, { code: 'E_LIBVIRT_NO_POOL', service: libvirtService(virsh.uri), hint: `Start it: virsh pool-start ${pool}` });
  }
  return { path: target, dirLike: ['dir', 'fs', 'netfs'].includes(type) && target !== '' };
}

async function hostHasKvm(virsh: Virsh): Promise<boolean> {
  try {
    await virsh.run(['domcapabilities', '--virttype', 'kvm'], 'ask for KVM', { timeoutMs: 15_000 });
    return true;
  } catch {
    return false;
  }
}

async function domainExists(virsh: Virsh, name: string): Promise<boolean> {
  try {
    await virsh.run(['domuuid', name], `look up ${name}`);
    return true;
  } catch (error) {
    if (error instanceof CloudError && error.code === 'E_LIBVIRT_NOT_FOUND') return false;
    throw error;
  }
}

async function domainState(virsh: Virsh, name: string): Promise<{ state: string; reason: string | undefined } | undefined> {
  const text = (await virsh.run(['domstate', '--reason', name], `read the state of ${name}`)).trim();
  const m = /^(.*?)(?:\s+\((.*)\))?$/.exec(text);
  return m ? { state: m[1]!, reason: m[2] } : undefined;
}

async function domainMetadata(virsh: Virsh, name: string): Promise<DomainMetadata> {
  try {
    return parseDomainMetadata(await virsh.run(['metadata', name, METADATA_NS], `read the metadata of ${name}`));
  } catch {
    return {};
  }
}

/** Destroys (if running) and undefines a domain, then deletes its volumes. */
async function removeDomain(virsh: Virsh, name: string, volumes: { pool: string; diskVolume?: string | undefined; consoleVolume?: string | undefined }, domain = true): Promise<void> {
  if (domain) {
    await virsh.run(['destroy', name], `destroy ${name}`, { accept: /not running|not found|failed to get domain|no domain/i });
    await virsh.run(['undefine', name], `undefine ${name}`, { accept: /not found|failed to get domain|no domain/i });
  }
  for (const v of [volumes.diskVolume, volumes.consoleVolume]) {
    if (v) await virsh.run(['vol-delete', '--pool', volumes.pool, v], `delete the volume ${volumes.pool}/${v}`, { accept: /not found|failed to get vol|no storage vol/i });
  }
}

export interface LibvirtInstanceInfo {
  name: string;
  uri: string;
  platform: 'libvirt';
  /** libvirt's state: running, shut off, paused, … */
  state: string;
  running: boolean;
  /** The image file it was made from (from the domain's title). */
  image: string;
}

/** The domains on that host that gulp-capstan defined (their title says so). */
export async function listLibvirtInstances(options: LibvirtOptions = {}): Promise<LibvirtInstanceInfo[]> {
  const virsh = new Virsh(options);
  const text = await virsh.run(['list', '--all', '--title'], 'list the domains');
  const out: LibvirtInstanceInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+)\s+(\S+)\s+(running|idle|paused|in shutdown|shut off|crashed|pmsuspended|blocked|dying)\s+(.*)$/.exec(line);
    if (!m) continue;
    const title = m[4]!.trim();
    if (!title.startsWith(`${TITLE_PREFIX}:`)) continue;
    const state = m[3]!;
    out.push({ name: m[2]!, uri: virsh.uri, platform: 'libvirt', state, running: state === 'running' || state === 'idle' || state === 'paused', image: title.slice(TITLE_PREFIX.length + 1).trim() });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Shuts a domain down (ACPI, then destroy after `graceMs`); `gone` when it was not running. */
export async function stopLibvirtInstance(name: string, options: LibvirtOptions & { graceMs?: number } = {}): Promise<'shutdown' | 'destroyed' | 'gone'> {
  const virsh = new Virsh(options);
  const state = await ourDomainState(virsh, name, options);
  if (!/^(running|idle|paused|in shutdown|blocked)/.test(state)) return 'gone';
  await virsh.run(['shutdown', name], `shut down ${name}`, { accept: /not running/i });
  const deadline = Date.now() + (options.graceMs ?? 5000);
  while (Date.now() < deadline) {
    const s = await domainState(virsh, name).catch(() => undefined);
    if (!s || !/^(running|idle|paused|in shutdown|blocked)/.test(s.state)) return 'shutdown';
    await delay(250);
  }
  await virsh.run(['destroy', name], `destroy ${name}`, { accept: /not running/i });
  return 'destroyed';
}

/** Deletes one of our domains: destroy, undefine, and its disk and console volumes. */
export async function deleteLibvirtInstance(name: string, options: LibvirtOptions = {}): Promise<void> {
  const virsh = new Virsh(options);
  await ourDomainState(virsh, name, options);
  const meta = await domainMetadata(virsh, name);
  await removeDomain(virsh, name, { pool: meta.disk?.pool ?? meta.console?.pool ?? 'default', diskVolume: meta.disk?.volume, consoleVolume: meta.console?.volume });
}

/** The state of a domain that must exist and be ours. */
async function ourDomainState(virsh: Virsh, name: string, options: LibvirtOptions): Promise<string> {
  const mine = (await listLibvirtInstances(options)).find((i) => i.name === name);
  if (!mine) {
    throw new CloudError(`no gulp-capstan instance named "${name}" on ${virsh.uri}`, {
      code: 'E_VM_NO_INSTANCE', service: libvirtService(virsh.uri), hint: 'See listLibvirtInstances() (capstan instances --target libvirt) for the instances there are; domains not made by gulp-capstan are left alone.',
    });
  }
  return mine.state;
}
