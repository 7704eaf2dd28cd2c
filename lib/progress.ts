// A one-line progress display for long transfers: bytes, rate and ETA, redrawn in place on a
// terminal at most five times a second. Off a terminal (CI, pipes, tests) it draws nothing; the
// caller prints one summary line instead.
import { formatBytes, wantsProgress } from './log.js';

export interface Progress {
  /** `bytes` transferred so far (absolute, not a delta). */
  update(bytes: number): void;
  /** Clears the line. Safe to call more than once. */
  stop(): void;
}

const REDRAW_MS = 200;

export function startProgress(label: string, total: number | undefined, options: { silent?: boolean | undefined; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.silent || !wantsProgress(stream)) return { update() {}, stop() {} };
  const started = Date.now();
  let last = 0;
  let drawn = false;
  return {
    update(bytes) {
      const now = Date.now();
      if (now - last < REDRAW_MS) return;
      last = now;
      drawn = true;
      stream.write(`\r\x1b[K${label} ${progressText(bytes, total, (now - started) / 1000)}`);
    },
    stop() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}

/** `12.0 MiB / 40.0 MiB  3.1 MiB/s  ETA 9 s` (the parts that are known). */
export function progressText(bytes: number, total: number | undefined, seconds: number): string {
  const rate = seconds > 0 ? bytes / seconds : 0;
  let text = total ? `${formatBytes(bytes)} / ${formatBytes(total)}` : formatBytes(bytes);
  if (rate > 0) text += `  ${formatBytes(Math.round(rate))}/s`;
  if (total && rate > 0 && bytes < total) text += `  ETA ${Math.ceil((total - bytes) / rate)} s`;
  return text;
}
