// Checking flag values the way Capstan parses them, as usage errors (exit 64) that name the
// flag: `--env K=V`, sizes with Capstan's units, whole numbers, one of a few words.
import { CapstanError } from '../errors.js';
import { parseDiskSize } from '../image/size.js';
import { UsageError } from './exit-codes.js';

/** `--env K=V` (repeatable) → an environment; Capstan's ParseEnvironmentList refuses a pair without `=`. */
export function envFlags(pairs: readonly string[], command: string): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env ${JSON.stringify(pair)} is not KEY=VALUE`, command, 'Write it as --env KEY=VALUE, e.g. --env PORT=8000.');
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/** A size flag (`-s 10G`): Capstan's ParseMemSize syntax, checked before any work starts. */
export function sizeFlag(value: string | undefined, flag: string, command: string): string | undefined {
  if (value === undefined) return undefined;
  try {
    parseDiskSize(value, `${flag}`);
  } catch (error) {
    if (!(error instanceof CapstanError)) throw error;
    throw new UsageError(`incorrect size format: ${error.shortMessage}`, command, error.hint);
  }
  return value;
}

export function intFlag(value: string | undefined, flag: string, command: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`invalid value "${value}" for flag ${flag}: a whole number ≥ ${min} is needed`, command);
  }
  return n;
}

export function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string, command: string): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`invalid value "${value}" for flag ${flag}`, command, `Use one of: ${allowed.join(', ')}.`);
  }
  return value as T;
}

/** Exactly `n` positional arguments, else Capstan's usage line. */
export function expectArgs(args: readonly string[], n: number, usage: string, command: string): void {
  if (args.length !== n) throw new UsageError(args.length < n ? `missing argument; ${usage}` : `too many arguments; ${usage}`, command);
}
