// Composes a writable ZFS image (osv-image-formats.md §4, §7, §8): the files are gathered
// first (zfs-files.ts), then our code writes the disk (loader, MBR entry, command line;
// zfs-disk.ts), the OSv ZFS builder boots on it with -kernel and receives the files from us
// as a cpio newc stream (lib/vm/zfs-builder.ts), and the result is checked (the pool's vdev
// labels) before it is moved to `out`. With `update`, the image itself is booted with cpiod
// instead and only files whose hash changed are sent (hash-cache.ts).
//
// `out` is only ever replaced whole: every run works on a temp file beside it (a copy, for an
// update) and renames it over `out` once the VM exited cleanly and the disk checks out; on
// any failure the temp file is removed and the previous image stays. The hash cache is
// removed before that rename and written after it, so a cache never describes another image.
import { stat, unlink, readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TempFile } from '../atomic-file.js';
import type { ImageInfo } from '../carrier.js';
import { ImageError } from '../errors.js';
import { runUploadVm, UploadVmError, type UploadSink, type UploadVmOptions, type UploadVmResult } from '../vm/zfs-builder.js';
import type { AccelChoice } from '../vm/accel.js';
import { checkCmdline } from './cmdline.js';
import { checkOutPath, checkImageFormat } from './compose.js';
import { CpioWriter } from './cpio.js';
import type { ImageFormat } from './disk.js';
import { directoryHash, hashCachePath, planZfsUpdate, readHashCache, writeHashCache, type HashCache } from './hash-cache.js';
import { readLoader, type OsvLoader } from './loader.js';
import { inspectKernel, kernelOfLoader, type KernelFacts } from './osv-kernel.js';
import { probeImageFormat } from './probe.js';
import { parseDiskSize } from './size.js';
import type { VmdkSubformat } from './vmdk.js';
import { checkZfsDisk, convertQcow2Disk, copyDisk, diskHasLoader, patchDiskCmdline, planZfsDisk, writeZfsDisk, ZFS_DEFAULT_SIZE, type ZfsDiskPlan } from './zfs-disk.js';
import { md5, ZfsFiles, type ZfsAddResult, type ZfsEntry, type ZfsEntryOptions, type ZfsFilesSummary } from './zfs-files.js';
import { builderCmdline, builderMissing, decideZfsLayout, UPDATE_CMDLINE, ZFS_LAYOUTS, zfsImageCmdline, type LayoutDecision, type ZfsLayout } from './zfs-layout.js';

export interface ZfsComposeOptions {
  out: string;
  /** The loader file (already resolved and, if named, pulled). */
  loader: string;
  format?: ImageFormat | undefined;
  vmdkSubformat?: VmdkSubformat | undefined;
  /** Whole disk size (`10G`, `512M`, or bytes); default 10G, as Capstan. */
  size?: string | number | undefined;
  /** The ZFS builder kernel ELF; asked for only when a full build is needed. */
  builder: () => Promise<string>;
  /** Dataset layout, when the loader cannot tell (§4.5). */
  layout?: ZfsLayout | undefined;
  /** Send only what changed to the existing image (Capstan's --update). */
  update?: boolean | undefined;
  /** With `update`: files gone from the build stay in the image (`keep`, Capstan) or force a rebuild. */
  updateDeleted?: 'keep' | 'rebuild' | undefined;
  qemu?: string | undefined;
  accel?: AccelChoice | undefined;
  /** Guest memory of the builder / update VM in MiB (default 512). */
  memoryMiB?: number | undefined;
  /** Timeouts of the VM session (see UploadVmOptions). */
  timeouts?: Pick<UploadVmOptions, 'readyTimeoutMs' | 'stallTimeoutMs' | 'eofTimeoutMs' | 'exitTimeoutMs'> | undefined;
  hostEnv?: NodeJS.ProcessEnv | undefined;
  log?: { note(m: string): void; detail(m: string): void; warn(m: string): void } | undefined;
}

export interface ZfsComposeSummary extends ZfsFilesSummary {
  /** `build` (the builder made a new pool) or `update` (the image received changed files). */
  mode: 'build' | 'update';
  layout: ZfsLayout;
  /** Entries sent to cpiod, and (update) left alone. */
  sent: number;
  unchanged: number;
  /** Paths no longer in the build that stay in the image (update). */
  gone: number;
  /** Why an update was done as a full build, when it was. */
  rebuiltBecause?: string | undefined;
  /** Timings of the VM session, ms; undefined when no VM ran (an update with nothing to send). */
  vm?: UploadVmResult['timings'] | undefined;
  accel?: string | undefined;
  ms: number;
}

export interface ComposedZfsImage {
  info: ImageInfo;
  zfs: ZfsComposeSummary;
}

const NOOP_LOG = { note() {}, detail() {}, warn() {} };

/**
 * What an image must hold for --update: cpiod, and the libraries it links (libzfs.so provides
 * its `mkdirp`; without it the guest aborts with "failed looking up symbol mkdirp"). Capstan's
 * osv.bootstrap package ships all three.
 */
export const UPDATE_NEEDS = ['/tools/cpiod.so', '/libzfs.so', '/libuutil.so'];

export class ZfsImageComposer {
  readonly out: string;
  readonly format: ImageFormat;
  readonly plan: ZfsDiskPlan;
  private readonly loader: OsvLoader;
  private readonly loaderKernel: Buffer | undefined;
  private readonly loaderFacts: KernelFacts | undefined;
  private readonly options: ZfsComposeOptions;
  private readonly files: ZfsFiles;
  private readonly log: NonNullable<ZfsComposeOptions['log']>;
  private state: 'open' | 'done' | 'aborted' = 'open';
  /** Temp files of this build, each removed if the process ends first. */
  private readonly temps = new Map<string, TempFile>();

  private constructor(options: ZfsComposeOptions, out: string, format: ImageFormat, loader: OsvLoader, plan: ZfsDiskPlan, kernel: Buffer | undefined) {
    this.options = options;
    this.out = out;
    this.format = format;
    this.loader = loader;
    this.plan = plan;
    this.loaderKernel = kernel;
    this.loaderFacts = kernel ? inspectKernel(kernel) : undefined;
    this.files = new ZfsFiles(this.temp('spool'));
    this.log = options.log ?? NOOP_LOG;
  }

  /** Checks the options and the loader (it must be able to mount ZFS), before any file is read. */
  static async open(options: ZfsComposeOptions): Promise<ZfsImageComposer> {
    const out = path.resolve(options.out);
    await checkOutPath(out);
    const format = options.format ?? 'qcow2';
    checkImageFormat(format, options.vmdkSubformat);
    const requested = options.size === undefined ? ZFS_DEFAULT_SIZE : parseDiskSize(options.size);
    const loader = await readLoader(options.loader, options.loader);
    const plan = planZfsDisk(loader.bytes.length, requested, format);
    const kernel = kernelOfLoader(loader.bytes); // a qcow2 loader's bytes reach the kernel's end too
    const composer = new ZfsImageComposer(options, out, format, loader, plan, kernel);
    const facts = composer.loaderFacts;
    if (facts && !facts.zfs) {
      throw new ImageError('this loader cannot mount a ZFS root: its kernel\'s bootfs has no /usr/lib/fs/libsolaris.so (it was built with fs=rofs)', {
        code: 'E_ZFS_LOADER', file: loader.path,
        hint: 'Use a loader built with fs=zfs (the release osv-loader is one), or build a ROFS image (fs: "rofs").',
      });
    }
    if (facts) decideZfsLayout(facts, undefined, options.layout, { loader: loader.path }); // a contradicting option fails now
    return composer;
  }

  private temp(suffix: string): string {
    const t = TempFile.beside(this.out, suffix);
    this.temps.set(t.path, t);
    return t.path;
  }

  addFile(guestPath: string, content: Uint8Array | AsyncIterable<Uint8Array | string> | undefined, options?: ZfsEntryOptions): Promise<ZfsAddResult> {
    this.checkOpen();
    return this.files.addFile(guestPath, content, options);
  }

  addDirectory(guestPath: string, options?: ZfsEntryOptions): ZfsAddResult {
    this.checkOpen();
    return this.files.addDirectory(guestPath, options);
  }

  addSymlink(guestPath: string, target: string, options?: ZfsEntryOptions): ZfsAddResult {
    this.checkOpen();
    return this.files.addSymlink(guestPath, target, options);
  }

  /** An aborted build takes nothing more (a new file would reopen the spool after its cleanup). */
  private checkOpen(): void {
    if (this.state !== 'open') throw new ImageError(`the image is ${this.state === 'aborted' ? 'aborted' : 'already finished'}`, { code: 'E_IMAGE_STATE' });
  }

  /** Builds (or updates) the image with `cmdline` and moves it to `out`. */
  async finish(cmdline: string): Promise<ComposedZfsImage> {
    this.checkOpen();
    const started = Date.now();
    try {
      const final = zfsImageCmdline(cmdline);
      checkCmdline(final);
      const counts = this.files.summary();
      let rebuiltBecause: string | undefined;
      if (this.options.update) {
        const attempt = await this.tryUpdate(final, counts, started);
        if (typeof attempt !== 'string') { this.state = 'done'; return attempt; }
        rebuiltBecause = attempt;
        this.log.note(`update: ${attempt}; building the image from scratch`);
      }
      const result = await this.build(final, counts, started, rebuiltBecause);
      this.state = 'done';
      return result;
    } finally {
      await this.cleanup();
    }
  }

  /** Drops the unfinished image; `out` is untouched. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.cleanup();
  }

  private async cleanup(): Promise<void> {
    // The temp files are unlinked at once (TempFile.discard), before anything is awaited.
    const removed = [...this.temps.values()].map((t) => t.discard());
    this.temps.clear();
    await this.files.close();
    await Promise.all(removed);
  }

  private info(cmdline: string, counts: ZfsFilesSummary): ImageInfo {
    return {
      format: this.format,
      ...(this.format === 'vmdk' ? { vmdkSubformat: this.options.vmdkSubformat ?? 'monolithicSparse' } : {}),
      virtualSize: this.plan.total,
      partition: { start: this.plan.partitionStart, size: this.plan.partitionSize },
      cmdline,
      loader: this.loader.path,
      inodes: counts.files + counts.directories + counts.symlinks + 1,
      fs: 'zfs',
    };
  }

  // ---- full build through the OSv ZFS builder ----

  private async build(cmdline: string, counts: ZfsFilesSummary, started: number, rebuiltBecause: string | undefined): Promise<ComposedZfsImage> {
    const builderPath = await this.options.builder();
    const builderKernel = await readFile(builderPath).catch((error: unknown) => {
      throw new ImageError('cannot read the ZFS builder', { code: 'E_ZFS_BUILDER_MISSING', file: builderPath, cause: error, hint: 'Give zfsBuilder as the path of zfs_builder-stripped.elf (or osv-zfs-builder.elf.x86_64), or a repository name.' });
    });
    const builderFacts = inspectKernel(builderKernel);
    const decision = decideZfsLayout(this.loaderFacts, builderFacts, this.options.layout, { loader: this.loader.path, builder: builderPath });
    this.checkBuilder(builderPath, builderFacts, decision);
    if (counts.fileBytes > this.plan.partitionSize) {
      // Not an error: the pool has lz4 compression on while cpiod writes (mkfs.so sets it).
      this.log.warn(`the files take ${formatSize(counts.fileBytes)} but the ZFS partition has ${formatSize(this.plan.partitionSize)}: they fit only if they compress (give a larger \`size\` otherwise)`);
    }
    const workFormat = this.format === 'raw' ? 'raw' : 'qcow2';
    const working = this.temp('tmp');
    await writeZfsDisk(working, workFormat, this.loader, this.plan, cmdline);
    const entries = [...this.files.entries()];
    const vm = await this.runVm({ kernel: builderPath, append: builderCmdline(decision.layout), disk: { path: working, format: workFormat }, name: 'zfs-builder' }, entries, 'build');
    const check = await checkZfsDisk(working, workFormat, this.plan, cmdline, decision.layout === 'master' ? 'exported' : undefined);
    this.log.detail(`pool ${check.label.name} (${check.label.state}, txg ${check.label.uberblockTxg})`);
    let ready = working;
    if (this.format !== workFormat) {
      ready = this.temp('tmp');
      await convertQcow2Disk(working, ready, this.format, { vmdkSubformat: this.options.vmdkSubformat, vmdkExtentName: path.basename(this.out) });
    }
    const cache: HashCache = new Map();
    for (const e of entries) cache.set(e.path, { md5: this.hashOf(e), symlink: e.type === 'symlink' });
    await this.publish(ready, cache);
    return {
      info: this.info(cmdline, counts),
      zfs: { ...counts, mode: 'build', layout: decision.layout, sent: entries.length, unchanged: 0, gone: 0, rebuiltBecause, vm: vm.timings, accel: vm.accel, ms: Date.now() - started },
    };
  }

  private checkBuilder(file: string, facts: KernelFacts, decision: LayoutDecision): void {
    if (!facts.bootfs) {
      throw new ImageError('this is not an OSv ZFS builder: no bootfs was found in it', { code: 'E_ZFS_BUILDER_INVALID', file, hint: 'Use zfs_builder-stripped.elf from an OSv build, or the release asset osv-zfs-builder.elf.x86_64.gz (gunzipped).' });
    }
    const missing = builderMissing(facts, decision.layout);
    if (missing) {
      throw new ImageError(`this ZFS builder has no ${missing} in its bootfs, which the "${decision.layout}" layout${decision.from === 'loader' ? ' (what the loader mounts)' : ''} needs`, {
        code: 'E_ZFS_BUILDER_INVALID', file,
        hint: missing === '/tools/umount.so' ? 'It is an older builder (v0.57.0 or before): take the builder from the same OSv build or release as the loader.' : 'Use the ZFS builder from the same OSv build or release as the loader.',
      });
    }
    const want = this.loaderFacts?.version;
    if (want && facts.version && want !== facts.version) {
      this.log.warn(`the ZFS builder is OSv ${facts.version} but the loader is ${want}; take both from the same release if the image does not boot`);
    }
  }

  private hashOf(e: ZfsEntry): string {
    if (e.type === 'dir') return directoryHash(e.path);
    if (e.type === 'symlink') return md5(e.target);
    return this.files.md5(e);
  }

  /** Runs the upload VM, sending `entries`; turns its failure into an error that says what to do. */
  private async runVm(vm: Pick<UploadVmOptions, 'kernel' | 'append' | 'disk' | 'name'>, entries: ZfsEntry[], mode: 'build' | 'update'): Promise<UploadVmResult> {
    const o = this.options;
    try {
      return await runUploadVm({
        ...vm, qemu: o.qemu, accel: o.accel, memoryMiB: o.memoryMiB, hostEnv: o.hostEnv, ...o.timeouts,
        onLine: (line) => this.log.detail(`${vm.name}: ${line}`),
        onFallback: (reason) => this.log.warn(`${vm.name}: ${reason}`),
      }, (sink) => this.send(sink, entries));
    } catch (error) {
      if (!(error instanceof UploadVmError)) throw error;
      const size = `disk ${formatSize(this.plan.total)}, ZFS partition ${formatSize(this.plan.partitionSize)}`;
      const line = error.failureLine;
      const full = line !== undefined && /No space left|out of space|ENOSPC/i.test(line);
      const fileBytes = this.files.summary().fileBytes;
      // ZFS needs room beyond the data (metadata, slop space); near full, a pool under TCG may
      // also just stop taking data, which ends in the stall timeout rather than ENOSPC.
      const tight = fileBytes > 0.75 * this.plan.partitionSize;
      const pool = line !== undefined && /cannot create|zpool|mkfs|vdev/i.test(line);
      const what = mode === 'build' ? 'the OSv ZFS builder failed' : 'the update VM (the image booted with cpiod) failed';
      const kept = mode === 'build' ? 'The previous image (if any) was kept.' : 'The previous image was kept.';
      const bigger = `give a larger \`size\` (now ${formatSize(this.plan.total)}; the files take ${formatSize(fileBytes)})`;
      throw new ImageError(`${what} (${size}): ${line ? `"${line}"` : error.reason}\n  ${error.message.split('\n').slice(1).join('\n  ')}`, {
        code: full ? 'E_ZFS_FULL' : mode === 'build' ? 'E_ZFS_BUILDER_FAILED' : 'E_ZFS_UPDATE_FAILED', file: this.out, cause: error,
        hint: full ? `The pool ran out of space: ${bigger}. ${kept}`
          : tight ? `The files nearly fill the pool, and ZFS needs room beyond them: ${bigger}. ${kept}`
            : pool ? `The builder could not create the pool in the partition: check \`size\` and that the builder comes from the same OSv release or build as the loader. ${kept}`
              : mode === 'update' ? `${kept} Run the build without \`update\` to rebuild it from scratch.`
                : `${kept} Check that the builder comes from the same OSv release or build as the loader (zfsBuilder), and see the console lines above.`,
      });
    }
  }

  /** The cpio stream: every entry, then the trailer. */
  private async send(sink: UploadSink, entries: ZfsEntry[]): Promise<void> {
    const writer = new CpioWriter(sink);
    for (const e of entries) {
      if (e.type === 'dir') await writer.directory(e.path, e.mode);
      else if (e.type === 'symlink') await writer.symlink(e.path, e.target, e.mode);
      else await writer.file(e.path, e.size, asAsync(this.files.read(e)), e.mode, e.source);
    }
    await writer.end();
  }

  /** Renames `ready` over `out`, the old cache removed first and the new one written after. */
  private async publish(ready: string, cache: HashCache): Promise<void> {
    const cachePath = hashCachePath(this.out);
    await unlink(cachePath).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw error; });
    await this.temps.get(ready)!.publish(this.out);
    this.temps.delete(ready);
    await writeHashCache(cachePath, cache).catch((error: unknown) => {
      this.log.warn(`could not write the hash cache ${cachePath} (${(error as Error).message}); the next update will rebuild the image`);
    });
  }

  // ---- update: boot the image itself with cpiod ----

  /** Updates in place (on a copy) when it can; otherwise says why a rebuild is needed. */
  private async tryUpdate(cmdline: string, counts: ZfsFilesSummary, started: number): Promise<ComposedZfsImage | string> {
    const existing = await stat(this.out).catch(() => undefined);
    if (!existing) return `there is no image at ${this.out} yet`;
    if (this.format !== 'qcow2' && this.format !== 'raw') return `an update works on qcow2 and raw images, not ${this.format}`;
    const probed = await probeImageFormat(this.out);
    if (probed !== this.format) return `the image at ${this.out} is ${probed}, not ${this.format}`;
    const previous = await readHashCache(hashCachePath(this.out));
    if (!previous) return `there is no usable hash cache (${path.basename(hashCachePath(this.out))}) beside the image`;
    const disk = await checkZfsDisk(this.out, this.format, this.plan, undefined).catch((error: unknown) => error as Error);
    if (disk instanceof Error) return `the existing image does not match this build (${disk instanceof ImageError ? disk.shortMessage : disk.message}; a different size or loader?)`;
    if (!await diskHasLoader(this.out, this.format, this.loader)) return 'the image was made with another loader';
    const missing = UPDATE_NEEDS.filter((p) => { const c = previous.get(p); return !c || c.symlink || c.md5 === directoryHash(p); });
    if (missing.length > 0) {
      return `the image has no ${missing.join(', ')} to receive the update (cpiod.so and the libzfs.so it links come with the osv.bootstrap package; add them to the image to make later updates possible)`;
    }
    const entries = [...this.files.entries()];
    const plan = planZfsUpdate(previous, entries.map((e) => ({ path: e.path, type: e.type, md5: this.hashOf(e) })));
    if (plan.rebuild) return plan.rebuild;
    if (plan.gone.length > 0) {
      if (this.options.updateDeleted === 'rebuild') return `${plan.gone.length} path(s) left the build (${plan.gone.slice(0, 3).join(', ')}${plan.gone.length > 3 ? ', …' : ''}) and updateDeleted is "rebuild"`;
      this.log.note(`update: ${plan.gone.length} path(s) left the build but stay in the image, as Capstan leaves them (${plan.gone.slice(0, 3).join(', ')}${plan.gone.length > 3 ? ', …' : ''}); set updateDeleted: "rebuild" to remove them`);
    }
    const format = this.format as 'qcow2' | 'raw';
    const toSend = entries.filter((e) => plan.send.has(e.path));
    const layout = this.loaderFacts?.zfsRootDataset ? decideZfsLayout(this.loaderFacts, undefined, this.options.layout, { loader: this.loader.path }).layout : this.options.layout ?? 'master';
    const summary = (vm?: UploadVmResult): ComposedZfsImage => ({
      info: this.info(cmdline, counts),
      zfs: { ...counts, mode: 'update', layout, sent: toSend.length, unchanged: plan.unchanged, gone: plan.gone.length, vm: vm?.timings, accel: vm?.accel, ms: Date.now() - started },
    });
    if (toSend.length === 0 && disk.cmdline === cmdline) {
      // Nothing to change in the image: leave it as it is, and only bring the cache up to date.
      await writeHashCache(hashCachePath(this.out), plan.cache);
      return summary();
    }
    const working = this.temp('tmp');
    await copyDisk(this.out, working, format);
    let vm: UploadVmResult | undefined;
    if (toSend.length > 0) {
      // The image's own kernel with -kernel (decompressed from its loader) when we have it; else its disk boot.
      const kernelDir = this.loaderKernel ? await mkdtemp(path.join(os.tmpdir(), 'capstan-kernel-')) : undefined;
      try {
        let kernel: string | undefined;
        if (kernelDir && this.loaderKernel) { kernel = path.join(kernelDir, 'kernel.elf'); await writeFile(kernel, this.loaderKernel); }
        await patchDiskCmdline(working, format, UPDATE_CMDLINE);
        vm = await this.runVm({ kernel, append: UPDATE_CMDLINE, disk: { path: working, format }, name: 'zfs-update' }, toSend, 'update');
      } finally {
        if (kernelDir) await rm(kernelDir, { recursive: true, force: true });
      }
    }
    await patchDiskCmdline(working, format, cmdline);
    await checkZfsDisk(working, format, this.plan, cmdline);
    await this.publish(working, plan.cache);
    return summary(vm);
  }
}

/** Checks the ZFS options of writeImage (thrown when the step is created). */
export function checkZfsOptions(options: { fs?: unknown; zfsLayout?: unknown; updateDeleted?: unknown; zfsBuilder?: unknown }): void {
  if (options.fs !== undefined && options.fs !== 'rofs' && options.fs !== 'zfs') {
    throw new ImageError(`unknown fs "${String(options.fs)}"`, { code: 'E_OPTIONS', hint: 'Use "rofs" (read-only, written by us) or "zfs" (writable, built by the OSv ZFS builder).' });
  }
  if (options.zfsLayout !== undefined && !ZFS_LAYOUTS.includes(options.zfsLayout as ZfsLayout)) {
    throw new ImageError(`unknown zfsLayout "${String(options.zfsLayout)}"`, { code: 'E_OPTIONS', hint: 'Use "master" or "v0.57", or leave it out (it is detected from the loader).' });
  }
  if (options.updateDeleted !== undefined && options.updateDeleted !== 'keep' && options.updateDeleted !== 'rebuild') {
    throw new ImageError(`unknown updateDeleted "${String(options.updateDeleted)}"`, { code: 'E_OPTIONS', hint: 'Use "keep" (Capstan\'s behaviour) or "rebuild".' });
  }
  if (options.fs !== 'zfs') {
    for (const name of ['zfsBuilder', 'zfsLayout', 'updateDeleted'] as const) {
      if (options[name] !== undefined) throw new ImageError(`\`${name}\` is a ZFS option, but fs is "rofs"`, { code: 'E_OPTIONS', hint: 'Set fs: "zfs", or leave the option out.' });
    }
  }
}

/** The ZFS part of writeImage's summary line. */
export function zfsSummaryNote(zfs: ZfsComposeSummary): string {
  const vm = zfs.vm ? `, VM ${(zfs.vm.exited / 1000).toFixed(1)} s${zfs.accel ? ` (${zfs.accel})` : ''}` : '';
  return zfs.mode === 'update'
    ? ` ZFS updated: ${zfs.sent} sent, ${zfs.unchanged} unchanged${zfs.gone ? `, ${zfs.gone} kept though gone from the build` : ''}${vm}`
    : ` ZFS (${zfs.layout} layout${zfs.rebuiltBecause ? ', rebuilt' : ''}${vm})`;
}

async function* asAsync(chunks: Iterable<Buffer>): AsyncGenerator<Buffer> {
  yield* chunks;
}

function formatSize(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  return gib >= 1 ? `${Number(gib.toFixed(2))} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}
