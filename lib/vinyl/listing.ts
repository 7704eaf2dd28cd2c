// A source listing kept between builds (watch mode): the vinyls a source gave, as plain facts
// (path, base, stat, link target), replayed as fresh vinyls for the next build, with the
// files that changed re-stat'ed. So a one-file edit costs one lstat, not a walk of the tree.
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import Vinyl from 'vinyl';

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
