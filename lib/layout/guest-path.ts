// Where a host file lands in the guest: '/'-separated absolute paths, whatever the host OS.
import path from 'node:path';
import { LayoutError } from '../errors.js';
import type { Capstanfile } from '../manifest/types.js';

/**
 * '/' + `relative` (a vinyl `file.relative`, host separators allowed), normalised.
 * Returns '/' for the base folder itself. Throws when the path climbs out of its base.
 */
export function guestPathOf(relative: string, file?: string): string {
  const posix = path.sep === '/' ? relative : relative.split(path.sep).join('/');
  // Most paths are already normal (no empty, '.' or '..' names): skip normalising them.
  if (isPlainRelative(posix)) return '/' + posix;
  const normal = path.posix.normalize('/' + posix);
  const climbs = posix.split('/').reduce((depth, part) => {
    if (depth < 0) return depth;
    if (part === '..') return depth - 1;
    return part === '' || part === '.' ? depth : depth + 1;
  }, 0) < 0;
  if (climbs) {
    throw new LayoutError(`'${relative}' lies outside its base folder, so it has no place in the image`, {
      code: 'E_LAYOUT_OUTSIDE_BASE', file,
      hint: "Give gulp.src a `base` that contains every file (e.g. src('app/**', {base: 'app'})).",
    });
  }
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

/**
 * A vinyl's `relative`, without the two path.resolve() calls of its getter when the path lies
 * below the base (nearly always: vinyl keeps both normalised, without a trailing separator).
 */
export function relativeOf(file: { readonly base: string; readonly path: string; readonly relative: string }): string {
  const { base, path: full } = file;
  if (full.length > base.length + 1 && full.charCodeAt(base.length) === SEP && full.startsWith(base) && path.isAbsolute(base)) {
    return full.slice(base.length + 1);
  }
  return file.relative;
}

const SEP = path.sep.charCodeAt(0);

/** True when every '/'-separated name of `relative` is non-empty and neither '.' nor '..'. */
function isPlainRelative(relative: string): boolean {
  if (relative === '') return false;
  let start = 0;
  for (;;) {
    const end = relative.indexOf('/', start);
    const stop = end === -1 ? relative.length : end;
    const len = stop - start;
    if (len === 0) return false;
    if (relative.charCodeAt(start) === 46 /* . */ && (len === 1 || (len === 2 && relative.charCodeAt(start + 1) === 46))) return false;
    if (end === -1) return true;
    start = end + 1;
  }
}

/** The folders above a guest path, outermost first ('/a/b/c' → ['/a', '/a/b']). */
export function parentDirectories(guestPath: string): string[] {
  const parts = guestPath.split('/').filter(Boolean);
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push('/' + parts.slice(0, i).join('/'));
  return out;
}

/** True for `/meta` and everything below it: package metadata, never image content. */
export function isMetaPath(guestPath: string): boolean {
  return guestPath === '/meta' || guestPath.startsWith('/meta/');
}

/**
 * The target a symlink gets in the image. Targets starting with `..` are resolved against the
 * link's guest folder into an absolute guest path, as Capstan does (`/etc/mnttab ->
 * ../proc/mounts` becomes `/proc/mounts`); climbing above '/' stops at '/', as in the kernel.
 * Absolute targets are already guest paths and stay verbatim (Capstan wrongly prefixed them
 * with the link's folder); other relative targets stay verbatim too.
 */
export function rewriteSymlinkTarget(guestPath: string, target: string): string {
  if (target !== '..' && !target.startsWith('../')) return target;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(guestPath), target));
  return resolved.length > 1 && resolved.endsWith('/') && !target.endsWith('/') ? resolved.slice(0, -1) : resolved;
}

/** Capstanfile mapping prepared for lookups by host path. */
export interface CapstanfileLayout {
  /** Absolute host folder mirrored to '/', when any. */
  rootfs: string | undefined;
  /** Host path → guest paths it is copied to (a host file may be listed more than once). */
  byHostPath: Map<string, string[]>;
  /** Guest path → host path, as written in `files` (already `&`-expanded and absolute). */
  files: Array<[guestPath: string, hostPath: string]>;
}

export function capstanfileLayout(capstanfile: Capstanfile, file?: string): CapstanfileLayout {
  const files: Array<[string, string]> = [];
  const byHostPath = new Map<string, string[]>();
  for (const [guest, host] of Object.entries(capstanfile.files)) {
    const guestPath = guestPathOf(guest.replace(/^\/+/, ''), file);
    if (guestPath === '/') {
      throw new LayoutError(`Capstanfile files entry '${guest}' targets the image root`, {
        code: 'E_CAPSTANFILE_FILES_ROOT', file,
        hint: 'Map each host file to a path below /, e.g. /app/app.jar: build/&.',
      });
    }
    const hostPath = path.resolve(host);
    files.push([guestPath, hostPath]);
    byHostPath.set(hostPath, [...(byHostPath.get(hostPath) ?? []), guestPath]);
  }
  return { rootfs: capstanfile.rootfs === undefined ? undefined : path.resolve(capstanfile.rootfs), byHostPath, files };
}

/**
 * Where an application file goes in Capstanfile mode: below `rootfs` it mirrors to
 * '/' + its path inside rootfs; when its host path is a `files` value, also to that key.
 * An empty result means Capstan would not upload it.
 */
export function capstanfileGuestPaths(layout: CapstanfileLayout, hostPath: string): { rootfs: string | undefined; files: string[] } {
  const absolute = path.resolve(hostPath);
  let rootfs: string | undefined;
  if (layout.rootfs !== undefined) {
    const inside = path.relative(layout.rootfs, absolute);
    if (inside !== '' && inside !== '..' && !inside.startsWith('..' + path.sep) && !path.isAbsolute(inside)) rootfs = guestPathOf(inside);
  }
  return { rootfs, files: layout.byHostPath.get(absolute) ?? [] };
}
