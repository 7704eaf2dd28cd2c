// Reading Capstan packages (.mpm): a tar, usually gzipped (osv-image-formats.md §5.1).
// A package is untrusted input: its member names become guest paths, so a name that climbs
// out of the root (`../`), a device node, a hard link, or a symlink that would let a later
// member be written outside the root is refused, never silently clamped.
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { RepositoryError } from '../errors.js';

export type MpmMemberType = 'file' | 'directory' | 'symlink';

export interface MpmMember {
  /** Guest path: absolute, normalised, no trailing slash (`/usr/lib/libfoo.so`). */
  guestPath: string;
  type: MpmMemberType;
  /** Permission bits (0o7777). */
  mode: number;
  /** Symlink target, verbatim. */
  linkname?: string | undefined;
  /** File contents (empty for directories and symlinks). */
  contents: Buffer;
  /** The member's modification time, when the archive records one (`package describe --content` shows it). */
  mtime?: Date | undefined;
}

const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Yields the members of an .mpm archive (gzip or plain tar) in archive order, refusing hostile
 * ones. `label` names the archive in errors. The root member (`/`) is skipped.
 */
export async function* readMpm(source: AsyncIterable<Buffer> | Readable, label: string): AsyncGenerator<MpmMember> {
  const extract = tar.extract();
  const input = Readable.from(sniffGzip(source));
  const feeding = pipeline(input, extract).catch((error: unknown) => {
    extract.destroy(error as Error);
  });
  const symlinks = new Map<string, string>();
  try {
    for await (const entry of extract) {
      const header = entry.header;
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const member = checkMember(header, Buffer.concat(chunks), label, symlinks);
      if (member) yield member;
    }
  } catch (error) {
    if (error instanceof RepositoryError) throw error;
    throw new RepositoryError(`cannot read the package archive: ${(error as Error).message}`, {
      code: 'E_MPM_CORRUPT', file: label, cause: error,
      hint: 'The .mpm must be a tar or tar.gz archive; rebuild it with `capstan package build` or download it again.',
    });
  } finally {
    extract.destroy();
    await feeding;
  }
}

/** Passes the bytes through, gunzipping when they start with the gzip magic. */
async function* sniffGzip(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) return;
  const head = first.value as Buffer;
  const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => iterator };
  if (head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) {
    const gunzip = zlib.createGunzip();
    const feed = (async () => {
      gunzip.write(head);
      for await (const chunk of rest) if (!gunzip.write(chunk)) await new Promise((r) => gunzip.once('drain', r));
      gunzip.end();
    })().catch((e: Error) => gunzip.destroy(e));
    for await (const chunk of gunzip) yield chunk as Buffer;
    await feed;
  } else {
    yield head;
    for await (const chunk of rest) yield chunk;
  }
}

function checkMember(header: tar.Header, contents: Buffer, label: string, symlinks: Map<string, string>): MpmMember | undefined {
  const refuse = (problem: string): never => {
    throw new RepositoryError(`refusing member "${header.name}": ${problem}`, {
      code: 'E_MPM_UNSAFE', file: label,
      hint: 'This package would write outside the image root or create something an image cannot hold; do not use it, or rebuild it from trusted files.',
    });
  };
  const guestPath = guestPathOf(header.name, refuse);
  if (guestPath === '/') return undefined;
  // Writing through a symlink the same archive planted (`/lib -> /etc`, then `/lib/passwd`).
  for (let dir = path.posix.dirname(guestPath); dir !== '/'; dir = path.posix.dirname(dir)) {
    if (symlinks.has(dir)) refuse(`its parent ${dir} is a symlink in this package`);
  }
  const mode = header.mode & 0o7777;
  const mtime = header.mtime instanceof Date && !Number.isNaN(header.mtime.getTime()) ? { mtime: header.mtime } : {};
  switch (header.type) {
    case 'file':
    case 'contiguous-file':
      return { guestPath, type: 'file', mode, contents, ...mtime };
    case 'directory':
      return { guestPath, type: 'directory', mode, contents: Buffer.alloc(0), ...mtime };
    case 'symlink': {
      const target = header.linkname;
      if (!target) refuse('symlink without a target');
      if (target.includes('\0')) refuse('symlink target contains a NUL byte');
      if (!target.startsWith('/')) {
        // A relative target must stay inside the root when resolved from the link's folder.
        let depth = path.posix.dirname(guestPath).split('/').filter(Boolean).length;
        for (const part of target.split('/')) {
          if (part === '..') depth -= 1;
          else if (part !== '.' && part !== '') depth += 1;
          if (depth < 0) refuse(`symlink target "${target}" climbs above the image root`);
        }
      }
      symlinks.set(guestPath, target);
      return { guestPath, type: 'symlink', mode: mode || 0o777, linkname: target, contents: Buffer.alloc(0), ...mtime };
    }
    case 'link':
      return refuse('hard links are not supported in packages');
    default:
      return refuse(`${header.type} entries are not allowed in packages`);
  }
}

/** `/usr/lib/`, `usr/lib`, `./usr/lib` → `/usr/lib`; any `..` segment is refused. */
function guestPathOf(name: string, refuse: (problem: string) => never): string {
  if (name.includes('\0')) refuse('name contains a NUL byte');
  if (name.includes('\\')) refuse('name contains a backslash');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) refuse('name contains ".."');
  return '/' + parts.join('/');
}

/** True for members Capstan treats as package metadata (`meta/...`), which are not extracted. */
export function isMetaMember(guestPath: string): boolean {
  return guestPath === '/meta' || guestPath.startsWith('/meta/');
}
