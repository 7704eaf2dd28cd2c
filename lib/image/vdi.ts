/*
 * VirtualBox VDI, dynamic ("normal") image, version 1.1, written and read by our own code.
 * Facts from QEMU's block/vdi.c and VirtualBox's VDI.cpp / VDICore.h; all fields little-endian.
 *
 *   0x000  pre-header: text "<<< Oracle VM VirtualBox Disk Image >>>\n" (64 bytes),
 *          signature 0xbeda107f, version 0x00010001
 *   0x048  header 1.1 "plus" (400 bytes): header size, type (1 = dynamic), flags, comment,
 *          block-map offset, data offset, legacy geometry, disk size, block size (1 MiB),
 *          blocks, blocks allocated, creation/modification/linkage/parent UUIDs, LCHS geometry
 *   0x200  block map: one u32 per 1 MiB block of the virtual disk, the block's index in the data
 *          area, or 0xffffffff (never allocated: reads as zeros)
 *   data   (aligned to 1 MiB, as VirtualBox aligns it) blocks in the order they were allocated
 *
 * API
 *   VdiWriter.create(path, {capacityHint?}) → a DiskWriter. Only blocks that receive non-zero
 *     bytes are allocated. The block map's size depends on the virtual size, known only at
 *     finish(): the data area starts after room for `capacityHint` (1 MiB by default, enough for
 *     256 GiB), and when the map needs more, the first data blocks move to the end (cheap: one
 *     1 MiB copy per 256 GiB of virtual size).
 *   openVdi(path) → a DiskImageReader (dynamic and fixed images; differencing images refused).
 *   isVdi(firstBytes) → signature check.
 *
 * VirtualBox refuses a null creation or modification UUID, and refuses to register two media
 * with the same UUID, so both are random for every image (the only non-deterministic bytes).
 */
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { ImageError } from '../errors.js';
import { UnitAllocator } from './allocation.js';
import { writerClosed } from './qcow2.js';
import type { DiskImageReader, DiskWriter } from './disk.js';

export const VDI_SIGNATURE = 0xbeda107f;
const VDI_VERSION_1_1 = 0x00010001;
const VDI_TEXT = '<<< Oracle VM VirtualBox Disk Image >>>\n';
const TYPE_DYNAMIC = 1;
const TYPE_FIXED = 2;
const TYPE_DIFF = 4;
const HEADER_PLUS_SIZE = 0x190;
const BLOCK = 1024 * 1024;
const BLOCK_MAP_OFFSET = 0x200;
const DATA_ALIGN = 1024 * 1024;
const UNALLOCATED = 0xffffffff;
/** 0xfffffffe: a discarded block, reads as zeros too. */
const ZERO_BLOCK = 0xfffffffe;
/** QEMU's limit (0xffffffff / 4 blocks of 1 MiB). */
const MAX_BLOCKS = 0x3fffffff;

export function isVdi(firstBytes: Uint8Array): boolean {
  return firstBytes.length >= 0x48 && Buffer.from(firstBytes.buffer, firstBytes.byteOffset, 0x48).readUInt32LE(0x40) === VDI_SIGNATURE;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A random (version 4) UUID in VirtualBox's RTUUID byte order (first three fields little-endian). */
function randomRtUuid(): Buffer {
  const u = randomBytes(16);
  u[7] = (u[7]! & 0x0f) | 0x40; // u16TimeHiAndVersion, high byte (little-endian)
  u[8] = (u[8]! & 0x3f) | 0x80; // clock_seq_hi_and_reserved
  return u;
}

export interface VdiWriterOptions {
  /** Expected virtual size, to leave room for the block map before the data. */
  capacityHint?: number | undefined;
}

export class VdiWriter implements DiskWriter {
  readonly format = 'vdi' as const;
  private readonly fh: FileHandle;
  private readonly path: string;
  private readonly data: UnitAllocator;
  private closed = false;

  private constructor(fh: FileHandle, file: string, dataStart: number) {
    this.fh = fh;
    this.path = file;
    this.data = new UnitAllocator(fh, BLOCK, dataStart, BLOCK);
  }

  static async create(file: string, options: VdiWriterOptions = {}): Promise<VdiWriter> {
    const blocks = Math.ceil(Math.max(0, options.capacityHint ?? 0) / BLOCK);
    const dataStart = Math.max(DATA_ALIGN, alignUp(BLOCK_MAP_OFFSET + blocks * 4, DATA_ALIGN));
    return new VdiWriter(await open(file, 'w+'), file, dataStart);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.writeSync(offset, data);
  }

  /** Blocking, like every write of the unit allocator; refused once finished or aborted. */
  writeSync(offset: number, data: Uint8Array): void {
    if (this.closed) throw writerClosed();
    this.data.writeSync(offset, data);
  }

  async finish(virtualSize: number): Promise<void> {
    const size = alignUp(virtualSize, 512);
    if (size < this.data.highestWrite) {
      throw new ImageError(`virtual size ${size} is smaller than the data written (${this.data.highestWrite} bytes)`, { code: 'E_VDI_SIZE', file: this.path });
    }
    const blocks = Math.max(1, Math.ceil(size / BLOCK));
    if (blocks > MAX_BLOCKS) throw new ImageError(`a VDI image cannot be ${size} bytes`, { code: 'E_VDI_SIZE', file: this.path });
    this.data.flush();
    const mapEnd = BLOCK_MAP_OFFSET + blocks * 4;
    const shifted = mapEnd > this.data.dataStart;
    if (shifted) await this.data.shiftFront(Math.ceil((mapEnd - this.data.dataStart) / BLOCK));
    // After a shift, moved blocks left their old bytes between the map and the data: clear them.
    const map = Buffer.alloc(shifted ? this.data.dataStart - BLOCK_MAP_OFFSET : blocks * 4, 0);
    map.fill(0xff, 0, blocks * 4);
    for (const [block, slot] of this.data.entries()) map.writeUInt32LE(slot, block * 4);
    const header = encodeVdiHeader({
      diskSize: size, blocks, blocksAllocated: this.data.slots, offBlocks: BLOCK_MAP_OFFSET, offData: this.data.dataStart,
      uuidCreate: randomRtUuid(), uuidModify: randomRtUuid(),
    });
    await this.fh.write(header, 0, header.length, 0);
    await this.fh.write(map, 0, map.length, BLOCK_MAP_OFFSET);
    // The file ends with the last block (or at the data offset when there is none).
    await this.fh.truncate(this.data.dataStart + this.data.slots * BLOCK);
    this.closed = true;
    await this.fh.close();
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => {});
  }
}

interface VdiHeaderFields {
  diskSize: number;
  blocks: number;
  blocksAllocated: number;
  offBlocks: number;
  offData: number;
  uuidCreate: Buffer;
  uuidModify: Buffer;
}

function encodeVdiHeader(h: VdiHeaderFields): Buffer {
  const b = Buffer.alloc(512);
  b.write(VDI_TEXT, 0, 'ascii');
  b.writeUInt32LE(VDI_SIGNATURE, 0x40);
  b.writeUInt32LE(VDI_VERSION_1_1, 0x44);
  b.writeUInt32LE(HEADER_PLUS_SIZE, 0x48);
  b.writeUInt32LE(TYPE_DYNAMIC, 0x4c);
  b.writeUInt32LE(0, 0x50); // flags
  // 0x54: comment, empty
  b.writeUInt32LE(h.offBlocks, 0x154);
  b.writeUInt32LE(h.offData, 0x158);
  b.writeUInt32LE(512, 0x168); // legacy geometry: not computed, sector size 512
  b.writeBigUInt64LE(BigInt(h.diskSize), 0x170);
  b.writeUInt32LE(BLOCK, 0x178);
  b.writeUInt32LE(0, 0x17c); // no extra data per block
  b.writeUInt32LE(h.blocks, 0x180);
  b.writeUInt32LE(h.blocksAllocated, 0x184);
  h.uuidCreate.copy(b, 0x188);
  h.uuidModify.copy(b, 0x198);
  // 0x1a8 linkage and 0x1b8 parent-modification UUIDs: null (not a differencing image)
  b.writeUInt32LE(512, 0x1d4); // LCHS geometry: not computed, sector size 512
  return b;
}

export interface VdiHeader {
  version: string;
  type: 'dynamic' | 'fixed';
  diskSize: number;
  blockSize: number;
  blockExtra: number;
  blocks: number;
  blocksAllocated: number;
  offBlocks: number;
  offData: number;
  text: string;
}

/** Parses and checks a VDI header (`bytes` = the first 512 bytes). */
export function decodeVdiHeader(bytes: Buffer, file: string): VdiHeader {
  const corrupt = (what: string, code = 'E_VDI_CORRUPT') => new ImageError(`not a readable VDI image: ${what}`, { code, file });
  if (!isVdi(bytes)) throw corrupt('bad signature', 'E_VDI_MAGIC');
  const version = bytes.readUInt32LE(0x44);
  if (version >>> 16 !== 1) {
    throw new ImageError(`VDI version ${version >>> 16}.${version & 0xffff} is not supported (only 1.x)`, { code: 'E_VDI_VERSION', file });
  }
  const typeCode = bytes.readUInt32LE(0x4c);
  const parent = bytes.subarray(0x1a8, 0x1b8);
  if (typeCode === TYPE_DIFF || parent.some((x) => x !== 0)) {
    throw new ImageError('this is a differencing VDI (a snapshot over a parent image), which we cannot read', {
      code: 'E_VDI_DIFF', file, hint: 'Clone it to a standalone image first: VBoxManage clonemedium disk in.vdi out.vdi',
    });
  }
  if (typeCode !== TYPE_DYNAMIC && typeCode !== TYPE_FIXED) throw corrupt(`image type ${typeCode}`);
  const blockSize = bytes.readUInt32LE(0x178);
  const blockExtra = bytes.readUInt32LE(0x17c);
  if (blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) throw corrupt(`block size ${blockSize}`);
  const h: VdiHeader = {
    version: `${version >>> 16}.${version & 0xffff}`,
    type: typeCode === TYPE_FIXED ? 'fixed' : 'dynamic',
    diskSize: Number(bytes.readBigUInt64LE(0x170)),
    blockSize,
    blockExtra,
    blocks: bytes.readUInt32LE(0x180),
    blocksAllocated: bytes.readUInt32LE(0x184),
    offBlocks: bytes.readUInt32LE(0x154),
    offData: bytes.readUInt32LE(0x158),
    text: bytes.toString('latin1', 0, 0x40).replace(/\0[\s\S]*$/, '').trim(),
  };
  if (h.blocks * blockSize < h.diskSize) throw corrupt(`${h.blocks} blocks cannot hold ${h.diskSize} bytes`);
  if (h.offData < h.offBlocks + h.blocks * 4) throw corrupt('the data area overlaps the block map');
  return h;
}

export interface VdiReader extends DiskImageReader {
  readonly header: VdiHeader;
}

export async function openVdi(file: string): Promise<VdiReader> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    await fh.read(head, 0, 512, 0);
    const header = decodeVdiHeader(head, file);
    const map = Buffer.alloc(header.blocks * 4);
    if (map.length) await fh.read(map, 0, map.length, header.offBlocks);
    const stride = header.blockSize + header.blockExtra;
    const size = header.diskSize;
    return {
      path: file,
      format: 'vdi',
      virtualSize: size,
      header,
      async read(offset: number, length: number): Promise<Buffer> {
        const out = Buffer.alloc(length);
        let pos = offset;
        const end = Math.min(offset + length, size);
        while (pos < end) {
          const block = Math.floor(pos / header.blockSize);
          const within = pos - block * header.blockSize;
          const n = Math.min(header.blockSize - within, end - pos);
          const entry = map.readUInt32LE(block * 4);
          if (entry !== UNALLOCATED && entry !== ZERO_BLOCK) {
            await fh.read(out, pos - offset, n, header.offData + entry * stride + header.blockExtra + within);
          }
          pos += n;
        }
        return out;
      },
      close: () => fh.close(),
    };
  } catch (error) {
    await fh.close();
    throw error;
  }
}
