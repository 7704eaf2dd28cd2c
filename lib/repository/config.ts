// `<CAPSTAN_ROOT>/config.yaml` (capstan-behaviour.md §2.5): repo_url, disable_kvm,
// qemu_aio_type, release_tag. Read whole here; each domain takes the keys it needs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { RepositoryError } from '../errors.js';

export interface CapstanConfig {
  repoUrl?: string | undefined;
  disableKvm?: boolean | undefined;
  qemuAioType?: string | undefined;
  releaseTag?: string | undefined;
}

export function capstanConfigPath(root: string): string {
  return path.join(root, 'config.yaml');
}

/** Reads config.yaml; a missing file is an empty configuration, a broken one a clear error. */
export function readCapstanConfig(root: string): CapstanConfig {
  const file = capstanConfigPath(root);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  let doc: unknown;
  try {
    // yaml.v2 (Capstan's reader) follows YAML 1.1: `disable_kvm: yes` is true there too.
    doc = parse(text, { version: '1.1' });
  } catch (error) {
    throw new RepositoryError(`cannot read Capstan's configuration: ${(error as Error).message.split('\n')[0]}`, {
      code: 'E_CAPSTAN_CONFIG', file, hint: 'Fix the YAML, or remove the file to use the defaults.',
    });
  }
  if (doc === null || typeof doc !== 'object') return {};
  const o = doc as Record<string, unknown>;
  const text1 = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const config: CapstanConfig = {
    repoUrl: text1(o.repo_url),
    disableKvm: typeof o.disable_kvm === 'boolean' ? o.disable_kvm : undefined,
    qemuAioType: text1(o.qemu_aio_type),
    releaseTag: text1(o.release_tag),
  };
  // Only the keys the file sets.
  for (const key of Object.keys(config) as (keyof CapstanConfig)[]) if (config[key] === undefined) delete config[key];
  return config;
}
