// The disk of a ZFS image, host side (osv-image-formats.md §4.1, §7): our code writes the
// loader, the MBR entry over the rest of the disk and the command line; the OSv ZFS builder
// then creates the pool in the partition. Afterwards we check what the builder left (the MBR
// entry, the command line, the pool's vdev labels) and, for outputs QEMU cannot write in
// place (VMDK, VDI, GCE), convert the disk reading only the clusters that hold data.
import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { copyFile, open, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ImageError } from '../errors.js';
import { CMDLINE_AREA_END, CMDLINE_OFFSET, decodeCmdline, encodeCmdlineArea } from './cmdline.js';
import { createDiskWriter, openDiskImage, type DiskFormat, type ImageFormat } from './disk.js';
import { gceDiskSize } from './gce.js';
import type { OsvLoader } from './loader.js';
import { decodePartitionEntry, MAX_SECTORS, partitionStartFor, SECTOR, withRootPartition } from './mbr.js';
import { openQcow2 } from './qcow2.js';
import type { VmdkSubformat } from './vmdk.js';
import { readZfsLabel, type ZfsLabel } from './zfs-label.js';

const MIB = 1024 * 1024;
/** Capstan's default `--size` for ZFS images: the whole disk is 10 GiB (§7). */
export const ZFS_DEFAULT_SIZE = 10 * 1024 * MIB;
/** ZFS refuses vdevs smaller than this (SPA_MINDEVSIZE). */
export const ZFS_MIN_VDEV = 64 * MIB;
/** The pool OSv's mkfs.so creates. */
export const OSV_POOL = 'osv';

export interface ZfsDiskPlan {
  /** Virtual disk size in bytes. */
  total: number;
  partitionStart: number;
  partitionSize: number;
}

/**
 * Where the pool goes: the partition starts at the loader size rounded up to 2 MiB and runs
 * to the end of the disk (`total` = the requested size, a multiple of 512; for GCE whole GiB).
 */
export function planZfsDisk(loaderSize: number, requested: number, format: ImageFormat): ZfsDiskPlan {
  let total = Math.floor(requested / SECTOR) * SECTOR;
  if (format === 'gce') total = gceDiskSize(total);
  const partitionStart = partitionStartFor(loaderSize);
  const partitionSize = total - partitionStart;
  if (partitionSize < ZFS_MIN_VDEV) {
    throw new ImageError(`the disk size ${total} bytes leaves ${Math.max(0, partitionSize)} bytes for the ZFS pool after the loader (${partitionStart} bytes); ZFS needs at least 64 MiB`, {
      code: 'E_ZFS_SIZE', hint: 'Give a larger `size` (Capstan\'s default for ZFS is "10G"; e.g. "512M" for a small app).',
    });
  }
  if (partitionStart / SECTOR > MAX_SECTORS || Math.floor(partitionSize / SECTOR) > MAX_SECTORS) {
    throw new ImageError(`a ${total}-byte disk does not fit an MBR partition entry`, { code: 'E_PARTITION_TOO_BIG', hint: 'MBR entries hold 32-bit sector counts: keep the disk below 2 TiB.' });
  }
  return { total, partitionStart, partitionSize };
}

/**
 * Writes the disk before the builder runs: loader, MBR entry, command line (the builder boots
 * with -kernel/-append, so the final command line can be written now). `format` is one QEMU
 * writes in place: qcow2 or raw (sparse).
 */
export async function writeZfsDisk(file: string, format: 'qcow2' | 'raw', loader: OsvLoader, plan: ZfsDiskPlan, cmdline: string): Promise<void> {
  const writer = await createDiskWriter(file, format);
  try {
    await writer.write(0, withRootPartition(loader.bytes.subarray(0, SECTOR), plan.partitionStart, plan.partitionSize));
    await writer.write(CMDLINE_OFFSET, encodeCmdlineArea(cmdline));
    if (loader.bytes.length > CMDLINE_AREA_END) await writer.write(CMDLINE_AREA_END, loader.bytes.subarray(CMDLINE_AREA_END));
    await writer.finish(plan.total);
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

export interface ZfsDiskCheck {
  label: ZfsLabel;
  cmdline: string;
}

/**
 * Checks a disk the builder (or an update VM) has written: the MBR entry and command line we
 * wrote are intact (the command line when given), and the partition holds a vdev of pool `osv` with valid uberblocks in
 * its first and last labels (written last by ZFS, so a cut-short run shows there), in state
 * `wantState` when given (`exported` after `zpool export`).
 */
export async function checkZfsDisk(file: string, format: DiskFormat, plan: ZfsDiskPlan, cmdline: string | undefined, wantState?: ZfsLabel['state']): Promise<ZfsDiskCheck> {
  const disk = await openDiskImage(file, format);
  const bad = (problem: string, hint = 'The builder did not finish its work; see the console lines above. The previous image (if any) was kept.') =>
    new ImageError(`the ZFS image does not check out: ${problem}`, { code: 'E_ZFS_IMAGE_CHECK', file, hint });
  try {
    if (disk.virtualSize !== plan.total) throw bad(`its virtual size is ${disk.virtualSize} bytes, not ${plan.total}`);
    const head = await disk.read(0, CMDLINE_AREA_END);
    const entry = decodePartitionEntry(head);
    if (!entry || entry.start !== plan.partitionStart || entry.size !== Math.floor(plan.partitionSize / SECTOR) * SECTOR) {
      throw bad('its MBR entry for /dev/vblk0.1 was changed');
    }
    const onDisk = decodeCmdline(head);
    if (cmdline !== undefined && onDisk !== cmdline) throw bad(`its command line is ${JSON.stringify(onDisk)}, not ${JSON.stringify(cmdline)}`);
    const first = await readZfsLabel(disk, plan.partitionStart, plan.partitionSize, 0);
    const last = await readZfsLabel(disk, plan.partitionStart, plan.partitionSize, 3);
    if (!first || !last) throw bad(`no ZFS label at the ${!first ? 'start' : 'end'} of the partition (no pool was created)`);
    for (const label of [first, last]) {
      if (label.name !== OSV_POOL) throw bad(`the pool is named ${JSON.stringify(label.name)}, not "${OSV_POOL}"`);
      if (label.uberblockTxg === 0n) throw bad('a vdev label has no valid uberblock');
      if (wantState && label.state !== wantState) {
        throw bad(`the pool is ${label.state ?? 'in an unknown state'}, not ${wantState}`,
          wantState === 'exported' ? 'The builder did not reach `zpool export osv`; see the console lines above. The previous image (if any) was kept.' : undefined);
      }
    }
    return { label: first, cmdline: onDisk };
  } finally {
    await disk.close();
  }
}

/** Conversion reads and writes this much at a time; zero pieces are left as holes. */
const CONVERT_CHUNK = 1024 * 1024;
const ZERO_PIECE = 64 * 1024;

/**
 * Converts a qcow2 disk (as QEMU left it) into `format` at `out`, reading only the clusters
 * that hold data and leaving all-zero 64 KiB pieces unwritten (the output stays sparse).
 */
export async function convertQcow2Disk(source: string, out: string, format: ImageFormat, options: { vmdkSubformat?: VmdkSubformat | undefined; vmdkExtentName?: string | undefined } = {}): Promise<void> {
  const reader = await openQcow2(source);
  const writer = await createDiskWriter(out, format, { capacityHint: reader.virtualSize, vmdkSubformat: options.vmdkSubformat, vmdkExtentName: options.vmdkExtentName });
  try {
    for (const [start, end] of await reader.dataExtents()) {
      for (let pos = start; pos < end; pos += CONVERT_CHUNK) {
        const data = await reader.read(pos, Math.min(CONVERT_CHUNK, end - pos));
        for (let o = 0; o < data.length; o += ZERO_PIECE) {
          const piece = data.subarray(o, o + ZERO_PIECE);
          if (!isZero(piece)) await writer.write(pos + o, piece);
        }
      }
    }
    await writer.finish(reader.virtualSize);
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    await reader.close();
  }
}

const ZEROS = Buffer.alloc(ZERO_PIECE);
function isZero(b: Buffer): boolean {
  return b.equals(ZEROS.subarray(0, b.length));
}

/**
 * Rewrites the command-line area of a raw or qcow2 disk in place. In a qcow2 the clusters
 * holding bytes 512–32767 must be allocated (they are: the loader lies there).
 */
export async function patchDiskCmdline(file: string, format: 'qcow2' | 'raw', cmdline: string): Promise<void> {
  const area = encodeCmdlineArea(cmdline);
  const writes: { host: number; from: number; to: number }[] = [];
  if (format === 'raw') {
    writes.push({ host: CMDLINE_OFFSET, from: 0, to: area.length });
  } else {
    const reader = await openQcow2(file);
    try {
      const cluster = 2 ** reader.header.clusterBits;
      for (let pos = CMDLINE_OFFSET; pos < CMDLINE_AREA_END;) {
        const end = Math.min(CMDLINE_AREA_END, (Math.floor(pos / cluster) + 1) * cluster);
        const host = await reader.hostOffset(pos);
        if (host === undefined) {
          throw new ImageError('cannot rewrite the command line: its clusters are not allocated in this qcow2 image', { code: 'E_ZFS_CMDLINE', file, hint: 'Rebuild the image without `update`.' });
        }
        writes.push({ host, from: pos - CMDLINE_OFFSET, to: end - CMDLINE_OFFSET });
        pos = end;
      }
    } finally {
      await reader.close();
    }
  }
  const fh = await open(file, 'r+');
  try {
    for (const w of writes) await fh.write(area, w.from, w.to - w.from, w.host);
  } finally {
    await fh.close();
  }
}

/**
 * Copies an image for an update to work on, keeping holes: a qcow2 is compact (reflinked
 * where the filesystem can); a raw disk is copied with GNU cp --sparse=always (which finds
 * the data with SEEK_DATA), else by reading it and writing only non-zero pieces.
 */
export async function copyDisk(source: string, dest: string, format: 'qcow2' | 'raw'): Promise<void> {
  if (format === 'qcow2') {
    await copyFile(source, dest, fsConstants.COPYFILE_FICLONE);
    return;
  }
  try {
    await promisify(execFile)('cp', ['--sparse=always', '--reflink=auto', source, dest]);
    return;
  } catch {
    await unlink(dest).catch(() => {});
  }
  const from = await open(source, 'r');
  const to = await open(dest, 'w');
  try {
    const size = (await from.stat()).size;
    const chunk = Buffer.alloc(CONVERT_CHUNK);
    for (let pos = 0; pos < size; pos += CONVERT_CHUNK) {
      const { bytesRead } = await from.read(chunk, 0, Math.min(CONVERT_CHUNK, size - pos), pos);
      for (let o = 0; o < bytesRead; o += ZERO_PIECE) {
        const piece = chunk.subarray(o, Math.min(o + ZERO_PIECE, bytesRead));
        if (!isZero(piece)) await to.write(piece, 0, piece.length, pos + o);
      }
    }
    await to.truncate(size);
  } finally {
    await from.close();
    await to.close();
  }
}

/** True when the first `loader.bytes.length` bytes of `file` are this loader (boot code and kernel; the partition table and command line aside). */
export async function diskHasLoader(file: string, format: DiskFormat, loader: OsvLoader): Promise<boolean> {
  const disk = await openDiskImage(file, format);
  try {
    const head = await disk.read(0, loader.bytes.length);
    return head.subarray(0, 0x1be).equals(loader.bytes.subarray(0, 0x1be)) &&
      head.subarray(510, 512).equals(loader.bytes.subarray(510, 512)) &&
      head.subarray(CMDLINE_AREA_END).equals(loader.bytes.subarray(CMDLINE_AREA_END));
  } finally {
    await disk.close();
  }
}
