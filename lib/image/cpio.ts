/*
 * cpio "newc" (SVR4 without CRC) as OSv's cpiod receives it (osv-image-formats.md §4.3).
 *
 * API
 *   checkCpioEntry(entry) → throws an ImageError when the entry cannot be sent: a file of
 *     4 GiB or more (the size field is 8 hex digits), a path that is not absolute and normal,
 *     or the root itself. Call it for every entry *before* the builder VM starts.
 *   new CpioWriter(sink) → directory(), symlink(), file() and end() push the stream's bytes to
 *     `sink` (awaited, so a socket's backpressure holds us back). File data comes from an
 *     async iterable of chunks and is never gathered in memory; a file that turns out longer
 *     or shorter than its declared size is an error (the stream is then unusable: the header
 *     already promised the size).
 *   cpioArchive(entries) → the same bytes as an async generator of Buffers.
 *   encodeCpioHeader(), CPIO_TRAILER: the raw pieces.
 *
 * Every header field is 8 lowercase hex digits; ino, uid, gid, nlink, mtime, dev and check are
 * 0 as Capstan sends them. Names are absolute guest paths followed by NUL and padded so that
 * header + name is a multiple of 4; data is padded to 4 as well.
 *
 * The root is never sent: cpiod would chmod the dataset root (prefix + "/"), which crashes the
 * guest (issue #10). CpioWriter.directory('/') is therefore a no-op.
 */
import { ImageError } from '../errors.js';

const MAGIC = '070701';
const HEADER_LENGTH = 110;
/** Largest size the 8-hex-digit c_filesize field holds: files of 4 GiB or more cannot be sent. */
export const CPIO_MAX_FILE_SIZE = 0xffffffff;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const PADDING = [Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(2), Buffer.alloc(1)] as const;

export type CpioEntryType = 'file' | 'dir' | 'symlink';

export interface CpioEntry {
  /** Absolute guest path, e.g. `/usr/lib/libfoo.so`. */
  path: string;
  type: CpioEntryType;
  /** Permission bits (masked with 0777 as Capstan does). Default 0644, 0755 for folders, 0777 for symlinks. */
  mode?: number | undefined;
  /** File size in bytes (files only). */
  size?: number | undefined;
  /** Symlink target, stored as given. */
  target?: string | undefined;
  /** Where the entry came from, for error messages. */
  source?: string | undefined;
}

/** Zero bytes that bring `length` up to a multiple of 4. */
export function cpioPadding(length: number): Buffer {
  return PADDING[length % 4]!;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** A member header: the 110 header bytes, the name, its NUL and the padding. */
export function encodeCpioHeader(name: string, mode: number, size: number): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const namesize = nameBytes.length + 1;
  const fields = MAGIC + hex8(0) + hex8(mode) + hex8(0) + hex8(0) + hex8(0) + hex8(0) + hex8(size)
    + hex8(0) + hex8(0) + hex8(0) + hex8(0) + hex8(namesize) + hex8(0);
  const total = HEADER_LENGTH + namesize;
  const out = Buffer.alloc(total + (4 - (total % 4)) % 4);
  out.write(fields, 0, 'ascii');
  nameBytes.copy(out, HEADER_LENGTH);
  return out;
}

/** The end-of-archive member: `TRAILER!!!`, mode 0, size 0; 124 bytes. */
export const CPIO_TRAILER: Buffer = encodeCpioHeader('TRAILER!!!', 0, 0);

/** True for the guest root, which is never sent (see the module comment). */
export function isCpioRoot(guestPath: string): boolean {
  return /^\/+$/.test(guestPath);
}

/** Throws when `entry` cannot go into the stream; call it for every entry before sending any. */
export function checkCpioEntry(entry: CpioEntry): void {
  const where = entry.source ?? entry.path;
  const bad = (problem: string, hint: string, code = 'E_CPIO_PATH') => new ImageError(problem, { code, file: where, hint });
  if (typeof entry.path !== 'string' || !entry.path.startsWith('/')) {
    throw bad(`guest path "${String(entry.path)}" is not absolute`, 'Guest paths start with "/", e.g. /usr/lib/libfoo.so.');
  }
  if (isCpioRoot(entry.path)) {
    throw bad('the guest root itself cannot be sent to cpiod (it would chmod the dataset root)', 'Leave the root out; cpiod creates folders as needed.');
  }
  if (entry.path.includes('\0')) throw bad(`guest path ${JSON.stringify(entry.path)} contains a NUL byte`, 'Rename the file.');
  const parts = entry.path.split('/').slice(1);
  if (parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw bad(`guest path "${entry.path}" is not normal (empty, "." or ".." parts)`, 'Give the path without "//", "/./" or "/../", and without a trailing "/".');
  }
  if (entry.type === 'file') {
    const size = entry.size;
    if (size === undefined || !Number.isSafeInteger(size) || size < 0) {
      throw bad(`file ${entry.path} has no valid size (${String(size)})`, 'Give the size in bytes of the file to send.', 'E_CPIO_SIZE');
    }
    if (size > CPIO_MAX_FILE_SIZE) {
      throw new ImageError(`${entry.path} is ${size} bytes; files of 4 GiB or more cannot be sent to the ZFS builder (the cpio newc size field is 8 hex digits)`, {
        code: 'E_CPIO_TOO_LARGE', file: where,
        hint: 'Split the file, keep it outside the image (a volume), or use a ROFS image (fs: "rofs").',
      });
    }
  } else if (entry.type === 'symlink') {
    if (typeof entry.target !== 'string' || entry.target.length === 0) {
      throw bad(`symlink ${entry.path} has no target`, 'Give the symlink target.', 'E_CPIO_SYMLINK');
    }
    if (entry.target.includes('\0')) throw bad(`symlink ${entry.path} has a target containing a NUL byte`, 'Fix the symlink target.', 'E_CPIO_SYMLINK');
    if (Buffer.byteLength(entry.target) > CPIO_MAX_FILE_SIZE) throw bad(`symlink ${entry.path} has an over-long target`, 'Fix the symlink target.', 'E_CPIO_SYMLINK');
  } else if (entry.type !== 'dir') {
    throw bad(`unknown entry type "${String(entry.type)}"`, 'Use file, dir or symlink.', 'E_CPIO_TYPE');
  }
}

/** Receives the stream's bytes in order; a returned promise is awaited before the next chunk. */
export type CpioSink = (chunk: Buffer) => void | Promise<void>;

export interface CpioSummary {
  files: number;
  directories: number;
  symlinks: number;
  /** Bytes of file data sent. */
  fileBytes: number;
  /** Bytes of the whole stream so far. */
  streamBytes: number;
}

/** Writes a newc stream member by member to a sink. */
export class CpioWriter {
  private readonly sink: CpioSink;
  private ended = false;
  private busy = false;
  readonly summary: CpioSummary = { files: 0, directories: 0, symlinks: 0, fileBytes: 0, streamBytes: 0 };

  constructor(sink: CpioSink) { this.sink = sink; }

  /** A folder; `/` is skipped (never sent). Resolves false when skipped. */
  async directory(guestPath: string, mode = 0o755): Promise<boolean> {
    if (isCpioRoot(guestPath)) return false;
    const entry: CpioEntry = { path: guestPath, type: 'dir', mode };
    await this.member(entry, async () => {
      await this.push(encodeCpioHeader(guestPath, S_IFDIR | (mode & 0o777), 0));
      this.summary.directories++;
    });
    return true;
  }

  async symlink(guestPath: string, target: string, mode = 0o777): Promise<void> {
    await this.member({ path: guestPath, type: 'symlink', target, mode }, async () => {
      const data = Buffer.from(target, 'utf8');
      await this.push(encodeCpioHeader(guestPath, S_IFLNK | (mode & 0o777), data.length));
      await this.push(data);
      await this.pad(data.length);
      this.summary.symlinks++;
    });
  }

  /**
   * A regular file of `size` bytes whose data comes from `content` (a buffer, or chunks).
   * The byte count must match `size`; otherwise it throws and the stream must be abandoned.
   */
  async file(guestPath: string, size: number, content: Uint8Array | AsyncIterable<Uint8Array | string>, mode = 0o644, source?: string): Promise<void> {
    await this.member({ path: guestPath, type: 'file', size, mode, source }, async () => {
      await this.push(encodeCpioHeader(guestPath, S_IFREG | (mode & 0o777), size));
      let sent = 0;
      const changed = (got: string) => new ImageError(
        `${guestPath} changed size while it was being sent: ${size} bytes were declared, ${got}`, {
          code: 'E_CPIO_SIZE_CHANGED', file: source ?? guestPath,
          hint: 'Was the file modified during the build? Run the build again once it no longer changes.',
        });
      if (content instanceof Uint8Array) {
        if (content.length !== size) throw changed(`the contents hold ${content.length}`);
        if (size > 0) await this.push(Buffer.from(content.buffer, content.byteOffset, content.length));
        sent = size;
      } else {
        for await (const piece of content) {
          const chunk = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : Buffer.from(piece.buffer, piece.byteOffset, piece.length);
          if (chunk.length === 0) continue;
          if (sent + chunk.length > size) throw changed(`more than ${size} arrived`);
          await this.push(chunk);
          sent += chunk.length;
        }
        if (sent !== size) throw changed(`only ${sent} arrived`);
      }
      await this.pad(size);
      this.summary.files++;
      this.summary.fileBytes += size;
    });
  }

  /** Sends the trailer. No member may follow. */
  async end(): Promise<CpioSummary> {
    this.assertOpen();
    this.ended = true;
    await this.push(CPIO_TRAILER);
    return this.summary;
  }

  private async member(entry: CpioEntry, send: () => Promise<void>): Promise<void> {
    this.assertOpen();
    checkCpioEntry(entry);
    if (this.busy) throw new ImageError('cpio members must be written one at a time (await each one)', { code: 'E_CPIO_STATE' });
    this.busy = true;
    try {
      await send();
    } catch (error) {
      this.ended = true; // a member was cut short: the stream cannot continue
      throw error;
    } finally {
      this.busy = false;
    }
  }

  private assertOpen(): void {
    if (this.ended) throw new ImageError('the cpio stream has ended (trailer sent, or a member failed)', { code: 'E_CPIO_STATE' });
  }

  private async pad(length: number): Promise<void> {
    const p = cpioPadding(length);
    if (p.length) await this.push(p);
  }

  private async push(chunk: Buffer): Promise<void> {
    this.summary.streamBytes += chunk.length;
    await this.sink(chunk);
  }
}

/** A member for cpioArchive: an entry plus, for files, its data. */
export type CpioArchiveEntry = CpioEntry & { content?: Uint8Array | AsyncIterable<Uint8Array | string> | undefined };

function sizeOf(e: CpioArchiveEntry): number | undefined {
  return e.size ?? (e.content === undefined ? 0 : e.content instanceof Uint8Array ? e.content.length : undefined);
}

/**
 * The whole stream (members, then the trailer) as Buffers, produced as they are consumed: the
 * writer waits until each chunk is taken, so a large file is never queued whole. When
 * `entries` is an array every entry is checked first, so nothing is produced for a bad list.
 */
export async function* cpioArchive(entries: Iterable<CpioArchiveEntry> | AsyncIterable<CpioArchiveEntry>): AsyncGenerator<Buffer> {
  if (Array.isArray(entries)) {
    for (const e of entries as CpioArchiveEntry[]) if (!(e.type === 'dir' && isCpioRoot(e.path))) checkCpioEntry({ ...e, size: sizeOf(e) });
  }
  // A one-slot hand-over between the writer (producer) and this generator (consumer).
  let slot: { chunk: Buffer; taken: () => void } | undefined;
  let wake: (() => void) | undefined;
  let done = false;
  let failure: { error: unknown } | undefined;
  let cancelled = false;
  const signal = () => { const w = wake; wake = undefined; w?.(); };
  const writer = new CpioWriter((chunk) => new Promise<void>((resolve, reject) => {
    if (cancelled) { reject(new ImageError('the cpio stream was abandoned by its reader', { code: 'E_CPIO_STATE' })); return; }
    slot = { chunk, taken: resolve };
    signal();
  }));
  const produce = async () => {
    for await (const e of entries as AsyncIterable<CpioArchiveEntry>) {
      if (e.type === 'dir') await writer.directory(e.path, e.mode ?? 0o755);
      else if (e.type === 'symlink') await writer.symlink(e.path, e.target ?? '', e.mode ?? 0o777);
      else {
        await writer.file(e.path, sizeOf(e) ?? -1, e.content ?? Buffer.alloc(0), e.mode ?? 0o644, e.source);
      }
    }
    await writer.end();
  };
  produce().then(() => { done = true; signal(); }, (error: unknown) => { failure = { error }; signal(); });
  try {
    for (;;) {
      if (slot) {
        const { chunk, taken } = slot;
        slot = undefined;
        yield chunk;
        taken();
        continue;
      }
      if (failure) throw failure.error;
      if (done) return;
      await new Promise<void>((resolve) => { wake = resolve; });
    }
  } finally {
    if (!done && !failure) {
      cancelled = true;
      const pending = slot;
      slot = undefined;
      pending?.taken();
    }
  }
}
