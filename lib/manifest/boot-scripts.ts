// The /run/<config_set> files: what Capstan's AllCmdConfigs.Persist writes for every config set
// of every package and of the application, following `base` inheritance across packages.
import { ManifestError } from '../errors.js';
import type { ConfigSet, RunConfig } from './types.js';

/** `--env=K?=V ` for each pair: set only when the variable is not set yet. */
export function softEnvPrefix(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `--env=${k}?=${v} `).join('');
}

/** `--env=K=V ` for each pair: always set (the image command line's `env`). */
export function hardEnvPrefix(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `--env=${k}=${v} `).join('');
}

export interface BootScriptSource {
  /** Package name (the application's is its package.yaml name, `App` by default). */
  package: string;
  run?: RunConfig | undefined;
}

export interface BootScript {
  /** Config set name: the file is `/run/<name>`. */
  name: string;
  script: string;
  /** The package whose config set wrote the file last. */
  package: string;
}

/**
 * Computes every `/run/<name>` file, in resolution order (packages first, the application
 * last). Names form one flat namespace: a later package's set replaces an earlier one's.
 * Inheritance looks packages up by name, the last one of that name winning, as Capstan does.
 */
export function resolveBootScripts(sources: readonly BootScriptSource[]): BootScript[] {
  const byPackage = new Map<string, RunConfig>();
  for (const s of sources) if (s.run) byPackage.set(s.package, s.run);
  const scripts = new Map<string, BootScript>();
  for (const s of sources) {
    if (!s.run) continue;
    for (const set of s.run.configSets) {
      scripts.delete(set.name); // re-insert so iteration order follows the last writer
      scripts.set(set.name, { name: set.name, package: s.package, script: bootScriptOf(set, byPackage) });
    }
  }
  return [...scripts.values()];
}

/**
 * The same sources with every config set's `script` computed (inheritance followed), for code
 * that reads `ConfigSet.script` directly. The RunConfig objects given are not modified.
 */
export function withResolvedBootScripts<T extends BootScriptSource>(sources: readonly T[]): T[] {
  const byPackage = new Map<string, RunConfig>();
  for (const s of sources) if (s.run) byPackage.set(s.package, s.run);
  return sources.map((s) => s.run
    ? { ...s, run: { ...s.run, configSets: s.run.configSets.map((set) => ({ ...set, script: bootScriptOf(set, byPackage) })) } }
    : s);
}

/** One set's script, inheriting through `base` with the env accumulated so far (first wins). */
export function bootScriptOf(set: ConfigSet, runsByPackage: ReadonlyMap<string, RunConfig>, inherited: Record<string, string> = {}, seen: string[] = []): string {
  const env: Record<string, string> = { ...inherited };
  for (const [k, v] of Object.entries(set.env ?? {})) if (!Object.hasOwn(env, k)) env[k] = v;
  if (!set.inherits) {
    // Sets built without the env field (hand-made) carry their final script already.
    return set.env ? softEnvPrefix(env) + (set.bootcmd ?? '') : softEnvPrefix(inherited) + set.script;
  }
  const { package: pkg, configSet } = set.inherits;
  const key = `${pkg}:${configSet}`;
  const where = set.location ?? { file: undefined };
  if (seen.includes(key)) {
    throw new ManifestError(`config set '${set.name}' inherits in a circle: ${[...seen, key].join(' -> ')}`, {
      code: 'E_RUN_YAML_BASE_CYCLE', ...where, hint: 'Make one of these config sets define a bootcmd instead of a base.',
    });
  }
  const run = runsByPackage.get(pkg);
  if (!run) {
    throw new ManifestError(`config set '${set.name}' inherits '${key}', but package '${pkg}' is not included or has no meta/run.yaml`, {
      code: 'E_RUN_YAML_BASE_PACKAGE_MISSING', ...where,
      hint: `Add '${pkg}' to require (meta/package.yaml or the require option), or change base.`,
    });
  }
  const target = run.configSets.find((c) => c.name === configSet);
  if (!target) {
    throw new ManifestError(`config set '${set.name}' inherits '${key}', but '${pkg}' has no config set '${configSet}' (it has: ${run.configSets.map((c) => c.name).join(', ')})`, {
      code: 'E_RUN_YAML_BASE_CONFIG_SET_MISSING', ...where, hint: 'Use one of the config sets the package defines.',
    });
  }
  return bootScriptOf(target, runsByPackage, env, [...seen, key]);
}
