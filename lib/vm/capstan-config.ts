// `<CAPSTAN_ROOT>/config.yaml` (capstan-behaviour.md §2.5): the keys that matter for running
// VMs are `disable_kvm` and `qemu_aio_type`. $CAPSTAN_DISABLE_KVM and $CAPSTAN_QEMU_AIO_TYPE
// override them (what Capstan's code does, whatever its docs say).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { VmError } from '../errors.js';

export interface CapstanVmConfig {
  disableKvm?: boolean | undefined;
  qemuAioType?: string | undefined;
}

export function readCapstanVmConfig(root: string): CapstanVmConfig {
  const file = path.join(root, 'config.yaml');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (error) {
    throw new VmError(`cannot read Capstan's configuration: ${(error as Error).message.split('\n')[0]}`, {
      code: 'E_CAPSTAN_CONFIG', file, hint: 'Fix the YAML, or remove the file to use the defaults.',
    });
  }
  if (doc === null || typeof doc !== 'object') return {};
  const o = doc as Record<string, unknown>;
  return {
    disableKvm: typeof o.disable_kvm === 'boolean' ? o.disable_kvm : undefined,
    qemuAioType: typeof o.qemu_aio_type === 'string' ? o.qemu_aio_type : undefined,
  };
}

/** The environment with config.yaml's settings filled in where the variables are unset. */
export function withCapstanConfig(env: NodeJS.ProcessEnv, config: CapstanVmConfig): NodeJS.ProcessEnv {
  const extra: NodeJS.ProcessEnv = {};
  if (env.CAPSTAN_DISABLE_KVM === undefined && config.disableKvm) extra.CAPSTAN_DISABLE_KVM = '1';
  if (env.CAPSTAN_QEMU_AIO_TYPE === undefined && config.qemuAioType) extra.CAPSTAN_QEMU_AIO_TYPE = config.qemuAioType;
  return Object.keys(extra).length > 0 ? { ...env, ...extra } : env;
}
