// Where the CLI writes: tables and messages on stdout (as Capstan prints them); with --json,
// stdout carries only events (one JSON object per line) and everything a person reads, the
// guest console included, goes to stderr. Errors are printed once, to stderr: where, what is
// wrong, what to do; a stack trace only for an unexpected error and only with CAPSTAN_DEBUG.
import gulplog from 'gulplog';
import { capstanErrorOf, PLUGIN_NAME, type CapstanError } from '../errors.js';
import { jsonLines, type EventSink } from '../events.js';
import { exitCodeOf } from './exit-codes.js';

export interface CliStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export class CliOutput {
  /** JSON events (--json), else undefined. */
  readonly events: EventSink | undefined;
  /** Messages and tables for a person. */
  readonly human: NodeJS.WritableStream;
  /** Where a guest's console is copied. */
  readonly console: NodeJS.WritableStream;

  constructor(private readonly streams: CliStreams, json = false) {
    this.events = json ? jsonLines(streams.stdout) : undefined;
    this.human = json ? streams.stderr : streams.stdout;
    this.console = this.human;
  }

  /** One line (or several) for a person. */
  line(text = ''): void {
    this.human.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Text exactly as given (a table Capstan prints with fmt.Print). */
  write(text: string): void {
    this.human.write(text);
  }

  warn(text: string): void {
    this.streams.stderr.write(`warning: ${text}\n`);
  }

  /**
   * The library's step loggers speak through gulplog (gulp prints them); in this process
   * nobody else listens, so their summary lines and warnings come here. Returns the unhook.
   */
  listenToSteps(): () => void {
    const prefix = `${PLUGIN_NAME}: `;
    const strip = (m: unknown) => String(m).startsWith(prefix) ? String(m).slice(prefix.length) : String(m);
    const info = (m: unknown) => this.line(strip(m));
    const warn = (m: unknown) => this.warn(strip(m));
    // gulplog is an EventEmitter (sparkles) underneath; its types only declare the log methods.
    const logger = gulplog as unknown as NodeJS.EventEmitter;
    logger.on('info', info);
    logger.on('warn', warn);
    return () => { logger.off('info', info); logger.off('warn', warn); };
  }

  /** Prints the error once (and an `error` event with --json); returns the exit code. */
  fail(error: unknown): number {
    const known = capstanErrorOf(error);
    const message = known?.message ?? (error instanceof Error ? error.message : String(error));
    this.events?.({
      event: 'error', code: known?.code ?? (error as { code?: string } | null)?.code, message: known?.shortMessage ?? message,
      file: known?.file, line: known?.line,
    });
    let text = known ? formatKnown(known.file, known.line, known.column, known.shortMessage, CLI_HINTS[known.code]?.(known) ?? known.hint) : `capstan: ${message}`;
    if (!known) {
      const stack = error instanceof Error ? error.stack : undefined;
      text += this.streams.env.CAPSTAN_DEBUG && stack ? `\n${stack}` : '\n  (an unexpected error; set CAPSTAN_DEBUG=1 to see where it came from)';
    }
    this.streams.stderr.write(`${text}\n`);
    return exitCodeOf(error);
  }
}

/** `file:line:column: problem`, then the hint; `capstan:` stands in for a missing file. */
function formatKnown(file: string | undefined, line: number | undefined, column: number | undefined, problem: string, hint: string | undefined): string {
  let where = file ?? 'capstan';
  if (file && line !== undefined) where += `:${line}${column !== undefined ? `:${column}` : ''}`;
  return `${where}: ${problem}${hint ? `\n  ${hint}` : ''}`;
}

/** The library's hints name API calls; on the command line, the command that helps is named instead. */
const CLI_HINTS: Record<string, (e: CapstanError) => string> = {
  E_PACKAGE_MISSING: (e) => {
    const name = /package "([^"]+)"/.exec(e.shortMessage)?.[1] ?? '<name>';
    return `Pull it with 'capstan package pull ${name}', or add --pull-missing (-p) to pull what is missing.`;
  },
  E_VM_NO_INSTANCE: () => "See 'capstan instances' for the instances there are (only --persist'ed or running ones can be named).",
  E_IMAGE_MISSING: () => "See 'capstan images' for the images there are.",
  E_VM_NO_VOLUME: () => 'The volumes are the files in ./volumes of the package.',
  E_VM_VOLUME_NOT_PACKAGE: () => "Run it in the package's folder (the one with meta/), or create the package first with 'capstan package init'.",
  E_PACKAGE_YAML_NOT_FOUND: () => "Create the package first with 'capstan package init --name … --title … --author …'.",
  E_RUN_YAML_EXISTS: () => 'Pass --force (-f) to overwrite it.',
  E_PACKAGE_YAML_MISSING: () => "Create it with 'capstan package init --name … --title … --author …'.",
  E_OFFLINE: (e) => e.hint ?? 'Unset CAPSTAN_OFFLINE to pull it.',
};
