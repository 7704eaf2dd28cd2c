// The MBR entry that tells OSv where its root filesystem is (osv-image-formats.md §2): slot 2
// at 0x1CE becomes /dev/vblk0.1, encoded exactly as OSv's imgedit.py and Capstan write it.
import { ImageError } from '../errors.js';

export const SECTOR = 512;
/** Byte offset of partition entry number 2 (index 1), the one OSv mounts as /dev/vblk0.1. */
export const ROOT_PARTITION_ENTRY = 0x1ce;
export const PARTITION_ENTRY_SIZE = 16;
/** The partition starts at the loader size rounded up to this (every tool does; §2.3). */
export const PARTITION_ALIGNMENT = 2 * 1024 * 1024;
/** Both start and size are u32 sector counts on disk. */
export const MAX_SECTORS = 0xffffffff;

export interface PartitionEntry {
  /** Byte offset of the partition on the disk. */
  start: number;
  /** Size in bytes (total_sectors · 512). */
  size: number;
  systemId: number;
}

/** Where the filesystem partition starts for a loader of `loaderSize` bytes. */
export function partitionStartFor(loaderSize: number): number {
  return Math.ceil(loaderSize / PARTITION_ALIGNMENT) * PARTITION_ALIGNMENT;
}

/** OSv's CHS triple; cylinders above 1023 clamp to (1023, 254, 63). */
function chs(lba: number): [c: number, h: number, s: number] {
  const track = Math.floor(lba / 63);
  const c = Math.floor(track / 255);
  if (c > 1023) return [1023, 254, 63];
  return [c, track % 255, (lba % 63) + 1];
}

/**
 * The 16 bytes of the entry for a partition of `size` bytes at byte `start`. The end CHS is
 * computed one sector past the end, and cylinder/sector are packed as `(c << 6) | s`: both are
 * OSv's own quirks, reproduced so images match imgedit.py byte for byte.
 */
export function encodePartitionEntry(start: number, size: number): Buffer {
  if (!Number.isSafeInteger(start) || start < 0 || start % SECTOR !== 0) {
    throw new ImageError(`partition start ${start} is not a multiple of 512`, { code: 'E_PARTITION_START' });
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new ImageError(`partition size ${size} is not a byte count`, { code: 'E_PARTITION_SIZE' });
  }
  const startLba = start / SECTOR;
  const sectors = Math.floor(size / SECTOR);
  if (startLba > MAX_SECTORS || sectors > MAX_SECTORS) {
    throw new ImageError(
      `the filesystem partition (start ${start}, ${size} bytes) does not fit an MBR entry`,
      { code: 'E_PARTITION_TOO_BIG', hint: 'MBR entries hold 32-bit sector counts: a partition must start below 2 TiB and be smaller than 2 TiB.' },
    );
  }
  const [c0, h0, s0] = chs(startLba);
  const [c1, h1, s1] = chs(Math.floor((start + size) / SECTOR));
  const entry = Buffer.alloc(PARTITION_ENTRY_SIZE);
  // +0 boot flag: left 0, as imgedit.py does not write it.
  entry.writeUInt8(h0, 1);
  entry.writeUInt16LE(((c0 << 6) | s0) & 0xffff, 2);
  entry.writeUInt8(0x83, 4);
  entry.writeUInt8(h1, 5);
  entry.writeUInt16LE(((c1 << 6) | s1) & 0xffff, 6);
  entry.writeUInt32LE(startLba, 8);
  entry.writeUInt32LE(sectors, 12);
  return entry;
}

/** Patches the root-partition entry into a copy of the boot sector and checks its signature. */
export function withRootPartition(bootSector: Uint8Array, start: number, size: number): Buffer {
  const sector = Buffer.from(bootSector.subarray(0, SECTOR));
  encodePartitionEntry(start, size).copy(sector, ROOT_PARTITION_ENTRY);
  return sector;
}

/** True when a sector ends with the 55 AA boot signature OSv requires before reading entries. */
export function hasBootSignature(sector: Uint8Array): boolean {
  return sector.length >= SECTOR && sector[510] === 0x55 && sector[511] === 0xaa;
}

/** Decodes the entry at `offset` (default: the root partition's) as the OSv kernel sees it. */
export function decodePartitionEntry(sector: Uint8Array, offset = ROOT_PARTITION_ENTRY): PartitionEntry | undefined {
  const b = Buffer.from(sector.buffer, sector.byteOffset, sector.byteLength);
  const systemId = b.readUInt8(offset + 4);
  // The kernel skips entries with system id 0 or a zero 6-bit start sector (§2.1).
  if (systemId === 0 || (b.readUInt16LE(offset + 2) & 0x3f) === 0) return undefined;
  return {
    start: b.readUInt32LE(offset + 8) * SECTOR,
    size: b.readUInt32LE(offset + 12) * SECTOR,
    systemId,
  };
}
