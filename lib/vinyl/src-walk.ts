// What capstan.src emits, and in which order: the folders under each glob parent are listed
// by fdir (every readdir in flight at once), then the listing is walked the way glob-stream
// walks the disk: one queue, breadth first, each folder's entries in readdir order, a plain
// path (singular glob) checked when its turn comes. The order matters: file data lands in the
// image in arrival order, so this order is what makes an image from capstan.src byte-identical
// to one from gulp.src, and the same from run to run (a parallel walk alone would not be).
//
// Unlike glob-stream, links are never walked through (a link to a folder is one symlink entry,
// as in tar and Capstan), and a folder that cannot be listed is an error, not silently empty.
import { fdir } from 'fdir';
import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { SourceError } from '../errors.js';
import { normalizeSlashes, type GlobPlan } from './src-globs.js';

/** One entry to emit: its path, its base, and whether readdir called it a folder. */
export interface Listed {
  path: string;
  base: string;
  directory: boolean;
}

/** Each folder's entry names in readdir order, a folder's name ending in '/' (no objects per entry: 100,000-file trees). */
type Listings = Map<string, string[]>;

/** The entries the globs select, in gulp.src's order; throws for a singular glob that matches nothing (unless allowEmpty). */
export async function listEntries(plan: GlobPlan, options: { base: string | undefined; allowEmpty: boolean }): Promise<Listed[]> {
  const listings: Listings = new Map();
  const roots = [...new Set(plan.positives.filter((p) => !p.singular).map((p) => path.normalize(p.parent)))]
    .sort((a, b) => a.length - b.length); // ancestors first: their listing covers the folders below
  for (const root of roots) if (!listings.has(root)) await listTree(root, listings);
  const singulars = new Map<string, boolean>();
  for (const p of plan.positives) if (p.singular && !singulars.has(p.glob)) {
    const kind = await singularKind(p.glob);
    if (kind !== undefined) singulars.set(p.glob, kind === 'directory');
  }
  const { entries, found } = walkLikeGulp(plan, listings, singulars, options.base);
  if (!options.allowEmpty) {
    const missing = plan.positives.findIndex((p, i) => !found[i]);
    if (missing !== -1) {
      // gulp's own wording, so a message searched for is found.
      throw new SourceError(`File not found with singular glob: ${plan.positives[missing]!.glob}`, {
        code: 'E_SRC_NOT_FOUND', file: plan.positives[missing]!.original,
        hint: 'Check the path (it is relative to `cwd`), or pass {allowEmpty: true} if it may be missing.',
      });
    }
  }
  return entries;
}

/** glob-stream's queue, run over the listing instead of the disk. */
function walkLikeGulp(plan: GlobPlan, listings: Listings, singulars: Map<string, boolean>, base: string | undefined): { entries: Listed[]; found: boolean[] } {
  type Task = { walk: string } | { exists: string };
  const queue: Task[] = plan.positives.map((p) => (p.singular ? { exists: p.glob } : { walk: path.normalize(p.parent) }));
  // Every glob is "found" except singular ones, which must match (glob-stream's isFound).
  const found = plan.positives.map((p) => !p.singular);
  const entries: Listed[] = [];
  // glob-stream keeps the first of the same path (uniqueBy 'path'); one walk root never repeats a path.
  const seen = queue.length > 1 ? new Set<string>() : undefined;
  const onPath = (p: string, directory: boolean) => {
    const i = plan.match(p, directory);
    if (i === -1) return;
    found[i] = true;
    // Paths built below are normal already; only a singular glob as written may not be.
    const normal = p.includes('//') || p.includes('\\') || (p.length > 1 && p.endsWith('/')) ? normalizeSlashes(p, true) : p;
    if (seen) {
      if (seen.has(normal)) return;
      seen.add(normal);
    }
    entries.push({ path: normal, base: base ?? plan.positives[i]!.parent, directory });
  };
  // A folder walked a second time (two globs with one parent, or nested parents) only finds
  // paths already taken, in an order behind the first walk: skipping it changes nothing.
  const walked = new Set<string>();
  for (let head = 0; head < queue.length; head++) {
    const task = queue[head]!;
    if ('exists' in task) {
      const directory = singulars.get(task.exists);
      if (directory !== undefined) onPath(task.exists, directory);
      continue;
    }
    if (walked.has(task.walk)) continue;
    walked.add(task.walk);
    const listing = listings.get(task.walk);
    if (!listing) continue; // a missing folder has no entries, as in gulp.src
    // path.join(walk, name), as glob-stream does; `walk` is normalised and a name has no '/'.
    const prefix = task.walk === '/' ? '/' : task.walk + '/';
    for (const name of listing) {
      const directory = name.endsWith('/');
      const child = prefix + (directory ? name.slice(0, -1) : name);
      onPath(child, directory);
      if (directory) queue.push({ walk: child });
    }
  }
  return { entries, found };
}

/** Lists every folder under `root` (not through links) into `listings`, each in readdir order. */
async function listTree(root: string, listings: Listings): Promise<void> {
  let info;
  try {
    info = await stat(root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return; // nothing there: no entries, as in gulp.src
    throw listError(root, error);
  }
  if (!info.isDirectory()) {
    throw new SourceError('is a file, but a glob treats it as a folder', {
      code: 'E_SRC_NOT_A_FOLDER', file: root, hint: 'Check the glob: the part before the first wildcard must be a folder.',
    });
  }
  let paths: string[];
  try {
    paths = await new fdir().withFullPaths().withDirs().withErrors().crawl(root).withPromise();
  } catch (error) {
    throw listError((error as NodeJS.ErrnoException).path ?? root, error);
  }
  // fdir gives each folder's entries together and in readdir order, folders ending in '/'
  // (links are listed as files, not followed); the folders' blocks come in completion order.
  const rootKey = root;
  listings.set(rootKey, []);
  const top = paths[0] === root || paths[0] === root + '/' || paths[0] === root + path.sep ? 1 : 0;
  for (let i = top; i < paths.length; i++) {
    const p = paths[i]!;
    const directory = p.endsWith('/');
    const full = directory ? p.slice(0, -1) : p;
    const cut = full.lastIndexOf('/');
    const parent = cut <= 0 ? '/' : full.slice(0, cut);
    let listing = listings.get(parent);
    if (!listing) listings.set(parent, listing = []);
    listing.push(p.slice(cut + 1));
    if (directory && !listings.has(full)) listings.set(full, []);
  }
}

/** What a singular glob names: 'directory', 'other', or undefined when nothing is there. */
async function singularKind(p: string): Promise<'directory' | 'other' | undefined> {
  try {
    return (await stat(p)).isDirectory() ? 'directory' : 'other';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP') throw listError(p, error);
  }
  // A dangling link is still there (gulp.src, which stats through it, says "not found").
  try {
    await lstat(p);
    return 'other';
  } catch {
    return undefined;
  }
}

/** A SourceError for a folder or entry that could not be listed. */
export function listError(file: string, error: unknown): SourceError {
  const e = error as NodeJS.ErrnoException;
  const where = file.endsWith('/') && file.length > 1 ? file.slice(0, -1) : file;
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    return new SourceError('cannot be read: permission denied', {
      code: 'E_SRC_UNREADABLE', file: where, cause: error,
      hint: 'Give the build read (and, for folders, search) permission on it, or leave it out with a negated glob or `ignore`.',
    });
  }
  if (e.code === 'ENOENT') {
    return new SourceError('was removed while capstan.src listed the tree', {
      code: 'E_SRC_CHANGED', file: where, cause: error, hint: 'Do not change the source folder during the build, and run the build again.',
    });
  }
  return new SourceError(`could not be listed: ${e.message ?? String(error)}`, { code: 'E_SRC_LIST', file: where, cause: error });
}
