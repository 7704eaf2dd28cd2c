// Composes one bootable OSv disk (§1–§3): the loader's bytes, the ROFS volume at the loader
// size rounded up to 2 MiB, the MBR entry naming it, and the command line at byte 512.
// Written to a temp file beside `out` and renamed over it only when complete, so an error or
// a killed process never leaves a partial image at `out`.
import { rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { tempPathBeside } from '../atomic-file.js';
import type { ImageInfo } from '../carrier.js';
import { ImageError } from '../errors.js';
import { CMDLINE_AREA_END, checkCmdline, encodeCmdlineArea, CMDLINE_OFFSET } from './cmdline.js';
import { createDiskWriter, IMAGE_FORMATS, type DiskWriter, type ImageFormat } from './disk.js';
import { gceDiskSize } from './gce.js';
import { readLoader, resolveLoaderPath, type OsvLoader } from './loader.js';
import { MAX_SECTORS, partitionStartFor, SECTOR, withRootPartition } from './mbr.js';
import { RofsBuilder, type AddResult, type EntryOptions, type RofsSummary } from './rofs-builder.js';
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
}

export interface ComposedImage {
  info: ImageInfo;
  rofs: RofsSummary;
}

export class ImageComposer {
  readonly out: string;
  readonly tempPath: string;
  /** The loader's path, size and boot sector (its other bytes are in the image, not kept). */
  readonly loader: { path: string; format: OsvLoader['format']; size: number; bootSector: Buffer };
  readonly partitionStart: number;
  private readonly writer: DiskWriter;
  private readonly rofs: RofsBuilder;
  private readonly requestedSize: number | undefined;
  private state: 'open' | 'done' | 'aborted' = 'open';
  private vmdkSubformat: VmdkSubformat | undefined;

  private constructor(out: string, tempPath: string, loader: OsvLoader, writer: DiskWriter, requestedSize: number | undefined, permissions: boolean) {
    this.out = out;
    this.tempPath = tempPath;
    this.loader = { path: loader.path, format: loader.format, size: loader.bytes.length, bootSector: Buffer.from(loader.bytes.subarray(0, SECTOR)) };
    this.writer = writer;
    this.requestedSize = requestedSize;
    this.partitionStart = partitionStartFor(loader.bytes.length);
    const start = this.partitionStart;
    this.rofs = new RofsBuilder(
      { write: (offset, data) => writer.write(start + offset, data) },
      { permissions, maxBytes: MAX_SECTORS * SECTOR - start },
    );
  }

  /** Checks the options, reads the loader, opens the temp file and writes the loader into it. */
  static async open(options: ComposeImageOptions): Promise<ImageComposer> {
    const out = path.resolve(options.out);
    await checkOutPath(out);
    const format = options.format ?? 'qcow2';
    checkImageFormat(format, options.vmdkSubformat);
    const requestedSize = options.size === undefined ? undefined : parseDiskSize(options.size);
    const loaderName = options.loader ?? 'osv-loader';
    const loader = await readLoader(resolveLoaderPath(loaderName, options.root), loaderName);
    if (partitionStartFor(loader.bytes.length) / SECTOR > MAX_SECTORS) {
      throw new ImageError('the loader is too large: the partition would start beyond 2 TiB', { code: 'E_LOADER_INVALID', file: loader.path });
    }
    const tempPath = tempPathBeside(out);
    // The descriptor of a VMDK names its own file: the name it will have at `out`.
    const writer = await createDiskWriter(tempPath, format, {
      capacityHint: requestedSize, vmdkSubformat: options.vmdkSubformat, vmdkExtentName: path.basename(out),
    });
    const composer = new ImageComposer(out, tempPath, loader, writer, requestedSize, options.permissions ?? false);
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

  addFile(guestPath: string, content: Uint8Array | AsyncIterable<Uint8Array | string>, options?: EntryOptions): Promise<AddResult> {
    return this.rofs.addFile(guestPath, content, options);
  }

  addDirectory(guestPath: string, options?: EntryOptions): AddResult {
    return this.rofs.addDirectory(guestPath, options);
  }

  addSymlink(guestPath: string, target: string, options?: EntryOptions): AddResult {
    return this.rofs.addSymlink(guestPath, target, options);
  }

  /** Completes the image with `cmdline` and moves it to `out`. On error the temp file is removed. */
  async finish(cmdline: string): Promise<ComposedImage> {
    if (this.state !== 'open') throw new ImageError('the image is already finished', { code: 'E_IMAGE_STATE' });
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
      await rename(this.tempPath, this.out);
      this.state = 'done';
      return {
        rofs,
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
    }
  }

  /** Drops the unfinished image: closes and removes the temp file. `out` is untouched. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.writer.abort();
    await unlink(this.tempPath).catch(() => {});
  }
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
