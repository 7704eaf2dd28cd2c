// `<CAPSTAN_ROOT>/config.yaml` (capstan-behaviour.md §2.5), read as Capstan's
// util.CapstanSettings is: go-yaml v2 (`disable_kvm: yes` is true), a value of the wrong type
// ignored (the default stays) with a warning, as Capstan ignores it. A file that is not YAML at
// all is an error here, where Capstan would silently ignore the whole file. One reader; each
// domain takes the keys it needs (repo_url and release_tag here, the VM keys in lib/vm).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CapstanError, RepositoryError } from '../errors.js';
import { findEntry, YamlSource, type ManifestWarning } from '../yaml/source.js';

export interface CapstanConfig {
  repoUrl?: string | undefined;
  disableKvm?: boolean | undefined;
  qemuAioType?: string | undefined;
  releaseTag?: string | undefined;
}

const KEYS = ['repo_url', 'disable_kvm', 'qemu_aio_type', 'release_tag'];

export function capstanConfigPath(root: string): string {
  return path.join(root, 'config.yaml');
}

/** Reads config.yaml; a missing file is an empty configuration. Only the keys the file sets are present. */
export function readCapstanConfig(root: string, onWarning?: (warning: ManifestWarning) => void): CapstanConfig {
  const file = capstanConfigPath(root);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  let src: YamlSource;
  try {
    src = YamlSource.parse(text, file, { onWarning, errorClass: RepositoryError });
  } catch (error) {
    const e = error as CapstanError;
    throw new RepositoryError(`cannot read Capstan's configuration: ${e.shortMessage}`, {
      code: 'E_CAPSTAN_CONFIG', file, line: e.line, column: e.column, hint: 'Fix the YAML, or remove the file to use the defaults.',
    });
  }
  const entries = src.struct(src.root, '');
  src.checkKeys(entries, KEYS, '');
  const valueOf = (key: string) => findEntry(entries, key)?.value ?? null;
  const lenient = <T>(key: string, read: (node: ReturnType<typeof valueOf>) => T): T | undefined => {
    const node = valueOf(key);
    try {
      return read(node);
    } catch (error) {
      if (!(error instanceof CapstanError) || error.code !== 'E_YAML_TYPE') throw error;
      src.warn(node, 'W_CAPSTAN_CONFIG_TYPE', `${error.shortMessage}; it is ignored, as Capstan ignores it`, error.hint);
      return undefined;
    }
  };
  const config: CapstanConfig = {
    repoUrl: lenient('repo_url', (n) => src.string(n, 'repo_url')) || undefined,
    disableKvm: lenient('disable_kvm', (n) => src.bool(n, 'disable_kvm')),
    qemuAioType: lenient('qemu_aio_type', (n) => src.string(n, 'qemu_aio_type')) || undefined,
    releaseTag: lenient('release_tag', (n) => src.string(n, 'release_tag')) || undefined,
  };
  for (const key of Object.keys(config) as (keyof CapstanConfig)[]) if (config[key] === undefined) delete config[key];
  return config;
}
