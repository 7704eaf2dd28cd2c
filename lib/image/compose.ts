// Composes one bootable OSv disk (§1–§3): the loader's bytes, the ROFS volume at the loader
// size rounded up to 2 MiB, the MBR entry naming it, and the command line at byte 512.
// Written to a temp file beside `out` and renamed over it only when complete, so an error or
// a killed process never leaves a partial image at `out`. With `incremental` (qcow2), the
// image may instead be an overlay over the previous one that reuses its data (incremental.ts).
import { stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { TempFile } from '../atomic-file.js';
import type { ImageInfo } from '../carrier.js';
import { ImageError } from '../errors.js';
import { CMDLINE_AREA_END, checkCmdline, encodeCmdlineArea, CMDLINE_OFFSET } from './cmdline.js';
import { createDiskWriter, IMAGE_FORMATS, type DiskWriter, type ImageFormat } from './disk.js';
import { gceDiskSize } from './gce.js';
import { BUILD_RECORD_VERSION, recordPathFor, writeBuildRecord, type BuildRecord, type FileIdentity } from './build-record.js';
import {
  contentFacts, fileIdentity, incrementalSettings, IncrementalBase, openIncrementalBase, recordEntries, removeGenerations,
  trustworthy, type IncrementalOptions, type IncrementalSettings, type SourceFacts,
} from './incremental.js';
import { readLoader, resolveLoaderPath, type OsvLoader } from './loader.js';
import { MAX_SECTORS, partitionStartFor, SECTOR, withRootPartition } from './mbr.js';
import { normalGuestPath, RofsBuilder, type AddResult, type EntryOptions, type RofsSummary } from './rofs-builder.js';
import { parseDiskSize } from './size.js';
import { VMDK_SUBFORMATS, type VmdkSubformat } from './vmdk.js';

export interface ComposeImageOptions {
  /** The image to write. Its folder must exist. */
  out: string;
  /** A loader path, or the name of a loader in the local repository. Default `osv-loader`. */
  loader?: string | undefined;
  /** Capstan root for repository names (default $CAPSTAN_ROOT, else ~/.capstan). */
  root?: string | undefined;
  /** Output format: `qcow2` (default), `raw`, `vmdk`, `vdi` or `gce` (a tar.gz holding disk.raw). */
  format?: ImageFormat | undefined;
  /** For `vmdk`: `monolithicSparse` (default) or `streamOptimized`. */
  vmdkSubformat?: VmdkSubformat | undefined;
  /** Virtual disk size (`"10G"`, `"512M"`, or bytes). Default: just large enough. */
  size?: string | number | undefined;
  /** Keep permission bits in ROFS inodes (OSv ignores them). Default false. */
  permissions?: boolean | undefined;
  /**
   * Reuse the previous image's data blocks (qcow2 only; other formats are built in full): the
   * image becomes an overlay over the previous one, frozen as a hidden generation file beside
   * `out`. `true`, or options. See incremental.ts.
   */
  incremental?: boolean | IncrementalOptions | undefined;
}

export interface ComposedImage {
  info: ImageInfo;
  rofs: RofsSummary;
  /** With `incremental`: how this image was made. */
  incremental?: IncrementalSummary | undefined;
}

export interface IncrementalSummary {
  /** `incremental`: an overlay over the previous image; `full`: a standalone image. */
  mode: 'incremental' | 'full';
  /** Why the build was a full one. */
  reason?: string | undefined;
  /** Generation files the image stands on (0 for a full image). */
  generation: number;
  /** Files whose data was reused, not read. */
  reused: number;
  /** Files written (new, changed, or not comparable). */
  written: number;
  /** Set when the build record could not be written (the next build will be a full one). */
  warning?: string | undefined;
}

/** File facts for addFile in an incremental build (ignored otherwise). */
export interface FileEntryOptions extends EntryOptions {
  /**
   * What identifies the content without reading it (the stat of a host file, or a hash).
   * Without it, content in memory is hashed and a stream is always written.
   */
  facts?: SourceFacts | undefined;
}

/** An incremental-capable build: where it stands and what it counts. */
interface IncrementalRun {
  settings: IncrementalSettings;
  /** Present when this image overlays the previous one. */
  base?: IncrementalBase | undefined;
  reason?: string | undefined;
  loader: BuildRecord['loader'];
  permissions: boolean;
  startedMs: number;
  reused: number;
  written: number;
  /** The last file reuse() could not reuse (so that addFile does not look it up twice). */
  miss?: { guestPath: string; facts: SourceFacts } | undefined;
}

export class ImageComposer {
  readonly out: string;
  /** Where the image is written until finish() moves it to `out`. */
  private readonly temp: TempFile;
  /** The loader's path, size and boot sector (its other bytes are in the image, not kept). */
  readonly loader: { path: string; format: OsvLoader['format']; size: number; bootSector: Buffer };
  readonly partitionStart: number;
  private readonly writer: DiskWriter;
  private readonly rofs: RofsBuilder;
  private readonly requestedSize: number | undefined;
  private state: 'open' | 'done' | 'aborted' = 'open';
  private vmdkSubformat: VmdkSubformat | undefined;
  private readonly incremental: IncrementalRun | undefined;
  /** With `incremental`: why this build is a full one (for the caller's log), if it is. */
  fullReason: string | undefined;

  private constructor(
    out: string, temp: TempFile, loader: ImageComposer['loader'], writer: DiskWriter, requestedSize: number | undefined,
    permissions: boolean, partitionStart: number, incremental?: IncrementalRun,
  ) {
    this.out = out;
    this.temp = temp;
    this.loader = loader;
    this.writer = writer;
    this.requestedSize = requestedSize;
    this.partitionStart = partitionStart;
    this.incremental = incremental;
    const start = this.partitionStart;
    const base = incremental?.base;
    const writeSync = writer.writeSync;
    this.rofs = new RofsBuilder(
      { write: (offset, data) => writer.write(start + offset, data), writeSync: writeSync && ((offset, data) => writeSync.call(writer, start + offset, data)) },
      // An overlay appends after the previous data, over the blocks of its old tables.
      { permissions, maxBytes: MAX_SECTORS * SECTOR - start, firstBlock: base ? base.record.dataBlocks + 1 : 1 },
    );
  }

  /** Checks the options, reads the loader, opens the temp file and writes the loader into it. */
  static async open(options: ComposeImageOptions): Promise<ImageComposer> {
    const out = path.resolve(options.out);
    await checkOutPath(out);
    const format = options.format ?? 'qcow2';
    checkImageFormat(format, options.vmdkSubformat);
    const requestedSize = options.size === undefined ? undefined : parseDiskSize(options.size);
    const settings = incrementalSettings(options.incremental);
    const permissions = options.permissions ?? false;
    const loaderName = options.loader ?? 'osv-loader';
    const loaderPath = resolveLoaderPath(loaderName, options.root);
    let reason: string | undefined;
    if (settings && format !== 'qcow2') {
      reason = `incremental images are qcow2 only: this ${format} image is built in full`;
    } else if (settings) {
      const overlay = await ImageComposer.openOverlay(out, loaderPath, permissions, settings, requestedSize);
      if (overlay instanceof ImageComposer) return overlay;
      reason = overlay;
    }
    const loader = await readLoader(loaderPath, loaderName);
    if (partitionStartFor(loader.bytes.length) / SECTOR > MAX_SECTORS) {
      throw new ImageError('the loader is too large: the partition would start beyond 2 TiB', { code: 'E_LOADER_INVALID', file: loader.path });
    }
    const loaderFacts = { path: loader.path, format: loader.format, size: loader.bytes.length, bootSector: Buffer.from(loader.bytes.subarray(0, SECTOR)) };
    // A full image that records itself, so that the next build can overlay it. (Made before the
    // temp file exists, so that its failure leaves nothing to clean up.)
    const run: IncrementalRun | undefined = settings && format === 'qcow2'
      ? {
        settings, reason, loader: { ...await fileIdentity(loader.path), path: loader.path, format: loader.format, bytes: loader.bytes.length },
        permissions, startedMs: Date.now(), reused: 0, written: 0,
      }
      : undefined;
    const temp = TempFile.beside(out);
    let writer: DiskWriter;
    try {
      // The descriptor of a VMDK names its own file: the name it will have at `out`.
      writer = await createDiskWriter(temp.path, format, {
        capacityHint: requestedSize, vmdkSubformat: options.vmdkSubformat, vmdkExtentName: path.basename(out),
      });
    } catch (error) {
      await temp.discard();
      throw error;
    }
    const composer = new ImageComposer(out, temp, loaderFacts, writer, requestedSize, permissions, partitionStartFor(loader.bytes.length), run);
    composer.fullReason = reason;
    composer.vmdkSubformat = format === 'vmdk' ? options.vmdkSubformat ?? 'monolithicSparse' : undefined;
    try {
      // The boot sector and command-line area are written at finish, once both are known.
      await writer.write(CMDLINE_AREA_END, loader.bytes.subarray(CMDLINE_AREA_END));
    } catch (error) {
      await composer.abort();
      throw error;
    }
    return composer;
  }

  /**
   * The overlay composer when the previous image can be its base, else the reason not. The
   * loader is not read: its identity is the recorded one, and its bytes are in the backing image.
   */
  private static async openOverlay(out: string, loaderPath: string, permissions: boolean, settings: IncrementalSettings, requestedSize: number | undefined): Promise<ImageComposer | string> {
    let loaderId: FileIdentity;
    try {
      loaderId = await fileIdentity(loaderPath);
    } catch {
      return 'the loader is missing'; // readLoader says what to do
    }
    const base = await openIncrementalBase(out, { loader: { ...loaderId, path: loaderPath }, permissions }, settings);
    if (typeof base === 'string') return base;
    const temp = TempFile.beside(out);
    let writer: DiskWriter;
    try {
      // The backing file is named relative to the image (same folder), so the folder can move.
      writer = await createDiskWriter(temp.path, 'qcow2', {
        backingFile: base.generation, backingFormat: 'qcow2', readBacking: (offset, length) => base.backing.read(offset, length),
      });
    } catch (error) {
      await temp.discard();
      await base.discard();
      throw error;
    }
    const record = base.record;
    const loader = { path: loaderPath, format: record.loader.format, size: record.loader.bytes, bootSector: base.bootSector };
    return new ImageComposer(out, temp, loader, writer, requestedSize, permissions, record.partitionStart, {
      settings, base, loader: record.loader, permissions, startedMs: Date.now(), reused: 0, written: 0,
    });
  }

  /**
   * Adds a regular file. In an incremental build, a file whose content facts (`facts`, or the
   * hash of content in memory) match the previous build's file at the same guest path is
   * pointed at that file's blocks and its content is not read.
   */
  addFile(guestPath: string, content: Uint8Array | AsyncIterable<Uint8Array | string>, options: FileEntryOptions = {}): Promise<AddResult> {
    const entry = this.prepareFile(guestPath, content, options);
    return typeof entry === 'string' ? Promise.resolve(entry) : this.rofs.addFile(guestPath, content, entry);
  }

  /** Whether addFileSync() can be used: the disk is written without waiting (raw, or qcow2 that is not an overlay). */
  get canAddSync(): boolean {
    return this.rofs.canAddSync;
  }

  /**
   * addFile() for content at hand (a Buffer, or chunks read synchronously), done before it
   * returns: no promise per file. Only when `canAddSync`.
   */
  addFileSync(guestPath: string, content: Uint8Array | Iterable<Uint8Array>, options: FileEntryOptions = {}): AddResult {
    const entry = this.prepareFile(guestPath, content, options);
    return typeof entry === 'string' ? entry : this.rofs.addFileSync(guestPath, content, entry);
  }

  /** The entry to write for addFile/addFileSync, or the result when the previous build's data is reused. */
  private prepareFile(guestPath: string, content: unknown, options: FileEntryOptions): EntryOptions | AddResult {
    this.checkOpen();
    const run = this.incremental;
    if (!run) return options;
    const facts = options.facts ?? (content instanceof Uint8Array ? contentFacts(content) : undefined);
    if (facts && !(run.miss?.guestPath === guestPath && run.miss.facts === facts)) {
      const reused = this.reuse(run, guestPath, facts, options);
      if (reused) return reused;
    }
    run.written++;
    // The tag is what the record keeps: facts too recent to trust next time are left out.
    const tag = facts && trustworthy(facts, run.startedMs) ? facts : undefined;
    return { layer: options.layer, mode: options.mode, source: options.source, tag };
  }

  /**
   * The synchronous half of addFile for a file known by `options.facts`: adds it when the
   * previous build's data can be reused, else returns undefined (then call addFile). Saves a
   * promise per unchanged file, which is most of them in a watch rebuild.
   */
  reuseFile(guestPath: string, options: FileEntryOptions): AddResult | undefined {
    this.checkOpen();
    const run = this.incremental;
    if (!run?.base || !options.facts) return undefined;
    return this.reuse(run, guestPath, options.facts, options);
  }

  private reuse(run: IncrementalRun, guestPath: string, facts: SourceFacts, options: FileEntryOptions): AddResult | undefined {
    if (!run.base) return undefined;
    let extent = run.base.match(guestPath, facts);
    if (!extent) {
      const normal = normalGuestPath(guestPath, options.source); // the record has normalised paths
      if (normal !== guestPath) extent = run.base.match(normal, facts);
    }
    if (!extent) {
      run.miss = { guestPath, facts }; // addFile will not look again
      return undefined;
    }
    run.reused++;
    return this.rofs.addExtent(guestPath, extent, { layer: options.layer, mode: options.mode, source: options.source, tag: facts });
  }

  addDirectory(guestPath: string, options?: EntryOptions): AddResult {
    this.checkOpen();
    return this.rofs.addDirectory(guestPath, options);
  }

  addSymlink(guestPath: string, target: string, options?: EntryOptions): AddResult {
    this.checkOpen();
    return this.rofs.addSymlink(guestPath, target, options);
  }

  /** An aborted image takes nothing more (its stream was destroyed while a file was on its way). */
  private checkOpen(): void {
    if (this.state !== 'open') throw new ImageError(`the image is ${this.state === 'done' ? 'already finished' : 'aborted'}`, { code: 'E_IMAGE_STATE' });
  }

  /** Completes the image with `cmdline` and moves it to `out`. On error the temp file is removed. */
  async finish(cmdline: string): Promise<ComposedImage> {
    this.checkOpen();
    try {
      checkCmdline(cmdline);
      const rofs = await this.rofs.finish();
      const start = this.partitionStart;
      const needed = start + rofs.size;
      if (this.requestedSize !== undefined && this.requestedSize < needed) {
        throw new ImageError(`the requested size (${this.requestedSize} bytes) is smaller than the image needs (${needed} bytes)`, {
          code: 'E_SIZE_TOO_SMALL', hint: `Leave \`size\` out, or ask for at least ${Math.ceil(needed / 1048576)}M.`,
        });
      }
      let virtualSize = Math.ceil(Math.max(needed, this.requestedSize ?? 0) / SECTOR) * SECTOR;
      // GCE imports only whole-GiB disks: disk.raw is padded (with a hole) to the next GiB.
      if (this.writer.format === 'gce') virtualSize = gceDiskSize(virtualSize);
      await this.writer.write(0, withRootPartition(this.loader.bootSector, start, rofs.size));
      await this.writer.write(CMDLINE_OFFSET, encodeCmdlineArea(cmdline));
      await this.writer.finish(virtualSize);
      await this.temp.publish(this.out);
      this.state = 'done';
      const incremental = this.incremental ? await this.recordBuild(rofs) : undefined;
      if (!this.incremental) await discardIncrementalState(this.out);
      return {
        rofs,
        incremental,
        info: {
          format: this.writer.format,
          ...(this.vmdkSubformat ? { vmdkSubformat: this.vmdkSubformat } : {}),
          virtualSize,
          partition: { start, size: rofs.size },
          cmdline,
          loader: this.loader.path,
          inodes: rofs.inodes,
        },
      };
    } catch (error) {
      await this.abort();
      throw error;
    } finally {
      await this.incremental?.base?.close();
    }
  }

  /**
   * Writes the build record of the image now at `out`, then (for a full image) deletes the
   * generation files nothing needs any more. Failing to write the record fails nothing: the
   * image is in place, the stale record is removed, and the next build is a full one.
   */
  private async recordBuild(rofs: RofsSummary): Promise<IncrementalSummary> {
    const run = this.incremental!;
    const base = run.base;
    const recordPath = recordPathFor(this.out);
    let warning: string | undefined;
    const chain = base ? [base.generation, ...base.record.chain] : [];
    try {
      const record: BuildRecord = {
        version: BUILD_RECORD_VERSION,
        image: await fileIdentity(this.out),
        loader: run.loader,
        partitionStart: this.partitionStart,
        permissions: run.permissions,
        dataBlocks: rofs.dataBlocks,
        liveBlocks: rofs.dataBlocks - rofs.deadBlocks,
        chain,
        nextSerial: base ? base.record.nextSerial : 1,
        entries: recordEntries(this.rofs.entries()),
      };
      await writeBuildRecord(recordPath, record);
    } catch (error) {
      warning = `the build record could not be written (${(error as Error).message}); the next build will be a full one`;
      await unlink(recordPath).catch(() => {});
    }
    if (!base) await removeGenerations(this.out);
    return {
      mode: base ? 'incremental' : 'full', reason: run.reason, generation: chain.length, reused: run.reused, written: run.written, warning,
    };
  }

  /**
   * Drops the unfinished image: closes and removes the temp file (and the generation link an
   * incremental build made). `out` and the files it needs are untouched.
   */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    // The temp file goes first: discard() unlinks at once, so a caller that does not wait (a
    // destroyed stream) leaves nothing behind; the descriptor is closed after.
    const removed = this.temp.discard();
    await this.writer.abort();
    await removed;
    await this.incremental?.base?.discard();
  }
}

/**
 * After a build without `incremental`: an earlier incremental build's record and generation
 * files describe an image that is gone. One failed unlink when there is none.
 */
async function discardIncrementalState(out: string): Promise<void> {
  try {
    await unlink(recordPathFor(out));
  } catch {
    return;
  }
  await removeGenerations(out);
}

/** Throws when `out` cannot receive an image: its folder is missing, or it is a folder. */
export async function checkOutPath(out: string): Promise<void> {
  const dir = path.dirname(out);
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new ImageError(`the folder for the image does not exist: ${dir}`, {
      code: 'E_OUT_DIR_MISSING', file: out, hint: 'Create the folder first (e.g. mkdir -p), or choose another `out`.',
    });
  }
  if (!st.isDirectory()) {
    throw new ImageError(`${dir} is not a folder`, { code: 'E_OUT_DIR_MISSING', file: out });
  }
  const existing = await stat(out).catch(() => undefined);
  if (existing?.isDirectory()) {
    throw new ImageError('`out` is a folder; it must name the image file', { code: 'E_OUT_IS_DIR', file: out, hint: 'Use e.g. `out: "build/app.qemu"`.' });
  }
}

/** Throws the typed error for an unknown output format or VMDK subformat. */
export function checkImageFormat(format: unknown, vmdkSubformat?: unknown): asserts format is ImageFormat {
  if (!IMAGE_FORMATS.includes(format as ImageFormat)) {
    throw new ImageError(`unknown image format "${String(format)}"`, { code: 'E_FORMAT', hint: `Use one of ${IMAGE_FORMATS.map((f) => `"${f}"`).join(', ')}.` });
  }
  if (vmdkSubformat !== undefined) {
    if (!VMDK_SUBFORMATS.includes(vmdkSubformat as VmdkSubformat)) {
      throw new ImageError(`unknown VMDK subformat "${String(vmdkSubformat)}"`, { code: 'E_FORMAT', hint: 'Use "monolithicSparse" (VMware Workstation/Fusion, VirtualBox) or "streamOptimized" (OVF/OVA, ESXi import).' });
    }
    if (format !== 'vmdk') {
      throw new ImageError(`vmdkSubformat is given but the format is "${format as string}"`, { code: 'E_FORMAT', hint: 'Set format: "vmdk", or leave vmdkSubformat out.' });
    }
  }
}
