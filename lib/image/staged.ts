// Outputs that must be written in disk order (a streamOptimized VMDK, a GCE tarball) cannot be
// produced from the composer's writes directly: the boot sector, the command line and the ROFS
// superblock are only known at the end, yet they sit at the start of the disk. Such outputs are
// staged: the writes go to a sparse raw file beside the output, with a map of the byte ranges
// written, and finish() converts that raw disk in one sequential pass (reading only the
// written ranges; holes are never read) and deletes it. The staging file holds about as many
// bytes as were written (holes stay holes), so the cost is one extra write and read of the data.
import { open, type FileHandle } from 'node:fs/promises';
import { TempFile } from '../atomic-file.js';
import { ImageError } from '../errors.js';
import { RawDiskWriter, type DiskWriter, type ImageFormat } from './disk.js';

/** A finished virtual disk to convert: its size, the ranges that may hold data, a reader. */
export interface DiskSource {
  readonly virtualSize: number;
  /** Sorted, disjoint [start, end) byte ranges; everything outside them is zero. */
  readonly extents: readonly (readonly [number, number])[];
  read(offset: number, length: number): Promise<Buffer>;
}

/** Writes `source` into `out` (an empty file opened for writing). */
export type DiskEmitter = (source: DiskSource, out: FileHandle) => Promise<void>;

/** Ranges are kept on this granularity, so neighbouring writes merge. */
const EXTENT_GRANULE = 64 * 1024;

/** A sorted set of written ranges, coalesced on 64 KiB boundaries. */
export class ExtentSet {
  private readonly ranges: [number, number][] = [];

  add(start: number, end: number): void {
    if (end <= start) return;
    const s = Math.floor(start / EXTENT_GRANULE) * EXTENT_GRANULE;
    const e = Math.ceil(end / EXTENT_GRANULE) * EXTENT_GRANULE;
    const r = this.ranges;
    const last = r[r.length - 1];
    if (!last || s > last[1]) { r.push([s, e]); return; } // the common, appending case
    if (s >= last[0]) { if (e > last[1]) last[1] = e; return; }
    // Out of order: find the first range ending at or after s, merge everything it touches.
    let lo = 0;
    let hi = r.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (r[mid]![1] < s) lo = mid + 1; else hi = mid; }
    let j = lo;
    let ns = s;
    let ne = e;
    while (j < r.length && r[j]![0] <= ne) { ns = Math.min(ns, r[j]![0]); ne = Math.max(ne, r[j]![1]); j++; }
    r.splice(lo, j - lo, [ns, ne]);
  }

  /** The ranges clipped to `size`. */
  clipped(size: number): [number, number][] {
    return this.ranges.filter(([s]) => s < size).map(([s, e]) => [s, Math.min(e, size)]);
  }
}

/** Stages writes in a sparse raw file, then converts it with `emit` at finish(). */
export class StagedDiskWriter implements DiskWriter {
  readonly format: ImageFormat;
  private readonly file: string;
  /** The sparse raw file the writes go to; removed if the process ends first. */
  private readonly staging: TempFile;
  private readonly raw: RawDiskWriter;
  private readonly extents = new ExtentSet();
  private readonly emit: DiskEmitter;
  /** Adjusts the virtual size given to finish() (e.g. GCE rounds it up to whole GiB). */
  private readonly sizeFor: (virtualSize: number) => number;
  private state: 'open' | 'done' | 'aborted' = 'open';

  private constructor(file: string, stagingPath: string, raw: RawDiskWriter, format: ImageFormat, emit: DiskEmitter, sizeFor: (n: number) => number) {
    this.file = file;
    this.staging = new TempFile(stagingPath);
    this.raw = raw;
    this.format = format;
    this.emit = emit;
    this.sizeFor = sizeFor;
  }

  static async create(file: string, format: ImageFormat, emit: DiskEmitter, sizeFor: (n: number) => number = (n) => n): Promise<StagedDiskWriter> {
    const stagingPath = `${file}.staging-raw`;
    return new StagedDiskWriter(file, stagingPath, await RawDiskWriter.create(stagingPath), format, emit, sizeFor);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.writeSync(offset, data);
  }

  /** The staging file is raw, written with blocking calls: so is this. */
  writeSync(offset: number, data: Uint8Array): void {
    this.raw.writeSync(offset, data);
    this.extents.add(offset, offset + data.length);
  }

  async finish(virtualSize: number): Promise<void> {
    if (this.state !== 'open') throw new ImageError('the image is already finished', { code: 'E_IMAGE_STATE', file: this.file });
    const size = this.sizeFor(virtualSize);
    let staged: FileHandle | undefined;
    let out: FileHandle | undefined;
    try {
      await this.raw.finish(size);
      staged = await open(this.staging.path, 'r');
      const reader = staged;
      out = await open(this.file, 'w');
      await this.emit({
        virtualSize: size,
        extents: this.extents.clipped(size),
        async read(offset, length) {
          const buf = Buffer.alloc(length);
          const n = Math.max(0, Math.min(length, size - offset));
          if (n > 0) await reader.read(buf, 0, n, offset);
          return buf;
        },
      }, out);
      await out.close();
      out = undefined;
      this.state = 'done';
    } finally {
      await out?.close().catch(() => {});
      await staged?.close().catch(() => {});
      await this.staging.discard();
    }
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    const removed = this.staging.discard(); // unlinked at once (see TempFile.discard)
    await this.raw.abort();
    await removed;
  }
}
