// A folder of the host (a JDK, a Python standard library) as it should appear in the image:
// every file under a guest folder, with the symlinks a distribution puts in such trees sorted
// out. Debian's JDK, for one, links lib/jvm.cfg and conf/* to /etc/java-17-openjdk, lib/src.zip
// to a package that may not be installed, and legal/* to each other:
//   * a link that stays inside the tree stays a link (relative, so it holds at the guest path);
//   * a link that leaves the tree is followed: the image gets what the host reads there;
//   * a link that leads nowhere (the host could not read it either) is left out and listed.
// Reads only metadata (lstat, readlink, realpath); the files are read when the image is written.
import { lstatSync, readdirSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { HostError } from '../errors.js';

export interface TreeEntry {
  type: 'file' | 'symlink';
  /** Absolute guest path. */
  guestPath: string;
  /** The host file to read (links outside the tree followed); for a symlink, the link itself. */
  hostPath: string;
  /** Symlink target as stored in the image. */
  target?: string | undefined;
  /** File size in bytes (0 for a symlink). */
  size: number;
}

export interface DanglingLink {
  /** Path relative to the tree's root. */
  path: string;
  target: string;
}

export interface CapturedTree {
  /** The host folder (as given, resolved) and its real path. */
  root: string;
  realRoot: string;
  guestRoot: string;
  entries: TreeEntry[];
  /** Symlinks that lead nowhere, left out. */
  dangling: DanglingLink[];
  /** Paths (relative) left out by `exclude`; a folder counts once. */
  excluded: string[];
  /** Sum of file sizes. */
  bytes: number;
}

export interface TreeOptions {
  /** True for a path (relative to the root, `/`-separated) to leave out; a folder leaves out all below it. */
  exclude?: ((relative: string, isDirectory: boolean) => boolean) | undefined;
}

/** Walks `hostRoot` and places it at `guestRoot`. */
export function captureTree(hostRoot: string, guestRoot: string, options: TreeOptions = {}): CapturedTree {
  const root = path.resolve(hostRoot);
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    if (!statSync(realRoot).isDirectory()) throw new Error('not a folder');
  } catch (error) {
    throw new HostError(`cannot read the folder ${root}: ${(error as Error).message}`, {
      code: 'E_HOST_NOT_FOUND', file: root, hint: 'Give an existing folder (an installed JDK or Python).',
    });
  }
  const out: CapturedTree = { root, realRoot, guestRoot: path.posix.normalize(guestRoot), entries: [], dangling: [], excluded: [], bytes: 0 };
  const inside = (real: string) => real === realRoot || real.startsWith(realRoot + path.sep);
  // Folders entered through links that leave the tree: a loop of links must end.
  const entered = new Set<string>([realRoot]);
  const excludedWithin = (rel: string) => {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) if (options.exclude?.(parts.slice(0, i).join('/'), i < parts.length)) return true;
    return false;
  };
  const visit = (hostDir: string, rel: string) => {
    let names: string[];
    try { names = readdirSync(hostDir).sort(); } catch (error) {
      throw new HostError(`cannot list ${hostDir}: ${(error as Error).message}`, { code: 'E_HOST_NOT_FOUND', file: hostDir, hint: 'Check the permissions of the installed runtime.' });
    }
    for (const name of names) {
      const host = path.join(hostDir, name);
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const guestPath = path.posix.join(out.guestRoot, relPath);
      const st = lstatSync(host);
      if (st.isSymbolicLink()) {
        const target = readlinkSync(host);
        let real: string;
        let targetStat: Stats;
        try { real = realpathSync(host); targetStat = statSync(real); } catch {
          // Left out either way; only a link that would have come along is worth a word.
          if (options.exclude?.(relPath, false)) out.excluded.push(relPath);
          else out.dangling.push({ path: relPath, target });
          continue;
        }
        if (options.exclude?.(relPath, targetStat.isDirectory())) { out.excluded.push(relPath); continue; }
        if (inside(real)) {
          // A link to what is left out would dangle in the image.
          if (excludedWithin(path.relative(realRoot, real).split(path.sep).join('/'))) { out.excluded.push(relPath); continue; }
          // Relative to the link's folder, so it means the same at the guest path.
          const relTarget = path.relative(path.dirname(path.join(realRoot, relPath)), real).split(path.sep).join('/') || '.';
          out.entries.push({ type: 'symlink', guestPath, hostPath: host, target: relTarget, size: 0 });
        } else if (targetStat.isDirectory()) {
          if (entered.has(real)) continue;
          entered.add(real);
          visit(real, relPath);
        } else if (targetStat.isFile()) {
          out.entries.push({ type: 'file', guestPath, hostPath: real, size: targetStat.size });
          out.bytes += targetStat.size;
        }
        continue;
      }
      if (options.exclude?.(relPath, st.isDirectory())) { out.excluded.push(relPath); continue; }
      if (st.isDirectory()) visit(host, relPath);
      else if (st.isFile()) {
        out.entries.push({ type: 'file', guestPath, hostPath: host, size: st.size });
        out.bytes += st.size;
      }
      // Sockets, fifos and devices have no place in an image.
    }
  };
  visit(root, '');
  return out;
}

// An exclude function from globs relative to the root, `/`-separated: `man` (that folder or
// file), `lib/src.zip`, `*.diz` (in the root), `**/test` (a `test` at any depth); `*` stays
// within one name, `**` spans folders.
export function excludePatterns(patterns: readonly string[]): (relative: string) => boolean {
  const regexes = patterns.map((p) => new RegExp(`^${globSource(p.replace(/^\/+|\/+$/g, ''))}$`));
  return (relative) => regexes.some((r) => r.test(relative));
}

function globSource(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` at the start or between names: any number of folders, none included.
      if (glob[i + 2] === '/') { out += '(?:.*/)?'; i += 2; } else { out += '.*'; i += 1; }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return out;
}
