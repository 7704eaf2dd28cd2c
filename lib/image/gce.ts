/*
 * Google Compute Engine image: a gzipped tar holding one member, `disk.raw`, the raw disk —
 * what Google's manual import instructions make with `tar --format=oldgnu -Sczf x.tar.gz
 * disk.raw`. GCE wants the raw size to be a whole number of GiB, so the disk is padded (with a
 * hole) up to the next GiB.
 *
 * The member is written as a GNU ("oldgnu") sparse file, type 'S', like `tar -S`: the header's
 * sparse map lists the data ranges, and only their bytes are stored, so a 10 GiB disk holding
 * 50 MB costs 50 MB to compress, not 10 GiB of zeros. The map's first 4 entries are in the
 * header, the rest in 512-byte extension headers of 21 entries each; the last entry is a
 * zero-length chunk at the full size, as GNU tar writes it for a file ending in a hole.
 * Numbers that do not fit 11 octal digits (≥ 8 GiB) use GNU's base-256 form.
 *
 * Written from a finished disk (staged.ts): tar needs the data in order and gzip is sequential.
 */
import { once } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import { createGzip } from 'node:zlib';
import type { DiskSource } from './staged.js';

export const GCE_MEMBER = 'disk.raw';
export const GIB = 1024 ** 3;
const BLOCK = 512;
/** GNU tar's default record: 20 blocks. */
const RECORD = 20 * BLOCK;
const HEADER_SPARSE = 4;
const EXTENSION_SPARSE = 21;

/** The size GCE gets: the disk rounded up to whole GiB. */
export function gceDiskSize(virtualSize: number): number {
  return Math.max(1, Math.ceil(virtualSize / GIB)) * GIB;
}

/** A numeric tar field: octal digits and a NUL, or GNU base-256 when too large. */
function numeric(buf: Buffer, offset: number, width: number, value: number): void {
  const octal = value.toString(8);
  if (octal.length <= width - 1) {
    buf.write(octal.padStart(width - 1, '0') + '\0', offset, 'latin1');
    return;
  }
  buf.fill(0, offset, offset + width);
  buf[offset] = 0x80;
  let v = BigInt(value);
  for (let i = offset + width - 1; i > offset && v > 0n; i--) { buf[i] = Number(v & 0xffn); v >>= 8n; }
}

export interface GceTarOptions {
  /** Modification time of disk.raw (seconds). Default 0, so the same disk gives the same bytes. */
  mtime?: number | undefined;
  /** gzip level, default 6 (as `tar -z`). */
  level?: number | undefined;
}

/** The sparse map: data chunks on 512-byte boundaries, and the final zero-length entry. */
function sparseMap(source: DiskSource, realSize: number): [number, number][] {
  const map: [number, number][] = [];
  for (const [s, e] of source.extents) {
    const start = Math.floor(s / BLOCK) * BLOCK;
    const end = Math.min(Math.ceil(e / BLOCK) * BLOCK, realSize);
    if (end > start) map.push([start, end - start]);
  }
  const last = map[map.length - 1];
  if (!last || last[0] + last[1] < realSize) map.push([realSize, 0]);
  return map;
}

function encodeHeaders(map: [number, number][], realSize: number, mtime: number): Buffer {
  const stored = map.reduce((n, [, len]) => n + len, 0);
  const h = Buffer.alloc(BLOCK);
  h.write(GCE_MEMBER, 0, 'latin1');
  numeric(h, 100, 8, 0o644);
  numeric(h, 108, 8, 0);
  numeric(h, 116, 8, 0);
  numeric(h, 124, 12, stored);
  numeric(h, 136, 12, mtime);
  h.write('S', 156, 'latin1'); // GNU sparse file
  h.write('ustar  \0', 257, 'latin1'); // oldgnu magic and version
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  const inHeader = map.slice(0, HEADER_SPARSE);
  inHeader.forEach(([off, len], i) => { numeric(h, 386 + i * 24, 12, off); numeric(h, 386 + i * 24 + 12, 12, len); });
  const rest = map.slice(HEADER_SPARSE);
  h[482] = rest.length ? 1 : 0;
  numeric(h, 483, 12, realSize);
  h.fill(0x20, 148, 156); // checksum: sum of the header with the field as spaces
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const blocks = [h];
  for (let i = 0; i < rest.length; i += EXTENSION_SPARSE) {
    const x = Buffer.alloc(BLOCK);
    rest.slice(i, i + EXTENSION_SPARSE).forEach(([off, len], j) => { numeric(x, j * 24, 12, off); numeric(x, j * 24 + 12, 12, len); });
    x[504] = i + EXTENSION_SPARSE < rest.length ? 1 : 0;
    blocks.push(x);
  }
  return Buffer.concat(blocks);
}

/** Writes `source` as a GCE tarball (tar.gz with a sparse disk.raw) to `out`. */
export async function writeGceTarball(source: DiskSource, out: FileHandle, options: GceTarOptions = {}): Promise<void> {
  const realSize = gceDiskSize(source.virtualSize);
  const map = sparseMap(source, realSize);
  const gzip = createGzip({ level: options.level ?? 6 });
  let position = 0;
  const written = (async () => {
    for await (const chunk of gzip as AsyncIterable<Buffer>) {
      await out.write(chunk, 0, chunk.length, position);
      position += chunk.length;
    }
  })();
  let tarBytes = 0;
  const push = async (b: Buffer) => {
    tarBytes += b.length;
    if (!gzip.write(b)) await once(gzip, 'drain');
  };
  try {
    await push(encodeHeaders(map, realSize, options.mtime ?? 0));
    const STEP = 1024 * 1024;
    let stored = 0;
    for (const [off, len] of map) {
      for (let at = 0; at < len; at += STEP) {
        const n = Math.min(STEP, len - at);
        await push(await source.read(off + at, n));
      }
      stored += len;
    }
    if (stored % BLOCK) await push(Buffer.alloc(BLOCK - (stored % BLOCK)));
    await push(Buffer.alloc(2 * BLOCK)); // end of archive
    if (tarBytes % RECORD) await push(Buffer.alloc(RECORD - (tarBytes % RECORD)));
    gzip.end();
    await written;
  } catch (error) {
    gzip.destroy();
    await written.catch(() => {});
    throw error;
  }
  await out.truncate(position);
}
