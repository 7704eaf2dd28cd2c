// An image file as it goes to another host (Glance, a libvirt storage pool): a byte stream of
// the file, with the command-line area (bytes 512–32767 of the virtual disk) replaced when the
// run asks for its own command line — Capstan writes the command line into the image before it
// uploads it; we patch it on the way, so the local image stays as it is and no copy is made.
// The stream's MD5 and SHA-512 are computed as it goes, to check what the far side stored.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { CloudError } from '../errors.js';
import { CMDLINE_AREA_END, CMDLINE_OFFSET, decodeCmdline, encodeCmdlineArea } from '../image/cmdline.js';
import { openDiskImage } from '../image/disk.js';
import { probeImageFormat } from '../image/probe.js';
import { openQcow2 } from '../image/qcow2.js';

export type UploadFormat = 'qcow2' | 'raw';

export interface UploadSource {
  file: string;
  format: UploadFormat;
  /** Bytes sent (the file's size). */
  size: number;
  /** The disk's virtual size. */
  virtualSize: number;
  /** The command line the uploaded disk carries. */
  cmdline: string;
  /** The file bytes that are replaced on the way: (file offset, new bytes). */
  patches: ReadonlyArray<{ at: number; data: Buffer }>;
  /** A fresh stream of the bytes to send (one per attempt). */
  open(onBytes?: (sent: number) => void): Readable;
  /** Digests of the last stream opened, once it has ended. */
  digests(): { md5: string; sha512: string; bytes: number } | undefined;
}

interface Patch { at: number; data: Buffer }

/**
 * Prepares `file` for upload. With `cmdline`, the uploaded bytes carry it instead of the
 * image's own. Only standalone qcow2 and raw images go: a qcow2 with a backing file would be
 * broken anywhere else.
 */
export async function prepareUpload(file: string, cmdline?: string): Promise<UploadSource> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    throw new CloudError('the image to upload does not exist', { code: 'E_CLOUD_IMAGE_FILE', file, hint: 'Build it first, or fix the path.' });
  }
  const probed = await probeImageFormat(file);
  if (probed !== 'qcow2' && probed !== 'raw') {
    throw new CloudError(`this is a ${probed} image; only qcow2 and raw images can be uploaded`, {
      code: 'E_CLOUD_IMAGE_FORMAT', file, hint: 'Build the image with format "qcow2" (the default) or "raw".',
    });
  }
  const format: UploadFormat = probed;
  const disk = await openDiskImage(file, format);
  let current: string;
  let virtualSize: number;
  try {
    virtualSize = disk.virtualSize;
    current = decodeCmdline(await disk.read(0, CMDLINE_AREA_END));
  } finally {
    await disk.close();
  }
  const patches: Patch[] = [];
  if (format === 'qcow2') {
    const q = await openQcow2(file);
    try {
      if (q.header.backingFile) {
        throw new CloudError(`this qcow2 image is an overlay over ${q.header.backingFile}, which the far side does not have`, {
          code: 'E_CLOUD_IMAGE_BACKING', file, hint: 'Upload the image itself, not an instance overlay (or flatten it: qemu-img convert -O qcow2).',
        });
      }
      if (cmdline !== undefined && cmdline !== current) {
        // The area lies in one or more clusters; each piece must be stored in this file.
        const area = encodeCmdlineArea(cmdline);
        const cluster = 2 ** q.header.clusterBits;
        for (let v = CMDLINE_OFFSET; v < CMDLINE_AREA_END;) {
          const end = Math.min(CMDLINE_AREA_END, (Math.floor(v / cluster) + 1) * cluster);
          const host = await q.hostOffset(v);
          if (host === undefined) {
            throw new CloudError('cannot write the command line into this image: its first clusters are not allocated', {
              code: 'E_CLOUD_IMAGE_CMDLINE', file, hint: 'Build the image with gulp-capstan (its loader fills them), or set the command line when composing it.',
            });
          }
          patches.push({ at: host, data: area.subarray(v - CMDLINE_OFFSET, end - CMDLINE_OFFSET) });
          v = end;
        }
      }
    } finally {
      await q.close();
    }
  } else if (cmdline !== undefined && cmdline !== current) {
    patches.push({ at: CMDLINE_OFFSET, data: encodeCmdlineArea(cmdline) });
  }
  let last: { md5: string; sha512: string; bytes: number } | undefined;
  return {
    file, format, size, virtualSize, cmdline: cmdline ?? current, patches,
    open(onBytes) {
      last = undefined;
      const md5 = createHash('md5');
      const sha512 = createHash('sha512');
      let pos = 0;
      const patcher = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          let out = chunk;
          for (const p of patches) {
            const from = Math.max(p.at, pos);
            const to = Math.min(p.at + p.data.length, pos + chunk.length);
            if (from >= to) continue;
            if (out === chunk) out = Buffer.from(chunk);
            p.data.copy(out, from - pos, from - p.at, to - p.at);
          }
          pos += chunk.length;
          md5.update(out);
          sha512.update(out);
          onBytes?.(pos);
          done(null, out);
        },
        flush(done) {
          last = { md5: md5.digest('hex'), sha512: sha512.digest('hex'), bytes: pos };
          done();
        },
      });
      const source = createReadStream(file, { highWaterMark: 1024 * 1024 });
      source.on('error', (error) => patcher.destroy(error));
      return source.pipe(patcher);
    },
    digests: () => last,
  };
}
