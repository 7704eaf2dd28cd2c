// Streaming ROFS writer. File data goes to the sink as entries arrive (one block run per file,
// in arrival order); only the tree's metadata stays in memory. At finish the tree is numbered
// exactly as gen-rofs-img.py does (§3.6: inodes in depth-first pre-order, each directory's
// entries appended after its subdirectories'), so for the same input order the volume is
// byte-identical to OSv's (Appendix A).
//
// Precedence: an entry for a guest path that already exists replaces it when its layer is
// higher or equal (later wins among equals); a lower layer is ignored. Directories merge.
// Replaced files leave their data behind as dead blocks: the writer never goes back.
//
// Incremental volumes (see incremental.ts): with `firstBlock`, new data starts after the data of
// a previous volume whose blocks are already on the disk (an overlay over it), and addExtent()
// places a file whose bytes are already there, at its old blocks, without writing anything.
// Each file may carry a `tag` (opaque here: what identifies its content); entries() lists the
// finished tree and the extents of replaced files (their bytes are still there, so a later build
// may reuse them).
import { ImageError } from '../errors.js';
import {
  encodeStructure, encodeSuperBlock, ROFS_BLOCK_SIZE, ROFS_MAGIC, ROFS_MAX_NAME_BYTES,
  ROFS_MAX_SYMLINK_BYTES, ROFS_VERSION, S_IFDIR, S_IFLNK, S_IFREG,
  type RofsDirEntryInput, type RofsInode,
} from './rofs.js';

/** Where the volume goes: byte offsets relative to the start of the partition. */
export interface RofsSink {
  write(offset: number, data: Uint8Array): Promise<void>;
  /**
   * The same write, done before it returns, when the disk never has to wait for anything but
   * the write itself (then addFileSync() may be used: no promise per file).
   */
  writeSync?: ((offset: number, data: Uint8Array) => void) | undefined;
}

export interface RofsBuilderOptions {
  /**
   * Store permission bits in inode modes besides the type. OSv ignores them (every vnode is
   * 0555); off by default so output matches gen-rofs-img.py and Capstan.
   */
  permissions?: boolean | undefined;
  /** Largest volume allowed, in bytes (the MBR limit minus the partition start). */
  maxBytes?: number | undefined;
  /**
   * Block where new file data starts (default 1, right after the superblock). Blocks before it
   * hold an earlier volume's data that addExtent() may point at.
   */
  firstBlock?: number | undefined;
}

export interface EntryOptions {
  /** Precedence layer (packages in resolution order, the application highest). Default 0. */
  layer?: number | undefined;
  /** Permission bits (used only with `permissions: true`). */
  mode?: number | undefined;
  /** Where the entry came from, for error messages. */
  source?: string | undefined;
  /** Anything the caller wants back from entries() with the file (what identifies its content). */
  tag?: unknown;
}

/** A file's data already in the volume: its first block and size in bytes. */
export interface RofsExtent {
  block: number;
  size: number;
}

/** One entry of the finished volume, or a replaced file whose data is still in it (`live` false). */
export interface RofsEntryFacts {
  /** Normalised absolute guest path. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Permission bits as given (stored in the inode only with `permissions`). */
  perm: number;
  live: boolean;
  block?: number | undefined;
  size?: number | undefined;
  target?: string | undefined;
  tag?: unknown;
}

type Node = DirNode | FileNode | LinkNode;
/** A node's name is its key in the parent's `children` (a string: no Buffer per entry). */
interface Base { layer: number; perm: number }
interface DirNode extends Base { type: 'dir'; children: Map<string, Node> }
interface FileNode extends Base { type: 'file'; block: number; size: number; path: string; tag?: unknown; live: boolean }
interface Location { parent: DirNode; name: string; path: string }
/** A file whose data is being written: where it goes, and its node (size so far). */
interface FileInProgress { guestPath: string; options: EntryOptions; at: Location; node: FileNode; version: number; start: number }
const ROOT = Symbol('root');
interface LinkNode extends Base { type: 'symlink'; target: Buffer }

export interface RofsSummary {
  /** Volume size in bytes (a multiple of 512). */
  size: number;
  inodes: number;
  files: number;
  directories: number;
  symlinks: number;
  /** Bytes of file data in the volume (live files only). */
  fileBytes: number;
  /** Blocks of the data region (1 … dataBlocks); the directory tables follow it. */
  dataBlocks: number;
  /** Data blocks no live file uses: replaced files, and in an incremental volume the changed and deleted files of earlier builds. */
  deadBlocks: number;
}

export type AddResult = 'added' | 'replaced' | 'merged' | 'shadowed';

const MAX_VOLUME_DEFAULT = 0xffffffff * 512;

export class RofsBuilder {
  private readonly sink: RofsSink;
  private readonly permissions: boolean;
  private readonly maxBytes: number;
  private readonly root: DirNode = { type: 'dir', layer: -Infinity, perm: 0o755, children: new Map() };
  /** Next free block; block 0 is the superblock. */
  private block: number;
  /** Blocks below this belong to an earlier volume (addExtent may use them). */
  private readonly firstBlock: number;
  /** Every file placed, in arrival order (`live` false once a later entry replaced it). */
  private readonly files: FileNode[] = [];
  /** Bumped whenever a folder leaves the tree (invalidates lastFolder). */
  private version = 0;
  /** The folder of the last entry located, and its path with a trailing slash. */
  private lastFolder: { prefix: string; dir: DirNode; version: number } | undefined;
  private finished = false;
  /** A file's data is being written; blocks are allocated in arrival order, one file at a time. */
  private writing = false;

  constructor(sink: RofsSink, options: RofsBuilderOptions = {}) {
    this.sink = sink;
    this.permissions = options.permissions ?? false;
    this.maxBytes = options.maxBytes ?? MAX_VOLUME_DEFAULT;
    this.firstBlock = options.firstBlock ?? 1;
    if (!Number.isSafeInteger(this.firstBlock) || this.firstBlock < 1) {
      throw new ImageError(`firstBlock must be a whole number ≥ 1, not ${this.firstBlock}`, { code: 'E_ROFS_OPTIONS' });
    }
    this.block = this.firstBlock;
  }

  addDirectory(guestPath: string, options: EntryOptions = {}): AddResult {
    const at = this.locate(guestPath, options);
    if (at === ROOT) return 'merged'; // the root always exists
    if (!at) return 'shadowed';
    return this.place(at, options, { type: 'dir', layer: 0, perm: options.mode ?? 0o755, children: new Map() });
  }

  addSymlink(guestPath: string, target: string, options: EntryOptions = {}): AddResult {
    const at = this.locate(guestPath, options);
    if (at === ROOT) throw rootConflict(guestPath, options.source);
    const bytes = Buffer.from(target, 'utf8');
    if (bytes.length === 0 || bytes.length > ROFS_MAX_SYMLINK_BYTES) {
      throw new ImageError(`the symlink ${guestPath} has a ${bytes.length}-byte target; ROFS allows 1–${ROFS_MAX_SYMLINK_BYTES} bytes`, {
        code: 'E_ROFS_SYMLINK_TARGET', file: options.source, hint: 'OSv reads at most PATH_MAX − 1 bytes of a link target; shorten it.',
      });
    }
    if (!at) return 'shadowed';
    return this.place(at, options, { type: 'symlink', layer: 0, perm: 0o777, target: bytes });
  }

  /**
   * Adds a regular file, writing its data now. `content` is the whole file or an async
   * iterable of chunks (a vinyl stream); a shadowed file's content is not read.
   */
  async addFile(guestPath: string, content: Uint8Array | AsyncIterable<Uint8Array | string>, options: EntryOptions = {}): Promise<AddResult> {
    const file = this.beginFile(guestPath, options, 'addFile');
    if (file === 'shadowed') return file;
    try {
      if (content instanceof Uint8Array) {
        await this.writeChunk(file, content, this.sink.write);
      } else {
        for await (const chunk of content) await this.writeChunk(file, typeof chunk === 'string' ? Buffer.from(chunk) : chunk, this.sink.write);
      }
    } finally {
      this.writing = false;
    }
    return this.endFile(file);
  }

  /** Whether addFileSync() can be used (the sink writes synchronously). */
  get canAddSync(): boolean {
    return this.sink.writeSync !== undefined;
  }

  /**
   * addFile() for content at hand (a Buffer, or chunks read synchronously, each written before
   * the next is asked for), done before it returns. Only when `canAddSync`.
   */
  addFileSync(guestPath: string, content: Uint8Array | Iterable<Uint8Array>, options: EntryOptions = {}): AddResult {
    const write = this.sink.writeSync;
    if (!write) throw new ImageError('addFileSync() needs a sink that writes synchronously', { code: 'E_ROFS_SYNC', hint: 'Use addFile().' });
    const file = this.beginFile(guestPath, options, 'addFileSync');
    if (file === 'shadowed') return file;
    try {
      if (content instanceof Uint8Array) this.writeChunk(file, content, write);
      else for (const chunk of content) this.writeChunk(file, chunk, write);
    } finally {
      this.writing = false;
    }
    return this.endFile(file);
  }

  /** Decides precedence before anything is read (a shadowed file costs nothing), and marks a file as being written. */
  private beginFile(guestPath: string, options: EntryOptions, call: string): FileInProgress | 'shadowed' {
    if (this.writing) {
      throw new ImageError(`${call}(${guestPath}) was called while another file was being written`, {
        code: 'E_ROFS_CONCURRENT', hint: 'Await each addFile before the next: file data is laid out in arrival order.',
      });
    }
    const at = this.locate(guestPath, options);
    if (at === ROOT) throw rootConflict(guestPath, options.source);
    if (!at || this.shadowed(at, options)) return 'shadowed';
    const node: FileNode = { type: 'file', layer: 0, perm: options.mode ?? 0o644, block: this.block, size: 0, path: at.path, tag: options.tag, live: true };
    this.writing = true;
    return { guestPath, options, at, node, version: this.version, start: this.block * ROFS_BLOCK_SIZE };
  }

  /** Writes the next chunk of the file in progress (with `write`, the sink's async or sync write). */
  private writeChunk<R>(file: FileInProgress, bytes: Uint8Array, write: (offset: number, data: Uint8Array) => R): R | undefined {
    const offset = file.start + file.node.size;
    this.checkRoom(offset + bytes.length, file.guestPath, file.options.source);
    file.node.size += bytes.length;
    return bytes.length > 0 ? write.call(this.sink, offset, bytes) : undefined;
  }

  /** Places the written file (its folders may have been replaced meanwhile: addDirectory and addSymlink do not wait). */
  private endFile(file: FileInProgress): AddResult {
    this.block += Math.ceil(file.node.size / ROFS_BLOCK_SIZE);
    let at: Location | typeof ROOT | undefined = file.at;
    if (file.version !== this.version) {
      at = this.locate(file.guestPath, file.options);
      if (!at || at === ROOT) return 'shadowed';
    }
    return this.place(at, file.options, file.node);
  }

  /**
   * Adds a regular file whose data is already in the volume, below `firstBlock` (an earlier
   * build's blocks, which this volume overlays). Nothing is written.
   */
  addExtent(guestPath: string, extent: RofsExtent, options: EntryOptions = {}): AddResult {
    const { block, size } = extent;
    if (!Number.isSafeInteger(block) || !Number.isSafeInteger(size) || block < 1 || size < 0 || block + Math.ceil(size / ROFS_BLOCK_SIZE) > this.firstBlock) {
      throw new ImageError(`the extent of ${guestPath} (block ${block}, ${size} bytes) is not inside the earlier volume's data (blocks 1–${this.firstBlock - 1})`, {
        code: 'E_ROFS_EXTENT', file: options.source,
      });
    }
    if (this.writing) {
      throw new ImageError(`addExtent(${guestPath}) was called while a file was being written`, { code: 'E_ROFS_CONCURRENT' });
    }
    const at = this.locate(guestPath, options);
    if (at === ROOT) throw rootConflict(guestPath, options.source);
    if (!at) return 'shadowed';
    return this.place(at, options, { type: 'file', layer: 0, perm: options.mode ?? 0o644, block, size, path: at.path, tag: options.tag, live: true });
  }

  private checkRoom(end: number, guestPath: string, source?: string): void {
    if (end + ROFS_BLOCK_SIZE > this.maxBytes) {
      throw new ImageError(`the filesystem would exceed ${this.maxBytes} bytes while adding ${guestPath}`, {
        code: 'E_ROFS_TOO_BIG', file: source, hint: 'An MBR partition must end below 2 TiB; make the tree smaller.',
      });
    }
  }

  /**
   * Where `guestPath` goes: its folder (implied folders created), its name and its normalised
   * path; ROOT for the root, undefined when a higher layer's file or link is in the way.
   * Consecutive entries mostly share a folder: the last one is remembered, so most entries
   * cost a prefix comparison instead of a split and a walk from the root.
   */
  private locate(guestPath: string, options: EntryOptions): Location | typeof ROOT | undefined {
    if (this.finished) throw new ImageError('the filesystem is already finished', { code: 'E_ROFS_FINISHED' });
    const last = this.lastFolder;
    if (last && last.version === this.version && guestPath.startsWith(last.prefix)) {
      const name = guestPath.slice(last.prefix.length);
      if (isPlainName(name)) return { parent: last.dir, name, path: guestPath };
    }
    const names = splitGuestPath(guestPath, options.source);
    if (names.length === 0) return ROOT;
    const parent = this.parentFor(names, options);
    if (!parent) return undefined;
    const name = names[names.length - 1]!;
    const normal = isNormal(guestPath) ? guestPath : '/' + names.join('/');
    this.lastFolder = { prefix: normal.slice(0, normal.length - name.length), dir: parent, version: this.version };
    return { parent, name, path: normal };
  }

  /** The directory that will hold `names`' last component, creating implied folders. */
  private parentFor(names: string[], options: EntryOptions): DirNode | undefined {
    const layer = options.layer ?? 0;
    let dir = this.root;
    for (let i = 0; i < names.length - 1; i++) {
      const name = names[i]!;
      const child = dir.children.get(name);
      if (child?.type === 'dir') { dir = child; continue; }
      if (child && child.layer > layer) return undefined; // a higher layer's file or link is in the way
      if (child) this.drop(child);
      const implied: DirNode = { type: 'dir', layer, perm: 0o755, children: new Map() };
      dir.children.set(name, implied); // Map keeps the first-mention position of the name
      dir = implied;
    }
    return dir;
  }

  private shadowed(at: Location, options: EntryOptions): boolean {
    const existing = at.parent.children.get(at.name);
    return existing !== undefined && existing.layer > (options.layer ?? 0);
  }

  private place(at: Location, options: EntryOptions, node: Node): AddResult {
    const layer = options.layer ?? 0;
    const existing = at.parent.children.get(at.name);
    if (existing && existing.layer > layer) return 'shadowed';
    node.layer = layer;
    if (existing?.type === 'dir' && node.type === 'dir') {
      existing.layer = layer;
      if (options.mode !== undefined) existing.perm = options.mode;
      return 'merged';
    }
    if (existing) this.drop(existing);
    at.parent.children.set(at.name, node);
    if (node.type === 'file') this.files.push(node);
    return existing ? 'replaced' : 'added';
  }

  /** Marks the files of a subtree leaving the tree: their data stays in the volume. */
  private drop(node: Node): void {
    if (node.type === 'file') {
      node.live = false;
    } else if (node.type === 'dir') {
      this.version++; // a remembered folder may be this one
      for (const child of node.children.values()) this.drop(child);
    }
  }

  /** Writes the structure region and the superblock; resolves with the volume's facts. */
  async finish(): Promise<RofsSummary> {
    if (this.writing) throw new ImageError('finish() was called while a file was being written', { code: 'E_ROFS_CONCURRENT' });
    this.finished = true;
    const inodes: RofsInode[] = [{ mode: S_IFDIR | this.perm(this.root), inodeNo: 1, dataOffset: 0, count: 0 }];
    const dirents: RofsDirEntryInput[] = [];
    const symlinks: Buffer[] = [];
    const counts = { files: 0, directories: 1, symlinks: 0, fileBytes: 0 };
    let liveBlocks = 0;
    const writeDir = (dir: DirNode): [count: number, first: number] => {
      const local: RofsDirEntryInput[] = [];
      for (const [name, child] of dir.children) {
        const inode: RofsInode = { mode: 0, inodeNo: inodes.length + 1, dataOffset: 0, count: 0 };
        inodes.push(inode);
        local.push({ inodeNo: inode.inodeNo, name });
        if (child.type === 'dir') {
          counts.directories++;
          inode.mode = S_IFDIR | this.perm(child);
          [inode.count, inode.dataOffset] = writeDir(child);
        } else if (child.type === 'symlink') {
          counts.symlinks++;
          inode.mode = S_IFLNK | this.perm(child);
          inode.dataOffset = symlinks.length;
          inode.count = 1;
          symlinks.push(child.target);
        } else {
          counts.files++;
          counts.fileBytes += child.size;
          liveBlocks += Math.ceil(child.size / ROFS_BLOCK_SIZE);
          inode.mode = S_IFREG | this.perm(child);
          inode.dataOffset = child.block;
          inode.count = child.size;
        }
      }
      const first = dirents.length;
      for (const d of local) dirents.push(d);
      return [local.length, first];
    };
    [inodes[0]!.count, inodes[0]!.dataOffset] = writeDir(this.root);

    const firstBlock = this.block;
    const structure = encodeStructure(dirents, symlinks, inodes);
    const size = firstBlock * ROFS_BLOCK_SIZE + structure.bytes.length;
    this.checkRoom(size - ROFS_BLOCK_SIZE, '(the directory tables)');
    await this.sink.write(firstBlock * ROFS_BLOCK_SIZE, structure.bytes);
    await this.sink.write(0, encodeSuperBlock({
      magic: ROFS_MAGIC,
      version: ROFS_VERSION,
      blockSize: ROFS_BLOCK_SIZE,
      structureInfoFirstBlock: firstBlock,
      structureInfoBlocksCount: structure.blocks,
      directoryEntriesCount: dirents.length,
      symlinksCount: symlinks.length,
      inodesCount: inodes.length,
    }));
    const dataBlocks = firstBlock - 1;
    return { size, inodes: inodes.length, ...counts, dataBlocks, deadBlocks: dataBlocks - liveBlocks };
  }

  /**
   * The files placed, in arrival order (with `live` false for those later replaced: their data
   * is still in the volume), then the folders and symlinks of the finished tree, for the build
   * record of an incremental image.
   */
  entries(): RofsEntryFacts[] {
    if (!this.finished) throw new ImageError('entries() needs a finished filesystem', { code: 'E_IMAGE_STATE' });
    const out: RofsEntryFacts[] = this.files.map((f) => ({ path: f.path, type: 'file', perm: f.perm, live: f.live, block: f.block, size: f.size, tag: f.tag }));
    const walk = (dir: DirNode, prefix: string): void => {
      for (const [name, child] of dir.children) {
        if (child.type === 'file') continue;
        const p = `${prefix}/${name}`;
        if (child.type === 'dir') {
          out.push({ path: p, type: 'dir', perm: child.perm, live: true });
          walk(child, p);
        } else {
          out.push({ path: p, type: 'symlink', perm: child.perm, live: true, target: child.target.toString('utf8') });
        }
      }
    };
    walk(this.root, '');
    return out;
  }

  private perm(node: Node): number {
    return this.permissions ? node.perm & 0o7777 : 0;
  }
}

/** Splits an absolute guest path into checked names (UTF-8, ≤ 255 bytes, no `.`/`..`). */
export function splitGuestPath(guestPath: string, source?: string): string[] {
  if (typeof guestPath !== 'string' || !guestPath.startsWith('/')) {
    throw new ImageError(`the guest path "${guestPath}" is not absolute`, {
      code: 'E_ROFS_PATH', file: source, hint: 'Guest paths start with "/" (layoutFiles sets them).',
    });
  }
  if (guestPath.includes('\0')) {
    throw new ImageError(`the guest path "${guestPath}" contains a NUL character`, { code: 'E_ROFS_PATH', file: source });
  }
  const names: string[] = [];
  for (const name of guestPath.split('/')) {
    if (name === '' || name === '.') continue;
    if (name === '..') {
      throw new ImageError(`the guest path "${guestPath}" contains ".."`, { code: 'E_ROFS_PATH', file: source, hint: 'Use a normalised absolute guest path.' });
    }
    // A UTF-16 unit is at most 3 UTF-8 bytes: short names need no count.
    if (name.length > ROFS_MAX_NAME_BYTES / 3) {
      const bytes = Buffer.byteLength(name, 'utf8');
      if (bytes > ROFS_MAX_NAME_BYTES) {
        throw new ImageError(`the name "${name.slice(0, 40)}…" in ${guestPath.slice(0, 80)} is ${bytes} bytes long; ROFS names are at most ${ROFS_MAX_NAME_BYTES} bytes`, {
          code: 'E_ROFS_NAME_TOO_LONG', file: source, hint: 'OSv truncates longer names in readdir; rename the file.',
        });
      }
    }
    names.push(name);
  }
  return names;
}

/** True when an absolute path is already "/a/b" (no empty or `.` names, no trailing slash). */
function isNormal(guestPath: string): boolean {
  return guestPath.length > 1 && !guestPath.endsWith('/') && !guestPath.endsWith('/.') && !guestPath.includes('//') && !guestPath.includes('/./');
}

/** A name that needs no further check: not empty, `.` or `..`, no slash or NUL, ≤ 255 UTF-8 bytes. */
function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') &&
    (name.length <= ROFS_MAX_NAME_BYTES / 3 || Buffer.byteLength(name, 'utf8') <= ROFS_MAX_NAME_BYTES);
}

/** A guest path in the form entries() lists it ("/a/b"); checked as splitGuestPath does. */
export function normalGuestPath(guestPath: string, source?: string): string {
  if (typeof guestPath === 'string' && guestPath.startsWith('/') && isNormal(guestPath) && !guestPath.includes('/..') && !guestPath.includes('\0')) return guestPath;
  return '/' + splitGuestPath(guestPath, source).join('/');
}

function rootConflict(guestPath: string, source?: string): ImageError {
  return new ImageError(`"${guestPath}" is the root folder and cannot be a file or a link`, { code: 'E_ROFS_PATH', file: source });
}
