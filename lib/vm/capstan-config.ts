// The keys of `<CAPSTAN_ROOT>/config.yaml` that matter for running VMs: `disable_kvm` and
// `qemu_aio_type`. $CAPSTAN_DISABLE_KVM and $CAPSTAN_QEMU_AIO_TYPE override them (what
// Capstan's code does, whatever its docs say). The file is read by the repository's reader.
import { CapstanError, VmError } from '../errors.js';
import { readCapstanConfig } from '../repository/config.js';
import type { ManifestWarning } from '../yaml/source.js';

export interface CapstanVmConfig {
  disableKvm?: boolean | undefined;
  qemuAioType?: string | undefined;
}

export function readCapstanVmConfig(root: string, onWarning?: (warning: ManifestWarning) => void): CapstanVmConfig {
  try {
    const { disableKvm, qemuAioType } = readCapstanConfig(root, onWarning);
    return { ...(disableKvm !== undefined ? { disableKvm } : {}), ...(qemuAioType !== undefined ? { qemuAioType } : {}) };
  } catch (error) {
    if (!(error instanceof CapstanError)) throw error;
    throw new VmError(error.shortMessage, { code: error.code, file: error.file, line: error.line, column: error.column, hint: error.hint });
  }
}

/** The environment with config.yaml's settings filled in where the variables are unset. */
export function withCapstanConfig(env: NodeJS.ProcessEnv, config: CapstanVmConfig): NodeJS.ProcessEnv {
  const extra: NodeJS.ProcessEnv = {};
  if (env.CAPSTAN_DISABLE_KVM === undefined && config.disableKvm) extra.CAPSTAN_DISABLE_KVM = '1';
  if (env.CAPSTAN_QEMU_AIO_TYPE === undefined && config.qemuAioType) extra.CAPSTAN_QEMU_AIO_TYPE = config.qemuAioType;
  return Object.keys(extra).length > 0 ? { ...env, ...extra } : env;
}
