// Logging per step: one summary line by default, per-file detail only when verbose. Through
// gulplog, so gulp's --log-level and --silent apply; silent when nobody listens (tests).
// gulplog.error is never called: errors travel through the stream.
import gulplog from 'gulplog';
import { PLUGIN_NAME } from './errors.js';
import type { CapstanEvent, EventSink } from './events.js';

export interface LogOptions {
  /** Print per-file detail. */
  verbose?: boolean | undefined;
  /** Print nothing at all. */
  silent?: boolean | undefined;
  /** Receives machine-readable events (see events.ts); `silent` does not mute them. */
  events?: EventSink | undefined;
  /** Write log lines here instead of through gulplog (e.g. stderr when stdout carries JSON events). */
  logTo?: NodeJS.WritableStream | undefined;
}

export interface StepLogger {
  /** The step begins its work (a `step-start` event; the clock for `step-end`). */
  start(): void;
  /** The one summary line; also the `step-end` event, with what `counts` says. */
  summary(message: string, counts?: { files?: number | undefined; bytes?: number | undefined }): void;
  /** A line of its own that is not the summary (no event). */
  note(message: string): void;
  detail(message: string): void;
  warn(message: string): void;
  /** Sends a machine-readable event, when a sink was given. */
  event(event: CapstanEvent): void;
}

export function stepLogger(step: string, options: LogOptions = {}): StepLogger {
  const prefix = `${PLUGIN_NAME}: ${step}:`;
  let started = Date.now();
  const out = options.logTo;
  const info = out ? (m: string) => { out.write(`${m}\n`); } : (m: string) => { gulplog.info(m); };
  const warn = out ? (m: string) => { out.write(`warning: ${m}\n`); } : (m: string) => { gulplog.warn(m); };
  return {
    start: () => { started = Date.now(); options.events?.({ event: 'step-start', step }); },
    summary: (m, counts) => {
      if (!options.silent) info(`${prefix} ${m}`);
      options.events?.({ event: 'step-end', step, ...counts, ms: Date.now() - started });
    },
    note: (m) => { if (!options.silent) info(`${prefix} ${m}`); },
    detail: (m) => { if (!options.silent && options.verbose) info(`${prefix} ${m}`); },
    warn: (m) => {
      if (!options.silent) warn(`${prefix} ${m}`);
      options.events?.({ event: 'warning', message: `${step}: ${m}` });
    },
    event: (e) => options.events?.(e),
  };
}

/** True when a live progress display makes sense (a terminal, not CI). */
export function wantsProgress(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

/** `1.5 MiB`-style sizes for summary lines. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1073741824) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1073741824).toFixed(2)} GiB`;
}
