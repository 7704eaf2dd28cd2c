// The image command line (capstan-behaviour.md §2.6 step 1, Capstan's BootOptions.GetCmd).
import { ManifestError } from '../errors.js';
import { hardEnvPrefix } from './boot-scripts.js';
import type { BootSource } from './types.js';

export interface BootCommandInputs {
  /** `--run`: the command line, verbatim. */
  run?: string | undefined;
  /** `--boot a --boot b`: config sets to run in order. */
  boot?: readonly string[] | undefined;
  /** A Capstanfile's `cmdline`. */
  capstanfileCmdline?: string | undefined;
  /** The application's `config_set_default`, already split on commas. */
  configSetDefault?: readonly string[] | undefined;
  /** `--env K=V`: hard-set variables prefixed to whatever command was chosen. */
  env?: Readonly<Record<string, string>> | undefined;
  /** Label for env errors. */
  envLabel?: string | undefined;
}

/** `runscript /run/a;runscript /run/b;` (names trimmed, as BootCmdForScript does). */
export function runscriptCommand(names: readonly string[]): string {
  return names.map((n) => `runscript /run/${n.trim()};`).join('');
}

/**
 * Priority: run > boot > Capstanfile cmdline > config_set_default > `runscript /run/default;`,
 * then every env pair prefixed as `--env=K=V `.
 * Capstan applies its fallback only when the command is still empty *after* the env prefix, so
 * `--env` alone yields a command line that runs nothing; here the fallback comes first.
 */
export function composeBootCommand(inputs: BootCommandInputs): { command: string; source: BootSource } {
  let command: string;
  let source: BootSource;
  const boot = (inputs.boot ?? []).filter((b) => b.trim() !== '');
  if (inputs.run) { command = inputs.run; source = 'run'; }
  else if (boot.length) { command = runscriptCommand(boot); source = 'boot'; }
  else if (inputs.capstanfileCmdline) { command = inputs.capstanfileCmdline; source = 'capstanfile'; }
  else if (inputs.configSetDefault?.length) { command = runscriptCommand(inputs.configSetDefault); source = 'config_set_default'; }
  else { command = runscriptCommand(['default']); source = 'default'; }
  const env = inputs.env ?? {};
  validateHardEnv(env, inputs.envLabel ?? 'env');
  return { command: hardEnvPrefix(env) + command, source };
}

/** ParseEnvironmentList's checks: no spaces in keys or values, and a key without `=`. */
export function validateHardEnv(env: Readonly<Record<string, string>>, label: string): void {
  for (const [key, value] of Object.entries(env)) {
    if (typeof value !== 'string') {
      throw new ManifestError(`${label}.${key} must be a string, found ${typeof value}`, { code: 'E_OPTION_ENV', file: label, hint: 'Give every env value as a string, e.g. {PORT: "8000"}.' });
    }
    if (key === '' || /[\s=]/.test(key)) {
      throw new ManifestError(`env key '${key}' must be non-empty without spaces or '='`, { code: 'E_OPTION_ENV', file: label, hint: 'Use a plain variable name such as PORT.' });
    }
    if (/\s/.test(value)) {
      throw new ManifestError(`env value of ${key} must not contain spaces: '${value}'`, { code: 'E_OPTION_ENV', file: label, hint: 'OSv splits the command line on spaces; remove them from the value.' });
    }
  }
}
