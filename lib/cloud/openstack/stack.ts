// Capstan's `stack push` and `stack run` as an API: pushImage() uploads an image file to Glance
// (the command line for the run written into the uploaded bytes), runInstances() boots N Nova
// servers from it in one request and follows them to ACTIVE; the StackRun it returns reads
// their consoles and deletes them (and a per-run image) again.
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CloudError } from '../../errors.js';
import type { EventSink } from '../../events.js';
import { formatBytes, stepLogger, type LogOptions, type StepLogger } from '../../log.js';
import { startProgress } from '../../progress.js';
import { parseMemory } from '../../vm/memory.js';
import { runtimeCmdline, type RuntimeCmdlineOptions } from '../../vm/runtime-cmdline.js';
import { prepareUpload } from '../image-upload.js';
import { resolveAuthSettings, type AuthSettings, type AuthSourceOptions } from './clouds-yaml.js';
import {
  CAPSTAN_TAGS, createImageRecord, deleteImage, findImage, getImage, GLANCE, imagesNamed, uploadImageData, type GlanceImage,
} from './glance.js';
import { OpenStackSession, type SessionOptions } from './keystone.js';
import {
  computeMaxVersion, consoleOutput, createServers, deleteServer, listFlavors, namedFlavor, networkIds, NETWORKS_MICROVERSION, NOVA,
  pickFlavor, serversOfReservation, serversWithMetadata, versionAtLeast, type Flavor, type NetworksOption, type Server,
} from './nova.js';

const GiB = 1024 ** 3;
/** Metadata key that marks the servers of one run (to find them again after a lost answer). */
const RUN_KEY = 'capstan-run';

export interface StackOptions extends AuthSourceOptions, LogOptions {
  /** A session to reuse (several calls, one token); default: authenticate from the settings. */
  session?: OpenStackSession | undefined;
  /** The credentials themselves, instead of OS_* / clouds.yaml. */
  auth?: AuthSettings | undefined;
  /** Timeouts and retries of the HTTP calls. */
  http?: SessionOptions | undefined;
}

/** Authenticates once: the session can be passed to pushImage / runInstances as `session`. */
export async function connectOpenStack(options: StackOptions = {}): Promise<OpenStackSession> {
  if (options.session) return options.session;
  const settings = options.auth ?? resolveAuthSettings(options);
  const log = stepLogger('stack', options);
  return OpenStackSession.connect(settings, {
    ...options.http,
    onRetry: options.http?.onRetry ?? ((i) => log.warn(`${i.service}: ${i.what}: ${i.why}; retrying in ${(i.waitMs / 1000).toFixed(1)} s`)),
  });
}

export interface PushImageOptions extends StackOptions, RuntimeCmdlineOptions {
  /** The Glance image name. Default: the file's base name without extension. */
  name?: string | undefined;
  /** A flavor the image must fit; its disk becomes the image's `min_disk`, as in Capstan. */
  flavor?: string | undefined;
  /** Glance `min_ram` in MB. */
  minRam?: number | undefined;
  visibility?: 'private' | 'shared' | 'community' | 'public' | undefined;
  /** Default Capstan's `tagOSv`, `tagCapstan`. */
  tags?: string[] | undefined;
  /** Glance `os_type`. */
  osType?: string | undefined;
  /** More image properties (hw_disk_bus, …). */
  properties?: Record<string, string> | undefined;
  /**
   * Delete the older images of this name that gulp-capstan pushed (tagCapstan), once the new
   * one is active, so the name stays unambiguous for `stack run`. Default true.
   */
  replace?: boolean | undefined;
  /** Keep the local image file after the upload (Capstan's --keep-image). Default true here: the file is yours. */
  keepImage?: boolean | undefined;
  /** Upload attempts, each with a fresh image record. Default 3. */
  attempts?: number | undefined;
}

export interface PushedImage {
  id: string;
  name: string;
  size: number;
  virtualSize: number;
  checksum: string;
  diskFormat: 'qcow2' | 'raw';
  minDisk: number;
  /** The command line the uploaded image boots. */
  cmdline: string;
  /** Ids of the older images of the name that were deleted. */
  replaced: string[];
  ms: number;
}

/** Uploads an image file to Glance; resolves once the image is active and its checksum checked. */
export async function pushImage(file: string, options: PushImageOptions = {}): Promise<PushedImage> {
  const started = Date.now();
  const log = stepLogger('stack', options);
  const imageFile = path.resolve(file);
  const name = options.name ?? path.basename(imageFile).replace(/\.(qcow2|raw|img|qemu)$/i, '');
  // Capstan writes the run's command line into the image before the upload; we write it into
  // the bytes on their way (runtimeCmdline: execute, else the config sets, with env prefixes).
  let source = await prepareUpload(imageFile);
  const wanted = runtimeCmdline(options, source.cmdline);
  if (wanted !== undefined) source = await prepareUpload(imageFile, wanted);
  const session = await connectOpenStack(options);
  let minDisk = Math.max(1, Math.ceil(source.virtualSize / GiB));
  if (options.flavor !== undefined) {
    const flavor = namedFlavor(await listFlavors(session), options.flavor, { diskGB: minDisk, ramMB: options.minRam });
    reportFlavor(options.events, flavor, false);
    if (flavor.disk > minDisk) minDisk = flavor.disk;
  }
  const older = options.replace === false ? [] : (await imagesNamed(session, name)).filter((i) => i.tags?.includes('tagCapstan'));
  const attempts = Math.max(1, options.attempts ?? 3);
  let image: GlanceImage | undefined;
  for (let attempt = 1; ; attempt++) {
    const record = await createImageRecord(session, {
      name, diskFormat: source.format, minDisk, minRam: options.minRam, visibility: options.visibility,
      tags: options.tags ?? CAPSTAN_TAGS, properties: { ...(options.osType ? { os_type: options.osType } : {}), ...options.properties },
    });
    const progress = startProgress(`${name}: uploading to ${GLANCE}`, source.size, { silent: options.silent });
    let lastEvent = 0;
    try {
      image = await uploadImageData(session, record, source, ({ bytes, total }) => {
        progress.update(bytes);
        if (options.events && (bytes === total || Date.now() - lastEvent > 500)) {
          lastEvent = Date.now();
          options.events({ event: 'upload', target: 'glance', image: record.id, bytes, total, done: false });
        }
      });
      progress.stop();
      break;
    } catch (error) {
      progress.stop();
      // No half image may stay: the record goes, whatever state it reached.
      const left = await removeFailedImage(session, record.id);
      const retryable = error instanceof CloudError && (error.code === 'E_CLOUD_NETWORK' || error.code === 'E_CLOUD_UNAVAILABLE' || error.code === 'E_CLOUD_CHECKSUM');
      if (left || !retryable || attempt >= attempts) {
        if (left && error instanceof CloudError) {
          throw new CloudError(`${error.shortMessage}; and the unfinished image ${record.id} could not be deleted (${left})`, {
            code: error.code, file: error.file, service: error.service, status: error.status, cause: error,
            hint: `It is not active, so nothing boots it; delete it once ${GLANCE} answers again: openstack image delete ${record.id}`,
          });
        }
        throw error;
      }
      log.warn(`${name}: the upload failed (${(error as Error).message.split('\n')[0]}); trying again (${attempt + 1}/${attempts})`);
    }
  }
  options.events?.({ event: 'upload', target: 'glance', image: image.id, bytes: source.size, total: source.size, done: true });
  const replaced: string[] = [];
  for (const old of older) {
    if (old.id === image.id) continue;
    await deleteImage(session, old.id);
    replaced.push(old.id);
  }
  if (options.keepImage === false) await rm(imageFile, { force: true });
  const pushed: PushedImage = {
    id: image.id, name, size: source.size, virtualSize: source.virtualSize, checksum: image.checksum ?? '', diskFormat: source.format,
    minDisk, cmdline: source.cmdline, replaced, ms: Date.now() - started,
  };
  options.events?.({ event: 'image-pushed', target: 'glance', id: pushed.id, name, size: pushed.size, checksum: pushed.checksum, ms: pushed.ms });
  log.note(`${name}: pushed to ${GLANCE} as ${image.id} (${formatBytes(source.size)}, min_disk ${minDisk} GB) in ${(pushed.ms / 1000).toFixed(1)} s` +
    (replaced.length ? `, replacing ${replaced.join(', ')}` : ''));
  return pushed;
}

/** Deletes an image record after a failed upload; resolves with why it could not, if it could not. */
async function removeFailedImage(session: OpenStackSession, id: string): Promise<string | undefined> {
  try {
    await deleteImage(session, id);
    return undefined;
  } catch (error) {
    return (error as Error).message.split('\n')[0];
  }
}

export interface RunInstancesOptions extends StackOptions, RuntimeCmdlineOptions {
  /** Server name; N servers are `<name>-1` … `<name>-N` (Nova's naming, as Capstan's). Default `instance-of-<image>`. */
  name?: string | undefined;
  /** Number of servers, created in one request. Default 1. */
  count?: number | undefined;
  /** Flavor name or id; default the smallest that fits the image and `memory`. */
  flavor?: string | undefined;
  /** Memory the flavor must have: `512M`, `1G`, or MB as a number. */
  memory?: string | number | undefined;
  /** `auto` (default: Nova gives each server a network of the project), `none`, or network names / ids. */
  networks?: NetworksOption | undefined;
  /** Server metadata. */
  metadata?: Record<string, string> | undefined;
  /** Wait until every server is ACTIVE (default true). */
  wait?: boolean | undefined;
  /** ms for all servers to become ACTIVE. Default 600000. */
  timeoutMs?: number | undefined;
  /** Delete the servers when one goes to ERROR or the wait times out (default true). */
  cleanupOnError?: boolean | undefined;
  /** For an image file: delete the per-run Glance image with the servers (default true). */
  deleteImageWithServers?: boolean | undefined;
  /** Image options for a per-run push of a file. */
  push?: Omit<PushImageOptions, keyof StackOptions | keyof RuntimeCmdlineOptions> | undefined;
  /** Poll interval while waiting, ms. Default 2000. */
  pollMs?: number | undefined;
}

/** A Glance image (name or id), or an image file pushed for this run. */
export type StackImage = string | { file: string };

/** Boots N servers from an image; resolves when they are ACTIVE (or at once with `wait: false`). */
export async function runInstances(image: StackImage, options: RunInstancesOptions = {}): Promise<StackRun> {
  const started = Date.now();
  const log = stepLogger('stack', options);
  const count = options.count ?? 1;
  if (!Number.isInteger(count) || count < 1) {
    throw new CloudError(`bad server count ${count}`, { code: 'E_CLOUD_COUNT', hint: 'Give a whole number ≥ 1.' });
  }
  const session = await connectOpenStack(options);
  let glance: GlanceImage;
  let perRun: PushedImage | undefined;
  if (typeof image === 'string') {
    if (runtimeCmdline(options) !== undefined) {
      throw new CloudError('a pushed image carries its command line: execute, boot and env cannot change it at run time', {
        code: 'E_CLOUD_CMDLINE', service: GLANCE, hint: 'Push the image again with the command line (stack push --run …), or run the image file ({ file }) for a per-run image.',
      });
    }
    glance = await findImage(session, image);
  } else {
    perRun = await pushImage(image.file, {
      ...options.push, session, events: options.events, silent: options.silent, verbose: options.verbose, logTo: options.logTo,
      execute: options.execute, boot: options.boot, env: options.env,
      name: options.push?.name ?? `${options.name ?? path.basename(image.file).replace(/\.(qcow2|raw|img|qemu)$/i, '')}-run-${randomUUID().slice(0, 8)}`,
      replace: false,
    });
    const g = await getImage(session, perRun.id);
    if (!g) throw new CloudError(`the per-run image ${perRun.id} vanished`, { code: 'E_CLOUD_NO_IMAGE', service: GLANCE });
    glance = g;
  }
  const imageName = glance.name ?? glance.id;
  const name = options.name ?? `instance-of-${imageName}`;
  try {
    if (glance.status !== 'active') {
      throw new CloudError(`the image "${imageName}" (${glance.id}) is ${glance.status}, not active`, {
        code: 'E_CLOUD_IMAGE_NOT_ACTIVE', service: GLANCE, hint: 'Its upload did not finish; push it again.',
      });
    }
    const diskGB = Math.max(glance.min_disk ?? 0, glance.virtual_size ? Math.ceil(glance.virtual_size / GiB) : 0, 1);
    const ramMB = Math.max(options.memory !== undefined ? parseMemory(options.memory) : 0, glance.min_ram ?? 0) || undefined;
    const flavors = await listFlavors(session);
    const flavor = options.flavor !== undefined ? namedFlavor(flavors, options.flavor, { diskGB, ramMB }) : pickFlavor(flavors, { diskGB, ramMB });
    reportFlavor(options.events, flavor, options.flavor === undefined);
    log.note(`${options.flavor === undefined ? 'picked' : 'using'} flavor ${flavor.name} (disk ${flavor.disk} GB, memory ${flavor.ram} MB)`);
    const max = await computeMaxVersion(session);
    const microversion = versionAtLeast(max, NETWORKS_MICROVERSION) ? NETWORKS_MICROVERSION : '2.1';
    const networksOption = options.networks ?? 'auto';
    const networks = Array.isArray(networksOption) ? await networkIds(session, networksOption) : networksOption;
    const tag = randomUUID();
    let reservation: string;
    try {
      reservation = await createServers(session, {
        name, imageId: glance.id, flavorId: flavor.id, count, networks, microversion,
        metadata: { ...options.metadata, [RUN_KEY]: tag },
      });
    } catch (error) {
      // The request may have been carried out though its answer was lost: find the run by its tag.
      if (!(error instanceof CloudError) || error.code !== 'E_CLOUD_NETWORK') throw error;
      const found = await serversWithMetadata(session, name, RUN_KEY, tag, microversion).catch(() => []);
      if (found.length === 0) throw error;
      await Promise.all(found.map((s) => deleteServer(session, s.id).catch(() => {})));
      throw new CloudError(`${error.shortMessage}; the ${found.length} server(s) it created were deleted again`, {
        code: error.code, service: NOVA, cause: error, hint: 'Run again.',
      });
    }
    const run = new StackRun(session, { reservation, name, count, flavor, image: glance, perRun, microversion, options, log, started });
    if (options.wait !== false) await run.waitActive();
    return run;
  } catch (error) {
    if (perRun && options.deleteImageWithServers !== false) await deleteImage(session, perRun.id).catch(() => {});
    throw error;
  }
}

function reportFlavor(events: EventSink | undefined, f: Flavor, picked: boolean): void {
  events?.({ event: 'flavor', id: f.id, name: f.name, disk: f.disk, ram: f.ram, vcpus: f.vcpus, picked });
}

interface RunSpec {
  reservation: string;
  name: string;
  count: number;
  flavor: Flavor;
  image: GlanceImage;
  perRun: PushedImage | undefined;
  microversion: string;
  options: RunInstancesOptions;
  log: StepLogger;
  started: number;
}

/** The servers of one `runInstances`: their state, their consoles, their end. */
export class StackRun {
  readonly reservation: string;
  readonly name: string;
  readonly count: number;
  readonly flavor: Flavor;
  readonly image: GlanceImage;
  /** The image pushed for this run (an image file was run), deleted with the servers. */
  readonly perRunImage: PushedImage | undefined;
  /** The servers as last seen, by name. */
  servers: Server[] = [];
  private readonly seen = new Map<string, string>();

  constructor(readonly session: OpenStackSession, private readonly spec: RunSpec) {
    this.reservation = spec.reservation;
    this.name = spec.name;
    this.count = spec.count;
    this.flavor = spec.flavor;
    this.image = spec.image;
    this.perRunImage = spec.perRun;
  }

  /** Reads the servers' state again (and reports changes as `server` events). */
  async refresh(): Promise<Server[]> {
    this.servers = await serversOfReservation(this.session, this.reservation, this.spec.microversion);
    for (const s of this.servers) this.report(s);
    return this.servers;
  }

  private report(s: Server): void {
    const state = `${s.status}/${s['OS-EXT-STS:task_state'] ?? ''}`;
    if (this.seen.get(s.id) === state) return;
    this.seen.set(s.id, state);
    const task = s['OS-EXT-STS:task_state'];
    this.spec.options.events?.({
      event: 'server', id: s.id, name: s.name, status: s.status, reservation: this.reservation, ms: Date.now() - this.spec.started,
      fault: s.fault?.message,
    });
    this.spec.log.detail(`${s.name} (${s.id}): ${s.status}${task ? ` (${task})` : ''}`);
  }

  /** Waits until every server is ACTIVE; a server in ERROR, or the timeout, fails (and deletes them, by default). */
  async waitActive(): Promise<Server[]> {
    const o = this.spec.options;
    const deadline = Date.now() + (o.timeoutMs ?? 600_000);
    let poll = Math.min(1000, o.pollMs ?? 2000);
    for (;;) {
      const servers = await this.refresh();
      const failed = servers.filter((s) => s.status === 'ERROR');
      if (failed.length) {
        const why = failed.map((s) => `${s.name}: ${s.fault?.message ?? 'no fault given'}`).join('; ');
        await this.failed();
        throw new CloudError(`${failed.length} of ${this.count} server${this.count > 1 ? 's' : ''} went to ERROR: ${why}`, {
          code: 'E_CLOUD_SERVER_ERROR', service: NOVA,
          hint: /valid host|No valid host/i.test(why)
            ? 'The scheduler found no compute host with room for the flavor: a smaller flavor, fewer servers, or free capacity.'
            : 'See the fault; nova-compute\'s log on the host says more.',
        });
      }
      if (servers.length >= this.count && servers.every((s) => s.status === 'ACTIVE')) {
        this.spec.log.note(`${this.count} server${this.count > 1 ? 's' : ''} ACTIVE in ${((Date.now() - this.spec.started) / 1000).toFixed(1)} s: ` +
          servers.map((s) => `${s.name} ${s.id}`).join(', '));
        return servers;
      }
      if (Date.now() > deadline) {
        await this.failed();
        throw new CloudError(`the servers were not all ACTIVE within ${((o.timeoutMs ?? 600_000) / 1000).toFixed(0)} s: ${servers.map((s) => `${s.name} ${s.status}`).join(', ') || 'none listed'}`, {
          code: 'E_CLOUD_TIMEOUT', service: NOVA, hint: 'The cloud is slow or stuck; raise timeoutMs, or look at nova-compute\'s log.',
        });
      }
      await delay(poll);
      poll = Math.min(o.pollMs ?? 2000, poll * 2);
    }
  }

  private async failed(): Promise<void> {
    if (this.spec.options.cleanupOnError === false) return;
    await this.delete().catch(() => {});
  }

  /** The console output of one server (all of it, or the last `length` lines); undefined while it has none. */
  console(serverId: string, length?: number): Promise<string | undefined> {
    return consoleOutput(this.session, serverId, length);
  }

  /** Waits until every server's console shows `marker`; resolves with each console. */
  async waitForConsole(marker: string | RegExp, timeoutMs = 120_000): Promise<Map<string, string>> {
    const deadline = Date.now() + timeoutMs;
    const found = new Map<string, string>();
    for (;;) {
      for (const s of this.servers) {
        if (found.has(s.id)) continue;
        const text = await this.console(s.id);
        if (text !== undefined && (typeof marker === 'string' ? text.includes(marker) : marker.test(text))) found.set(s.id, text);
      }
      if (found.size >= this.servers.length) return found;
      if (Date.now() > deadline) {
        const missing = this.servers.filter((s) => !found.has(s.id)).map((s) => s.name);
        throw new CloudError(`"${String(marker)}" did not appear on the console of ${missing.join(', ')} within ${timeoutMs / 1000} s`, {
          code: 'E_CLOUD_CONSOLE_TIMEOUT', service: NOVA, hint: 'Read the console (console()) to see what the guest printed.',
        });
      }
      await delay(1000);
    }
  }

  /** Deletes the servers (and the per-run image), waiting until Nova no longer lists them. */
  async delete(timeoutMs = 300_000): Promise<void> {
    const servers = await serversOfReservation(this.session, this.reservation, this.spec.microversion);
    await Promise.all(servers.map((s) => deleteServer(this.session, s.id)));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = (await serversOfReservation(this.session, this.reservation, this.spec.microversion)).filter((s) => s.status !== 'DELETED');
      if (left.length === 0) break;
      if (Date.now() > deadline) {
        throw new CloudError(`servers still listed ${timeoutMs / 1000} s after their deletion: ${left.map((s) => `${s.name} ${s.status}`).join(', ')}`, {
          code: 'E_CLOUD_TIMEOUT', service: NOVA, hint: 'Nova is slow to clean up; check again later (openstack server list).',
        });
      }
      await delay(1000);
    }
    for (const s of servers) {
      this.spec.options.events?.({ event: 'server', id: s.id, name: s.name, status: 'DELETED', reservation: this.reservation, ms: Date.now() - this.spec.started });
    }
    this.servers = [];
    if (this.perRunImage && this.spec.options.deleteImageWithServers !== false) await deleteImage(this.session, this.perRunImage.id);
    this.spec.log.note(`deleted ${servers.length} server${servers.length === 1 ? '' : 's'} of ${this.name}${this.perRunImage && this.spec.options.deleteImageWithServers !== false ? ` and image ${this.perRunImage.id}` : ''}`);
  }
}
