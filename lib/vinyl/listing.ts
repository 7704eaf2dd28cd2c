// A source listing kept between builds (watch mode): the vinyls a source gave, as plain facts
// (path, base, stat, link target), replayed as fresh vinyls for the next build, with the
// files that changed re-stat'ed. So a one-file edit costs one lstat, not a walk of the tree.
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import Vinyl from 'vinyl';
import { annotate, capstanOf, type CapstanMeta } from '../carrier.js';

interface Listed {
  cwd: string;
  base: string;
  path: string;
  stat: Stats;
  symlink?: string | undefined;
}

export class SourceListing {
  private readonly files = new Map<string, Listed>();

  /** A pass-through that records what the source gives (the listing starts afresh). */
  record(): Transform {
    this.files.clear();
    return new Transform({
      objectMode: true,
      transform: (file: Vinyl, _e, done) => {
        this.files.set(file.path, { cwd: file.cwd, base: file.base, path: file.path, stat: file.stat!, symlink: file.isSymbolic() ? file.symlink ?? undefined : undefined });
        done(null, file);
      },
    });
  }

  get size(): number { return this.files.size; }

  /**
   * Takes changed paths in (files whose content changed in place). Returns false when one of
   * them is not in the listing or is no longer what it was (gone, a folder now): the caller
   * lists again.
   */
  refresh(changed: Iterable<string>): boolean {
    for (const file of changed) {
      const known = this.files.get(file);
      if (!known) return false;
      let stat: Stats;
      try { stat = lstatSync(file); } catch { return false; }
      if (stat.isDirectory() !== known.stat.isDirectory() || stat.isSymbolicLink() !== known.stat.isSymbolicLink()) return false;
      known.stat = stat;
      if (stat.isSymbolicLink()) {
        try { known.symlink = readlinkSync(file); } catch { return false; }
      }
    }
    return true;
  }

  /** Fresh vinyls for a build (steps annotate what they get: never hand them the same objects twice). */
  stream(): Readable {
    const files = [...this.files.values()];
    return Readable.from((function* () {
      for (const f of files) {
        const v = new Vinyl({ cwd: f.cwd, base: f.base, path: f.path, stat: f.stat, contents: null });
        if (f.symlink !== undefined) v.symlink = f.symlink;
        yield v;
      }
    })(), { objectMode: true });
  }
}

/**
 * What layoutFiles gave one build (every entry with its guest path, layer and contents: the
 * app's files, the packages', the generated ones), replayed straight into writeImage for the
 * next build when only files' contents changed in place — no manifest input, nothing added or
 * removed. A one-file edit then costs one lstat and writeImage's per-entry check, not the
 * steps' work over the whole tree.
 */
export class LaidOutListing {
  private entries: Array<{ file: Vinyl; meta: CapstanMeta | undefined }> = [];
  private readonly byPath = new Map<string, Vinyl>();
  /** False when an entry had stream contents, which cannot be given twice. */
  private replayable = true;

  /** A pass-through that records what reaches it (the listing starts afresh). */
  record(): Transform {
    this.entries = [];
    this.byPath.clear();
    this.replayable = true;
    return new Transform({
      objectMode: true,
      transform: (file: Vinyl, _e, done) => {
        const meta = capstanOf(file);
        if (file.isStream()) this.replayable = false;
        if (meta?.kind !== 'image') {
          // A copy, as it is now: the steps after this one may change the file they are given.
          const copy = new Vinyl({ cwd: file.cwd, base: file.base, path: file.path, stat: file.stat ?? undefined, contents: file.isBuffer() ? file.contents : null });
          if (typeof file.symlink === 'string' && file.stat?.isSymbolicLink()) copy.symlink = file.symlink;
          this.entries.push({ file: copy, meta: meta ? { ...meta } : undefined });
          if (file.isNull() && !file.isSymbolic()) this.byPath.set(file.path, copy);
        }
        done(null, file);
      },
    });
  }

  get size(): number { return this.entries.length; }

  /**
   * Takes host paths whose content changed in place; false when one is not a host-read entry
   * of the listing (a buffered file, or unknown): the caller runs the steps again.
   */
  refresh(changed: Iterable<string>): boolean {
    if (!this.replayable || this.entries.length === 0) return false;
    for (const file of changed) {
      const entry = this.byPath.get(file);
      if (!entry) return false;
      let stat: Stats;
      try { stat = lstatSync(file); } catch { return false; }
      if (!stat.isFile()) return false;
      entry.stat = stat;
    }
    return true;
  }

  /** Fresh vinyls, annotated as layoutFiles left them. */
  stream(): Readable {
    const entries = [...this.entries];
    return Readable.from((function* () {
      for (const { file, meta } of entries) {
        const v = new Vinyl({ cwd: file.cwd, base: file.base, path: file.path, stat: file.stat ?? undefined, contents: file.isBuffer() ? file.contents : null });
        if (typeof file.symlink === 'string' && file.stat?.isSymbolicLink()) v.symlink = file.symlink;
        if (meta) annotate(v, { ...meta });
        yield v;
      }
    })(), { objectMode: true });
  }
}
