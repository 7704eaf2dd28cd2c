// Which QEMU to run (osv-image-formats.md §6): $CAPSTAN_QEMU_PATH, else the first of Capstan's
// default locations that exists.
import { accessSync, constants } from 'node:fs';
import { VmError } from '../errors.js';

export const DEFAULT_QEMU_PATHS: readonly string[] = [
  '/usr/bin/qemu-system-x86_64',
  '/usr/libexec/qemu-kvm',
  '/usr/local/bin/qemu-system-x86_64',
];

/** Path of the QEMU executable to use. Throws a VmError naming what was tried. */
export function findQemu(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = explicit ?? (env.CAPSTAN_QEMU_PATH || undefined);
  if (chosen !== undefined) {
    if (!isExecutable(chosen)) {
      throw new VmError(`QEMU executable ${chosen} does not exist or is not executable`, {
        code: 'E_QEMU_NOT_FOUND',
        hint: explicit !== undefined ? 'Fix the `qemu` option.' : 'Fix $CAPSTAN_QEMU_PATH or unset it to use the default locations.',
      });
    }
    return chosen;
  }
  const found = DEFAULT_QEMU_PATHS.find(isExecutable);
  if (!found) {
    throw new VmError(`no QEMU found (looked at ${DEFAULT_QEMU_PATHS.join(', ')})`, {
      code: 'E_QEMU_NOT_FOUND',
      hint: 'Install qemu-system-x86 (e.g. `apt-get install qemu-system-x86`) or set $CAPSTAN_QEMU_PATH.',
    });
  }
  return found;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The `qemu-bridge-helper` for bridge networking: $CAPSTAN_QEMU_BRIDGE_HELPER or the usual folders. */
export function findBridgeHelper(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CAPSTAN_QEMU_BRIDGE_HELPER) return env.CAPSTAN_QEMU_BRIDGE_HELPER;
  return ['/usr/libexec', '/usr/lib/qemu', '/usr/lib'].map((d) => `${d}/qemu-bridge-helper`).find(isExecutable);
}
