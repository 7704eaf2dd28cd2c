// The boot command line of an OSv disk (osv-image-formats.md §1.2): a NUL-terminated UTF-8
// string at byte 512, inside the 63-sector area boot16 copies to 0x7E00 before the kernel runs.
import { ImageError } from '../errors.js';

/** Byte offset of the command line on the disk (sector 1). */
export const CMDLINE_OFFSET = 512;
/** End (exclusive) of the area boot16 loads: 63 sectors after the boot sector. */
export const CMDLINE_AREA_END = 32768;
/** Size of the command-line area: the string plus its NUL must fit in it. */
export const CMDLINE_AREA_SIZE = CMDLINE_AREA_END - CMDLINE_OFFSET;
/**
 * Longest command line we write. The x86 kernel would accept up to 32,255 bytes, but OSv's
 * runtime API (`osv::save_cmdline`) and the aarch64 kernel reject ≥ 1024, so we keep images
 * portable (§1.2 "Keep it ≤ 1023 bytes").
 */
export const MAX_CMDLINE_BYTES = 1023;

/**
 * The whole command-line area (bytes 512–32767) for `cmdline`: the UTF-8 string, a NUL, then
 * zeros, so no stale bytes of the loader's own command line survive after our terminator.
 */
export function encodeCmdlineArea(cmdline: string): Buffer {
  const bytes = checkCmdline(cmdline);
  const area = Buffer.alloc(CMDLINE_AREA_SIZE);
  bytes.copy(area, 0);
  return area;
}

/** Validates a command line and returns its UTF-8 bytes. */
export function checkCmdline(cmdline: string): Buffer {
  if (typeof cmdline !== 'string') {
    throw new ImageError('the command line must be a string', { code: 'E_CMDLINE_TYPE' });
  }
  const bytes = Buffer.from(cmdline, 'utf8');
  if (bytes.length > MAX_CMDLINE_BYTES) {
    throw new ImageError(
      `the command line is ${bytes.length} bytes long; OSv accepts at most ${MAX_CMDLINE_BYTES}`,
      {
        code: 'E_CMDLINE_TOO_LONG',
        hint: 'OSv rejects command lines of 1024 bytes or more (osv::save_cmdline, aarch64 boot). ' +
          'Move long commands into a script in the image and boot it with `runscript /path`.',
      },
    );
  }
  if (bytes.includes(0)) {
    throw new ImageError('the command line contains a NUL character', {
      code: 'E_CMDLINE_NUL',
      hint: 'The loader reads the command line up to the first NUL byte; remove it.',
    });
  }
  return bytes;
}

/** Reads the command line out of a disk's first 32 KiB (or just the area itself when `areaOnly`). */
export function decodeCmdline(bytes: Uint8Array, areaOnly = false): string {
  const start = areaOnly ? 0 : CMDLINE_OFFSET;
  const end = Math.min(bytes.length, areaOnly ? CMDLINE_AREA_SIZE : CMDLINE_AREA_END);
  let nul = start;
  while (nul < end && bytes[nul] !== 0) nul++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, nul - start).toString('utf8');
}
