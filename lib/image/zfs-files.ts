// The files of a ZFS image, gathered before the builder VM starts. The builder must know the
// whole tree first: files of 4 GiB or more must be refused before the VM boots, precedence
// (a higher layer replacing a lower one, a lower one arriving late being ignored) must be
// settled so that only the winners are sent, and --update must hash everything to decide.
//
// Only metadata stays in memory. File data is kept where it is cheapest to read again:
//  - a host file (gulp.src / capstan.src with read: false) is a reference, read at send time
//    (its stat is checked then, so a file changed in between is an error, not other bytes);
//  - a small buffer (≤ 64 KiB: generated files, package members) is kept as is;
//  - larger buffers and stream contents are appended to a spool file beside the image, so a
//    vinyl stream is consumed as it arrives and never held whole in memory.
// The MD5 of spooled and buffered data is computed as it passes; that of host files when they
// are read (by hashAll for --update, or while being sent).
//
// Precedence is RofsBuilder's: an entry replaces an existing one when its layer is higher or
// equal (later wins among equals), a lower layer is ignored, folders merge.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { ImageError } from '../errors.js';
import { checkCpioEntry, CPIO_MAX_FILE_SIZE } from './cpio.js';

/** Names longer than this are refused by ZFS (MAXNAMELEN − 1). */
const ZFS_MAX_NAME_BYTES = 255;
/** OSv's PATH_MAX − 1: cpiod opens prefix + path. */
const MAX_PATH_BYTES = 4095 - '/zfs/zfs'.length;
const KEEP_IN_MEMORY = 64 * 1024;
const READ_CHUNK = 1024 * 1024;

/** A host file to read when it is sent: its size now, and a fresh reader each time. */
export interface HostFileSource {
  size: number;
  /** The file's chunks, each a buffer of its own (they may be queued on a socket). */
  read: () => Iterable<Uint8Array>;
}

export interface ZfsEntryOptions {
  /** Precedence layer (packages in resolution order, the application highest). Default 0. */
  layer?: number | undefined;
  /** Permission bits. Default 0644 for files, 0755 for folders. */
  mode?: number | undefined;
  /** Where the entry came from, for error messages. */
  source?: string | undefined;
  /** For files read from the host: read them at send time instead of consuming `content`. */
  hostFile?: HostFileSource | undefined;
}

export type ZfsAddResult = 'added' | 'replaced' | 'merged' | 'shadowed';

type FileData =
  | { kind: 'host'; source: HostFileSource }
  | { kind: 'buffer'; data: Buffer }
  | { kind: 'spool'; offset: number };

interface Base { layer: number; mode: number; source: string | undefined }
interface DirNode extends Base { type: 'dir'; children: Map<string, Node> }
interface FileNode extends Base { type: 'file'; size: number; data: FileData; md5?: string | undefined }
interface LinkNode extends Base { type: 'symlink'; target: string }
type Node = DirNode | FileNode | LinkNode;

/** A winning entry, as sent to cpiod. */
export type ZfsEntry =
  | { path: string; type: 'dir'; mode: number; source: string | undefined }
  | { path: string; type: 'symlink'; mode: number; target: string; source: string | undefined }
  | { path: string; type: 'file'; mode: number; size: number; source: string | undefined; node: FileNode };

export interface ZfsFilesSummary {
  files: number;
  directories: number;
  symlinks: number;
  fileBytes: number;
}

export class ZfsFiles {
  private readonly root: DirNode = { type: 'dir', layer: -Infinity, mode: 0o755, source: undefined, children: new Map() };
  private readonly spoolPath: string;
  private spoolFd: number | undefined;
  private spoolSize = 0;
  private busy = false;

  /** `spoolPath`: where spooled data goes (created on first use, removed by close()). */
  constructor(spoolPath: string) {
    this.spoolPath = spoolPath;
  }

  addDirectory(guestPath: string, options: ZfsEntryOptions = {}): ZfsAddResult {
    const names = splitZfsPath(guestPath, options.source);
    if (names.length === 0) return 'merged'; // the root always exists and is never sent
    return this.place(names, options, () => ({ type: 'dir', layer: 0, mode: options.mode ?? 0o755, source: options.source, children: new Map() }));
  }

  addSymlink(guestPath: string, target: string, options: ZfsEntryOptions = {}): ZfsAddResult {
    const names = splitZfsPath(guestPath, options.source);
    if (names.length === 0) throw rootConflict(guestPath, options.source);
    checkCpioEntry({ path: '/' + names.join('/'), type: 'symlink', target, source: options.source });
    return this.place(names, options, () => ({ type: 'symlink', layer: 0, mode: options.mode ?? 0o777, source: options.source, target }));
  }

  /**
   * Adds a regular file. With `options.hostFile` the file is only referenced; otherwise
   * `content` is kept (small buffer) or spooled. A shadowed file's content is not read.
   */
  async addFile(guestPath: string, content: Uint8Array | AsyncIterable<Uint8Array | string> | undefined, options: ZfsEntryOptions = {}): Promise<ZfsAddResult> {
    const names = splitZfsPath(guestPath, options.source);
    if (names.length === 0) throw rootConflict(guestPath, options.source);
    const path = '/' + names.join('/');
    if (this.wouldShadow(names, options.layer ?? 0)) return 'shadowed';
    if (this.busy) throw new ImageError(`addFile(${guestPath}) was called while another file was being added`, { code: 'E_ZFS_CONCURRENT', hint: 'Await each addFile before the next.' });
    this.busy = true;
    let node: FileNode;
    try {
      const base = { type: 'file' as const, layer: 0, mode: options.mode ?? 0o644, source: options.source };
      if (options.hostFile) {
        checkCpioEntry({ path, type: 'file', size: options.hostFile.size, source: options.source });
        node = { ...base, size: options.hostFile.size, data: { kind: 'host', source: options.hostFile } };
      } else if (content instanceof Uint8Array && content.length <= KEEP_IN_MEMORY) {
        node = { ...base, size: content.length, data: { kind: 'buffer', data: Buffer.from(content.buffer, content.byteOffset, content.length) }, md5: md5(content) };
      } else if (content === undefined) {
        throw new ImageError('has no contents', { code: 'E_NO_CONTENTS', file: options.source ?? guestPath });
      } else {
        checkCpioEntry({ path, type: 'file', size: content instanceof Uint8Array ? content.length : 0, source: options.source });
        node = { ...base, ...await this.spool(path, content, options.source) };
      }
    } finally {
      this.busy = false;
    }
    return this.place(names, options, () => node);
  }

  /** Appends content to the spool, hashing it; refuses to go past the cpio size limit. */
  private async spool(path: string, content: Uint8Array | AsyncIterable<Uint8Array | string>, source: string | undefined): Promise<{ size: number; data: FileData; md5: string }> {
    this.spoolFd ??= openSync(this.spoolPath, 'w+');
    const offset = this.spoolSize;
    const hash = createHash('md5');
    let size = 0;
    const put = (chunk: Uint8Array) => {
      if (size + chunk.length > CPIO_MAX_FILE_SIZE) checkCpioEntry({ path, type: 'file', size: size + chunk.length, source });
      let done = 0;
      while (done < chunk.length) done += writeSync(this.spoolFd!, chunk, done, chunk.length - done, offset + size + done);
      hash.update(chunk);
      size += chunk.length;
    };
    if (content instanceof Uint8Array) {
      put(content);
    } else {
      for await (const piece of content) put(typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece);
    }
    this.spoolSize += size;
    return { size, data: { kind: 'spool', offset }, md5: hash.digest('hex') };
  }

  /** True when a higher layer already holds the path or one of its parents as a non-folder. */
  private wouldShadow(names: string[], layer: number): boolean {
    let dir = this.root;
    for (let i = 0; i < names.length; i++) {
      const child = dir.children.get(names[i]!);
      if (!child) return false;
      if (i === names.length - 1) return child.layer > layer;
      if (child.type !== 'dir') return child.layer > layer;
      dir = child;
    }
    return false;
  }

  private place(names: string[], options: ZfsEntryOptions, make: () => Node): ZfsAddResult {
    const layer = options.layer ?? 0;
    let dir = this.root;
    for (let i = 0; i < names.length - 1; i++) {
      const name = names[i]!;
      const child = dir.children.get(name);
      if (child?.type === 'dir') { dir = child; continue; }
      if (child && child.layer > layer) return 'shadowed';
      const implied: DirNode = { type: 'dir', layer, mode: 0o755, source: options.source, children: new Map() };
      dir.children.set(name, implied);
      dir = implied;
    }
    const name = names[names.length - 1]!;
    const existing = dir.children.get(name);
    if (existing && existing.layer > layer) return 'shadowed';
    const node = make();
    node.layer = layer;
    if (existing?.type === 'dir' && node.type === 'dir') {
      existing.layer = layer;
      if (options.mode !== undefined) existing.mode = options.mode;
      return 'merged';
    }
    dir.children.set(name, node);
    return existing ? 'replaced' : 'added';
  }

  /** The winning entries, folders before what they hold (the root is never listed). */
  *entries(): Generator<ZfsEntry> {
    const walk = function* (dir: DirNode, prefix: string): Generator<ZfsEntry> {
      for (const [name, node] of dir.children) {
        const path = `${prefix}/${name}`;
        if (node.type === 'dir') {
          yield { path, type: 'dir', mode: node.mode, source: node.source };
          yield* walk(node, path);
        } else if (node.type === 'symlink') {
          yield { path, type: 'symlink', mode: node.mode, target: node.target, source: node.source };
        } else {
          yield { path, type: 'file', mode: node.mode, size: node.size, source: node.source, node };
        }
      }
    };
    yield* walk(this.root, '');
  }

  summary(): ZfsFilesSummary {
    const s: ZfsFilesSummary = { files: 0, directories: 0, symlinks: 0, fileBytes: 0 };
    for (const e of this.entries()) {
      if (e.type === 'dir') s.directories++;
      else if (e.type === 'symlink') s.symlinks++;
      else { s.files++; s.fileBytes += e.size; }
    }
    return s;
  }

  /**
   * A file's data as chunks of their own (safe to queue on a socket), hashing host files as
   * they are read (the hash is then known for the cache).
   */
  *read(entry: Extract<ZfsEntry, { type: 'file' }>): Generator<Buffer> {
    const node = entry.node;
    const data = node.data;
    if (data.kind === 'buffer') {
      if (data.data.length > 0) yield data.data;
      return;
    }
    if (data.kind === 'spool') {
      for (let pos = 0; pos < node.size;) {
        const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, node.size - pos));
        let done = 0;
        while (done < chunk.length) {
          const n = readSync(this.spoolFd!, chunk, done, chunk.length - done, data.offset + pos + done);
          if (n === 0) throw new ImageError('the spool file was cut short', { code: 'E_ZFS_SPOOL', file: this.spoolPath });
          done += n;
        }
        pos += chunk.length;
        yield chunk;
      }
      return;
    }
    const hash = node.md5 === undefined ? createHash('md5') : undefined;
    for (const piece of data.source.read()) {
      const chunk = Buffer.from(piece.buffer, piece.byteOffset, piece.length);
      hash?.update(chunk);
      yield chunk;
    }
    if (hash) node.md5 = hash.digest('hex');
  }

  /** The MD5 of a file's content, reading a host file once if it is not known yet. */
  md5(entry: Extract<ZfsEntry, { type: 'file' }>): string {
    if (entry.node.md5 === undefined) for (const _ of this.read(entry)) { /* hashed as read */ }
    return entry.node.md5!;
  }

  /** Removes the spool file. */
  async close(): Promise<void> {
    if (this.spoolFd !== undefined) {
      closeSync(this.spoolFd);
      this.spoolFd = undefined;
      try { unlinkSync(this.spoolPath); } catch { /* not there */ }
    }
  }
}

export function md5(data: Uint8Array | string): string {
  return createHash('md5').update(data).digest('hex');
}

/** Splits an absolute guest path into names ZFS and cpiod accept. */
export function splitZfsPath(guestPath: string, source?: string): string[] {
  if (typeof guestPath !== 'string' || !guestPath.startsWith('/')) {
    throw new ImageError(`the guest path "${guestPath}" is not absolute`, { code: 'E_ZFS_PATH', file: source, hint: 'Guest paths start with "/" (layoutFiles sets them).' });
  }
  const names: string[] = [];
  for (const name of guestPath.split('/')) {
    if (name === '' || name === '.') continue;
    if (name === '..') throw new ImageError(`the guest path "${guestPath}" contains ".."`, { code: 'E_ZFS_PATH', file: source, hint: 'Use a normalised absolute guest path.' });
    if (name.includes('\0')) throw new ImageError(`the guest path ${JSON.stringify(guestPath)} contains a NUL character`, { code: 'E_ZFS_PATH', file: source });
    if (Buffer.byteLength(name, 'utf8') > ZFS_MAX_NAME_BYTES) {
      throw new ImageError(`the name "${name.slice(0, 40)}…" in ${guestPath.slice(0, 80)} is longer than ${ZFS_MAX_NAME_BYTES} bytes, which ZFS refuses`, { code: 'E_ZFS_NAME_TOO_LONG', file: source, hint: 'Rename the file.' });
    }
    names.push(name);
  }
  if (Buffer.byteLength(guestPath, 'utf8') > MAX_PATH_BYTES) {
    throw new ImageError(`the guest path ${guestPath.slice(0, 80)}… is longer than OSv's PATH_MAX allows`, { code: 'E_ZFS_PATH', file: source, hint: 'Shorten the path.' });
  }
  return names;
}

function rootConflict(guestPath: string, source?: string): ImageError {
  return new ImageError(`"${guestPath}" is the root folder and cannot be a file or a link`, { code: 'E_ZFS_PATH', file: source });
}
