// meta/package.yaml (capstan-behaviour.md §2.2, osv-image-formats.md §5.1), read as go-yaml v2
// fills Capstan's core.Package: every field a string (the scalar as written: `version: 1.10`
// stays "1.10"), `require` a []string, `binary` a map, `created` Capstan's lenient YamlTime.
import { isScalar } from 'yaml';
import type { PackageInfo } from './types.js';
import { findEntry, YamlSource, type ParseOptions } from '../yaml/source.js';

export const PACKAGE_YAML_KEYS = ['name', 'title', 'author', 'version', 'require', 'created', 'platform', 'binary'] as const;

/** The package Capstan assumes when meta/package.yaml is absent. */
export function fallbackPackageInfo(): PackageInfo {
  return { name: 'App', title: 'App', author: 'Anonymous', require: [] };
}

/** Parses meta/package.yaml text. Throws ManifestError with file:line:column. */
export function parsePackageYaml(text: string, fileLabel: string, options: ParseOptions = {}): PackageInfo {
  return readPackageInfo(YamlSource.parse(text, fileLabel, options));
}

/** Validates an inline `package` option (same shape as the YAML). */
export function packageInfoFromObject(value: unknown, label: string, options: ParseOptions = {}): PackageInfo {
  return readPackageInfo(YamlSource.fromValue(value, label, options));
}

function readPackageInfo(src: YamlSource): PackageInfo {
  const entries = src.struct(src.root, '', ['binary']);
  src.checkKeys(entries, PACKAGE_YAML_KEYS, '');
  const text = (key: string) => src.string(findEntry(entries, key)?.value ?? null, key);
  const required = (key: 'name' | 'title' | 'author') => {
    const value = text(key);
    if (!value) {
      const entry = findEntry(entries, key);
      throw src.error(entry?.keyNode ?? src.root, `E_PACKAGE_YAML_${key.toUpperCase()}_MISSING`, `'${key}' must be provided for the package`,
        `Add \`${key}: ${key === 'name' ? 'my.app' : key === 'title' ? 'My app' : 'Your Name'}\` to ${src.file}.`);
    }
    return value;
  };
  const info: PackageInfo = { name: required('name'), title: required('title'), author: required('author'), require: [] };
  const version = text('version');
  if (version !== undefined) info.version = version;
  const requireEntry = findEntry(entries, 'require');
  info.require = src.stringList(requireEntry?.value ?? null, 'require');
  // YamlTime takes anything: what is not a time is shown as N/A, never an error.
  const createdNode = findEntry(entries, 'created')?.value ?? null;
  if (createdNode && !isScalar(createdNode)) {
    src.warn(createdNode, 'W_PACKAGE_YAML_CREATED', '`created` is not a time and is ignored (Capstan shows it as N/A)',
      'Write it as RFC 3339 (`created: 2024-05-01T10:00:00+02:00`) or `2024-05-01 10:00`.');
  } else {
    const created = text('created');
    if (created !== undefined) info.created = created;
  }
  const platform = text('platform');
  if (platform !== undefined) info.platform = platform;
  const binaryEntry = findEntry(entries, 'binary');
  if (binaryEntry) info.binary = Object.fromEntries(src.stringMapOf(src.mergedMap(binaryEntry, 'binary'), 'binary').map((e) => [e.key, e.value]));
  return info;
}
