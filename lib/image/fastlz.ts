// FastLZ decompression (levels 1 and 2), the codec OSv's x86_64 loader uses for its kernel:
// `loader.img` carries lzloader.elf, whose data holds loader-stripped.elf split into 1 MiB
// segments, each FastLZ-compressed (fastlz/lz.cc). We decompress it to look inside the kernel
// (which filesystems its bootfs can mount, which ZFS dataset it mounts; see osv-kernel.ts).
//
// Format (FastLZ 0.1, as vendored by OSv): the top three bits of the first byte are the level
// minus one. Then a sequence of instructions, each starting with a control byte `ctrl`:
//   ctrl < 32   a literal run of ctrl + 1 bytes follows;
//   ctrl >= 32  a match: length (ctrl >> 5) + 2 (7 → extended by following bytes), distance
//               ((ctrl & 31) << 8) + next byte + 1; level 2 adds a 16-bit far distance.
import { ImageError } from '../errors.js';

/** Level 2's near-distance limit; a far match adds this to its 16-bit distance. */
const MAX_L2_DISTANCE = 8191;

/** Decompresses one FastLZ block of at most `maxOut` bytes. Throws on corrupt input. */
export function fastlzDecompress(input: Uint8Array, maxOut: number): Buffer {
  if (input.length === 0) return Buffer.alloc(0);
  const level = (input[0]! >> 5) + 1;
  if (level !== 1 && level !== 2) throw corrupt(`unknown level ${level}`);
  const out = Buffer.allocUnsafe(maxOut);
  let ip = 0;
  let op = 0;
  let ctrl = input[ip++]! & 31;
  for (;;) {
    if (ctrl >= 32) {
      let len = (ctrl >> 5) - 1;
      let ofs = (ctrl & 31) << 8;
      let ref = op - ofs;
      if (len === 6) {
        if (level === 1) {
          len += byteAt(input, ip++);
        } else {
          let code: number;
          do { code = byteAt(input, ip++); len += code; } while (code === 255);
        }
      }
      const code = byteAt(input, ip++);
      ref -= code;
      if (level === 2 && code === 255 && ofs === 31 << 8) {
        ofs = (byteAt(input, ip) << 8) + byteAt(input, ip + 1);
        ip += 2;
        ref = op - ofs - MAX_L2_DISTANCE;
      }
      len += 3;
      // The copy starts one byte before `ref`; it may overlap the output (runs), so byte by byte.
      let from = ref - 1;
      if (op + len > maxOut) throw corrupt('output overrun');
      if (from < 0) throw corrupt('match before the start of the output');
      if (from + len <= op) {
        out.copyWithin(op, from, from + len);
        op += len;
      } else {
        for (let n = 0; n < len; n++) out[op++] = out[from++]!;
      }
      if (ip >= input.length) break;
      ctrl = input[ip++]!;
    } else {
      const run = ctrl + 1;
      if (op + run > maxOut) throw corrupt('output overrun');
      if (ip + run > input.length) throw corrupt('literal run past the end of the input');
      out.set(input.subarray(ip, ip + run), op);
      op += run;
      ip += run;
      if (ip >= input.length) break;
      ctrl = input[ip++]!;
    }
  }
  return out.subarray(0, op);
}

function byteAt(input: Uint8Array, i: number): number {
  const b = input[i];
  if (b === undefined) throw corrupt('truncated match');
  return b;
}

function corrupt(why: string): ImageError {
  return new ImageError(`corrupt FastLZ data: ${why}`, { code: 'E_FASTLZ_CORRUPT' });
}

/**
 * Decompresses OSv's segmented container (fastlz/lz.cc): a u32 offset of the segment table,
 * the segments, then the table: u32 count and per segment (u32 uncompressed size, u32 stored
 * size). A segment whose stored size is not below its uncompressed size is stored as is.
 */
export function decompressOsvLz(blob: Uint8Array): Buffer {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (b.length < 8) throw corrupt('container too short');
  const tableOffset = b.readInt32LE(0);
  if (tableOffset < 4 || tableOffset + 4 > b.length) throw corrupt('bad segment table offset');
  const count = b.readInt32LE(tableOffset);
  if (count < 0 || tableOffset + 4 + count * 8 > b.length) throw corrupt('bad segment count');
  const parts: Buffer[] = [];
  let src = 4;
  for (let i = 0; i < count; i++) {
    const size = b.readInt32LE(tableOffset + 4 + i * 8);
    const stored = b.readInt32LE(tableOffset + 8 + i * 8);
    if (size < 0 || stored < 0 || src + stored > tableOffset) throw corrupt(`bad segment ${i}`);
    const data = b.subarray(src, src + stored);
    if (stored < size) {
      const part = fastlzDecompress(data, size);
      if (part.length !== size) throw corrupt(`segment ${i} decompressed to ${part.length} bytes, not ${size}`);
      parts.push(part);
    } else {
      parts.push(Buffer.from(data.subarray(0, size)));
    }
    src += stored;
  }
  return Buffer.concat(parts);
}
