// Acceleration: KVM when /dev/kvm can be opened read-write and nobody disabled it, else TCG.
// KVM can be present and still fail: some hosts refuse `-cpu host` ("failed to set MSR 0x10a"),
// and a paravirtual /dev/kvm may open fine and then stop the guest with "KVM internal error …
// emulation failure" while QEMU keeps running. So stderr is watched for those, and the boot is
// retried once under TCG (see process.ts / boot.ts).
import { closeSync, openSync } from 'node:fs';

export type Accel = 'kvm' | 'tcg';
export type AccelChoice = Accel | 'auto';

const KVM_DEVICE = '/dev/kvm';

/** True when $CAPSTAN_DISABLE_KVM asks to leave KVM alone (any value but "", 0, false, no). */
export function kvmDisabledByEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.CAPSTAN_DISABLE_KVM;
  return v !== undefined && !/^(|0|false|no|off)$/i.test(v.trim());
}

/** True when /dev/kvm can be opened read-write (what QEMU needs). */
export function kvmDeviceUsable(device = KVM_DEVICE): boolean {
  try {
    closeSync(openSync(device, 'r+'));
    return true;
  } catch {
    return false;
  }
}

/** The accelerator to try first. */
export function chooseAccel(choice: AccelChoice, env: NodeJS.ProcessEnv = process.env, device = KVM_DEVICE): Accel {
  if (choice !== 'auto') return choice;
  return !kvmDisabledByEnv(env) && kvmDeviceUsable(device) ? 'kvm' : 'tcg';
}

/** QEMU stderr text that says KVM, not the guest, failed. */
const KVM_FAILURE = [
  /failed to set MSR/i,
  /KVM internal error/i,
  /emulation failure/i,
  /failed to initialize kvm/i,
  /Could not access KVM kernel module/i,
  /kvm_init_vcpu failed/i,
  /KVM: entry failed/i,
];

/** The first stderr line showing that KVM failed, if any. */
export function kvmFailureIn(stderrText: string): string | undefined {
  for (const line of stderrText.split('\n')) {
    if (KVM_FAILURE.some((re) => re.test(line))) return line.trim();
  }
  return undefined;
}
