// Which kind of disk image a file is, as Capstan's image.Probe decides it (qcow2 magic, VDI
// signature, VMDK sparse magic or descriptor), everything else raw.
import { open } from 'node:fs/promises';

export type ImageKind = 'qcow2' | 'vdi' | 'vmdk' | 'raw';

export async function probeImageKind(file: string): Promise<ImageKind> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    return imageKindOf(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

export function imageKindOf(head: Buffer): ImageKind {
  if (head.length >= 4 && head.readUInt32BE(0) === 0x514649fb) return 'qcow2';
  if (head.length >= 0x44 && head.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  if (head.length >= 4 && head.toString('latin1', 0, 4) === 'KDMV') return 'vmdk';
  if (head.toString('latin1', 0, 21) === '# Disk DescriptorFile') return 'vmdk';
  return 'raw';
}
