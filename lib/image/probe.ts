// What kind of image a file is, probed from its first bytes as Capstan's `info` does
// (image/probe.go): qcow2 magic, VDI signature, VMDK sparse magic ("KDMV") or a VMDK descriptor
// file, a gzip stream (a GCE tarball), else raw — a raw file has no header, so anything else is
// "raw", as qemu-img also says.
import { open } from 'node:fs/promises';
import { ImageError } from '../errors.js';
import { isQcow2 } from './qcow2.js';
import { isVdi } from './vdi.js';
import { isVmdkDescriptor, isVmdkSparse } from './vmdk.js';

export type ProbedFormat = 'qcow2' | 'vmdk' | 'vdi' | 'gce' | 'raw';

/** The format of the bytes at the start of an image. */
export function probeImageBytes(first: Uint8Array): ProbedFormat {
  if (isQcow2(first)) return 'qcow2';
  if (isVdi(first)) return 'vdi';
  if (isVmdkSparse(first) || isVmdkDescriptor(first)) return 'vmdk';
  if (first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b) return 'gce';
  return 'raw';
}

/** Probes `file`'s format from its first 2 KiB. */
export async function probeImageFormat(file: string): Promise<ProbedFormat> {
  return probeImageBytes(await readImageHead(file));
}

/** The first 2 KiB of `file` (fewer for a smaller file): what probing looks at, and the boot sector. */
export async function readImageHead(file: string): Promise<Uint8Array> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ImageError(code === 'ENOENT' ? 'the image does not exist' : `cannot read the image (${code})`, { code: 'E_IMAGE_MISSING', file, cause: error });
  }
  try {
    const first = Buffer.alloc(2048);
    const { bytesRead } = await fh.read(first, 0, first.length, 0);
    return first.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Capstan's `info` line: `<path>: QCOW2`, `: VDI`, `: VMDK`, else `: not a runnable image`. */
export async function capstanInfo(file: string): Promise<string> {
  const format = await probeImageFormat(file);
  const label = format === 'qcow2' ? 'QCOW2' : format === 'vdi' ? 'VDI' : format === 'vmdk' ? 'VMDK' : 'not a runnable image';
  return `${file}: ${label}`;
}
