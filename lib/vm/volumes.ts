// Volumes (capstan-behaviour.md §2.9): empty disks attached as extra virtio-blk devices
// (/dev/vblk1… in OSv), kept the way `capstan volume create|delete` keeps them (cmd/volume.go):
// `volumes/<name>` in the package root, beside its metadata `volumes/<name>.yaml` (yaml.Marshal
// of hypervisor.Volume: `format`, and `aio`/`cache` when set). Written by the image domain's
// writers, without qemu-img: raw stays sparse, qcow2 holds no data clusters at all, VDI
// (dynamic) and VMDK (monolithicSparse) no blocks or grains.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImageError, VmError } from '../errors.js';
import { createDiskWriter, type DiskFormat } from '../image/disk.js';
import { parseDiskSize } from '../image/size.js';
import { marshalGoFields, type GoField } from '../yaml/go-emit.js';
import { findEntry, YamlSource, type ManifestWarning } from '../yaml/source.js';
import type { AioMode, CacheMode } from './drives.js';

/** What a volume can be written as (Capstan hands any of qemu-img's to it; these are QEMU's writable ones we write). */
export const VOLUME_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2', 'vdi', 'vmdk'];

/** Where Capstan keeps a package's volumes (always left out of the image). */
export const VOLUMES_DIR = 'volumes';

export interface CreateVolumeFileOptions {
  /** Size as Capstan's `-s`: `512M`, `1G` (a unit is required), or bytes as a number. Default 1G. */
  size?: string | number | undefined;
  /** Default raw. */
  format?: DiskFormat | undefined;
  /** Replace an existing file (default false; Capstan always refuses). */
  overwrite?: boolean | undefined;
}

export interface CreateVolumeOptions extends CreateVolumeFileOptions {
  /** Stored in the metadata (Capstan's struct has the key; its CLI never sets it). */
  aio?: AioMode | undefined;
  /** Stored in the metadata, like `aio`. */
  cache?: CacheMode | undefined;
}

export interface VolumeInfo {
  path: string;
  format: DiskFormat;
  /** Virtual size in bytes. */
  size: number;
  /** The metadata file, for a package volume. */
  metadata?: string | undefined;
}

/** What `volumes/<name>.yaml` holds. */
export interface VolumeMetadata {
  format?: string | undefined;
  aio?: string | undefined;
  cache?: string | undefined;
}

/** A package volume as bootVm attaches it. */
export interface PackageVolume {
  name: string;
  path: string;
  format?: DiskFormat;
  aio?: AioMode;
  cache?: CacheMode;
}

/**
 * `capstan volume create <name>` in the package root `root`: writes `volumes/<name>` and
 * `volumes/<name>.yaml`. Like Capstan, refuses a folder without meta/package.yaml and an
 * existing volume.
 */
export async function createVolume(root: string, name: string, options: CreateVolumeOptions = {}): Promise<VolumeInfo> {
  const packageRoot = path.resolve(root);
  checkVolumeName(name, packageRoot);
  if (!existsSync(path.join(packageRoot, 'meta', 'package.yaml'))) {
    throw new VmError('must be in the package root directory: meta/package.yaml is missing', {
      code: 'E_VM_VOLUME_NOT_PACKAGE', file: packageRoot, hint: 'Create the package first (initPackage), or give the folder that holds meta/.',
    });
  }
  const dir = path.join(packageRoot, VOLUMES_DIR);
  // Capstan makes the folder with mode 0744.
  await mkdir(dir, { recursive: true, mode: 0o744 });
  const file = path.join(dir, name);
  const info = await createVolumeFile(file, options);
  const metadata = `${file}.yaml`;
  try {
    await writeAtomically(metadata, volumeMetadataText({ format: info.format, aio: options.aio, cache: options.cache }), 0o644);
  } catch (error) {
    await rm(file, { force: true });
    throw new VmError(`could not write the volume metadata: ${(error as Error).message}`, { code: 'E_VM_VOLUME', file: metadata, cause: error });
  }
  return { ...info, metadata };
}

/**
 * An empty volume at any path (folders made as needed), without metadata: what
 * `qemu-img create -f <format> <file> <size>` makes.
 */
export async function createVolumeFile(file: string, options: CreateVolumeFileOptions = {}): Promise<VolumeInfo> {
  const format = options.format ?? 'raw';
  if (!VOLUME_FORMATS.includes(format)) {
    throw new VmError(`volume format "${String(format)}" is not supported`, {
      code: 'E_VM_VOLUME', file, hint: `Use one of: ${VOLUME_FORMATS.join(', ')}.`,
    });
  }
  const size = volumeSize(options.size ?? '1G', file);
  const target = path.resolve(file);
  if (existsSync(target) && !options.overwrite) {
    throw new VmError('the volume already exists', { code: 'E_VM_VOLUME_EXISTS', file: target, hint: 'Pick another name, delete it first (deleteVolume), or pass `overwrite: true`.' });
  }
  await mkdir(path.dirname(target), { recursive: true });
  // Written beside the target and renamed, so a failure never leaves a partial volume.
  const temp = `${target}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    const writer = await createDiskWriter(temp, format);
    try {
      await writer.finish(size);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return { path: target, format, size };
}

/**
 * `capstan volume delete <name>`: removes `volumes/<name>` and, when present, its `.yaml`.
 * Resolves with the paths removed.
 */
export async function deleteVolume(root: string, name: string): Promise<string[]> {
  const packageRoot = path.resolve(root);
  checkVolumeName(name, packageRoot);
  const file = path.join(packageRoot, VOLUMES_DIR, name);
  if (!existsSync(file)) {
    throw new VmError(`could not find volume with name '${name}'`, { code: 'E_VM_NO_VOLUME', file, hint: 'See packageVolumes(root) for the volumes there are.' });
  }
  await rm(file);
  const removed = [file];
  const metadata = `${file}.yaml`;
  if (existsSync(metadata)) {
    await rm(metadata);
    removed.push(metadata);
  }
  return removed;
}

/** The text of `volumes/<name>.yaml`: yaml.Marshal of hypervisor.Volume (omitempty fields). */
export function volumeMetadataText(meta: VolumeMetadata): string {
  const fields: GoField[] = [];
  if (meta.format) fields.push(['format', meta.format]);
  if (meta.aio) fields.push(['aio', meta.aio]);
  if (meta.cache) fields.push(['cache', meta.cache]);
  return marshalGoFields(fields);
}

/** Reads `volumes/<name>.yaml` text as go-yaml fills hypervisor.Volume (three strings). */
export function parseVolumeMetadata(text: string, file: string, options: { strict?: boolean; onWarning?: (w: ManifestWarning) => void } = {}): VolumeMetadata {
  const src = YamlSource.parse(text, file, { ...options, errorClass: VmError });
  const entries = src.struct(src.root, '');
  src.checkKeys(entries, ['format', 'aio', 'cache'], '');
  const get = (key: string) => src.string(findEntry(entries, key)?.value ?? null, key) || undefined;
  return { format: get('format'), aio: get('aio'), cache: get('cache') };
}

/**
 * The package's volumes, to attach as they are kept: every file in `<root>/volumes` except the
 * `.yaml` metadata of another one, in file name order (as Go's ReadDir lists them), each with
 * the format, aio and cache of its metadata (the defaults raw, native, none where it says
 * nothing). No volumes folder: none. `bootVm({volumes: 'package'})` attaches these.
 */
export async function packageVolumes(root: string, options: { strict?: boolean; onWarning?: (w: ManifestWarning) => void } = {}): Promise<PackageVolume[]> {
  const dir = path.join(path.resolve(root), VOLUMES_DIR);
  let names: string[];
  try {
    names = (await readdir(dir)).sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new VmError(`cannot list the package's volumes: ${(error as Error).message}`, { code: 'E_VM_VOLUME', file: dir, cause: error });
  }
  const present = new Set(names);
  const volumes: PackageVolume[] = [];
  for (const name of names) {
    if (name.endsWith('.yaml') && present.has(name.slice(0, -5))) continue;
    const file = path.join(dir, name);
    if (!(await stat(file)).isFile()) continue;
    const volume: PackageVolume = { name, path: file };
    if (present.has(`${name}.yaml`)) {
      const metaFile = `${file}.yaml`;
      const meta = parseVolumeMetadata(await readFile(metaFile, 'utf8'), metaFile, options);
      if (meta.format) volume.format = meta.format as DiskFormat;
      if (meta.aio) volume.aio = meta.aio as AioMode;
      if (meta.cache) volume.cache = meta.cache as CacheMode;
    }
    volumes.push(volume);
  }
  return volumes;
}

function volumeSize(size: string | number, file: string): number {
  let bytes: number;
  try {
    bytes = parseDiskSize(size, 'the volume size');
  } catch (error) {
    if (!(error instanceof ImageError)) throw error;
    throw new VmError(error.shortMessage, { code: 'E_VM_SIZE', file, hint: error.hint });
  }
  if (bytes % 512 !== 0) {
    throw new VmError(`the volume size ${bytes} is not a whole number of 512-byte sectors`, { code: 'E_VM_SIZE', file, hint: 'Give a multiple of 512 bytes, or a size such as 64M.' });
  }
  return bytes;
}

function checkVolumeName(name: string, root: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new VmError(`"${String(name)}" is not a volume name`, {
      code: 'E_VM_VOLUME', file: path.join(root, VOLUMES_DIR), hint: 'Give a plain file name such as "data": volumes live in <package>/volumes/.',
    });
  }
}

async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, text, { mode });
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
