// The command line given at run time (capstan-behaviour.md §2.6 step 1, §2.7): `execute` wins
// over `boot` config sets (`runscript /run/<name>;` each), and every env entry is prepended as
// `--env=K=V ` (a hard set). Like Capstan, keys and values may not contain spaces.
import { VmError } from '../errors.js';
import { hardEnvPrefix } from '../manifest/boot-scripts.js';
import { runscriptCommand } from '../manifest/boot-command.js';

export interface RuntimeCmdlineOptions {
  /** A whole command line (Capstan's `-e`). */
  execute?: string | undefined;
  /** Config sets to run, in order (Capstan's `--boot`, repeatable). */
  boot?: string[] | undefined;
  /** Environment for the guest (Capstan's `--env K=V`). */
  env?: Record<string, string> | string[] | undefined;
}

/**
 * The command line to write, or undefined when nothing was asked for (the image's own command
 * line then stays). With only `env`, the prefixes go in front of `imageCmdline`, so setting a
 * variable does not throw the image's command away (Capstan would leave just the prefixes).
 */
export function runtimeCmdline(options: RuntimeCmdlineOptions, imageCmdline = ''): string | undefined {
  const env = envEntries(options.env);
  let command: string | undefined;
  if (options.execute !== undefined && options.execute !== '') command = options.execute;
  else if (options.boot && options.boot.length > 0) command = runscriptCommand(options.boot);
  if (command === undefined && env.length === 0) return undefined;
  return hardEnvPrefix(Object.fromEntries(env)) + (command ?? imageCmdline);
}

function envEntries(env: RuntimeCmdlineOptions['env']): Array<[string, string]> {
  if (!env) return [];
  const pairs: Array<[string, string]> = Array.isArray(env)
    ? env.map((kv) => {
      const eq = kv.indexOf('=');
      if (eq <= 0) {
        throw new VmError(`bad env entry "${kv}"`, { code: 'E_VM_ENV', hint: 'Write env entries as KEY=VALUE.' });
      }
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    })
    : Object.entries(env);
  for (const [k, v] of pairs) {
    if (/\s/.test(k) || /\s/.test(v) || k === '') {
      throw new VmError(`env entry "${k}=${v}" contains a space or an empty key`, {
        code: 'E_VM_ENV',
        hint: 'OSv splits its command line on spaces; put values with spaces in a /run script or escape them in `execute`.',
      });
    }
  }
  return pairs;
}
