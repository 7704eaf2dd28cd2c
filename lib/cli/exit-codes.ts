// Exit codes as Capstan uses them (BSD sysexits): 64 when the command was used wrongly, 65 when
// the user's data is wrong (a manifest, a package, an image, a name). Capstan returns 65 for
// every failure of a command; here a failure that is not about the user's data — the network,
// QEMU, the host — is 1, so a script can tell "fix your input" from "try again".
import { CapstanError, capstanErrorOf } from '../errors.js';

export const EX_OK = 0;
export const EX_FAILURE = 1;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
/** What a shell reports for a process ended by Ctrl+C (128 + SIGINT). */
export const EX_INTERRUPTED = 130;

/** The command was used wrongly: unknown command or flag, a missing argument, a bad flag value. */
export class UsageError extends CapstanError {
  override name = 'UsageError';

  /** `command`: the command as typed (`capstan package compose`), for the hint. */
  constructor(problem: string, command = 'capstan', hint = `See '${command} --help'.`) {
    super(problem, { code: 'E_USAGE', hint });
  }
}

/** Failures of the environment rather than of the input: exit status 1. */
const ENVIRONMENT_CODES = new Set([
  'E_REMOTE_NETWORK', 'E_REMOTE_RATE_LIMIT', 'E_REMOTE_REDIRECTS', 'E_REMOTE_BAD_ANSWER',
  'E_DOWNLOAD_TRUNCATED', 'E_DOWNLOAD_SIZE', 'E_DOWNLOAD_DIGEST', 'E_DOWNLOAD_CORRUPT',
  'E_QEMU_NOT_FOUND', 'E_VM_FAILED', 'E_VM_EXITED', 'E_VM_READY_TIMEOUT', 'E_VM_OVERLAY', 'E_VM_SOCKET_PATH',
  'E_READ_FAILED', 'E_HOST_READ', 'E_LD_CACHE_READ', 'E_SRC_UNREADABLE', 'E_MANIFEST_READ',
]);

export function exitCodeOf(error: unknown): number {
  const known = capstanErrorOf(error);
  if (!known) return EX_FAILURE;
  if (known.code === 'E_USAGE') return EX_USAGE;
  return ENVIRONMENT_CODES.has(known.code) ? EX_FAILURE : EX_DATAERR;
}
