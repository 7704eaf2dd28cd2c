// Disk drives: the boot disk and attached volumes, as virtio-blk devices (osv-image-formats.md §6).
// The format is always given: a probed raw image gets block 0 write-protected by QEMU, and the
// probe warning would end up in our error reports.
import { closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import { VmError } from '../errors.js';
import type { DiskFormat } from '../image/disk.js';

export type { DiskFormat };
export type AioMode = 'threads' | 'native' | 'io_uring';
export type CacheMode = 'none' | 'writeback' | 'writethrough' | 'directsync' | 'unsafe';

export interface Drive {
  path: string;
  format: DiskFormat;
  aio: AioMode;
  cache: CacheMode;
}

/** A volume to attach, as given (`path[:format=..][:aio=..][:cache=..]`) or as an object. */
export type VolumeSpec = string | { path: string; format?: DiskFormat; aio?: AioMode; cache?: CacheMode };

const FORMATS: readonly DiskFormat[] = ['raw', 'qcow2', 'vmdk', 'vdi'];
const AIOS = ['threads', 'native', 'io_uring'];
const CACHES = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'];

/** Parses a volume spec; Capstan's defaults are format=raw, aio=native, cache=none. */
export function parseVolume(spec: VolumeSpec, cwd = process.cwd()): Drive {
  const o = typeof spec === 'string' ? parseVolumeString(spec) : spec;
  const drive: Drive = {
    path: path.resolve(cwd, o.path),
    format: o.format ?? 'raw',
    aio: o.aio ?? 'native',
    cache: o.cache ?? 'none',
  };
  const label = typeof spec === 'string' ? spec : o.path;
  if (!FORMATS.includes(drive.format)) throw volumeError(label, `format "${drive.format}" is not one of ${FORMATS.join(', ')}`);
  if (!AIOS.includes(drive.aio)) throw volumeError(label, `aio "${drive.aio}" is not one of ${AIOS.join(', ')}`);
  if (!CACHES.includes(drive.cache)) throw volumeError(label, `cache "${drive.cache}" is not one of ${CACHES.join(', ')}`);
  // aio=native needs O_DIRECT; where the file system cannot do it, QEMU refuses to start.
  if (drive.aio === 'native' && (drive.cache === 'none' || drive.cache === 'directsync') && !supportsDirectIo(drive.path)) {
    drive.aio = 'threads';
    drive.cache = 'unsafe';
  }
  return drive;
}

/** Capstan's parseVolume: `path[:key=value]…`, keys in any case (`:FORMAT=qcow2`), values as given. */
function parseVolumeString(spec: string): { path: string; format?: DiskFormat; aio?: AioMode; cache?: CacheMode } {
  const [file, ...opts] = spec.split(':');
  if (!file) throw volumeError(spec, 'the path is empty');
  const out: { path: string; format?: DiskFormat; aio?: AioMode; cache?: CacheMode } = { path: file };
  for (const opt of opts) {
    const eq = opt.indexOf('=');
    if (eq < 0) throw volumeError(spec, `"${opt}" is not key=value (use '=' for volume settings, e.g. :format=raw)`);
    const key = opt.slice(0, eq).toLowerCase();
    const value = opt.slice(eq + 1);
    if (key === 'format') out.format = value as DiskFormat;
    else if (key === 'aio') out.aio = value as AioMode;
    else if (key === 'cache') out.cache = value as CacheMode;
    else throw volumeError(spec, `unknown volume setting "${opt.slice(0, eq)}"`);
  }
  return out;
}

function volumeError(spec: string, problem: string): VmError {
  return new VmError(`bad volume "${spec}": ${problem}`, {
    code: 'E_VM_VOLUME',
    hint: 'Write volumes as path[:format=raw|qcow2][:aio=threads|native|io_uring][:cache=none|writeback|unsafe|…]; keys in any case, values in lower case.',
  });
}

/** True when `file` can be opened with O_DIRECT (not on tmpfs, for one). */
export function supportsDirectIo(file: string): boolean {
  if (constants.O_DIRECT === undefined) return false;
  try {
    closeSync(openSync(file, constants.O_RDONLY | constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

/**
 * The boot disk's drive: cache=none when O_DIRECT works (else unsafe), aio from options or
 * $CAPSTAN_QEMU_AIO_TYPE. QEMU opens the backing image with the overlay's cache mode, so
 * both files must support O_DIRECT (an image on tmpfs would otherwise fail to open).
 */
export function bootDrive(file: string, format: DiskFormat, aio?: AioMode, env: NodeJS.ProcessEnv = process.env, backing?: string): Drive {
  const direct = supportsDirectIo(file) && (backing === undefined || supportsDirectIo(backing));
  let mode: AioMode = aio ?? ((env.CAPSTAN_QEMU_AIO_TYPE as AioMode | undefined) || 'threads');
  if (!AIOS.includes(mode)) mode = 'threads';
  if (mode === 'native' && !direct) mode = 'threads';
  return { path: file, format, aio: mode, cache: direct ? 'none' : 'unsafe' };
}

/** QEMU arguments for the boot disk (index 0) and the volumes (1…, /dev/vblk1… in OSv). */
export function driveArgs(boot: Drive, volumes: Drive[], kernelMode: boolean): string[] {
  const args = [
    '-drive', drivePart(boot, 0),
    '-device', `virtio-blk-pci,id=blk0,${kernelMode ? '' : 'bootindex=0,'}drive=hd0`,
  ];
  volumes.forEach((v, i) => {
    const idx = i + 1;
    args.push('-drive', drivePart(v, idx), '-device', `virtio-blk-pci,id=blk${idx},bootindex=${idx},drive=hd${idx}`);
  });
  return args;
}

function drivePart(d: Drive, idx: number): string {
  // Commas in a path must be doubled in QEMU option syntax.
  return `file=${d.path.replaceAll(',', ',,')},if=none,id=hd${idx},format=${d.format},aio=${d.aio},cache=${d.cache}`;
}
