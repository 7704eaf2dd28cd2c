// The instance disk: a qcow2 overlay whose backing file is the image (the image stays pristine),
// written by the image domain's qcow2 code. Cluster 0 — boot sector and command-line area — is
// always copied into the overlay, even when the command line does not change, so that a later
// run of a persisted instance can rewrite its command line in place (patchOverlayCmdline)
// without a general qcow2 cluster allocator here.
import { open } from 'node:fs/promises';
import { CMDLINE_OFFSET, decodeCmdline, encodeCmdlineArea } from '../image/cmdline.js';
import { createQcow2Overlay, openDiskImage, type DiskFormat } from '../image/disk.js';
import { openQcow2 } from '../image/qcow2.js';
import { VmError } from '../errors.js';

const FIRST_32K = 32768;

/** Creates `overlay` over `image`, with `cmdline` (or the image's own) at byte 512. */
export async function createInstanceOverlay(overlay: string, image: string, imageFormat: DiskFormat | undefined, cmdline: string | undefined): Promise<void> {
  let area: Buffer;
  if (cmdline !== undefined) {
    area = encodeCmdlineArea(cmdline);
  } else {
    const disk = await openDiskImage(image, imageFormat);
    try { area = await disk.read(CMDLINE_OFFSET, FIRST_32K - CMDLINE_OFFSET); } finally { await disk.close(); }
  }
  await createQcow2Overlay(overlay, image, { backingFormat: imageFormat, writes: [{ offset: CMDLINE_OFFSET, data: area }] });
}

/** The command line stored in a disk (raw, qcow2, or an overlay chain). */
export async function readDiskCmdline(file: string, format?: DiskFormat): Promise<string> {
  const disk = await openDiskImage(file, format);
  try {
    return decodeCmdline(await disk.read(0, FIRST_32K));
  } finally {
    await disk.close();
  }
}

/** The backing file an overlay names (absolute, as we write it). */
export async function overlayBackingFile(overlay: string): Promise<string | undefined> {
  const reader = await openQcow2(overlay);
  await reader.close();
  return reader.header.backingFile;
}

/**
 * Rewrites the command line of an existing overlay in place. Works when cluster 0 is allocated
 * in the overlay itself (always so for overlays made by createInstanceOverlay).
 */
export async function patchOverlayCmdline(overlay: string, cmdline: string): Promise<void> {
  const area = encodeCmdlineArea(cmdline);
  const reader = await openQcow2(overlay);
  let host: number | undefined;
  try {
    // The whole area must be in the one cluster the overlay holds.
    if (2 ** reader.header.clusterBits >= FIRST_32K) host = await reader.hostOffset(CMDLINE_OFFSET);
  } finally {
    await reader.close();
  }
  if (host === undefined) {
    throw new VmError('cannot rewrite the command line of this instance disk: its first cluster is not in the overlay', {
      code: 'E_VM_OVERLAY', file: overlay,
      hint: 'The overlay was not made by gulp-capstan. Delete the instance (deleteInstance) and boot again.',
    });
  }
  const fh = await open(overlay, 'r+');
  try {
    await fh.write(area, 0, area.length, host);
  } finally {
    await fh.close();
  }
}
