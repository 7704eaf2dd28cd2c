// The host's /etc/ld.so.cache, as glibc's loader reads it (elf/dl-cache.c, the layouts of
// sysdeps/generic/dl-cache.h). Two formats exist:
//   new  "glibc-ld.so.cache" "1.1": header of 48 bytes (magic 17, version 3, nlibs u32,
//        len_strings u32, flags u8, 3 pad, extension_offset u32, 3 unused u32), then nlibs
//        entries of 24 bytes (flags i32, key u32, value u32, osversion u32, hwcap u64);
//        key/value are offsets from the start of this header.
//   old  "ld.so-1.7.0": header of 16 bytes (magic 11, pad, nlibs u32), nlibs entries of 12 bytes
//        (flags, key, value); strings follow the entries and offsets count from there. Caches
//        written by glibc < 2.32 put a new-format cache after the old entries, aligned to 8;
//        the loader then uses the new one, and so do we.
// Entries are in the loader's lookup order; the first fitting one for a name wins.
import { readFileSync } from 'node:fs';
import { HostError } from '../errors.js';

export const LD_CACHE_FILE = '/etc/ld.so.cache';
const MAGIC_NEW = 'glibc-ld.so.cache1.1';
const MAGIC_OLD = 'ld.so-1.7.0';
const NEW_HEADER = 48;
const NEW_ENTRY = 24;
const OLD_HEADER = 16;
const OLD_ENTRY = 12;

/** Entry flags: FLAG_ELF_LIBC6 | FLAG_X8664_LIB64, what glibc's x86-64 loader accepts. */
export const LD_CACHE_FLAGS_X86_64 = 0x0303;
/** The loader's standard folders when nothing else finds a library (multiarch and lib64 layouts). */
export const DEFAULT_LIBRARY_DIRS: readonly string[] = [
  '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib',
];

export interface LdCacheEntry {
  /** The name looked up (a soname such as `libz.so.1`). */
  name: string;
  /** Where the library is. */
  path: string;
  /** Type (low byte: 3 = ELF libc6) and architecture (high byte: 0x03 = x86-64) bits. */
  flags: number;
  /** New format only: minimum kernel version (0 = any) and hardware-capability bits. */
  osVersion?: number | undefined;
  hwcap?: bigint | undefined;
}

export interface LdCache {
  file: string;
  /** `new`, `old+new` (the old one with a new one inside: the new one is used) or `old`. */
  format: 'new' | 'old+new' | 'old';
  entries: LdCacheEntry[];
}

/** Parses ld.so.cache bytes. Throws HostError E_LD_CACHE_INVALID naming `file`. */
export function parseLdCache(bytes: Buffer, file = LD_CACHE_FILE): LdCache {
  const invalid = (problem: string) => new HostError(`is not a valid ld.so.cache: ${problem}`, {
    code: 'E_LD_CACHE_INVALID', file, hint: 'Regenerate it with `ldconfig`, or pass {ldCache: false} to search the standard folders only.',
  });
  const magic = (at: number, text: string) => bytes.length >= at + text.length && bytes.toString('latin1', at, at + text.length) === text;
  if (magic(0, MAGIC_NEW)) return { file, format: 'new', entries: parseNew(bytes, 0, invalid) };
  if (!magic(0, MAGIC_OLD)) throw invalid('it starts with neither "glibc-ld.so.cache1.1" nor "ld.so-1.7.0"');
  if (bytes.length < OLD_HEADER) throw invalid('the header is cut short');
  const nlibs = bytes.readUInt32LE(12);
  const stringsAt = OLD_HEADER + nlibs * OLD_ENTRY;
  if (stringsAt > bytes.length) throw invalid(`${nlibs} entries do not fit in ${bytes.length} bytes`);
  const embedded = align8(stringsAt);
  if (magic(embedded, MAGIC_NEW)) return { file, format: 'old+new', entries: parseNew(bytes, embedded, invalid) };
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const at = OLD_HEADER + i * OLD_ENTRY;
    entries.push({
      flags: bytes.readInt32LE(at),
      name: cString(bytes, stringsAt, bytes.readUInt32LE(at + 4), invalid),
      path: cString(bytes, stringsAt, bytes.readUInt32LE(at + 8), invalid),
    });
  }
  return { file, format: 'old', entries };
}

function parseNew(bytes: Buffer, base: number, invalid: (p: string) => HostError): LdCacheEntry[] {
  if (bytes.length < base + NEW_HEADER) throw invalid('the header is cut short');
  const nlibs = bytes.readUInt32LE(base + 20);
  if (base + NEW_HEADER + nlibs * NEW_ENTRY > bytes.length) throw invalid(`${nlibs} entries do not fit in ${bytes.length} bytes`);
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const at = base + NEW_HEADER + i * NEW_ENTRY;
    entries.push({
      flags: bytes.readInt32LE(at),
      name: cString(bytes, base, bytes.readUInt32LE(at + 4), invalid),
      path: cString(bytes, base, bytes.readUInt32LE(at + 8), invalid),
      osVersion: bytes.readUInt32LE(at + 12),
      hwcap: bytes.readBigUInt64LE(at + 16),
    });
  }
  return entries;
}

function cString(bytes: Buffer, base: number, offset: number, invalid: (p: string) => HostError): string {
  const start = base + offset;
  const end = bytes.indexOf(0, start);
  if (start >= bytes.length || end < 0) throw invalid(`a string offset (${offset}) lies past the end of the file`);
  return bytes.toString('utf8', start, end);
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Reads and parses the cache; undefined when the file does not exist (the loader then searches the standard folders). */
export function readLdCache(file = LD_CACHE_FILE): LdCache | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HostError(`cannot be read: ${(error as Error).message}`, { code: 'E_LD_CACHE_READ', file, cause: error });
  }
  return parseLdCache(bytes, file);
}

/**
 * Name → paths for one architecture, in lookup order. Entries for hardware-capability
 * subfolders (hwcap ≠ 0) come after the plain ones: the image's CPU is not the host's, so the
 * baseline build is the safe pick (glibc would prefer an optimised one the host CPU supports).
 */
export function ldCacheIndex(cache: LdCache | undefined, flags = LD_CACHE_FLAGS_X86_64): Map<string, string[]> {
  const index = new Map<string, string[]>();
  if (!cache) return index;
  const plain = cache.entries.filter((e) => e.flags === flags && !e.hwcap);
  const special = cache.entries.filter((e) => e.flags === flags && e.hwcap);
  for (const e of [...plain, ...special]) {
    const list = index.get(e.name);
    if (list) { if (!list.includes(e.path)) list.push(e.path); } else index.set(e.name, [e.path]);
  }
  return index;
}
