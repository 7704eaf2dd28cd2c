// .capstanignore, exactly as Capstan matches it (core/capstanignore.go): every pattern is a
// regular expression anchored at the package root after a few rewrites (`*` = one level,
// `/**/` = any depth, a trailing `/*` = everything beneath but not the folder itself, `.` is
// literal). A matched folder is skipped with its contents, so a path is ignored when it or
// any of its ancestors matches.
import { LayoutError } from '../errors.js';
import { capstanignoreLines } from '../manifest/capstanignore.js';

/** Patterns Capstan always applies to application files (capstan-behaviour.md §2.4). */
export const CAPSTAN_DEFAULT_IGNORES: readonly string[] = Object.freeze([
  '/meta/*', '/mpm-pkg', '/.git', '/.capstanignore', '/.gitignore', '/volumes',
]);

/** One pattern with where it was written, so errors can point at it. */
export interface IgnorePatternSource {
  pattern: string;
  /** File the pattern came from (a .capstanignore path, or a description such as `option ignore[2]`). */
  file?: string | undefined;
  /** 1-based position of the pattern inside `file`. */
  line?: number | undefined;
  column?: number | undefined;
}

export interface IgnoreRule {
  pattern: string;
  regexp: RegExp;
  /** True for Capstan's built-in patterns. */
  builtIn: boolean;
}

export interface IgnoreMatcher {
  readonly rules: readonly IgnoreRule[];
}

/** Why a guest path is ignored: the pattern and the path (itself or an ancestor) it matched. */
export interface IgnoreMatch {
  pattern: string;
  matchedPath: string;
  builtIn: boolean;
}

/**
 * Reads .capstanignore text the way Capstan does: one pattern per line, surrounding whitespace
 * trimmed, blank lines and `#` comments skipped.
 */
export function parseCapstanignore(text: string, file?: string): IgnorePatternSource[] {
  return capstanignoreLines(text, file);
}

/** Capstan's pattern → regular expression source rewrite (transformCapstanignoreToRegex). */
export function capstanignoreToRegExpSource(pattern: string): string {
  let p = pattern.replaceAll('/**/', '{two-stars}');
  if (p.endsWith('/*')) p = p.slice(0, -2) + '{all-beneath}';
  if (!p.startsWith('^')) p = '^' + p;
  p = p.replaceAll('*', '[^/]*');
  p = p.replaceAll('.', '\\.');
  p = p.replaceAll('{two-stars}', '.*');
  p = p.replace('{all-beneath}', '/.*');
  if (!p.endsWith('$')) p += '$';
  return p;
}

export interface CompileIgnoreOptions {
  /** Add Capstan's built-in patterns (default true). */
  defaults?: boolean | undefined;
}

/**
 * Compiles user patterns (plus Capstan's defaults). Rejects `/meta`, as Capstan does: ignoring
 * the whole folder would hide meta/run.yaml, so no /run scripts would be written.
 */
export function compileIgnore(patterns: ReadonlyArray<string | IgnorePatternSource>, options: CompileIgnoreOptions = {}): IgnoreMatcher {
  const rules: IgnoreRule[] = [];
  for (const item of patterns) {
    const source: IgnorePatternSource = typeof item === 'string' ? { pattern: item } : item;
    const pattern = source.pattern.trim();
    if (pattern === '' || pattern.startsWith('#')) continue;
    if (pattern === '/meta') {
      throw new LayoutError("ignore pattern '/meta' is not allowed", {
        code: 'E_IGNORE_META',
        file: source.file, line: source.line, column: source.column,
        hint: "Capstan reads meta/run.yaml from that folder; remove the line, or use '/meta/*' (already ignored by default).",
      });
    }
    rules.push({ pattern, regexp: compilePattern(pattern, source), builtIn: false });
  }
  if (options.defaults ?? true) {
    for (const pattern of CAPSTAN_DEFAULT_IGNORES) {
      rules.push({ pattern, regexp: new RegExp(capstanignoreToRegExpSource(pattern)), builtIn: true });
    }
  }
  return { rules };
}

function compilePattern(pattern: string, source: IgnorePatternSource): RegExp {
  try {
    return new RegExp(capstanignoreToRegExpSource(pattern));
  } catch (error) {
    throw new LayoutError(`ignore pattern '${pattern}' is not a valid pattern (${(error as Error).message})`, {
      code: 'E_IGNORE_PATTERN',
      file: source.file, line: source.line, column: source.column,
      hint: 'Capstan patterns are regular expressions apart from *, /**/ and .; escape characters such as + ( ) [ ] ? with a backslash.',
      cause: error,
    });
  }
}

/** The rule matching exactly this path (no ancestor check), as Capstan's IsIgnored. */
export function matchIgnoreRule(matcher: IgnoreMatcher, guestPath: string): IgnoreRule | undefined {
  return matcher.rules.find((rule) => rule.regexp.test(guestPath));
}

/**
 * Results of isIgnored for folders (null: not ignored), for one matcher. Pass the same memo
 * with the same matcher only.
 */
export type IgnoreFolderMemo = Map<string, IgnoreMatch | null>;

/**
 * Whether an application path ('/'-separated, absolute from the package root) is ignored:
 * it matches, or one of its folders does (Capstan skips a matched folder's whole subtree).
 */
export function isIgnored(matcher: IgnoreMatcher, guestPath: string, folders?: IgnoreFolderMemo): IgnoreMatch | undefined {
  if (matcher.rules.length === 0) return undefined;
  const cut = guestPath.lastIndexOf('/');
  if (folders && cut > 0 && !guestPath.includes('//') && !guestPath.endsWith('/')) {
    // Files share their folders: decide each folder once, then test only the last name.
    const folder = guestPath.slice(0, cut);
    let inFolder = folders.get(folder);
    if (inFolder === undefined) folders.set(folder, (inFolder = isIgnored(matcher, folder, folders) ?? null));
    if (inFolder) return inFolder;
    const rule = matchIgnoreRule(matcher, guestPath);
    return rule ? { pattern: rule.pattern, matchedPath: guestPath, builtIn: rule.builtIn } : undefined;
  }
  const parts = guestPath.split('/').filter(Boolean);
  let current = '';
  for (const part of parts) {
    current += '/' + part;
    const rule = matchIgnoreRule(matcher, current);
    if (rule) return { pattern: rule.pattern, matchedPath: current, builtIn: rule.builtIn };
  }
  return undefined;
}
