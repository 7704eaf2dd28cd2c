// Volumes (capstan-behaviour.md §2.9): empty disks to attach as extra virtio-blk devices
// (/dev/vblk1… in OSv). Written by the image domain's writers: raw stays sparse, qcow2 holds
// no data clusters at all.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createDiskWriter, type DiskFormat } from '../image/disk.js';
import { VmError } from '../errors.js';
import { parseMemory } from './memory.js';

export interface CreateVolumeOptions {
  /** Size like Capstan's `-s`: `512M`, `1G`, or MiB as a number. Default 1G. */
  size?: string | number | undefined;
  /** Default raw. */
  format?: DiskFormat | undefined;
  /** Replace an existing file (default false). */
  overwrite?: boolean | undefined;
}

export interface VolumeInfo {
  path: string;
  format: DiskFormat;
  /** Virtual size in bytes. */
  size: number;
}

/** Creates an empty volume at `file` (folders made as needed). */
export async function createVolume(file: string, options: CreateVolumeOptions = {}): Promise<VolumeInfo> {
  const format = options.format ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') {
    throw new VmError(`volume format "${String(format)}" is not supported`, { code: 'E_VM_VOLUME', file, hint: 'Use raw or qcow2.' });
  }
  const size = parseMemory(options.size ?? '1G', 'volume') * 1024 * 1024;
  const target = path.resolve(file);
  if (existsSync(target) && !options.overwrite) {
    throw new VmError('the volume already exists', { code: 'E_VM_VOLUME_EXISTS', file: target, hint: 'Pick another path or pass `overwrite: true`.' });
  }
  await mkdir(path.dirname(target), { recursive: true });
  const writer = await createDiskWriter(target, format);
  await writer.finish(size);
  return { path: target, format, size };
}
