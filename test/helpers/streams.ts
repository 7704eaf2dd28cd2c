// Test plumbing shared by the step tests: feed vinyl files into a step, collect what comes out.
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Vinyl from 'vinyl';

/** Runs `files` through `steps` (in order) and resolves with every file that comes out. */
export async function runSteps(files: Vinyl[], ...steps: Transform[]): Promise<Vinyl[]> {
  const out: Vinyl[] = [];
  const sink = new Writable({
    objectMode: true,
    write(file: Vinyl, _enc, cb) { out.push(file); cb(); },
  });
  await pipeline(Readable.from(files), ...(steps as [Transform]), sink);
  return out;
}

/** A vinyl file with buffer contents at `<base>/<relative>`; `mode` sets `stat.mode` permissions. */
export function vinylFile(base: string, relative: string, contents: string | Buffer, mode = 0o644): Vinyl {
  const stat = fakeStat(0o100000 | mode, false, false);
  return new Vinyl({ cwd: base, base, path: `${base}/${relative}`, contents: Buffer.from(contents), stat });
}

/** A vinyl directory, as gulp.src emits for folders. */
export function vinylDir(base: string, relative: string, mode = 0o755): Vinyl {
  return new Vinyl({ cwd: base, base, path: `${base}/${relative}`, contents: null, stat: fakeStat(0o040000 | mode, true, false) });
}

/** A vinyl symlink, as gulp.src emits with `resolveSymlinks: false`. */
export function vinylSymlink(base: string, relative: string, target: string): Vinyl {
  const file = new Vinyl({ cwd: base, base, path: `${base}/${relative}`, contents: null, stat: fakeStat(0o120777, false, true) });
  file.symlink = target;
  return file;
}

function fakeStat(mode: number, dir: boolean, link: boolean) {
  const now = new Date(0);
  return {
    mode, size: 0, uid: 0, gid: 0, dev: 0, ino: 0, nlink: 1, rdev: 0, blksize: 4096, blocks: 0,
    atime: now, mtime: now, ctime: now, birthtime: now, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, birthtimeMs: 0,
    isDirectory: () => dir, isSymbolicLink: () => link, isFile: () => !dir && !link,
    isBlockDevice: () => false, isCharacterDevice: () => false, isFIFO: () => false, isSocket: () => false,
  } as unknown as import('node:fs').Stats;
}
