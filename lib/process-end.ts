// Work that must happen however this process ends: a QEMU we started must stop (no orphans), a
// temp file we are writing must go. A hook belongs to one VM or one file — installed when it
// starts, removed when it ends — so nothing is shared between builds in one process.
//
// On SIGINT / SIGTERM / SIGHUP a VM's hook always stops its QEMU. A temp file's hook acts only
// when the signal will end the process, i.e. when every listener for it is one of ours (someone
// else's listener may keep the process, and then the work goes on; should that listener exit,
// the exit hook removes the file). A hook that acted removes itself; the last of ours to go
// re-raises the signal if no other listener is left, so the process dies as it would have.
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** Marks our listeners, across copies of this module (Symbol.for). */
const OURS = Symbol.for('gulp-capstan.process-end');

export interface ProcessEndHook {
  /** Removes the hooks (the VM ended or was detached, the file was renamed or removed). */
  release(): void;
}

/**
 * Installs exit and signal hooks that call `now` synchronously (it must only send a signal or
 * do synchronous clean-up). `signals: 'when-fatal'`: on a signal, only when it ends the process.
 */
export function onProcessEnd(now: () => void, signals: 'always' | 'when-fatal' = 'always'): ProcessEndHook {
  let released = false;
  const onExit = () => { if (!released) now(); };
  const onSignal = Object.assign((signal: NodeJS.Signals) => {
    if (released) return;
    if (signals === 'when-fatal' && !process.listeners(signal).every((l) => OURS in l)) return;
    now();
    release();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  }, { [OURS]: true });
  const release = () => {
    if (released) return;
    released = true;
    process.removeListener('exit', onExit);
    for (const s of SIGNALS) process.removeListener(s, onSignal);
    adjustListenerLimit(-1);
  };
  // One listener per running VM or open temp file is expected, not a leak: raise the limit while ours are in.
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
