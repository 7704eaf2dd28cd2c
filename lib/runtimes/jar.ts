// Reading one entry of a jar (a zip file) without unpacking it: the central directory at the
// end says where each entry starts; META-INF/MANIFEST.MF is then stored or deflated. Enough for
// `Main-Class` and `Class-Path`; zip64 jars (over 4 GB or 65535 entries) are read too.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { ManifestError } from '../errors.js';

const EOCD = 0x06054b50;
const ZIP64_EOCD = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function bad(file: string, problem: string): ManifestError {
  return new ManifestError(`${problem}: not a jar (zip) file that can be read`, {
    code: 'E_JAR', file, hint: 'Rebuild the jar (mvn package, gradle jar), or name another one with java: { main: "target/app.jar" }.',
  });
}

/** The bytes of `entry` in the zip `file`, or undefined when it has none. */
export function readZipEntry(file: string, entry: string): Buffer | undefined {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const read = (position: number, length: number) => {
      const buffer = Buffer.alloc(length);
      const n = readSync(fd, buffer, 0, length, position);
      return buffer.subarray(0, n);
    };
    // The end record is in the last 22 + 65535 (comment) bytes.
    const tailLength = Math.min(size, 22 + 0xffff);
    const tail = read(size - tailLength, tailLength);
    let at = -1;
    for (let i = tail.length - 22; i >= 0; i--) if (tail.readUInt32LE(i) === EOCD) { at = i; break; }
    if (at < 0) throw bad(file, 'no end of central directory');
    let count = tail.readUInt16LE(at + 10);
    let dirSize = tail.readUInt32LE(at + 12);
    let dirOffset = tail.readUInt32LE(at + 16);
    if (dirOffset === 0xffffffff || count === 0xffff) {
      const locator = at >= 20 ? tail.subarray(at - 20, at) : Buffer.alloc(0);
      if (locator.length !== 20 || locator.readUInt32LE(0) !== ZIP64_LOCATOR) throw bad(file, 'zip64 without its locator');
      const record = read(Number(locator.readBigUInt64LE(8)), 56);
      if (record.readUInt32LE(0) !== ZIP64_EOCD) throw bad(file, 'zip64 end record missing');
      count = Number(record.readBigUInt64LE(32));
      dirSize = Number(record.readBigUInt64LE(40));
      dirOffset = Number(record.readBigUInt64LE(48));
    }
    const dir = read(dirOffset, dirSize);
    let p = 0;
    for (let i = 0; i < count && p + 46 <= dir.length; i++) {
      if (dir.readUInt32LE(p) !== CENTRAL) throw bad(file, 'damaged central directory');
      const method = dir.readUInt16LE(p + 10);
      let compressed = dir.readUInt32LE(p + 20);
      const nameLength = dir.readUInt16LE(p + 28);
      const extraLength = dir.readUInt16LE(p + 30);
      const commentLength = dir.readUInt16LE(p + 32);
      let local = dir.readUInt32LE(p + 42);
      const name = dir.toString('utf8', p + 46, p + 46 + nameLength);
      if (name === entry) {
        if (compressed === 0xffffffff || local === 0xffffffff) {
          // zip64 extra field: the 64-bit values present are in this order.
          const extra = dir.subarray(p + 46 + nameLength, p + 46 + nameLength + extraLength);
          for (let e = 0; e + 4 <= extra.length;) {
            const id = extra.readUInt16LE(e);
            const len = extra.readUInt16LE(e + 2);
            if (id === 1) {
              let q = e + 4;
              if (dir.readUInt32LE(p + 24) === 0xffffffff) q += 8; // uncompressed size
              if (compressed === 0xffffffff) { compressed = Number(extra.readBigUInt64LE(q)); q += 8; }
              if (local === 0xffffffff) local = Number(extra.readBigUInt64LE(q));
            }
            e += 4 + len;
          }
        }
        const header = read(local, 30);
        if (header.length < 30 || header.readUInt32LE(0) !== LOCAL) throw bad(file, `damaged entry ${entry}`);
        const start = local + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
        const data = read(start, compressed);
        if (method === 0) return data;
        if (method === 8) return inflateRawSync(data);
        throw bad(file, `${entry} is compressed with method ${method}`);
      }
      p += 46 + nameLength + extraLength + commentLength;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The main attributes of a jar's manifest (continuation lines joined), or undefined without one. */
export function readJarManifest(file: string): Record<string, string> | undefined {
  const bytes = readZipEntry(file, 'META-INF/MANIFEST.MF');
  if (!bytes) return undefined;
  const attributes: Record<string, string> = {};
  // A line that starts with a space continues the one before (the 72-byte limit).
  const lines = bytes.toString('utf8').replace(/\r\n|\r/g, '\n').replace(/\n /g, '').split('\n');
  for (const line of lines) {
    if (line === '') break; // the main section ends at the first blank line
    const colon = line.indexOf(': ');
    if (colon > 0) attributes[line.slice(0, colon)] = line.slice(colon + 2);
  }
  return attributes;
}
