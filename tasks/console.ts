// Where a task's output goes: normally the console (VM output on stdout, our lines through
// gulplog); with --json, stdout carries one JSON event per line and everything a person reads
// goes to stderr. Errors are reported once, as gulp prints a PluginError: where, what, what to do.
import { capstanErrorOf, toPluginError } from '../lib/errors.js';
import { jsonLines, type EventSink } from '../lib/events.js';

export interface TaskConsole {
  /** Events sink (--json), else undefined. */
  events: EventSink | undefined;
  /** Log lines go here instead of gulplog (stderr with --json). */
  logTo: NodeJS.WritableStream | undefined;
  /** Where the guest's console is copied. */
  console: NodeJS.WritableStream;
  /** A line for the person at the terminal. */
  line(message: string): void;
}

export function taskConsole(o: { json: boolean; stdout?: NodeJS.WritableStream | undefined; stderr?: NodeJS.WritableStream | undefined }): TaskConsole {
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  if (o.json) {
    return { events: jsonLines(stdout), logTo: stderr, console: stderr, line: (m) => { stderr.write(`${m}\n`); } };
  }
  return { events: undefined, logTo: o.stdout ? stdout : undefined, console: stdout, line: (m) => { stdout.write(`${m}\n`); } };
}

/** The error as gulp should print it (once), after an `error` event. */
export function reportFailure(error: unknown, out: TaskConsole): Error {
  const known = capstanErrorOf(error);
  out.events?.({
    event: 'error', code: known?.code ?? (error as { code?: string }).code, message: known?.shortMessage ?? (error as Error).message ?? String(error),
    file: known?.file, line: known?.line,
  });
  return toPluginError(known ?? error);
}
