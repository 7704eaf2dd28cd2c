// No orphans: while a (non-detached) QEMU runs, this process's exit and its SIGINT / SIGTERM /
// SIGHUP stop it. The hooks belong to one VM — installed when it starts, removed when it ends —
// so nothing is shared between builds in one process. When a signal arrives, each VM's hook
// stops its own QEMU and removes itself; the last of our hooks to go re-raises the signal if no
// other listener is left, so the process still dies the way it would have without us.
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface OrphanGuard {
  /** Removes the hooks (the VM ended, or was detached). */
  release(): void;
}

/**
 * Installs exit and signal hooks that call `stopNow` synchronously (it must only send a signal
 * and do synchronous clean-up).
 */
export function guardAgainstOrphans(stopNow: () => void): OrphanGuard {
  let released = false;
  const onExit = () => { if (!released) stopNow(); };
  const onSignal = (signal: NodeJS.Signals) => {
    if (released) return;
    stopNow();
    release();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const release = () => {
    if (released) return;
    released = true;
    process.removeListener('exit', onExit);
    for (const s of SIGNALS) process.removeListener(s, onSignal);
    adjustListenerLimit(-1);
  };
  // One listener per running VM is expected, not a leak: raise the limit while ours are in.
  adjustListenerLimit(+1);
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
  return { release };
}

function adjustListenerLimit(by: number): void {
  const limit = process.getMaxListeners();
  if (limit === 0 || !Number.isFinite(limit)) return; // unlimited
  process.setMaxListeners(Math.max(1, limit + by));
}
