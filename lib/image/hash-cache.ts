// Capstan's hash cache for `package compose --update` (osv-image-formats.md §8): beside the
// image, `<image>.cache`, a YAML mapping from guest path to the lowercase hex MD5 of what the
// image holds there — a file's content, a folder's own guest path. We write it as Capstan's
// yaml.Marshal of a map does (keys sorted bytewise, go-yaml scalar styles), so either tool
// reads the other's. Two additions, both invisible to Capstan's YAML parser: a symlink's line
// ends in the comment `# symlink` (its hash is the MD5 of its target; cpiod cannot replace a
// link, so an update must know which paths were links), and paths left in the image after they
// left the build stay listed (the cache describes the image, and a path still in the image
// must not be uploaded as a new entry of another type).
//
// Change planning (planZfsUpdate) decides what an update can send through cpiod, which only
// creates and overwrites: a changed file is rewritten, a new path is created; anything else
// (a changed link, a path changing type) needs a rebuild.
import { readFile } from 'node:fs/promises';
import { parseDocument, isMap, isScalar } from 'yaml';
import { writeFileAtomic } from '../atomic-file.js';
import { marshalGoFields } from '../yaml/go-emit.js';
import { md5 } from './zfs-files.js';

export interface CachedHash {
  md5: string;
  symlink: boolean;
}

export type HashCache = Map<string, CachedHash>;

/** The cache file of an image. */
export function hashCachePath(image: string): string {
  return `${image}.cache`;
}

/**
 * Reads a cache; undefined when it is missing, empty or unreadable (Capstan ignores parse
 * errors too; a bad cache means a rebuild, never a wrong update).
 */
export async function readHashCache(file: string): Promise<HashCache | undefined> {
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch { return undefined; }
  return parseHashCache(text);
}

export function parseHashCache(text: string): HashCache | undefined {
  let doc;
  try { doc = parseDocument(text, { version: '1.1', uniqueKeys: false }); } catch { return undefined; }
  if (doc.errors.length > 0 || !isMap(doc.contents)) return undefined;
  const out: HashCache = new Map();
  for (const pair of doc.contents.items) {
    if (!isScalar(pair.key) || !isScalar(pair.value)) return undefined;
    const key = String(pair.key.value);
    const value = String(pair.value.value);
    if (!key.startsWith('/') || !/^[0-9a-f]{32}$/.test(value)) return undefined;
    out.set(key, { md5: value, symlink: /^\s*symlink\b/.test(pair.value.comment ?? '') });
  }
  return out.size > 0 ? out : undefined;
}

/** The cache text: go-yaml's bytes for the map, plus the `# symlink` comments. */
export function formatHashCache(cache: HashCache): string {
  const keys = [...cache.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  if (keys.length === 0) return '{}\n';
  return keys.map((k) => {
    const { md5: hash, symlink } = cache.get(k)!;
    const line = marshalGoFields([[k, hash]]);
    return symlink ? `${line.replace(/\n$/, '')} # symlink\n` : line;
  }).join('');
}

export async function writeHashCache(file: string, cache: HashCache): Promise<void> {
  await writeFileAtomic(file, formatHashCache(cache));
}

/** What one entry of the new build is, for planning. */
export interface PlannedEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  md5: string;
}

export interface ZfsUpdatePlan {
  /** Paths to send (new or changed). */
  send: Set<string>;
  unchanged: number;
  /** Paths in the image that are no longer in the build (they stay in the image). */
  gone: string[];
  /** Why an update cannot be done in place, when it cannot. */
  rebuild?: string | undefined;
  /** The cache after the update: every path of the build, plus `gone` (still in the image). */
  cache: HashCache;
}

/** MD5 of a folder, as Capstan hashes it: its guest path. */
export function directoryHash(guestPath: string): string {
  return md5(guestPath);
}

/** Decides what an update sends; `previous` is the image's cache. */
export function planZfsUpdate(previous: HashCache, entries: Iterable<PlannedEntry>): ZfsUpdatePlan {
  const send = new Set<string>();
  const cache: HashCache = new Map();
  let unchanged = 0;
  let rebuild: string | undefined;
  for (const e of entries) {
    cache.set(e.path, { md5: e.md5, symlink: e.type === 'symlink' });
    const before = previous.get(e.path);
    if (!before) { send.add(e.path); continue; }
    const was = before.symlink ? 'symlink' : before.md5 === directoryHash(e.path) ? 'dir' : 'file';
    if (was !== e.type) {
      rebuild ??= `${e.path} was a ${kindName(was)} and is now a ${kindName(e.type)}, which an update cannot change in place`;
      continue;
    }
    if (before.md5 === e.md5) { unchanged++; continue; }
    if (e.type === 'symlink') {
      rebuild ??= `the symlink ${e.path} changed its target, which an update cannot change in place (cpiod does not replace links)`;
      continue;
    }
    send.add(e.path);
  }
  const gone = [...previous.keys()].filter((p) => !cache.has(p)).sort();
  for (const p of gone) cache.set(p, previous.get(p)!);
  return { send, unchanged, gone, rebuild, cache };
}

function kindName(kind: 'file' | 'dir' | 'symlink'): string {
  return kind === 'dir' ? 'folder' : kind;
}
