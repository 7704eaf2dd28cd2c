// Stopping a QEMU: ACPI powerdown through QMP (the guest shuts down cleanly), then QMP `quit`,
// then SIGKILL. Works for our own child and for a detached instance found by its pid file.
import { setTimeout as delay } from 'node:timers/promises';
import { QmpClient } from './qmp.js';

export interface ShutdownPlan {
  monitor: string;
  pid: number | undefined;
  /** Time the guest gets after powerdown, in ms. */
  graceMs: number;
  /** Resolves when QEMU has gone (for our own child); otherwise the pid is polled. */
  exited?: Promise<void> | undefined;
  /** Kills it for good (default: SIGKILL to `pid`). */
  kill?: (() => void) | undefined;
}

/** How the QEMU ended: after powerdown, after quit, or killed; `gone` if it was not running. */
export type ShutdownOutcome = 'powerdown' | 'quit' | 'killed' | 'gone';

export async function shutdownQemu(plan: ShutdownPlan): Promise<ShutdownOutcome> {
  const gone = plan.exited ?? waitForPid(plan.pid);
  let isGone = false;
  void gone.then(() => { isGone = true; });
  const within = async (ms: number) => { await Promise.race([gone, delay(ms)]); await Promise.resolve(); return isGone; };
  if (plan.exited === undefined && !pidAlive(plan.pid)) return 'gone';
  let qmp: QmpClient | undefined;
  try {
    qmp = await QmpClient.connect(plan.monitor, 2000);
  } catch {
    qmp = undefined;
  }
  try {
    if (qmp) {
      await qmp.execute('system_powerdown', undefined, 2000).catch(() => undefined);
      if (await within(plan.graceMs)) return 'powerdown';
      await qmp.execute('quit', undefined, 2000).catch(() => undefined);
      // QEMU exits within milliseconds of `quit` on an idle machine; give a loaded one time.
      if (await within(5000)) return 'quit';
    }
  } finally {
    qmp?.close();
  }
  if (plan.kill) plan.kill();
  else if (plan.pid) { try { process.kill(plan.pid, 'SIGKILL'); } catch { /* gone */ } }
  await within(5000);
  return 'killed';
}

export function pidAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitForPid(pid: number | undefined): Promise<void> {
  while (pidAlive(pid)) await delay(50);
}
