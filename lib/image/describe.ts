// Reads our images back (raw, qcow2, VMDK or VDI): partition, command line and the ROFS listing, plus a
// file's bytes. A plain, non-stream API for tests and users (`describe`-style inspection).
import { ImageError } from '../errors.js';
import { CMDLINE_AREA_SIZE, CMDLINE_OFFSET, decodeCmdline } from './cmdline.js';
import { openDiskImage, type DiskFormat, type DiskImageReader } from './disk.js';
import { decodePartitionEntry, hasBootSignature, SECTOR } from './mbr.js';
import type { VdiReader } from './vdi.js';
import { readZfsLabel, type ZfsLabel } from './zfs-label.js';
import type { VmdkReader } from './vmdk.js';
import {
  decodeStructure, decodeSuperBlock, ROFS_BLOCK_SIZE, ROFS_VERSION, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
  type RofsInode, type RofsSuperBlock,
} from './rofs.js';

export type RofsEntryType = 'dir' | 'file' | 'symlink';

export interface RofsListingEntry {
  /** Absolute guest path; the root is `/`. */
  path: string;
  type: RofsEntryType;
  /** The inode's mode as stored (type bits, plus permissions if the writer kept them). */
  mode: number;
  /** File size in bytes; number of entries for a directory; 0 for a symlink. */
  size: number;
  /** Symlink target. */
  target?: string | undefined;
  inode: number;
  /** First data block of a file (partition-relative). */
  block?: number | undefined;
}

export interface ImageDescription {
  path: string;
  format: DiskFormat;
  /** The format's variant: a VMDK's createType (monolithicSparse, streamOptimized…), a VDI's type (dynamic, fixed). */
  subformat?: string | undefined;
  virtualSize: number;
  /** Entry 2 of the MBR (OSv's /dev/vblk0.1), if set. */
  partition?: { start: number; size: number } | undefined;
  cmdline: string;
  /** The ROFS volume in the partition, if it holds one. */
  rofs?: { superBlock: RofsSuperBlock; entries: RofsListingEntry[] } | undefined;
  /** The ZFS pool in the partition, if it holds one (from its first vdev label; files are not listed). */
  zfs?: ZfsLabel | undefined;
}

/** An open image: describe it, read files out of it, then close it. */
export class OsvImage {
  private readonly disk: DiskImageReader;
  private description: ImageDescription | undefined;

  private constructor(disk: DiskImageReader) { this.disk = disk; }

  static async open(file: string): Promise<OsvImage> {
    return new OsvImage(await openDiskImage(file));
  }

  async describe(): Promise<ImageDescription> {
    if (this.description) return this.description;
    const disk = this.disk;
    const sector = await disk.read(0, SECTOR);
    if (!hasBootSignature(sector)) {
      throw new ImageError('not an OSv image: no boot signature (55 AA) in sector 0', { code: 'E_IMAGE_INVALID', file: disk.path });
    }
    const entry = decodePartitionEntry(sector);
    const cmdline = decodeCmdline(await disk.read(CMDLINE_OFFSET, CMDLINE_AREA_SIZE), true);
    const description: ImageDescription = {
      path: disk.path,
      format: disk.format,
      subformat: subformatOf(disk),
      virtualSize: disk.virtualSize,
      partition: entry ? { start: entry.start, size: entry.size } : undefined,
      cmdline,
    };
    if (entry) {
      const superBlock = decodeSuperBlock(await disk.read(entry.start, ROFS_BLOCK_SIZE));
      if (superBlock) description.rofs = { superBlock, entries: await this.listRofs(entry.start, superBlock) };
      else description.zfs = await readZfsLabel(disk, entry.start, entry.size);
    }
    this.description = description;
    return description;
  }

  private async listRofs(start: number, sb: RofsSuperBlock): Promise<RofsListingEntry[]> {
    const file = this.disk.path;
    if (sb.version !== ROFS_VERSION || sb.blockSize !== ROFS_BLOCK_SIZE) {
      throw new ImageError(`unsupported ROFS volume (version ${sb.version}, block size ${sb.blockSize})`, { code: 'E_ROFS_CORRUPT', file });
    }
    const structure = await this.disk.read(start + sb.structureInfoFirstBlock * ROFS_BLOCK_SIZE, sb.structureInfoBlocksCount * ROFS_BLOCK_SIZE);
    const { dirents, symlinks, inodes } = decodeStructure(structure, sb, file);
    const corrupt = (what: string) => new ImageError(`corrupt ROFS structure: ${what}`, { code: 'E_ROFS_CORRUPT', file });
    const inodeAt = (no: number): RofsInode => {
      const inode = inodes[no - 1];
      if (!inode || no < 1) throw corrupt(`inode number ${no} out of range`);
      if (inode.inodeNo !== no) throw corrupt(`inode at index ${no - 1} is numbered ${inode.inodeNo}`);
      return inode;
    };
    const entries: RofsListingEntry[] = [];
    const seen = new Set<number>();
    const visit = (no: number, guestPath: string): void => {
      if (seen.has(no)) throw corrupt(`inode ${no} is reachable twice`);
      seen.add(no);
      const inode = inodeAt(no);
      const type = typeOf(inode.mode);
      if (!type) throw corrupt(`inode ${no} has unknown mode 0x${inode.mode.toString(16)}`);
      const item: RofsListingEntry = { path: guestPath, type, mode: inode.mode, size: type === 'symlink' ? 0 : inode.count, inode: no };
      if (type === 'file') item.block = inode.dataOffset;
      if (type === 'symlink') {
        const target = symlinks[inode.dataOffset];
        if (!target) throw corrupt(`symlink ${guestPath} points past the symlink table`);
        item.target = target.toString('utf8');
      }
      entries.push(item);
      if (type === 'dir') {
        if (inode.dataOffset + inode.count > dirents.length) throw corrupt(`directory ${guestPath} runs past the entry table`);
        for (let i = inode.dataOffset; i < inode.dataOffset + inode.count; i++) {
          const d = dirents[i]!;
          visit(d.inodeNo, (guestPath === '/' ? '' : guestPath) + '/' + d.name.toString('utf8'));
        }
      }
    };
    visit(1, '/');
    return entries;
  }

  /** The bytes of a regular file in the ROFS volume. */
  async readFile(guestPath: string): Promise<Buffer> {
    const d = await this.describe();
    const normal = '/' + guestPath.split('/').filter((n) => n && n !== '.').join('/');
    const entry = d.rofs?.entries.find((e) => e.path === normal);
    if (!entry) throw new ImageError(`${normal} is not in the image`, { code: 'E_IMAGE_NO_FILE', file: this.disk.path });
    if (entry.type !== 'file') {
      throw new ImageError(`${normal} is a ${entry.type === 'dir' ? 'folder' : `symlink to ${entry.target}`}, not a file`, { code: 'E_IMAGE_NOT_FILE', file: this.disk.path });
    }
    return this.disk.read(d.partition!.start + entry.block! * ROFS_BLOCK_SIZE, entry.size);
  }

  /** Raw bytes of the virtual disk. */
  read(offset: number, length: number): Promise<Buffer> {
    return this.disk.read(offset, length);
  }

  close(): Promise<void> {
    return this.disk.close();
  }
}

function subformatOf(disk: DiskImageReader): string | undefined {
  if (disk.format === 'vmdk') return (disk as VmdkReader).createType;
  if (disk.format === 'vdi') return (disk as VdiReader).header.type;
  return undefined;
}

function typeOf(mode: number): RofsEntryType | undefined {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir';
    case S_IFREG: return 'file';
    case S_IFLNK: return 'symlink';
    default: return undefined;
  }
}

/** Describes an image: format, virtual size, partition, command line, ROFS listing. */
export async function describeImage(file: string): Promise<ImageDescription> {
  const image = await OsvImage.open(file);
  try {
    return await image.describe();
  } finally {
    await image.close();
  }
}

/** Reads one file's bytes out of an image's ROFS volume. */
export async function readImageFile(file: string, guestPath: string): Promise<Buffer> {
  const image = await OsvImage.open(file);
  try {
    return await image.readFile(guestPath);
  } finally {
    await image.close();
  }
}

