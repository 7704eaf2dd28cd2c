// capstan.src(globs, options): a fast gulp.src for what an image build reads — whole trees of
// plain files. Same globs, bases, dot, ignore, negations, since and allowEmpty as gulp.src
// (see src-globs.ts, src-walk.ts), real Vinyl files with the lstat of each entry, symlinks kept
// as symlinks (dangling ones too), and by default no contents: writeImage reads each file from
// its path when it writes it, so the bytes never pass through a JavaScript buffer.
//
// Why not a lazy `contents` getter: vinyl's isNull(), isDirectory() and isSymbolic() all read
// `file.contents`, and every step calls them, so a getter that reads on first access would be
// triggered by the steps themselves for every file. `read: true` is there for plugins that do
// need contents (Buffers read in parallel, or with `buffer: false` streams that open their
// file only when read).
//
// After the listing, entries are lstat'ed (and links read, and with `read: true` files read)
// a bounded window ahead of the consumer and emitted in listing order: a slow consumer holds
// back the stats, so at most WINDOW vinyls (and, when reading, READ_BUDGET bytes) wait.
//
// The lstats run synchronously while they are fast, and in parallel once they are not. On a
// warm page cache a blocking lstat costs about 3 µs here; an asynchronous one costs the main
// thread 10–16 µs (the hand-off to libuv's pool and back, measured with --cpu-prof on the
// 2-vCPU project machine), and the main thread is what the whole pipeline waits for. On a
// cold cache (inodes read from disk) one lstat takes far longer, and many in flight at once
// overlap the disk waits: two batches in a row averaging over SLOW_STAT_MS per lstat switch the
// rest of the stream to WINDOW lstats in flight. A batch's time leaves out what the main thread
// spent waiting for a CPU (Linux's schedstat): on a busy machine preemption is not a cold disk.
import { lstat, lstatSync, readFile, readFileSync, readlink, readlinkSync, type Stats } from 'node:fs';
import { Readable } from 'node:stream';
import Vinyl from 'vinyl';
import { toPluginError } from '../errors.js';
import { lazyFileStream } from './lazy-file.js';
import { normaliseSrcOptions, type SrcOptions, type SrcSettings } from './src-options.js';
import { planGlobs } from './src-globs.js';
import { listEntries, listError, type Listed } from './src-walk.js';

export type { SrcOptions } from './src-options.js';

/** Entries being stat'ed ahead of the consumer. */
const WINDOW = 128;
/** Blocking lstats slower than this on average, in two batches in a row, mean a cold cache. */
const SLOW_STAT_MS = 0.1;
/** With `read: true, buffer: true`: bytes of contents read ahead of the consumer (one file may exceed it). */
const READ_BUDGET = 64 * 1024 * 1024;

/**
 * Milliseconds this thread has spent runnable but waiting for a CPU (the second field of
 * /proc/thread-self/schedstat); 0 where there is no such file, which leaves wall time alone.
 */
function runQueueMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[1]) / 1e6 || 0;
  } catch {
    return 0;
  }
}

/** How entries are stat'ed: 'auto' (see above), or always one way (tests use both). */
export type StatMode = 'auto' | 'sync' | 'parallel';

interface Slot {
  entry: Listed;
  /** Position in the listing (emission order). */
  index: number;
  done: boolean;
  /** Undefined when `since` leaves the entry out. */
  file?: Vinyl | undefined;
  error?: unknown;
  /** Bytes this slot holds against READ_BUDGET. */
  bytes: number;
}

/**
 * A readable stream of vinyl files for `globs`, like gulp.src(globs, {...options,
 * resolveSymlinks: false, encoding: false, read: false}) by default. Bad globs or options
 * throw here; listing and reading errors are emitted on the stream, naming the path.
 */
export function src(globs: string | readonly string[], options?: SrcOptions): NodeJS.ReadableStream & Readable {
  return createSource(globs, options, 'auto');
}

/** src() with the stat mode chosen (not exported from the package: 'auto' is always right for users). */
export function createSource(globs: string | readonly string[], options: SrcOptions | undefined, statMode: StatMode): NodeJS.ReadableStream & Readable {
  let parallel = statMode === 'parallel';
  let parsed: ReturnType<typeof normaliseSrcOptions>;
  let plan: ReturnType<typeof planGlobs>;
  try {
    parsed = normaliseSrcOptions(globs, options);
    plan = planGlobs(parsed.globs, parsed.settings.cwd, parsed.settings);
  } catch (error) {
    throw toPluginError(error);
  }
  const settings = parsed.settings;
  const vinylOf = vinylMaker(settings);
  let entries: Listed[] | undefined;
  let listing: Promise<void> | undefined;
  /** Slots from `next` (the next to emit) up to `started`. */
  const slots: Slot[] = [];
  let next = 0;
  let started = 0;
  let wanting = false;
  let budgetUsed = 0;
  const waitingForBudget: Slot[] = [];

  const stream = new Readable({
    objectMode: true,
    highWaterMark: 16,
    read() {
      wanting = true;
      if (!entries) {
        listing ??= listEntries(plan, settings).then((e) => { entries = e; fill(); flush(); }, (error) => { stream.destroy(toPluginError(error)); });
        return;
      }
      flush();
    },
  });

  // fill and flush call each other (and push() may call read()): each runs once at a time,
  // and a call that comes in while it runs makes it loop again instead of recursing.
  let filling = false;
  let fillAgain = false;
  let slowBatches = 0;
  const prepared = (s: Slot) => {
    if (s.file && settings.read && settings.buffer && s.file.stat!.isFile()) {
      waitingForBudget.push(s);
      startReads();
    } else {
      s.done = true;
      flush();
    }
  };
  const fill = () => {
    if (filling) { fillAgain = true; return; }
    filling = true;
    do {
      fillAgain = false;
      if (parallel) {
        while (entries && !stream.destroyed && started < entries.length && started - next < WINDOW) {
          const slot: Slot = { entry: entries[started]!, index: started, done: false, bytes: 0 };
          slots.push(slot);
          started++;
          prepare(slot, settings, vinylOf, prepared);
        }
      } else {
        // The batch is stat'ed first and emitted after, so its time is the lstats' alone.
        const batch: Slot[] = [];
        // Only a batch large enough to judge is timed (the consumer often takes one entry at a
        // time, and reading schedstat per entry cost a quarter of a compose).
        const judged = statMode === 'auto' && entries !== undefined && Math.min(entries.length - started, WINDOW - (started - next)) >= 16;
        const t0 = judged ? performance.now() - runQueueMs() : 0;
        while (entries && !stream.destroyed && started < entries.length && started - next < WINDOW) {
          const slot: Slot = { entry: entries[started]!, index: started, done: false, bytes: 0 };
          slots.push(slot);
          started++;
          prepareSync(slot, settings, vinylOf);
          batch.push(slot);
        }
        if (judged && batch.length >= 16) {
          // One slow batch may be the scheduler; two in a row are the disk.
          slowBatches = (performance.now() - runQueueMs() - t0) / batch.length > SLOW_STAT_MS ? slowBatches + 1 : 0;
          if (slowBatches >= 2) parallel = true;
        }
        for (const slot of batch) prepared(slot);
      }
    } while (fillAgain);
    filling = false;
  };

  // Buffered reads start in listing order while the budget allows (always the next one, so
  // a file larger than the budget still goes through).
  const startReads = () => {
    waitingForBudget.sort((a, b) => a.index - b.index);
    while (waitingForBudget.length > 0) {
      const s = waitingForBudget[0]!;
      const size = s.file!.stat!.size;
      if (budgetUsed > 0 && budgetUsed + size > READ_BUDGET && s.index !== next) break;
      waitingForBudget.shift();
      s.bytes = size;
      budgetUsed += size;
      readFile(s.entry.path, (error, data) => {
        if (error) s.error = listError(s.entry.path, error);
        else s.file!.contents = data;
        s.done = true;
        flush();
      });
    }
  };

  let flushing = false;
  let flushAgain = false;
  let ended = false;
  const flush = () => {
    if (flushing) { flushAgain = true; return; }
    flushing = true;
    do {
      flushAgain = false;
      while (wanting && !stream.destroyed && slots.length > 0 && slots[0]!.done) {
        const slot = slots.shift()!;
        next++;
        if (slot.bytes) { budgetUsed -= slot.bytes; startReads(); }
        if (slot.error !== undefined) {
          stream.destroy(toPluginError(slot.error, slot.entry.path));
          break;
        }
        if (slot.file) wanting = stream.push(slot.file);
      }
      if (stream.destroyed || !entries) break;
      if (next === entries.length) {
        if (wanting && !ended) { ended = true; stream.push(null); }
        break;
      }
      fill();
    } while (flushAgain);
    flushing = false;
  };

  return stream as NodeJS.ReadableStream & Readable;
}

/** lstat (and readlink, for a link) one entry, then build its vinyl; `since` may leave it out. */
function prepare(slot: Slot, settings: SrcSettings, vinylOf: VinylMaker, done: (slot: Slot) => void): void {
  const { entry } = slot;
  lstat(entry.path, (error, stat) => {
    if (error) {
      slot.error = listError(entry.path, error);
      return done(slot);
    }
    // vinyl-fs: left out when max(mtime, ctime) <= since, compared as whole milliseconds (Dates).
    if (settings.since !== undefined && Math.trunc(Math.max(stat.mtimeMs, stat.ctimeMs)) <= settings.since) return done(slot);
    const file = vinylOf(entry, stat);
    if (!stat.isSymbolicLink()) {
      slot.file = file;
      return done(slot);
    }
    readlink(entry.path, (linkError, target) => {
      if (linkError) slot.error = listError(entry.path, linkError);
      else { file.symlink = target; slot.file = file; }
      done(slot);
    });
  });
}

/** prepare(), blocking (see the top of this file for when). */
function prepareSync(slot: Slot, settings: SrcSettings, vinylOf: VinylMaker): void {
  const { entry } = slot;
  try {
    const stat = lstatSync(entry.path);
    if (settings.since !== undefined && Math.trunc(Math.max(stat.mtimeMs, stat.ctimeMs)) <= settings.since) return;
    const file = vinylOf(entry, stat);
    if (stat.isSymbolicLink()) file.symlink = readlinkSync(entry.path);
    slot.file = file;
  } catch (error) {
    slot.error = listError(entry.path, error);
  }
}

type VinylMaker = (entry: Listed, stat: Stats) => Vinyl;

/**
 * The vinyl of a listed entry for this source. Without contents it is made the way
 * `new Vinyl({cwd, base, path, stat, contents: null})` makes it (the same own fields, in the
 * same order, on Vinyl.prototype), but without the constructor's per-file work — three
 * path.normalize calls, trailing-separator checks, an Object.keys walk for custom fields —
 * which was 11 % of the wall time of a 10,000-file compose (A/B, fresh processes). That
 * normalisation is done here once per source for `cwd` and once per base, by Vinyl itself;
 * the walk's paths are normal already, and a path that may not be (a singular glob with `.`
 * or `..` in it) goes through the constructor. test/src.test.ts compares the fields with
 * the constructor's for every case.
 */
function vinylMaker(settings: SrcSettings): VinylMaker {
  const cwd = new Vinyl({ cwd: settings.cwd }).cwd;
  /** Each base as Vinyl stores it: its normal form, or undefined when it is `cwd`. */
  const bases = new Map<string, string | undefined>();
  return (entry, stat) => {
    if (settings.read && !settings.buffer && stat.isFile()) {
      return new Vinyl({ cwd: settings.cwd, base: entry.base, path: entry.path, stat, contents: lazyFileStream(entry.path) });
    }
    if (DOT_SEGMENT.test(entry.path)) return new Vinyl({ cwd: settings.cwd, base: entry.base, path: entry.path, stat, contents: null });
    let base = bases.get(entry.base);
    if (base === undefined && !bases.has(entry.base)) {
      const probe = new Vinyl({ cwd: settings.cwd, base: entry.base });
      base = probe.base === cwd ? undefined : probe.base;
      bases.set(entry.base, base);
    }
    const file = Object.create(Vinyl.prototype) as Record<string, unknown>;
    file.stat = stat;
    file._contents = null;
    file.history = [entry.path];
    file._cwd = cwd;
    if (base !== undefined) file._base = base;
    file._isVinyl = true;
    file._symlink = null;
    return file as unknown as Vinyl;
  };
}

/** A `.` or `..` segment: path.normalize would change the path. */
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
