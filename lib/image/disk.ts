// Disk images as plain byte spaces: a writer (raw or qcow2 behind one interface, so the
// composer does not care about the output format) and a reader (raw or qcow2, backing chains
// followed) used for loaders, overlays and describeImage.
import { writeSync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ImageError } from '../errors.js';
import { isQcow2, openQcow2, Qcow2Writer, type Qcow2WriterOptions } from './qcow2.js';

export type DiskFormat = 'raw' | 'qcow2';

/** Writes a virtual disk. Writes may come at any offset; sequential ones are cheap. */
export interface DiskWriter {
  readonly format: DiskFormat;
  write(offset: number, data: Uint8Array): Promise<void>;
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
    await this.flush();
    if (data.length >= RAW_BATCH / 2) {
      writeSync(this.fh.fd, data, 0, data.length, offset);
      return;
    }
    this.batchStart = offset;
    this.batch.set(data, 0);
    this.batchLength = data.length;
  }

  /** Synchronous, like the qcow2 writer's batches (see Qcow2Writer.flushPending). */
  private async flush(): Promise<void> {
    if (this.batchLength === 0) return;
    writeSync(this.fh.fd, this.batch, 0, this.batchLength, this.batchStart);
    this.batchLength = 0;
  }

  async finish(virtualSize: number): Promise<void> {
    if (virtualSize < this.highestWrite) {
      throw new ImageError(`virtual size ${virtualSize} is smaller than the data written (${this.highestWrite} bytes)`, { code: 'E_RAW_SIZE' });
    }
    await this.flush();
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

/** Creates a writer for `file` in `format`. */
export async function createDiskWriter(file: string, format: DiskFormat, qcow2?: Qcow2WriterOptions): Promise<DiskWriter> {
  return format === 'qcow2' ? Qcow2Writer.create(file, qcow2) : RawDiskWriter.create(file);
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
 * Opens a disk image, probing its format the way Capstan does (qcow2 magic, else raw), and
 * follows qcow2 backing files. `format` forces a format instead of probing.
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
  let probed = format;
  if (!probed) {
    const fh = await open(file, 'r');
    const magic = Buffer.alloc(4);
    try { await fh.read(magic, 0, 4, 0); } finally { await fh.close(); }
    probed = isQcow2(magic) ? 'qcow2' : 'raw';
  }
  if (probed === 'qcow2') return openQcow2(file, (p, f) => openDiskImage(p, f));
  if (probed === 'raw') return openRawDisk(file);
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
