// Streaming ROFS writer. File data goes to the sink as entries arrive (one block run per file,
// in arrival order); only the tree's metadata stays in memory. At finish the tree is numbered
// exactly as gen-rofs-img.py does (§3.6: inodes in depth-first pre-order, each directory's
// entries appended after its subdirectories'), so for the same input order the volume is
// byte-identical to OSv's (Appendix A).
//
// Precedence: an entry for a guest path that already exists replaces it when its layer is
// higher or equal (later wins among equals); a lower layer is ignored. Directories merge.
// Replaced files leave their data behind as dead blocks: the writer never goes back.
import { ImageError } from '../errors.js';
import {
  encodeStructure, encodeSuperBlock, ROFS_BLOCK_SIZE, ROFS_MAGIC, ROFS_MAX_NAME_BYTES,
  ROFS_MAX_SYMLINK_BYTES, ROFS_VERSION, S_IFDIR, S_IFLNK, S_IFREG,
  type RofsDirEntry, type RofsInode,
} from './rofs.js';

/** Where the volume goes: byte offsets relative to the start of the partition. */
export interface RofsSink {
  write(offset: number, data: Uint8Array): Promise<void>;
}

export interface RofsBuilderOptions {
  /**
   * Store permission bits in inode modes besides the type. OSv ignores them (every vnode is
   * 0555); off by default so output matches gen-rofs-img.py and Capstan.
   */
  permissions?: boolean | undefined;
  /** Largest volume allowed, in bytes (the MBR limit minus the partition start). */
  maxBytes?: number | undefined;
}

export interface EntryOptions {
  /** Precedence layer (packages in resolution order, the application highest). Default 0. */
  layer?: number | undefined;
  /** Permission bits (used only with `permissions: true`). */
  mode?: number | undefined;
  /** Where the entry came from, for error messages. */
  source?: string | undefined;
}

type Node = DirNode | FileNode | LinkNode;
interface Base { name: Buffer; layer: number; perm: number }
interface DirNode extends Base { type: 'dir'; children: Map<string, Node> }
interface FileNode extends Base { type: 'file'; block: number; size: number }
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
  /** Blocks left behind by replaced files. */
  deadBlocks: number;
}

export type AddResult = 'added' | 'replaced' | 'merged' | 'shadowed';

const MAX_VOLUME_DEFAULT = 0xffffffff * 512;

export class RofsBuilder {
  private readonly sink: RofsSink;
  private readonly permissions: boolean;
  private readonly maxBytes: number;
  private readonly root: DirNode = { type: 'dir', name: Buffer.alloc(0), layer: -Infinity, perm: 0o755, children: new Map() };
  /** Next free block; block 0 is the superblock. */
  private block = 1;
  private deadBlocks = 0;
  private finished = false;
  /** A file's data is being written; blocks are allocated in arrival order, one file at a time. */
  private writing = false;

  constructor(sink: RofsSink, options: RofsBuilderOptions = {}) {
    this.sink = sink;
    this.permissions = options.permissions ?? false;
    this.maxBytes = options.maxBytes ?? MAX_VOLUME_DEFAULT;
  }

  addDirectory(guestPath: string, options: EntryOptions = {}): AddResult {
    const names = splitGuestPath(guestPath, options.source);
    if (names.length === 0) return 'merged'; // the root always exists
    return this.place(names, options, () => ({ type: 'dir', name: Buffer.alloc(0), layer: 0, perm: options.mode ?? 0o755, children: new Map() }));
  }

  addSymlink(guestPath: string, target: string, options: EntryOptions = {}): AddResult {
    const names = splitGuestPath(guestPath, options.source);
    if (names.length === 0) throw rootConflict(guestPath, options.source);
    const bytes = Buffer.from(target, 'utf8');
    if (bytes.length === 0 || bytes.length > ROFS_MAX_SYMLINK_BYTES) {
      throw new ImageError(`the symlink ${guestPath} has a ${bytes.length}-byte target; ROFS allows 1–${ROFS_MAX_SYMLINK_BYTES} bytes`, {
        code: 'E_ROFS_SYMLINK_TARGET', file: options.source, hint: 'OSv reads at most PATH_MAX − 1 bytes of a link target; shorten it.',
      });
    }
    return this.place(names, options, () => ({ type: 'symlink', name: Buffer.alloc(0), layer: 0, perm: 0o777, target: bytes }));
  }

  /**
   * Adds a regular file, writing its data now. `content` is the whole file or an async
   * iterable of chunks (a vinyl stream); a shadowed file's content is not read.
   */
  async addFile(guestPath: string, content: Uint8Array | AsyncIterable<Uint8Array | string>, options: EntryOptions = {}): Promise<AddResult> {
    const names = splitGuestPath(guestPath, options.source);
    if (names.length === 0) throw rootConflict(guestPath, options.source);
    if (this.finished) throw new ImageError('the filesystem is already finished', { code: 'E_ROFS_FINISHED' });
    if (this.writing) {
      throw new ImageError(`addFile(${guestPath}) was called while another file was being written`, {
        code: 'E_ROFS_CONCURRENT', hint: 'Await each addFile before the next: file data is laid out in arrival order.',
      });
    }
    const node: FileNode = { type: 'file', name: Buffer.alloc(0), layer: 0, perm: options.mode ?? 0o644, block: this.block, size: 0 };
    // Decide precedence before reading, so a shadowed file costs nothing.
    const parent = this.parentFor(names, options);
    if (!parent) return 'shadowed';
    const name = names[names.length - 1]!;
    const existing = parent.children.get(name);
    if (existing && existing.layer > (options.layer ?? 0)) return 'shadowed';

    const start = this.block * ROFS_BLOCK_SIZE;
    let size = 0;
    this.writing = true;
    try {
      if (content instanceof Uint8Array) {
        this.checkRoom(start + content.length, guestPath, options.source);
        if (content.length > 0) await this.sink.write(start, content);
        size = content.length;
      } else {
        for await (const chunk of content) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          this.checkRoom(start + size + bytes.length, guestPath, options.source);
          if (bytes.length > 0) await this.sink.write(start + size, bytes);
          size += bytes.length;
        }
      }
    } finally {
      this.writing = false;
    }
    node.size = size;
    this.block += Math.ceil(size / ROFS_BLOCK_SIZE);
    return this.place(names, options, () => node);
  }

  private checkRoom(end: number, guestPath: string, source?: string): void {
    if (end + ROFS_BLOCK_SIZE > this.maxBytes) {
      throw new ImageError(`the filesystem would exceed ${this.maxBytes} bytes while adding ${guestPath}`, {
        code: 'E_ROFS_TOO_BIG', file: source, hint: 'An MBR partition must end below 2 TiB; make the tree smaller.',
      });
    }
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
      if (child?.type === 'file') this.deadBlocks += Math.ceil(child.size / ROFS_BLOCK_SIZE);
      const implied: DirNode = { type: 'dir', name: Buffer.from(name, 'utf8'), layer, perm: 0o755, children: new Map() };
      dir.children.set(name, implied); // Map keeps the first-mention position of the name
      dir = implied;
    }
    return dir;
  }

  private place(names: string[], options: EntryOptions, make: () => Node): AddResult {
    if (this.finished) throw new ImageError('the filesystem is already finished', { code: 'E_ROFS_FINISHED' });
    const layer = options.layer ?? 0;
    const parent = this.parentFor(names, options);
    if (!parent) return 'shadowed';
    const name = names[names.length - 1]!;
    const existing = parent.children.get(name);
    if (existing && existing.layer > layer) return 'shadowed';
    const node = make();
    node.name = Buffer.from(name, 'utf8');
    node.layer = layer;
    if (existing?.type === 'dir' && node.type === 'dir') {
      existing.layer = layer;
      if (options.mode !== undefined) existing.perm = options.mode;
      return 'merged';
    }
    if (existing?.type === 'file') this.deadBlocks += Math.ceil(existing.size / ROFS_BLOCK_SIZE);
    parent.children.set(name, node);
    return existing ? 'replaced' : 'added';
  }

  /** Writes the structure region and the superblock; resolves with the volume's facts. */
  async finish(): Promise<RofsSummary> {
    if (this.writing) throw new ImageError('finish() was called while a file was being written', { code: 'E_ROFS_CONCURRENT' });
    this.finished = true;
    const inodes: RofsInode[] = [{ mode: S_IFDIR | this.perm(this.root), inodeNo: 1, dataOffset: 0, count: 0 }];
    const dirents: RofsDirEntry[] = [];
    const symlinks: Buffer[] = [];
    const counts = { files: 0, directories: 1, symlinks: 0, fileBytes: 0 };
    const writeDir = (dir: DirNode): [count: number, first: number] => {
      const local: RofsDirEntry[] = [];
      for (const child of dir.children.values()) {
        const inode: RofsInode = { mode: 0, inodeNo: inodes.length + 1, dataOffset: 0, count: 0 };
        inodes.push(inode);
        local.push({ inodeNo: inode.inodeNo, name: child.name });
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
    return { size, inodes: inodes.length, ...counts, deadBlocks: this.deadBlocks };
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
  const names: string[] = [];
  for (const name of guestPath.split('/')) {
    if (name === '' || name === '.') continue;
    if (name === '..') {
      throw new ImageError(`the guest path "${guestPath}" contains ".."`, { code: 'E_ROFS_PATH', file: source, hint: 'Use a normalised absolute guest path.' });
    }
    if (name.includes('\0')) {
      throw new ImageError(`the guest path "${guestPath}" contains a NUL character`, { code: 'E_ROFS_PATH', file: source });
    }
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > ROFS_MAX_NAME_BYTES) {
      throw new ImageError(`the name "${name.slice(0, 40)}…" in ${guestPath.slice(0, 80)} is ${bytes} bytes long; ROFS names are at most ${ROFS_MAX_NAME_BYTES} bytes`, {
        code: 'E_ROFS_NAME_TOO_LONG', file: source, hint: 'OSv truncates longer names in readdir; rename the file.',
      });
    }
    names.push(name);
  }
  return names;
}

function rootConflict(guestPath: string, source?: string): ImageError {
  return new ImageError(`"${guestPath}" is the root folder and cannot be a file or a link`, { code: 'E_ROFS_PATH', file: source });
}
