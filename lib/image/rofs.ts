// ROFS on-disk records (osv-image-formats.md §3), as plain typed values like OSv's
// fs/rofs/rofs.hh, with their encoders and decoders. All integers are little-endian.
import { ImageError } from '../errors.js';

export const ROFS_MAGIC = 0xdeadbead;
export const ROFS_VERSION = 1;
export const ROFS_BLOCK_SIZE = 512;
export const ROFS_SUPERBLOCK_BYTES = 64;
export const ROFS_INODE_BYTES = 32;
export const S_IFMT = 0xf000;
export const S_IFDIR = 0x4000;
export const S_IFREG = 0x8000;
export const S_IFLNK = 0xa000;
/** readdir copies names into a 256-byte d_name (§3.7). */
export const ROFS_MAX_NAME_BYTES = 255;
/** The kernel reads at most PATH_MAX − 1 bytes of a target (§3.3). */
export const ROFS_MAX_SYMLINK_BYTES = 4095;

/** Block 0 of the partition (struct rofs_super_block). */
export interface RofsSuperBlock {
  magic: number;
  version: number;
  blockSize: number;
  structureInfoFirstBlock: number;
  structureInfoBlocksCount: number;
  directoryEntriesCount: number;
  symlinksCount: number;
  inodesCount: number;
}

/** One directory entry (struct rofs_dir_entry): name bytes are UTF-8, no NUL. */
export interface RofsDirEntry {
  inodeNo: number;
  name: Buffer;
}

/** A directory entry to encode: the name as bytes, or as a string written as UTF-8. */
export interface RofsDirEntryInput {
  inodeNo: number;
  name: Buffer | string;
}

/** One inode (struct rofs_inode). */
export interface RofsInode {
  mode: number;
  inodeNo: number;
  /** File: first data block. Directory: first entry index. Symlink: symlink-table index. */
  dataOffset: number;
  /** File: size in bytes. Directory: number of entries. Symlink: 1. */
  count: number;
}

/** u64 fields are JS numbers: exact up to 2^53, far beyond any disk we can address. */
function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value % 0x100000000, offset);
  buf.writeUInt32LE(Math.floor(value / 0x100000000), offset + 4);
}

function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * 0x100000000;
}

export function encodeSuperBlock(sb: RofsSuperBlock): Buffer {
  const block = Buffer.alloc(ROFS_BLOCK_SIZE);
  writeU64(block, sb.magic, 0);
  writeU64(block, sb.version, 8);
  writeU64(block, sb.blockSize, 16);
  writeU64(block, sb.structureInfoFirstBlock, 24);
  writeU64(block, sb.structureInfoBlocksCount, 32);
  writeU64(block, sb.directoryEntriesCount, 40);
  writeU64(block, sb.symlinksCount, 48);
  writeU64(block, sb.inodesCount, 56);
  return block;
}

/** The superblock, or undefined when the magic does not match (not a ROFS volume). */
export function decodeSuperBlock(block: Buffer): RofsSuperBlock | undefined {
  if (block.length < ROFS_SUPERBLOCK_BYTES || readU64(block, 0) !== ROFS_MAGIC) return undefined;
  return {
    magic: ROFS_MAGIC,
    version: readU64(block, 8),
    blockSize: readU64(block, 16),
    structureInfoFirstBlock: readU64(block, 24),
    structureInfoBlocksCount: readU64(block, 32),
    directoryEntriesCount: readU64(block, 40),
    symlinksCount: readU64(block, 48),
    inodesCount: readU64(block, 56),
  };
}

/** UTF-8 byte length of a name: its length when ASCII (the usual case, no native call). */
function nameBytes(name: Buffer | string): number {
  if (typeof name !== 'string') return name.length;
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) > 0x7f) return Buffer.byteLength(name, 'utf8');
  return name.length;
}

/** Byte length of the packed structure region (before padding). */
export function structureBytes(dirents: readonly RofsDirEntryInput[], symlinks: readonly Buffer[], inodes: number): number {
  let n = inodes * ROFS_INODE_BYTES;
  for (const d of dirents) n += 10 + nameBytes(d.name);
  for (const s of symlinks) n += 2 + s.length;
  return n;
}

/**
 * The structure region: directory entries, symlinks, inodes packed back to back, then zeros to
 * a block boundary. Like gen-rofs-img.py, a region that is already block-aligned gets one more
 * zero block, which the superblock's block count does not include. (Written through a
 * DataView, and ASCII names byte by byte: for 10,000 entries this is several times faster than
 * Buffer's bounds-checked writers and a native call per name.)
 */
export function encodeStructure(dirents: readonly RofsDirEntryInput[], symlinks: readonly Buffer[], inodes: readonly RofsInode[]): { bytes: Buffer; blocks: number } {
  const used = structureBytes(dirents, symlinks, inodes.length);
  const blocks = Math.ceil(used / ROFS_BLOCK_SIZE);
  const padded = used % ROFS_BLOCK_SIZE === 0 ? used + ROFS_BLOCK_SIZE : blocks * ROFS_BLOCK_SIZE;
  const bytes = Buffer.alloc(padded);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (value: number, at: number) => {
    view.setUint32(at, value % 0x100000000, true);
    view.setUint32(at + 4, Math.floor(value / 0x100000000), true);
  };
  let o = 0;
  for (const d of dirents) {
    u64(d.inodeNo, o);
    const name = d.name;
    let length: number;
    if (typeof name !== 'string') {
      length = name.copy(bytes, o + 10);
    } else {
      length = name.length;
      for (let i = 0; i < name.length; i++) {
        const c = name.charCodeAt(i);
        if (c > 0x7f) { length = bytes.write(name, o + 10, 'utf8'); break; }
        bytes[o + 10 + i] = c;
      }
    }
    view.setUint16(o + 8, length, true);
    o += 10 + length;
  }
  for (const s of symlinks) {
    view.setUint16(o, s.length, true);
    s.copy(bytes, o + 2);
    o += 2 + s.length;
  }
  for (const ino of inodes) {
    u64(ino.mode, o);
    u64(ino.inodeNo, o + 8);
    u64(ino.dataOffset, o + 16);
    u64(ino.count, o + 24);
    o += ROFS_INODE_BYTES;
  }
  return { bytes, blocks };
}

/** Parses the structure region, bounds-checking each table as OSv master does. */
export function decodeStructure(bytes: Buffer, sb: RofsSuperBlock, file?: string): { dirents: RofsDirEntry[]; symlinks: Buffer[]; inodes: RofsInode[] } {
  const corrupt = (what: string) => new ImageError(`corrupt ROFS structure: ${what}`, { code: 'E_ROFS_CORRUPT', file });
  let o = 0;
  const dirents: RofsDirEntry[] = [];
  for (let i = 0; i < sb.directoryEntriesCount; i++) {
    if (o + 10 > bytes.length) throw corrupt(`directory entry ${i} runs past the structure`);
    const inodeNo = readU64(bytes, o);
    const len = bytes.readUInt16LE(o + 8);
    if (o + 10 + len > bytes.length) throw corrupt(`directory entry ${i} name runs past the structure`);
    dirents.push({ inodeNo, name: Buffer.from(bytes.subarray(o + 10, o + 10 + len)) });
    o += 10 + len;
  }
  const symlinks: Buffer[] = [];
  for (let i = 0; i < sb.symlinksCount; i++) {
    if (o + 2 > bytes.length) throw corrupt(`symlink ${i} runs past the structure`);
    const len = bytes.readUInt16LE(o);
    if (o + 2 + len > bytes.length) throw corrupt(`symlink ${i} runs past the structure`);
    symlinks.push(Buffer.from(bytes.subarray(o + 2, o + 2 + len)));
    o += 2 + len;
  }
  const inodes: RofsInode[] = [];
  for (let i = 0; i < sb.inodesCount; i++) {
    if (o + ROFS_INODE_BYTES > bytes.length) throw corrupt(`inode ${i + 1} runs past the structure`);
    inodes.push({ mode: readU64(bytes, o), inodeNo: readU64(bytes, o + 8), dataOffset: readU64(bytes, o + 16), count: readU64(bytes, o + 24) });
    o += ROFS_INODE_BYTES;
  }
  return { dirents, symlinks, inodes };
}
