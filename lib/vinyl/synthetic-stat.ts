// A minimal fs.Stats for vinyl files we synthesise (package members, generated entries):
// vinyl's isDirectory()/isSymbolic() read the type from `stat`, and `stat.mode` carries the
// permissions into the image. Times are the epoch so images stay reproducible.
import type { Stats } from 'node:fs';

const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

export function syntheticStat(mode: number, size = 0): Stats {
  const type = mode & S_IFMT;
  const epoch = new Date(0);
  return {
    mode, size, uid: 0, gid: 0, dev: 0, ino: 0, nlink: 1, rdev: 0, blksize: 4096, blocks: Math.ceil(size / 512),
    atime: epoch, mtime: epoch, ctime: epoch, birthtime: epoch, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, birthtimeMs: 0,
    isFile: () => type === S_IFREG,
    isDirectory: () => type === S_IFDIR,
    isSymbolicLink: () => type === S_IFLNK,
    isBlockDevice: () => false, isCharacterDevice: () => false, isFIFO: () => false, isSocket: () => false,
  } as Stats;
}

/** The `st_mode` type bits of an entry kind. */
export function typeBits(type: 'file' | 'directory' | 'symlink'): number {
  return type === 'directory' ? S_IFDIR : type === 'symlink' ? S_IFLNK : S_IFREG;
}
