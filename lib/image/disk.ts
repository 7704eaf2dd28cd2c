// Disk images as plain byte spaces: a writer (raw, qcow2, VMDK, VDI or a GCE tarball behind one
// interface, so the composer does not care about the output format) and a reader (raw, qcow2,
// VMDK or VDI, qcow2 backing chains followed) used for loaders, overlays and describeImage.
import { writeSync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ImageError } from '../errors.js';
import { gceDiskSize, writeGceTarball } from './gce.js';
import { probeImageFormat } from './probe.js';
import { openQcow2, Qcow2Writer, writerClosed, type Qcow2WriterOptions } from './qcow2.js';
import { StagedDiskWriter } from './staged.js';
import { openVdi, VdiWriter } from './vdi.js';
import { openVmdk, VmdkSparseWriter, writeStreamOptimizedVmdk, type VmdkSubformat } from './vmdk.js';

/** Disk formats we read and write as random-access virtual disks. */
export type DiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vdi';
/** Every output format: the disk formats, and `gce` (a tar.gz holding disk.raw, for Google Compute Engine). */
export type ImageFormat = DiskFormat | 'gce';
export const IMAGE_FORMATS: readonly ImageFormat[] = ['qcow2', 'raw', 'vmdk', 'vdi', 'gce'];

/** Writes a virtual disk. Writes may come at any offset; sequential ones are cheap. */
export interface DiskWriter {
  readonly format: ImageFormat;
  write(offset: number, data: Uint8Array): Promise<void>;
  /**
   * The same write, done before it returns; present when this writer never waits for anything
   * but its own writes (the composer then adds small files without a promise each).
   */
  readonly writeSync?: ((offset: number, data: Uint8Array) => void) | undefined;
  /** Completes the file with the given virtual size (≥ every byte written) and closes it. */
  finish(virtualSize: number): Promise<void>;
  /** Closes the file without completing it (the caller removes it). */
  abort(): Promise<void>;
}

/** Reads a virtual disk. */
export interface DiskImageReader {
  readonly path: string;
  readonly format: DiskFormat;
  readonly virtualSize: number;
  /** `length` bytes from virtual `offset`; bytes past the end of the disk read as zeros. */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Gathers sequential writes into large ones; a raw file stays sparse where nothing is written. */
const RAW_BATCH = 1024 * 1024;
/** Gaps up to this size between sequential writes (ROFS block padding) are filled in the batch. */
const MAX_FILLED_GAP = 64 * 1024;

export class RawDiskWriter implements DiskWriter {
  readonly format = 'raw' as const;
  private readonly fh: FileHandle;
  private batch: Buffer = Buffer.alloc(RAW_BATCH);
  private batchStart = 0;
  private batchLength = 0;
  private highestWrite = 0;
  private closed = false;

  private constructor(fh: FileHandle) { this.fh = fh; }

  static async create(file: string): Promise<RawDiskWriter> {
    return new RawDiskWriter(await open(file, 'w'));
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.writeSync(offset, data);
  }

  writeSync(offset: number, data: Uint8Array): void {
    if (this.closed) throw writerClosed();
    const end = offset + data.length;
    if (end > this.highestWrite) this.highestWrite = end;
    const batchEnd = this.batchStart + this.batchLength;
    const gap = offset - batchEnd;
    if (this.batchLength > 0 && gap >= 0 && gap <= MAX_FILLED_GAP && batchEnd - this.batchStart + gap + data.length <= RAW_BATCH) {
      this.batch.fill(0, this.batchLength, this.batchLength + gap);
      this.batch.set(data, this.batchLength + gap);
      this.batchLength += gap + data.length;
      return;
    }
    this.flush();
    if (data.length >= RAW_BATCH / 2) {
      writeSync(this.fd(), data, 0, data.length, offset);
      return;
    }
    this.batchStart = offset;
    this.batch.set(data, 0);
    this.batchLength = data.length;
  }

  /** The descriptor for a blocking call; never after abort(), when its number may already name another file. */
  private fd(): number {
    if (this.closed) throw writerClosed();
    return this.fh.fd;
  }

  /** Synchronous, like the qcow2 writer's batches (see Qcow2Writer.flushPending). */
  private flush(): void {
    if (this.batchLength === 0) return;
    writeSync(this.fd(), this.batch, 0, this.batchLength, this.batchStart);
    this.batchLength = 0;
  }

  async finish(virtualSize: number): Promise<void> {
    if (virtualSize < this.highestWrite) {
      throw new ImageError(`virtual size ${virtualSize} is smaller than the data written (${this.highestWrite} bytes)`, { code: 'E_RAW_SIZE' });
    }
    this.flush();
    await this.fh.truncate(virtualSize); // extends sparsely
    this.closed = true;
    await this.fh.close();
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => {});
  }
}

export interface DiskWriterOptions extends Qcow2WriterOptions {
  /** Expected virtual size (VMDK and VDI leave room for their tables before the data). */
  capacityHint?: number | undefined;
  /** VMDK subformat (default monolithicSparse). */
  vmdkSubformat?: VmdkSubformat | undefined;
  /** Name of the extent in a VMDK's descriptor (default: the base name of `file`). */
  vmdkExtentName?: string | undefined;
}

/**
 * Creates a writer for `file` in `format`. Random-access formats are written in place; the
 * ones that must be in disk order (streamOptimized VMDK, GCE) are staged (see staged.ts).
 */
export async function createDiskWriter(file: string, format: ImageFormat, options: DiskWriterOptions = {}): Promise<DiskWriter> {
  switch (format) {
    case 'qcow2': return Qcow2Writer.create(file, options);
    case 'raw': return RawDiskWriter.create(file);
    case 'vdi': return VdiWriter.create(file, { capacityHint: options.capacityHint });
    case 'vmdk': {
      const extentName = options.vmdkExtentName ?? path.basename(file);
      if ((options.vmdkSubformat ?? 'monolithicSparse') === 'monolithicSparse') {
        return VmdkSparseWriter.create(file, { capacityHint: options.capacityHint, extentName });
      }
      return StagedDiskWriter.create(file, 'vmdk', (source, out) => writeStreamOptimizedVmdk(source, out, { extentName }));
    }
    case 'gce': return StagedDiskWriter.create(file, 'gce', (source, out) => writeGceTarball(source, out), gceDiskSize);
    default:
      throw new ImageError(`unknown image format "${String(format)}"`, { code: 'E_FORMAT', file, hint: `Use one of ${IMAGE_FORMATS.join(', ')}.` });
  }
}

/** Opens a raw file as a disk whose virtual size is the file size. */
export async function openRawDisk(file: string): Promise<DiskImageReader> {
  const fh = await open(file, 'r');
  const size = (await fh.stat()).size;
  return {
    path: file,
    format: 'raw',
    virtualSize: size,
    async read(offset, length) {
      const out = Buffer.alloc(length);
      const n = Math.max(0, Math.min(length, size - offset));
      if (n > 0) await fh.read(out, 0, n, offset);
      return out;
    },
    close: () => fh.close(),
  };
}

/**
 * Opens a disk image, probing its format the way Capstan does (qcow2 magic, VDI signature,
 * VMDK sparse magic or descriptor, else raw), and follows qcow2 backing files. `format` forces
 * a format instead of probing. A GCE tarball is not a disk: extract its disk.raw first.
 */
export async function openDiskImage(file: string, format?: string): Promise<DiskImageReader> {
  let st;
  try {
    st = await stat(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ImageError(code === 'ENOENT' ? 'the image does not exist' : `cannot read the image (${code})`, { code: 'E_IMAGE_MISSING', file, cause: error });
  }
  if (!st.isFile()) throw new ImageError('is not a file', { code: 'E_IMAGE_NOT_FILE', file });
  const probed = format ?? await probeImageFormat(file);
  if (probed === 'qcow2') return openQcow2(file, (p, f) => openDiskImage(p, f));
  if (probed === 'raw') return openRawDisk(file);
  if (probed === 'vmdk') return openVmdk(file);
  if (probed === 'vdi') return openVdi(file);
  if (probed === 'gce') {
    throw new ImageError('this is a gzipped tarball (a GCE image?), not a disk image', {
      code: 'E_IMAGE_FORMAT', file, hint: 'Extract its disk.raw (tar -xzf image.tar.gz) and open that.',
    });
  }
  throw new ImageError(`unsupported backing format "${probed}"`, { code: 'E_IMAGE_FORMAT', file });
}

export interface OverlayOptions {
  /** Format of the backing image; probed when absent. */
  backingFormat?: DiskFormat | undefined;
  /** Bytes to write into the overlay at virtual offsets (e.g. a new command-line area at 512). */
  writes?: { offset: number; data: Uint8Array }[] | undefined;
}

/**
 * Creates a qcow2 overlay `file` over `backingFile` (what Capstan does with
 * `qemu-img create -f qcow2 -F qcow2 -o backing_file=<abs>`), holding only the clusters that
 * `writes` touch, completed from the backing image. The backing path is stored absolute.
 */
export async function createQcow2Overlay(file: string, backingFile: string, options: OverlayOptions = {}): Promise<void> {
  const absolute = path.resolve(backingFile);
  const backing = await openDiskImage(absolute, options.backingFormat);
  const writer = await Qcow2Writer.create(file, {
    backingFile: absolute,
    backingFormat: backing.format,
    readBacking: (offset, length) => backing.read(offset, length),
  });
  try {
    for (const w of options.writes ?? []) await writer.write(w.offset, w.data);
    await writer.finish(backing.virtualSize);
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    await backing.close();
  }
}
