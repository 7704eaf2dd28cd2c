// The options of capstan.src: the gulp.src ones that make sense for an image build, checked
// up front so a typo fails when the pipeline is built, not half-way through a tree.
import path from 'node:path';
import { SourceError } from '../errors.js';

export interface SrcOptions {
  /** Folder the globs are relative to. Default process.cwd(). */
  cwd?: string | undefined;
  /**
   * Base of every file (`file.relative` is taken from it). Default: the glob parent of the
   * first positive glob that matches the file, as gulp.src (glob-parent) computes it.
   */
  base?: string | undefined;
  /** Use `cwd` as the base (gulp.src's `cwdbase`). Default false. */
  cwdbase?: boolean | undefined;
  /** Let `*` and `**` match names that start with a dot. Default false (as gulp.src). */
  dot?: boolean | undefined;
  /** Globs to leave out, like negated globs. Default none. */
  ignore?: string | readonly string[] | undefined;
  /**
   * Only entries changed after this time (Date or milliseconds since the epoch): an entry is
   * left out when the later of its mtime and ctime is at or before it, as gulp.src does.
   */
  since?: Date | number | undefined;
  /** A singular glob (a plain path) that matches nothing is not an error. Default false. */
  allowEmpty?: boolean | undefined;
  /**
   * Read file contents into the vinyl. Default **false**: `file.contents` is null and
   * writeImage (and resolveManifest, for its inputs) read the file from `file.path` themselves,
   * without passing its bytes through JavaScript buffers. Pass true for plugins that need
   * contents between src and writeImage.
   */
  read?: boolean | undefined;
  /**
   * With `read: true`: contents as a Buffer (true, default, read in parallel) or as a stream
   * (false) that opens the file only when something reads it.
   */
  buffer?: boolean | undefined;
  /**
   * Accepted for gulp.src compatibility, only as false: capstan.src always keeps the bytes as
   * they are (what gulp.src does with `encoding: false`); images hold binaries.
   */
  encoding?: false | undefined;
  /**
   * Accepted for gulp.src compatibility, only as false: links are always kept as links
   * (`file.symlink` is the target, `file.stat` the link's own lstat), dangling ones included.
   */
  resolveSymlinks?: false | undefined;
}

export interface SrcSettings {
  cwd: string;
  base: string | undefined;
  dot: boolean;
  ignore: string[];
  /** Milliseconds; entries with max(mtime, ctime) at or before it are left out. */
  since: number | undefined;
  allowEmpty: boolean;
  read: boolean;
  buffer: boolean;
}

const KNOWN = new Set(['cwd', 'base', 'cwdbase', 'dot', 'ignore', 'since', 'allowEmpty', 'read', 'buffer', 'encoding', 'resolveSymlinks']);

function optionError(problem: string, hint: string): SourceError {
  return new SourceError(problem, { code: 'E_SRC_OPTIONS', file: 'capstan.src options', hint });
}

/** Checks the globs and options; throws a SourceError on the first bad one. */
export function normaliseSrcOptions(globs: unknown, options: SrcOptions | undefined): { globs: string[]; settings: SrcSettings } {
  const list = typeof globs === 'string' ? [globs] : Array.isArray(globs) ? [...globs] : undefined;
  if (!list || list.length === 0 || list.some((g) => typeof g !== 'string' || g.length === 0)) {
    throw new SourceError(`invalid glob argument: ${JSON.stringify(globs)}`, {
      code: 'E_SRC_GLOB', hint: "Pass a glob or an array of globs, e.g. capstan.src('app/**', {base: 'app'}).",
    });
  }
  const o: SrcOptions = options ?? {};
  if (typeof o !== 'object' || o === null) throw optionError('options must be an object', "e.g. capstan.src('app/**', {base: 'app', dot: true})");
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) {
      throw optionError(`unknown option \`${key}\``, `capstan.src takes ${[...KNOWN].join(', ')}; for other gulp.src options use gulp.src.`);
    }
  }
  const bool = (name: keyof SrcOptions, fallback: boolean): boolean => {
    const v = o[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw optionError(`option \`${name}\` must be true or false`, `got ${JSON.stringify(v)}`);
    return v;
  };
  const str = (name: 'cwd' | 'base'): string | undefined => {
    const v = o[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length === 0) throw optionError(`option \`${name}\` must be a folder path`, `got ${JSON.stringify(v)}`);
    return v;
  };
  if (o.encoding !== undefined && o.encoding !== false) {
    throw optionError(`option \`encoding\` is not supported (${JSON.stringify(o.encoding)})`,
      'capstan.src always passes the bytes through unchanged (as gulp.src with encoding: false), which is what an image needs; drop the option.');
  }
  if (o.resolveSymlinks !== undefined && o.resolveSymlinks !== false) {
    throw optionError('option `resolveSymlinks` can only be false',
      'capstan.src keeps symlinks as symlinks; to copy what links point to, use gulp.src(glob, {resolveSymlinks: true}).');
  }
  const ignore = o.ignore === undefined ? [] : typeof o.ignore === 'string' ? [o.ignore] : o.ignore;
  if (!Array.isArray(ignore) || ignore.some((g) => typeof g !== 'string')) throw optionError('option `ignore` must be a glob or an array of globs', "e.g. ignore: ['**/*.map']");
  let since: number | undefined;
  if (o.since !== undefined) {
    since = o.since instanceof Date ? o.since.getTime() : typeof o.since === 'number' ? o.since : NaN;
    if (!Number.isFinite(since)) throw optionError('option `since` must be a Date or a number of milliseconds', `got ${String(o.since)}`);
  }
  const cwd = path.resolve(str('cwd') ?? process.cwd());
  const read = bool('read', false);
  return {
    globs: list as string[],
    settings: {
      cwd,
      base: bool('cwdbase', false) ? cwd : str('base'),
      dot: bool('dot', false),
      ignore: [...ignore],
      since,
      allowEmpty: bool('allowEmpty', false),
      read,
      buffer: bool('buffer', true),
    },
  };
}
