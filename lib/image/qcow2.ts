/*
 * qcow2 version 3, written and read by our own code (osv-image-formats.md Appendix B).
 *
 * API
 *   Qcow2Writer.create(path, {backingFile?, backingFormat?, readBacking?})
 *     → a DiskWriter: write(offset, bytes) at any virtual offset, finish(virtualSize), abort().
 *     Only clusters that receive non-zero bytes are allocated (so a sparse source stays
 *     sparse). Data clusters are appended in the order they are first filled; the L2 tables,
 *     L1 table and refcount structures follow the data and the header is written last, so
 *     the writer never needs to know the amount of data in advance and streams in one pass.
 *     Data clusters are gathered into 1 MiB batches written synchronously (see flushPending).
 *     With `backingFile` it writes an overlay: the header names the backing file (and its
 *     format in a 0xE2792ACA header extension), and only the clusters written here are
 *     allocated; a partial write to a cluster is completed from `readBacking` (a function
 *     reading the backing image), otherwise from zeros.
 *   createQcow2Overlay(path, backingFile, {backingFormat?, writes?})   (in ./disk.ts)
 *     → an instance overlay over an existing image (raw or qcow2), e.g. with cluster 0
 *     rewritten to carry a new command line; the backing path is stored absolute, as Capstan
 *     does. With Qcow2Writer directly, the backing path is stored as given.
 *   openQcow2(path, openBacking?) → a DiskImageReader over a qcow2 file: read(offset, length)
 *     gives virtual-disk bytes (unallocated → backing image or zeros). Compressed clusters,
 *     encryption, external data files and extended L2 entries are rejected with an ImageError.
 *   isQcow2(firstBytes) → magic check, as Capstan's probe does.
 *
 * Every qcow2 field is big-endian. Refcounts are 16-bit and all 1 (nothing is shared), so every
 * L1/L2 entry carries QCOW_OFLAG_COPIED. Output is deterministic for the same write sequence.
 */
import { readSync, writeSync, writevSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ImageError } from '../errors.js';
import type { DiskFormat, DiskImageReader, DiskWriter } from './disk.js';

export const QCOW2_MAGIC = 0x514649fb;
const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS;
const L2_ENTRIES = CLUSTER / 8;
/** Bytes of virtual disk one L2 table maps (512 MiB with 64 KiB clusters). */
const L2_SPAN = CLUSTER * L2_ENTRIES;
const REFCOUNTS_PER_BLOCK = CLUSTER / 2;
const HEADER_LENGTH = 104;
const EXT_BACKING_FORMAT = 0xe2792aca;
const OFLAG_COPIED = 1n << 63n;
const OFLAG_COMPRESSED = 1n << 62n;
const L2_OFFSET_MASK = 0x00fffffffffffe00n;
const L1_OFFSET_MASK = 0x00fffffffffffe00n;
/** Appended data clusters are gathered into writes of this size. */
const APPEND_BATCH = 16 * CLUSTER;
const ZERO_CLUSTER = Buffer.alloc(CLUSTER);

export function isQcow2(firstBytes: Uint8Array): boolean {
  return firstBytes.length >= 4 && Buffer.from(firstBytes.buffer, firstBytes.byteOffset, 4).readUInt32BE(0) === QCOW2_MAGIC;
}

export interface Qcow2WriterOptions {
  /** Backing image path stored in the header (makes this file an overlay). */
  backingFile?: string | undefined;
  /** Format of the backing image (`raw` or `qcow2`), stored as a header extension. */
  backingFormat?: DiskFormat | undefined;
  /** Reads the backing image, to complete partially written clusters of an overlay. */
  readBacking?: ((offset: number, length: number) => Promise<Buffer>) | undefined;
}

/** The cluster being filled: its buffer, whether it holds unwritten data, and up to where its bytes are set (zeros are filled in past that when it leaves). */
interface Cluster { index: number; data: Buffer; dirty: boolean; valid: number }

export class Qcow2Writer implements DiskWriter {
  readonly format = 'qcow2' as const;
  private readonly fh: FileHandle;
  private readonly options: Qcow2WriterOptions;
  /** Host offset of each allocated virtual cluster, one Float64Array per L2 table. */
  private readonly l2 = new Map<number, Float64Array>();
  private nextHost = CLUSTER; // cluster 0 is the header
  private current: Cluster | undefined;
  private pending: Buffer[] = [];
  /** Cluster buffers already written, reused so streaming a large tree does not churn memory. */
  private readonly spare: Buffer[] = [];
  private pendingStart = 0;
  private highestWrite = 0;
  private closed = false;

  private constructor(fh: FileHandle, options: Qcow2WriterOptions) {
    this.fh = fh;
    this.options = options;
    this.writeSync = options.readBacking ? undefined : (offset, data) => this.writeNow(offset, data);
  }

  /** Creates (or truncates) `path` and returns a writer for it. */
  static async create(path: string, options: Qcow2WriterOptions = {}): Promise<Qcow2Writer> {
    if (options.backingFile !== undefined) {
      const nameBytes = Buffer.byteLength(options.backingFile);
      if (nameBytes === 0 || nameBytes > 1023) {
        throw new ImageError(`the backing file name must be 1–1023 bytes, not ${nameBytes}`, { code: 'E_QCOW2_BACKING_NAME', file: path });
      }
    }
    const fh = await open(path, 'w+');
    return new Qcow2Writer(fh, options);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const readBacking = this.options.readBacking;
    if (!readBacking || data.length === 0) return this.writeNow(offset, data);
    if (this.closed) throw writerClosed();
    // An overlay: a cluster written only in part is first filled with the backing image's
    // bytes. Only a write's first and last clusters can be partial; theirs are read before the
    // write, unless the cluster is already this overlay's own (current, or allocated here).
    const first = Math.floor(offset / CLUSTER);
    const last = Math.floor((offset + data.length - 1) / CLUSTER);
    const backing = new Map<number, Buffer>();
    for (const index of first === last ? [first] : [first, last]) {
      const covered = Math.min((index + 1) * CLUSTER, offset + data.length) - Math.max(index * CLUSTER, offset);
      if (covered !== CLUSTER && this.current?.index !== index && !this.hostOf(index)) backing.set(index, await readBacking(index * CLUSTER, CLUSTER));
    }
    this.writeNow(offset, data, backing);
  }

  /**
   * write(), done before it returns: everything but an overlay's backing reads is synchronous
   * (1 MiB batches and single clusters block for well under a millisecond; see flushPending).
   * Absent for an overlay.
   */
  readonly writeSync: ((offset: number, data: Uint8Array) => void) | undefined;

  /** Copies `data` cluster by cluster; `backing` holds the backing image's bytes for partial clusters of an overlay. */
  private writeNow(offset: number, data: Uint8Array, backing?: Map<number, Buffer>): void {
    if (this.closed) throw writerClosed();
    for (let pos = offset, from = 0; from < data.length;) {
      const index = Math.floor(pos / CLUSTER);
      const within = pos - index * CLUSTER;
      const n = Math.min(CLUSTER - within, data.length - from);
      this.put(index, within, data.subarray(from, from + n), backing?.get(index));
      pos += n;
      from += n;
    }
  }

  /**
   * Copies `bytes` into cluster `index` at `within`, loading the cluster's current content
   * (`backing`, this file's copy, or zeros) unless all of it is overwritten.
   */
  private put(index: number, within: number, bytes: Uint8Array, backing?: Buffer): void {
    let cluster = this.current;
    if (cluster?.index !== index) {
      const host = bytes.length === CLUSTER ? 0 : this.hostOf(index);
      cluster = this.take(index);
      if (backing && bytes.length !== CLUSTER) cluster.data.set(backing.subarray(0, CLUSTER));
      else if (host) this.readHost(host, cluster.data);
      else if (bytes.length !== CLUSTER) cluster.valid = 0; // a new cluster: zeros, filled in only where no data lands
    }
    // Data lands in ascending order nearly always: only a gap before it needs zeros now.
    if (cluster.valid < within) cluster.data.fill(0, cluster.valid, within);
    cluster.data.set(bytes, within);
    if (cluster.valid < within + bytes.length) cluster.valid = within + bytes.length;
    cluster.dirty = true;
    const end = index * CLUSTER + within + bytes.length;
    if (end > this.highestWrite) this.highestWrite = end;
  }

  /** Makes `index` the current cluster (the previous one goes to the file), with a buffer of unspecified content. */
  private take(index: number): Cluster {
    this.evict();
    this.current = { index, data: this.spare.pop() ?? Buffer.allocUnsafe(CLUSTER), dirty: false, valid: CLUSTER };
    return this.current;
  }

  private hostOf(index: number): number {
    return this.l2.get(Math.floor(index / L2_ENTRIES))?.[index % L2_ENTRIES] ?? 0;
  }

  private readHost(host: number, into: Buffer): void {
    const pendingEnd = this.pendingStart + this.pending.length * CLUSTER;
    if (this.pending.length > 0 && host >= this.pendingStart && host < pendingEnd) {
      this.pending[(host - this.pendingStart) / CLUSTER]!.copy(into);
      return;
    }
    readExactlySync(this.fd(), into, host);
  }

  /** Moves the current cluster to the file: in place if allocated, appended if new and non-zero. */
  private evict(): void {
    const cur = this.current;
    this.current = undefined;
    if (!cur?.dirty) return;
    if (cur.valid < CLUSTER) cur.data.fill(0, cur.valid);
    const host = this.hostOf(cur.index);
    if (host) {
      const pendingEnd = this.pendingStart + this.pending.length * CLUSTER;
      if (this.pending.length > 0 && host >= this.pendingStart && host < pendingEnd) {
        const slot = (host - this.pendingStart) / CLUSTER;
        this.release(this.pending[slot]!);
        this.pending[slot] = cur.data;
      } else {
        writeSync(this.fd(), cur.data, 0, CLUSTER, host);
        this.release(cur.data);
      }
      return;
    }
    // An all-zero cluster reads as zeros when unallocated, except in an overlay, where
    // leaving it out would expose the backing image's bytes.
    if (!this.options.backingFile && cur.data.equals(ZERO_CLUSTER)) { this.release(cur.data); return; }
    const l1 = Math.floor(cur.index / L2_ENTRIES);
    let table = this.l2.get(l1);
    if (!table) this.l2.set(l1, (table = new Float64Array(L2_ENTRIES)));
    table[cur.index % L2_ENTRIES] = this.nextHost;
    if (this.pending.length === 0) this.pendingStart = this.nextHost;
    this.pending.push(cur.data);
    this.nextHost += CLUSTER;
    if (this.pending.length * CLUSTER >= APPEND_BATCH) this.flushPending();
  }

  /**
   * Writes the gathered data clusters. Synchronously: one 1 MiB write blocks for well under a
   * millisecond, and skipping the thread-pool round trip per batch measurably speeds up
   * composing.
   */
  private flushPending(): void {
    if (this.pending.length === 0) return;
    const buffers = this.pending;
    const start = this.pendingStart;
    this.pending = [];
    writevSync(this.fd(), buffers, start);
    for (const b of buffers) this.release(b);
  }

  /** The descriptor for a blocking call; never after abort(), when its number may already name another file. */
  private fd(): number {
    if (this.closed) throw writerClosed();
    return this.fh.fd;
  }

  private release(buffer: Buffer): void {
    if (this.spare.length < 2 * (APPEND_BATCH / CLUSTER)) this.spare.push(buffer);
  }

  async finish(virtualSize: number): Promise<void> {
    const size = Math.ceil(virtualSize / 512) * 512;
    if (size < this.highestWrite) {
      throw new ImageError(`virtual size ${size} is smaller than the data written (${this.highestWrite} bytes)`, { code: 'E_QCOW2_SIZE' });
    }
    this.evict();
    this.flushPending();
    const l1Size = Math.max(1, Math.ceil(size / L2_SPAN));
    const l1Indices = [...this.l2.keys()].sort((a, b) => a - b);
    const dataEnd = this.nextHost;
    const l2Offsets = new Map<number, number>();
    let host = dataEnd;
    for (const i of l1Indices) { l2Offsets.set(i, host); host += CLUSTER; }
    const l1Offset = host;
    const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / CLUSTER));
    host += l1Clusters * CLUSTER;
    // Refcount blocks must count themselves and the refcount table: iterate to a fixed point.
    const fixed = host / CLUSTER;
    let blocks = 1;
    let tableClusters = 1;
    for (;;) {
      const total = fixed + tableClusters + blocks;
      const needBlocks = Math.ceil(total / REFCOUNTS_PER_BLOCK);
      const needTable = Math.max(1, Math.ceil((needBlocks * 8) / CLUSTER));
      if (needBlocks === blocks && needTable === tableClusters) break;
      blocks = needBlocks;
      tableClusters = needTable;
    }
    const refTableOffset = host;
    const refBlocksOffset = refTableOffset + tableClusters * CLUSTER;
    const totalClusters = fixed + tableClusters + blocks;

    const tail = Buffer.alloc((totalClusters * CLUSTER) - dataEnd);
    for (const i of l1Indices) {
      const table = this.l2.get(i)!;
      const base = l2Offsets.get(i)! - dataEnd;
      for (let e = 0; e < L2_ENTRIES; e++) {
        const h = table[e]!;
        if (h) tail.writeBigUInt64BE(BigInt(h) | OFLAG_COPIED, base + e * 8);
      }
      tail.writeBigUInt64BE(BigInt(l2Offsets.get(i)!) | OFLAG_COPIED, l1Offset - dataEnd + i * 8);
    }
    for (let j = 0; j < blocks; j++) {
      tail.writeBigUInt64BE(BigInt(refBlocksOffset + j * CLUSTER), refTableOffset - dataEnd + j * 8);
    }
    for (let c = 0; c < totalClusters; c++) tail.writeUInt16BE(1, refBlocksOffset - dataEnd + c * 2);
    await this.fh.write(tail, 0, tail.length, dataEnd);

    const header = encodeHeader({
      size, l1Size, l1Offset, refTableOffset, refTableClusters: tableClusters,
      backingFile: this.options.backingFile, backingFormat: this.options.backingFormat,
    });
    await this.fh.write(header, 0, header.length, 0);
    this.closed = true;
    await this.fh.close();
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => {});
  }
}

interface HeaderFields {
  size: number;
  l1Size: number;
  l1Offset: number;
  refTableOffset: number;
  refTableClusters: number;
  backingFile?: string | undefined;
  backingFormat?: string | undefined;
}

function encodeHeader(h: HeaderFields): Buffer {
  const header = Buffer.alloc(CLUSTER);
  let ext = HEADER_LENGTH;
  if (h.backingFormat) {
    const fmt = Buffer.from(h.backingFormat);
    header.writeUInt32BE(EXT_BACKING_FORMAT, ext);
    header.writeUInt32BE(fmt.length, ext + 4);
    fmt.copy(header, ext + 8);
    ext += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  ext += 8; // end of extensions: type 0, length 0
  let backingOffset = 0;
  let backingSize = 0;
  if (h.backingFile) {
    const name = Buffer.from(h.backingFile);
    backingOffset = ext;
    backingSize = name.length;
    name.copy(header, ext);
  }
  header.writeUInt32BE(QCOW2_MAGIC, 0);
  header.writeUInt32BE(3, 4);
  header.writeBigUInt64BE(BigInt(backingOffset), 8);
  header.writeUInt32BE(backingSize, 16);
  header.writeUInt32BE(CLUSTER_BITS, 20);
  header.writeBigUInt64BE(BigInt(h.size), 24);
  header.writeUInt32BE(0, 32); // no encryption
  header.writeUInt32BE(h.l1Size, 36);
  header.writeBigUInt64BE(BigInt(h.l1Offset), 40);
  header.writeBigUInt64BE(BigInt(h.refTableOffset), 48);
  header.writeUInt32BE(h.refTableClusters, 56);
  // nb_snapshots, snapshots_offset, feature bits: 0
  header.writeUInt32BE(4, 96); // refcount_order: 16-bit refcounts
  header.writeUInt32BE(HEADER_LENGTH, 100);
  return header;
}

export interface Qcow2Header {
  version: number;
  clusterBits: number;
  size: number;
  l1Size: number;
  l1Offset: number;
  backingFile?: string | undefined;
  backingFormat?: string | undefined;
}

/** Parses and checks a qcow2 header (`bytes` = at least the first cluster's header part). */
export function decodeQcow2Header(bytes: Buffer, file: string): Qcow2Header {
  if (!isQcow2(bytes)) throw new ImageError('not a qcow2 file (bad magic)', { code: 'E_QCOW2_MAGIC', file });
  const version = bytes.readUInt32BE(4);
  if (version !== 2 && version !== 3) {
    throw new ImageError(`qcow2 version ${version} is not supported (only 2 and 3)`, { code: 'E_QCOW2_VERSION', file });
  }
  const clusterBits = bytes.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) {
    throw new ImageError(`qcow2 cluster_bits ${clusterBits} is out of range`, { code: 'E_QCOW2_CORRUPT', file });
  }
  if (bytes.readUInt32BE(32) !== 0) {
    throw new ImageError('this qcow2 image is encrypted; encrypted images cannot be read', {
      code: 'E_QCOW2_ENCRYPTED', file, hint: 'Decrypt it first: qemu-img convert -O qcow2 (with --object secret,...) to a plain image.',
    });
  }
  let backingFormat: string | undefined;
  if (version === 3) {
    const incompatible = bytes.readBigUInt64BE(72);
    // bit 0 "dirty" only concerns refcounts, which we do not use for reading; bit 3 is the
    // compression type, which matters only for compressed clusters (rejected below).
    const unsupported = incompatible & ~((1n << 0n) | (1n << 3n));
    if (unsupported !== 0n) {
      const what = incompatible & 2n ? 'marked corrupt' : incompatible & 4n ? 'using an external data file'
        : incompatible & 16n ? 'using extended L2 entries' : `using incompatible features 0x${unsupported.toString(16)}`;
      throw new ImageError(`this qcow2 image is ${what}, which we cannot read`, {
        code: 'E_QCOW2_FEATURES', file, hint: 'Convert it to a plain image: qemu-img convert -O qcow2 in.qcow2 out.qcow2',
      });
    }
    const headerLength = bytes.readUInt32BE(100);
    let ext = headerLength;
    while (ext + 8 <= bytes.length) {
      const type = bytes.readUInt32BE(ext);
      const len = bytes.readUInt32BE(ext + 4);
      if (type === 0) break;
      if (type === EXT_BACKING_FORMAT) backingFormat = bytes.toString('utf8', ext + 8, ext + 8 + len);
      ext += 8 + Math.ceil(len / 8) * 8;
    }
  }
  const backingOffset = Number(bytes.readBigUInt64BE(8));
  const backingSize = bytes.readUInt32BE(16);
  const backingFile = backingOffset && backingSize ? bytes.toString('utf8', backingOffset, backingOffset + backingSize) : undefined;
  return {
    version, clusterBits, size: Number(bytes.readBigUInt64BE(24)), l1Size: bytes.readUInt32BE(36),
    l1Offset: Number(bytes.readBigUInt64BE(40)), backingFile, backingFormat,
  };
}

/** A qcow2 image open for reading. */
export interface Qcow2Reader extends DiskImageReader {
  readonly header: Qcow2Header;
  /**
   * Where virtual byte `offset` lives in this file, when its cluster is allocated here
   * (undefined when it is unallocated, zero, or comes from the backing file).
   */
  hostOffset(offset: number): Promise<number | undefined>;
  /**
   * The virtual byte ranges [start, end) whose clusters hold data in this file (sorted,
   * merged, clipped to the virtual size); everything else reads as zeros or from the backing
   * file. Lets a disk QEMU wrote (the ZFS builder's) be converted without reading its holes.
   */
  dataExtents(): Promise<[number, number][]>;
}

/**
 * Opens a qcow2 image for reading. `openBacking` opens the backing image (path resolved
 * against the image's folder) when the header names one; without it, unallocated clusters
 * read as zeros.
 */
export async function openQcow2(
  file: string,
  openBacking?: (backingPath: string, format: string | undefined) => Promise<DiskImageReader>,
): Promise<Qcow2Reader> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(CLUSTER);
    await fh.read(head, 0, CLUSTER, 0);
    const header = decodeQcow2Header(head, file);
    const cluster = 2 ** header.clusterBits;
    const l2Entries = cluster / 8;
    const l1 = Buffer.alloc(header.l1Size * 8);
    if (l1.length) await fh.read(l1, 0, l1.length, header.l1Offset);
    let backing: DiskImageReader | undefined;
    if (header.backingFile && openBacking) {
      const { default: path } = await import('node:path');
      backing = await openBacking(path.resolve(path.dirname(file), header.backingFile), header.backingFormat);
    }
    const l2Cache = new Map<number, Buffer>();
    const l2Table = async (i: number): Promise<Buffer | undefined> => {
      if (i >= header.l1Size) return undefined;
      const entry = l1.readBigUInt64BE(i * 8) & L1_OFFSET_MASK;
      if (entry === 0n) return undefined;
      let table = l2Cache.get(i);
      if (!table) {
        if (l2Cache.size >= 64) l2Cache.delete(l2Cache.keys().next().value!);
        table = Buffer.alloc(cluster);
        await fh.read(table, 0, cluster, Number(entry));
        l2Cache.set(i, table);
      }
      return table;
    };
    /** The cluster's L2 entry (0n when unallocated); compressed clusters are refused. */
    const l2Entry = async (index: number): Promise<bigint> => {
      const table = await l2Table(Math.floor(index / l2Entries));
      const entry = table ? table.readBigUInt64BE((index % l2Entries) * 8) : 0n;
      if (entry & OFLAG_COMPRESSED) {
        throw new ImageError(`this qcow2 image has compressed clusters (at virtual offset ${index * cluster}), which we cannot read`, {
          code: 'E_QCOW2_COMPRESSED', file, hint: 'Convert it without compression: qemu-img convert -O qcow2 in.qcow2 out.qcow2 (or -O raw).',
        });
      }
      const zeroFlag = header.version === 3 && (entry & 1n) === 1n;
      return zeroFlag ? 1n : entry; // 1n: reads as zeros, never from the backing file
    };
    const reader: Qcow2Reader = {
      path: file,
      format: 'qcow2',
      virtualSize: header.size,
      header,
      async read(offset: number, length: number): Promise<Buffer> {
        const out = Buffer.alloc(length);
        let pos = offset;
        const end = Math.min(offset + length, header.size);
        while (pos < end) {
          const index = Math.floor(pos / cluster);
          const within = pos - index * cluster;
          const n = Math.min(cluster - within, end - pos);
          const entry = await l2Entry(index);
          const host = Number(entry & L2_OFFSET_MASK);
          if (host) {
            await fh.read(out, pos - offset, n, host + within);
          } else if (entry !== 1n && backing) {
            (await backing.read(pos, n)).copy(out, pos - offset);
          }
          pos += n;
        }
        return out;
      },
      async dataExtents(): Promise<[number, number][]> {
        const out: [number, number][] = [];
        for (let i = 0; i < header.l1Size; i++) {
          const table = await l2Table(i);
          if (!table) continue;
          for (let e = 0; e < l2Entries; e++) {
            const index = i * l2Entries + e;
            const host = Number((await l2Entry(index)) & L2_OFFSET_MASK);
            if (!host) continue;
            const start = index * cluster;
            if (start >= header.size) break;
            const end = Math.min(start + cluster, header.size);
            const last = out[out.length - 1];
            if (last && last[1] === start) last[1] = end;
            else out.push([start, end]);
          }
        }
        return out;
      },
      async hostOffset(offset: number): Promise<number | undefined> {
        const index = Math.floor(offset / cluster);
        const host = Number((await l2Entry(index)) & L2_OFFSET_MASK);
        return host ? host + (offset - index * cluster) : undefined;
      },
      async close() {
        await fh.close();
        await backing?.close();
      },
    };
    return reader;
  } catch (error) {
    await fh.close();
    throw error;
  }
}

export function writerClosed(): ImageError {
  return new ImageError('the image was closed while it was being written (the build was stopped)', { code: 'E_IMAGE_CLOSED' });
}

/** Fills `into` from `position` of the image being written (a short read means the file is not what we wrote); the unit allocator's writers use it too. */
export function readExactlySync(fd: number, into: Buffer, position: number): void {
  for (let done = 0; done < into.length;) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new ImageError(`the image being written ended at ${position + done} bytes while data written earlier was read back`, { code: 'E_IMAGE_SHORT_READ' });
    done += n;
  }
}
