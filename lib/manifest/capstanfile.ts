// The legacy Capstanfile (capstan-behaviour.md §2.1, Capstan core/template.go).
import path from 'node:path';
import type { Capstanfile } from './types.js';
import { findEntry, YamlSource, type ParseOptions } from '../yaml/source.js';

const KEYS = ['base', 'cmdline', 'build', 'files', 'rootfs', 'rpm-base'] as const;

export type PathKind = 'file' | 'dir' | 'other' | undefined;

export interface CapstanfileOptions extends ParseOptions {
  /** The package root: host paths are resolved against it. */
  root: string;
  /** Tells what exists on the host (kept injectable so parsing stays pure). */
  pathKind?: ((absolutePath: string) => PathKind) | undefined;
}

/** Parses Capstanfile text. Throws ManifestError with file:line:column. */
export function parseCapstanfile(text: string, fileLabel: string, options: CapstanfileOptions): Capstanfile {
  return readCapstanfile(YamlSource.parse(text, fileLabel, options), options);
}

/** Validates an inline `capstanfile` option (same shape as the YAML). */
export function capstanfileFromObject(value: unknown, label: string, options: CapstanfileOptions): Capstanfile {
  return readCapstanfile(YamlSource.fromValue(value, label, options), options);
}

function readCapstanfile(src: YamlSource, options: CapstanfileOptions): Capstanfile {
  // core.Template: strings, and `files` a map[string]string (repeated `files:` blocks add up).
  const entries = src.struct(src.root, '', ['files']);
  src.checkKeys(entries, KEYS, '');
  const get = (key: string) => findEntry(entries, key);

  const rpm = get('rpm-base');
  if (rpm) {
    throw src.error(rpm.keyNode, 'E_CAPSTANFILE_RPM_BASE', '`rpm-base` is not supported (it needs a build VM and a Fedora koji download)',
      'Unpack the RPM into the ROOTFS folder (rpm2cpio x.rpm | cpio -idm) and remove `rpm-base`.');
  }

  const cmdline = src.string(get('cmdline')?.value ?? null, 'cmdline');
  if (!cmdline) {
    throw src.error(get('cmdline')?.keyNode ?? src.root, 'E_CAPSTANFILE_CMDLINE_MISSING', '"cmdline" not found',
      'Add the OSv command line, e.g. `cmdline: /java.so -jar /app.jar`.');
  }
  const result: Capstanfile = { cmdline, files: {} };

  const base = src.string(get('base')?.value ?? null, 'base');
  if (base) result.base = base;

  const build = src.string(get('build')?.value ?? null, 'build');
  // Capstan runs it with strings.Fields: no shell, no quoting.
  if (build && build.trim()) result.build = build.trim().split(/\s+/);

  const pathKind = options.pathKind;
  const filesEntry = get('files');
  for (const f of src.stringMapOf(src.mergedMap(filesEntry, 'files'), 'files')) {
    if (!f.key.startsWith('/')) {
      throw src.error(f.keyNode, 'E_CAPSTANFILE_FILES', `files: image path '${f.key}' must be absolute`, `Write it as '/${f.key}'.`);
    }
    if (!f.value) {
      throw src.error(f.keyNode, 'E_CAPSTANFILE_FILES', `files: no host path given for '${f.key}'`, `Write \`${f.key}: path/on/host\` (\`&\` stands for ${path.posix.basename(f.key)}).`);
    }
    // `&` is the basename of the image path: `/usr/app/app.jar: build/&` reads build/app.jar.
    const host = path.resolve(options.root, f.value.replaceAll('&', path.posix.basename(f.key)));
    // Files may be produced by `build`, which we do not run here: check only without one.
    if (pathKind && !result.build && pathKind(host) === undefined) {
      throw src.error(f.valueNode, 'E_CAPSTANFILE_FILE_MISSING', `files: ${host} (for ${f.key}) does not exist`,
        'Build it first, or fix the host path (relative paths are resolved against the folder holding the Capstanfile).');
    }
    result.files[f.key] = host;
  }

  const rootfsEntry = get('rootfs');
  const rootfs = src.string(rootfsEntry?.value ?? null, 'rootfs');
  if (rootfs) {
    const dir = path.resolve(options.root, rootfs);
    const kind = pathKind?.(dir);
    if (pathKind && kind !== 'dir') {
      throw src.error(rootfsEntry?.value, 'E_CAPSTANFILE_ROOTFS_MISSING', `rootfs: ${dir} ${kind ? 'is not a folder' : 'does not exist'}`,
        'Create the folder, fix the path, or remove `rootfs` (the default is ROOTFS when that folder exists).');
    }
    result.rootfs = dir;
  } else {
    const dir = path.resolve(options.root, 'ROOTFS');
    if (pathKind?.(dir) === 'dir') result.rootfs = dir;
  }
  return result;
}
