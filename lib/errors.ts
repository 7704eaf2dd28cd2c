// Typed errors for the API, and their conversion to gulp's PluginError for the stream steps.
// Every message names the file (and line:column when we know it), says what is wrong and
// what to do, so a user never has to read a stack trace.
import PluginError from 'plugin-error';

export const PLUGIN_NAME = 'gulp-capstan';

export interface CapstanErrorDetails {
  /** Stable machine-readable code, e.g. `E_RUN_YAML_MAIN_MISSING`. */
  code: string;
  /** The file the problem is in (host path, or a package-relative name such as `meta/run.yaml`). */
  file?: string | undefined;
  /** 1-based line and column inside `file`. */
  line?: number | undefined;
  column?: number | undefined;
  /** What the user should do about it. */
  hint?: string | undefined;
  cause?: unknown;
}

/** Base of every error the library throws on purpose. */
export class CapstanError extends Error {
  override name = 'CapstanError';
  readonly code: string;
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly hint: string | undefined;
  /** The problem alone, without location or hint. */
  readonly shortMessage: string;

  constructor(problem: string, details: CapstanErrorDetails) {
    super(formatMessage(problem, details), details.cause === undefined ? undefined : { cause: details.cause });
    this.code = details.code;
    this.file = details.file;
    this.line = details.line;
    this.column = details.column;
    this.hint = details.hint;
    this.shortMessage = problem;
    // Fields without a value are not listed (still readable as undefined): reporters that
    // serialise an error's own fields (ava's TAP output through js-yaml, gulp's Details block)
    // choke on undefined or print noise.
    for (const key of ['file', 'line', 'column', 'hint'] as const) {
      if (this[key] === undefined) Object.defineProperty(this, key, { value: undefined, enumerable: false, writable: false, configurable: true });
    }
  }
}

export class ManifestError extends CapstanError { override name = 'ManifestError'; }
export class LayoutError extends CapstanError { override name = 'LayoutError'; }
export class RepositoryError extends CapstanError { override name = 'RepositoryError'; }
export class ImageError extends CapstanError { override name = 'ImageError'; }
export class VmError extends CapstanError { override name = 'VmError'; }
/** A host program or library that cannot be captured into an OSv image (lib/host). */
export class HostError extends CapstanError { override name = 'HostError'; }
/** capstan.src: a glob, an option, or a file it could not list or read. */
export class SourceError extends CapstanError { override name = 'SourceError'; }
/**
 * A cloud or hypervisor API (OpenStack Keystone/Glance/Nova/Neutron, libvirt) refused or failed
 * a call: `service` names it, `status` is its HTTP status when there was one, and the message
 * carries what the service itself said.
 */
export class CloudError extends CapstanError {
  override name = 'CloudError';
  readonly service: string | undefined;
  readonly status: number | undefined;

  constructor(problem: string, details: CapstanErrorDetails & { service?: string | undefined; status?: number | undefined }) {
    super(problem, details);
    this.service = details.service;
    this.status = details.status;
  }
}

function formatMessage(problem: string, d: CapstanErrorDetails): string {
  let where = d.file ?? '';
  if (where && d.line !== undefined) where += `:${d.line}` + (d.column !== undefined ? `:${d.column}` : '');
  const head = where ? `${where}: ${problem}` : problem;
  return d.hint ? `${head}\n  ${d.hint}` : head;
}

/**
 * Wraps any error for emission from a gulp stream. Our own errors keep their message and
 * location; unexpected ones keep their stack (it is then worth reading).
 */
export function toPluginError(error: unknown, fileName?: string): PluginError {
  if (error instanceof PluginError) return error;
  if (error instanceof CapstanError) {
    // The message already says where, what and what to do: print it once, without the
    // "Details:" block PluginError makes of every enumerable field. The fields stay readable
    // (code, hint, …) but are not enumerable, so gulp does not list them again.
    const pe = new PluginError(PLUGIN_NAME, error.message, {
      showStack: false, showProperties: false,
      ...(error.file ?? fileName ? { fileName: error.file ?? fileName } : {}),
      ...(error.line !== undefined ? { lineNumber: error.line } : {}),
    });
    for (const key of ['code', 'file', 'line', 'column', 'hint', 'shortMessage', 'cause'] as const) {
      Object.defineProperty(pe, key, { value: error[key], enumerable: false, configurable: true, writable: true });
    }
    Object.defineProperty(pe, 'capstanError', { value: error, enumerable: false });
    return pe;
  }
  const err = error instanceof Error ? error : new Error(String(error));
  return new PluginError(PLUGIN_NAME, err, { showStack: true, ...(fileName ? { fileName } : {}) });
}

/** The CapstanError behind an error from a stream (a PluginError made by toPluginError) or the API. */
export function capstanErrorOf(error: unknown): CapstanError | undefined {
  if (error instanceof CapstanError) return error;
  const inner = (error as { capstanError?: unknown } | null)?.capstanError;
  return inner instanceof CapstanError ? inner : undefined;
}
