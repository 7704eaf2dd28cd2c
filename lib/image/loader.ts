// The OSv loader an image starts with (osv-image-formats.md §1.1): a raw disk image (boot16
// sector, command-line area, compressed kernel from 0x10000), found by path or by name in the
// local Capstan repository. A qcow2 loader is read through our qcow2 reader.
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ImageError } from '../errors.js';
import { capstanRoot, repositoryImagePath } from '../repository/root.js';
import { openDiskImage, type DiskFormat } from './disk.js';
import { hasBootSignature, SECTOR } from './mbr.js';

/** Default loader name, as in Capstan's `osv-loader` repository image. */
export const DEFAULT_LOADER = 'osv-loader';
/** Where boot16 starts reading the compressed kernel (LBA 128). */
export const KERNEL_OFFSET = 0x10000;
const KERNEL_CHUNK = 32768;

export interface OsvLoader {
  /** The file it came from. */
  path: string;
  format: DiskFormat;
  /** The loader's bytes: the whole file for a raw loader, up to the kernel's end for qcow2. */
  bytes: Buffer;
  /** Number of 32 KiB kernel chunks boot16 reads (u16 at 0x10). */
  count32: number;
}

/**
 * The loader file for `loader`: a path (absolute, starting with `.`, with an extension, or an
 * existing file), else a local-repository image name (namespaced names such as
 * `mike/osv-loader` allowed) (`osv-loader` →
 * `$CAPSTAN_ROOT/repository/osv-loader/osv-loader.qemu`).
 */
export function resolveLoaderPath(loader: string = DEFAULT_LOADER, root?: string, cwd = process.cwd()): string {
  return loaderReference(loader, root, cwd).path;
}

/** As resolveLoaderPath, also saying whether `loader` named a repository image (which can be pulled). */
export function loaderReference(loader: string = DEFAULT_LOADER, root?: string, cwd = process.cwd()): { path: string; name?: string | undefined } {
  const asPath = path.resolve(cwd, loader);
  if (path.isAbsolute(loader) || loader.startsWith('.') || /[\\]/.test(loader) || path.extname(loader) !== '' || isFile(asPath)) {
    return { path: asPath };
  }
  return { path: repositoryImagePath(loader, capstanRoot(root)), name: loader };
}

function isFile(file: string): boolean {
  try { return statSync(file).isFile(); } catch { return false; }
}

/** Reads and checks a loader. Every failure is an ImageError saying what to do. */
export async function readLoader(file: string, name = file): Promise<OsvLoader> {
  try {
    await stat(file);
  } catch (error) {
    throw new ImageError(`the OSv loader "${name}" was not found at ${file}`, {
      code: 'E_LOADER_MISSING',
      file,
      cause: error,
      hint: 'Give a loader by name (e.g. "osv-loader", pulled from OSv\'s releases when missing) or the path of ' +
        'one: osv-loader.qemu.x86_64 from an OSv GitHub release, or OSv\'s build/release/loader.img.',
    });
  }
  const disk = await openDiskImage(file);
  try {
    const head = await disk.read(0, SECTOR);
    if (disk.virtualSize < SECTOR || !hasBootSignature(head)) {
      throw notALoader(file, 'it has no boot sector (no 55 AA signature at byte 510)');
    }
    const count32 = head.readUInt16LE(0x10);
    const kernelEnd = KERNEL_OFFSET + count32 * KERNEL_CHUNK;
    if (disk.virtualSize < kernelEnd) {
      throw notALoader(file, `its boot sector loads ${count32} kernel chunks (up to byte ${kernelEnd}) but the file has only ${disk.virtualSize} bytes`);
    }
    // A raw loader is used whole, as Capstan and OSv do (the partition starts after the file);
    // a qcow2 "loader" may be a whole disk, so keep only what boot16 reads.
    const length = disk.format === 'raw' ? disk.virtualSize : kernelEnd;
    const bytes = await disk.read(0, length);
    return { path: file, format: disk.format, bytes, count32 };
  } finally {
    await disk.close();
  }
}

function notALoader(file: string, why: string): ImageError {
  return new ImageError(`this is not an OSv loader: ${why}`, {
    code: 'E_LOADER_INVALID',
    file,
    hint: 'Use a loader image: osv-loader.qemu.x86_64 from an OSv release, or OSv\'s build/release/loader.img.',
  });
}
