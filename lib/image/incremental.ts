// Incremental images (ImageComposer with `incremental`, writeImage({incremental: true})).
//
// ROFS keeps its tables after the file data, so a new volume can keep every block of the
// previous one, append the new and changed files after them and rewrite the tables. On disk the
// new image is a qcow2 overlay whose backing file is the previous image, frozen: `out` is
// hard-linked to a hidden generation file beside it (`.<name>.gen-<n>.qcow2`, named in the
// header by that relative name, so the folder can move) and the new image is renamed over
// `out`. The overlay holds only what changed: the boot sector and command-line cluster, the
// superblock's cluster, the new files' data and the tables; partially written clusters are
// completed from the backing image (qcow2 copy-on-write, done by Qcow2Writer).
//
// What the previous build wrote is in its build record (build-record.ts): for each file its
// blocks and a content key. A file is unchanged when its key matches, decided without reading
// it: for a file read from the host, by (size, mtime, ctime, inode, device) of its stat; for
// contents in memory, by their SHA-256. Streams are always written. A file whose mtime or ctime
// is within RACY_WINDOW_MS of the build's start is recorded without a key (read again next
// time): a second same-size write within one timestamp tick would otherwise go unseen.
//
// A full build (generation 0) is done instead when there is no usable record, when the record
// does not describe the image now at `out` (another build replaced it), when the loader or the
// `permissions` option changed, after `maxGenerations` generations, or when more than
// `maxDeadFraction` of the data blocks are dead (replaced, changed or deleted files). Only after
// a full image is in place are the generation files deleted: an incremental build never
// deletes one, and a failed build removes only the link it made itself.
//
// Known limit: two builds of the same `out` at the same time are not supported (as for full
// builds, the last rename wins, and a flattening one may delete the chain the other is using).
import { hash } from 'node:crypto';
import { link, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ImageError } from '../errors.js';
import {
  KEY_HASH, KEY_NONE, KEY_STAT, RECORD_DIR, RECORD_FILE, RECORD_REPLACED, RECORD_SYMLINK, recordColumns, recordPathFor, readBuildRecord,
  type BuildRecord, type FileIdentity, type RecordColumns,
} from './build-record.js';
import { openDiskImage, type DiskImageReader } from './disk.js';
import { SECTOR } from './mbr.js';
import { decodeSuperBlock } from './rofs.js';
import type { RofsEntryFacts, RofsExtent } from './rofs-builder.js';

export const DEFAULT_MAX_GENERATIONS = 8;
export const DEFAULT_MAX_DEAD_FRACTION = 0.5;
/** Files changed this recently before the build are not trusted by their stat next time. */
export const RACY_WINDOW_MS = 2000;
/** Record rows looked at past the last match before the path index is used. */
const LOOKAHEAD = 4;

export interface IncrementalOptions {
  /** Generation files an image may stack before the next build is a full one (default 8). */
  maxGenerations?: number | undefined;
  /** Fraction of dead data blocks (0–1) above which the next build is a full one (default 0.5). */
  maxDeadFraction?: number | undefined;
}

export interface IncrementalSettings {
  maxGenerations: number;
  maxDeadFraction: number;
}

/**
 * What identifies a file's content without reading it: the stat of a host file (read: false
 * vinyls), or a hash of content already in memory (`contentKey`).
 */
export type SourceFacts =
  | { size: number; mtimeMs: number; ctimeMs?: number | undefined; ino: number; dev: number }
  | { hash: string };

/** The settings for `incremental` (true, or options), or undefined when it is off. */
export function incrementalSettings(value: boolean | IncrementalOptions | undefined): IncrementalSettings | undefined {
  if (value === undefined || value === false) return undefined;
  const o = value === true ? {} : value;
  if (typeof o !== 'object' || o === null) {
    throw new ImageError('`incremental` must be true, false or an object', { code: 'E_OPTIONS', hint: 'e.g. incremental: true, or incremental: { maxGenerations: 4 }' });
  }
  const maxGenerations = o.maxGenerations ?? DEFAULT_MAX_GENERATIONS;
  const maxDeadFraction = o.maxDeadFraction ?? DEFAULT_MAX_DEAD_FRACTION;
  if (!Number.isSafeInteger(maxGenerations) || maxGenerations < 0 || maxGenerations > 64) {
    throw new ImageError(`incremental.maxGenerations must be a whole number from 0 to 64, not ${String(maxGenerations)}`, {
      code: 'E_OPTIONS', hint: 'QEMU opens every file of a backing chain; keep it short (0 makes every build a full one).',
    });
  }
  if (typeof maxDeadFraction !== 'number' || !(maxDeadFraction >= 0 && maxDeadFraction <= 1)) {
    throw new ImageError(`incremental.maxDeadFraction must be a number from 0 to 1, not ${String(maxDeadFraction)}`, { code: 'E_OPTIONS' });
  }
  return { maxGenerations, maxDeadFraction };
}

/** The facts of content in memory: its SHA-256. */
export function contentFacts(bytes: Uint8Array): SourceFacts {
  return { hash: hash('sha256', bytes, 'base64') };
}

/**
 * Whether `facts` may identify the content at the next build: a stat is not when the file
 * changed within RACY_WINDOW_MS before this build began (a later write in the same timestamp
 * tick, of the same size, would look the same).
 */
export function trustworthy(facts: SourceFacts, buildStartedMs: number): boolean {
  if ('hash' in facts) return true;
  return Math.max(facts.mtimeMs, facts.ctimeMs ?? 0) < buildStartedMs - RACY_WINDOW_MS;
}

/** `.<name>.gen-<serial>.qcow2` beside the image. */
export function generationName(image: string, serial: number): string {
  return `.${path.basename(image)}.gen-${serial}.qcow2`;
}

export async function fileIdentity(file: string): Promise<FileIdentity> {
  const st = await stat(file);
  return { ino: st.ino, dev: st.dev, size: st.size, mtimeMs: st.mtimeMs };
}

const sameIdentity = (a: FileIdentity, b: FileIdentity) => a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs;

/**
 * The previous image, frozen as a generation file, and its record: the base the next
 * incremental image overlays.
 */
export class IncrementalBase {
  readonly record: BuildRecord;
  /** The frozen previous image, read through our qcow2 reader (its whole chain). */
  readonly backing: DiskImageReader;
  /** Base name of the generation file (what the new image's header names). */
  readonly generation: string;
  readonly generationPath: string;
  /** Sector 0 of the previous image: the loader's boot sector (with the old partition entry). */
  readonly bootSector: Buffer;
  /** Rows 0 … fileRows − 1 are the record's files, in the order the previous build got them. */
  private readonly fileRows: number;
  /** The row after the last one matched: the next file usually comes in the same order. */
  private cursor = 0;
  /** Row numbers of the files by guest path (an array when a path has several), made on the first miss. */
  private index: Map<string, number | number[]> | undefined;
  /** No two file rows share a path (a path is recorded twice only when a later entry replaced a file). */
  private readonly uniquePaths: boolean;
  private closed = false;

  constructor(record: BuildRecord, backing: DiskImageReader, generationPath: string, bootSector: Buffer) {
    this.record = record;
    this.backing = backing;
    this.generationPath = generationPath;
    this.generation = path.basename(generationPath);
    this.bootSector = bootSector;
    const { type, count } = record.entries;
    let n = 0;
    let replaced = false;
    for (; n < count && (type[n] === RECORD_FILE || type[n] === RECORD_REPLACED); n++) replaced ||= type[n] === RECORD_REPLACED;
    this.fileRows = n;
    this.uniquePaths = !replaced;
  }

  /** The blocks of the previous build's file at `guestPath` whose content had these `facts`, if any. */
  match(guestPath: string, facts: SourceFacts): RofsExtent | undefined {
    const paths = this.record.entries.path;
    // The same order as last time, perhaps with a few files deleted in between.
    const end = Math.min(this.cursor + LOOKAHEAD, this.fileRows);
    for (let i = this.cursor; i < end; i++) {
      if (paths[i] !== guestPath) continue;
      this.cursor = i + 1;
      const extent = this.matchRow(i, facts);
      if (extent || this.uniquePaths) return extent; // changed content: no other row to try
      break;
    }
    const rows = (this.index ??= this.buildIndex()).get(guestPath);
    if (rows === undefined) return undefined;
    for (const i of typeof rows === 'number' ? [rows] : rows) {
      const extent = this.matchRow(i, facts);
      if (extent) {
        this.cursor = i + 1;
        return extent;
      }
    }
    return undefined;
  }

  private buildIndex(): Map<string, number | number[]> {
    const paths = this.record.entries.path;
    const index = new Map<string, number | number[]>();
    for (let i = 0; i < this.fileRows; i++) {
      const p = paths[i]!;
      const seen = index.get(p);
      if (seen === undefined) index.set(p, i);
      else if (typeof seen === 'number') index.set(p, [seen, i]);
      else seen.push(i);
    }
    return index;
  }

  private matchRow(i: number, facts: SourceFacts): RofsExtent | undefined {
    const e = this.record.entries;
    const kind = e.keyKind[i];
    const same = 'hash' in facts
      ? kind === KEY_HASH && e.hash[i] === facts.hash
      : kind === KEY_STAT && e.size[i] === facts.size && e.mtime[i] === facts.mtimeMs && e.ctime[i] === (facts.ctimeMs ?? -1) &&
        e.ino[i] === facts.ino && e.dev[i] === facts.dev;
    return same ? { block: e.block[i]!, size: e.size[i]! } : undefined;
  }

  /** Closes the backing reader. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backing.close().catch(() => {});
  }

  /** Closes it and removes the generation link this build made (nothing refers to it yet). */
  async discard(): Promise<void> {
    await this.close();
    await unlink(this.generationPath).catch(() => {});
  }
}

export interface BaseExpectations {
  loader: FileIdentity & { path: string };
  permissions: boolean;
}

/**
 * The base for an incremental build of `out`, or the reason the build must be a full one.
 * Links `out` to a new generation file; IncrementalBase.discard() undoes that.
 */
export async function openIncrementalBase(out: string, expect: BaseExpectations, settings: IncrementalSettings): Promise<IncrementalBase | string> {
  const read = await readBuildRecord(recordPathFor(out));
  if ('missing' in read) return 'no earlier build recorded';
  if ('reason' in read) return read.reason;
  const record = read.record;
  let image: FileIdentity;
  try {
    image = await fileIdentity(out);
  } catch {
    return 'the earlier image is gone';
  }
  if (!sameIdentity(image, record.image)) return 'the image at `out` is not the one the build record describes';
  if (record.loader.path !== expect.loader.path || !sameIdentity(record.loader, expect.loader)) return 'the loader changed';
  if (record.permissions !== expect.permissions) return 'the `permissions` option changed';
  if (record.chain.length >= settings.maxGenerations) return `${record.chain.length} generations: flattening`;
  const dead = record.dataBlocks - record.liveBlocks;
  if (record.dataBlocks > 0 && dead / record.dataBlocks > settings.maxDeadFraction) {
    return `${Math.round((100 * dead) / record.dataBlocks)} % of the data is dead: flattening`;
  }

  // Freeze the previous image under a new name; `out` itself stays in place until the rename.
  let generationPath: string | undefined;
  for (let serial = record.nextSerial; serial < record.nextSerial + 64 && !generationPath; serial++) {
    const candidate = path.join(path.dirname(out), generationName(out, serial));
    try {
      await link(out, candidate);
      generationPath = candidate;
      record.nextSerial = serial + 1; // what the new record will say
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue; // a leftover of a failed or older build
      return `cannot keep the earlier image as a generation file (${code ?? (error as Error).message}: no hard links here?)`;
    }
  }
  if (!generationPath) return 'no free generation file name';

  let backing: DiskImageReader | undefined;
  try {
    backing = await openDiskImage(generationPath, 'qcow2');
    const bootSector = await backing.read(0, SECTOR);
    const sb = decodeSuperBlock(await backing.read(record.partitionStart, SECTOR));
    if (!sb || sb.structureInfoFirstBlock !== record.dataBlocks + 1) throw new Error('its volume does not match the build record');
    return new IncrementalBase(record, backing, generationPath, bootSector);
  } catch (error) {
    await backing?.close().catch(() => {});
    await unlink(generationPath).catch(() => {});
    return `the earlier image cannot be read (${(error as Error).message})`;
  }
}

/** The record columns for a finished volume's entries (tagged with their SourceFacts, or not). */
export function recordEntries(entries: readonly RofsEntryFacts[]): RecordColumns {
  const n = entries.length;
  const c = recordColumns(n);
  for (let i = 0; i < n; i++) {
    const e = entries[i]!;
    c.path[i] = e.path;
    c.perm[i] = e.perm;
    if (e.type === 'dir') { c.type[i] = RECORD_DIR; continue; }
    if (e.type === 'symlink') { c.type[i] = RECORD_SYMLINK; c.target[i] = e.target ?? ''; continue; }
    c.type[i] = e.live ? RECORD_FILE : RECORD_REPLACED;
    c.block[i] = e.block ?? 0;
    c.size[i] = e.size ?? 0;
    const facts = e.tag as SourceFacts | undefined;
    if (!facts) {
      c.keyKind[i] = KEY_NONE;
    } else if ('hash' in facts) {
      c.keyKind[i] = KEY_HASH;
      c.hash[i] = facts.hash;
    } else {
      c.keyKind[i] = KEY_STAT;
      c.mtime[i] = facts.mtimeMs;
      c.ctime[i] = facts.ctimeMs ?? -1;
      c.ino[i] = facts.ino;
      c.dev[i] = facts.dev;
    }
  }
  return c;
}

/**
 * Deletes the generation files of `out` (a full image needs none) and, with `keep`, all but
 * those. Failures are ignored: a file still open elsewhere (Windows) goes at the next flatten.
 */
export async function removeGenerations(out: string, keep: ReadonlySet<string> = new Set()): Promise<void> {
  const dir = path.dirname(out);
  const prefix = `.${path.basename(out)}.gen-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.qcow2') || keep.has(name)) continue;
    if (!/^\d+$/.test(name.slice(prefix.length, -'.qcow2'.length))) continue;
    await unlink(path.join(dir, name)).catch(() => {});
  }
}
