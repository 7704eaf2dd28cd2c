// `<CAPSTAN_ROOT>/config.yaml` (capstan-behaviour.md §2.5): the keys that matter for running
// VMs are `disable_kvm` and `qemu_aio_type`. $CAPSTAN_DISABLE_KVM and $CAPSTAN_QEMU_AIO_TYPE
// override them (what Capstan's code does, whatever its docs say).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CapstanError, VmError } from '../errors.js';
import { findEntry, YamlSource, type ManifestWarning } from '../yaml/source.js';

export interface CapstanVmConfig {
  disableKvm?: boolean | undefined;
  qemuAioType?: string | undefined;
}

const KEYS = ['repo_url', 'disable_kvm', 'qemu_aio_type', 'release_tag'];

/**
 * Reads config.yaml as Capstan's util.CapstanSettings (go-yaml v2: `disable_kvm: yes` is true).
 * Capstan ignores a value of the wrong type (the default stays); so do we, with a warning.
 * A file that is not YAML at all is an error here, where Capstan would ignore the whole file.
 */
export function readCapstanVmConfig(root: string, onWarning?: (warning: ManifestWarning) => void): CapstanVmConfig {
  const file = path.join(root, 'config.yaml');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  let src: YamlSource;
  try {
    src = YamlSource.parse(text, file, { onWarning, errorClass: VmError });
  } catch (error) {
    const e = error as CapstanError;
    throw new VmError(`cannot read Capstan's configuration: ${e.shortMessage}`, {
      code: 'E_CAPSTAN_CONFIG', file, line: e.line, column: e.column, hint: 'Fix the YAML, or remove the file to use the defaults.',
    });
  }
  const entries = src.struct(src.root, '');
  src.checkKeys(entries, KEYS, '');
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
  const valueOf = (key: string) => findEntry(entries, key)?.value ?? null;
  return {
    disableKvm: lenient('disable_kvm', (node) => src.bool(node, 'disable_kvm')),
    qemuAioType: lenient('qemu_aio_type', (node) => src.string(node, 'qemu_aio_type')),
  };
}

/** The environment with config.yaml's settings filled in where the variables are unset. */
export function withCapstanConfig(env: NodeJS.ProcessEnv, config: CapstanVmConfig): NodeJS.ProcessEnv {
  const extra: NodeJS.ProcessEnv = {};
  if (env.CAPSTAN_DISABLE_KVM === undefined && config.disableKvm) extra.CAPSTAN_DISABLE_KVM = '1';
  if (env.CAPSTAN_QEMU_AIO_TYPE === undefined && config.qemuAioType) extra.CAPSTAN_QEMU_AIO_TYPE = config.qemuAioType;
  return Object.keys(extra).length > 0 ? { ...env, ...extra } : env;
}
