// Globs as gulp.src understands them: made absolute against cwd (@gulpjs/to-absolute-glob), a
// walk from each positive glob's parent (glob-parent), a plain path checked for existence
// instead, and every path tested against all globs at once the way glob-stream does it through
// anymatch: a negated glob excludes, otherwise the first positive glob that matches wins (its
// parent is the file's base). The same packages glob-stream uses compute parents and
// absolute globs, so bases and matches are those of gulp.src.
import toAbsoluteGlob from '@gulpjs/to-absolute-glob';
import globParent from 'glob-parent';
import isGlob from 'is-glob';
import picomatch from 'picomatch';
import { SourceError } from '../errors.js';

export interface PositiveGlob {
  /** The absolute glob (cwd escaped, as glob-stream has it). */
  glob: string;
  /** What the user wrote. */
  original: string;
  /** A plain path (no glob characters): checked for existence, an error when missing. */
  singular: boolean;
  /** The default base of the files it matches (a singular glob's too), and where a glob's walk starts. */
  parent: string;
}

export interface GlobPlan {
  positives: PositiveGlob[];
  /** Index of the first positive glob that takes `path` (`isDirectory` retries with a trailing '/'), or -1. */
  match(path: string, isDirectory: boolean): number;
}

/** gulp's normalize-path (vinyl-fs applies it to globs, glob-stream to paths): one '/' between parts. */
export function normalizeSlashes(p: string, stripTrailing: boolean): string {
  if (p === '\\' || p === '/') return '/';
  if (p.length <= 1) return p;
  const parts = p.split(/[/\\]+/);
  if (stripTrailing && parts[parts.length - 1] === '') parts.pop();
  return parts.join('/');
}

/** is-negated-glob: a leading '!' that does not start an extglob '!(…)'. */
function isNegated(glob: string): boolean {
  return glob.charAt(0) === '!' && glob.charAt(1) !== '(';
}

export function planGlobs(globs: readonly string[], cwd: string, options: { dot: boolean; ignore: readonly string[] }): GlobPlan {
  const normalised = globs.map((g) => normalizeSlashes(g, false));
  if (!normalised.some((g) => !isNegated(g))) {
    throw new SourceError(`no positive glob in ${JSON.stringify(globs)}`, {
      code: 'E_SRC_GLOB', hint: "Negated globs only take away: add what to take, e.g. ['**/*', '!**/*.map'].",
    });
  }
  const absolute = normalised.map((g) => toAbsoluteGlob(g, { cwd }));
  const ignore = options.ignore.map((g) => toAbsoluteGlob(normalizeSlashes(g, false), { cwd }));
  const pmOptions = { dot: options.dot, ignore };
  const negatives: Array<(s: string) => boolean> = [];
  const testers: Array<(s: string) => boolean> = [];
  const positives: PositiveGlob[] = [];
  absolute.forEach((glob, i) => {
    // anymatch's split: a string starting with '!' is a negation (after to-absolute-glob, an
    // extglob '!(…)' no longer starts the string).
    if (glob.charAt(0) === '!') {
      negatives.push(picomatch(glob.slice(1), pmOptions));
      return;
    }
    const test = picomatch(glob, pmOptions);
    testers.push((s) => s === glob || test(s));
    const singular = !isGlob(glob);
    positives.push({ glob, original: globs[i]!, singular, parent: globParent(glob) });
  });
  const first = (s: string): number => {
    for (const negative of negatives) if (negative(s)) return -1;
    for (let i = 0; i < testers.length; i++) if (testers[i]!(s)) return i;
    return -1;
  };
  return {
    positives,
    match(p, isDirectory) {
      const i = first(p);
      return i === -1 && isDirectory ? first(p + '/') : i;
    },
  };
}
