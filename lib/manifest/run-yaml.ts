// meta/run.yaml (capstan-behaviour.md §2.3, osv-image-formats.md §5.2): runtime, config sets
// and config_set_default, each config set turned into the text of its /run/<name> file.
//
// Read as Capstan's runtime/parser.go reads it: the top level into a struct (`config_set` a
// map[string]map[string]interface{}), then each config set marshalled back to YAML and read into
// the runtime's struct. So a config set's values pass through interface{}: `env: {DEBUG: yes}`
// gives DEBUG=true and `PORT: 08080` gives 8080, as in Capstan, while top-level strings keep
// their spelling.
import type { Node } from 'yaml';
import { RUNTIME_NAMES, RUNTIMES, isRuntimeName, runtimeDerivation, validateRuntimeFields, type RuntimeFields } from './runtimes.js';
import { softEnvPrefix } from './boot-scripts.js';
import type { ConfigSet, RunConfig, RuntimeName } from './types.js';
import { findEntry, YamlSource, type Entry, type ParseOptions } from '../yaml/source.js';

const TOP_KEYS = ['runtime', 'config_set', 'config_set_default'] as const;
const COMMON_SET_KEYS = ['env', 'base'] as const;

/** Parses meta/run.yaml text. Throws ManifestError with file:line:column. */
export function parseRunYaml(text: string, fileLabel: string, options: ParseOptions = {}): RunConfig {
  return readRunConfig(YamlSource.parse(text, fileLabel, options));
}

/** Validates an inline `run` option (same shape as the YAML). */
export function runConfigFromObject(value: unknown, label: string, options: ParseOptions = {}): RunConfig {
  return readRunConfig(YamlSource.fromValue(value, label, options));
}

function readRunConfig(src: YamlSource): RunConfig {
  const entries = src.struct(src.root, '', ['config_set']);
  src.checkKeys(entries, TOP_KEYS, '');

  const runtimeEntry = findEntry(entries, 'runtime');
  const runtimeName = src.string(runtimeEntry?.value ?? null, 'runtime');
  if (!runtimeName) {
    throw src.error(runtimeEntry?.keyNode ?? src.root, 'E_RUN_YAML_RUNTIME_MISSING', "'runtime' must be provided",
      `Add \`runtime: native\` (one of ${RUNTIME_NAMES.join(', ')}) at the top of ${src.file}.`);
  }
  if (!isRuntimeName(runtimeName)) {
    throw src.error(runtimeEntry?.value, 'E_RUN_YAML_RUNTIME_UNKNOWN', `unknown runtime '${runtimeName}'`,
      `Use one of: ${RUNTIME_NAMES.join(', ')} (listRuntimes() describes them).`);
  }

  const setsEntry = findEntry(entries, 'config_set');
  const setEntries = src.mergedMap(setsEntry, 'config_set');
  if (setEntries.length === 0) {
    throw src.error(setsEntry?.keyNode ?? src.root, 'E_RUN_YAML_CONFIG_SET_MISSING', 'at least one config_set must be provided',
      'Add a `config_set:` mapping with one named set, e.g.\n  config_set:\n    default:\n      bootcmd: /app.so');
  }
  const configSets = setEntries.map((e) => readConfigSet(src, runtimeName, e));

  const defaultEntry = findEntry(entries, 'config_set_default');
  const configSetDefault = splitConfigSetDefault(src, defaultEntry?.value ?? null);

  return { runtime: runtimeName, configSets, configSetDefault, file: src.file };
}

function splitConfigSetDefault(src: YamlSource, node: Node | null): string[] {
  const value = src.string(node, 'config_set_default');
  if (value === undefined || value === '') return [];
  // Capstan splits on commas and trims each name (BootCmdForScript).
  const names = value.split(',').map((n) => n.trim());
  if (names.some((n) => n === '')) {
    throw src.error(node, 'E_RUN_YAML_CONFIG_SET_DEFAULT', `config_set_default '${value}' contains an empty name`,
      'Write one name, or several separated by single commas: `config_set_default: a,b`.');
  }
  return names;
}

function readConfigSet(src: YamlSource, runtime: RuntimeName, entry: Entry): ConfigSet {
  const name = entry.key;
  const path = `config_set.${name}`;
  if (!/^[^/\s;]+$/.test(name)) {
    throw src.error(entry.keyNode, 'E_RUN_YAML_CONFIG_SET_NAME', `config set name '${name}' cannot be a file name under /run`,
      'Use a name without slashes, spaces or semicolons.');
  }
  const def = RUNTIMES[runtime];
  // A config set is a map[string]interface{}: a repeated key replaces the earlier one whole.
  const fields = src.map(entry.value, path);
  src.checkKeys(fields, [...Object.keys(def.fields), ...COMMON_SET_KEYS], `${path} (runtime ${runtime})`);

  const f: RuntimeFields = { args: [], classpath: [], jvm_args: [], node_args: [], python_args: [] };
  const record = f as unknown as Record<string, unknown>;
  for (const [key, kind] of Object.entries(def.fields)) {
    const node = findEntry(fields, key)?.value ?? null;
    if (kind === 'string') record[key] = src.string(node, `${path}.${key}`, 'interface');
    else if (kind === 'list') record[key] = src.stringList(node, `${path}.${key}`, 'interface');
    else record[key] = src.bool(node, `${path}.${key}`);
  }

  // Common fields (CommonRuntime.Validate): env without spaces, base as <pkg>:<config_set>.
  const envEntry = findEntry(fields, 'env');
  const env: Record<string, string> = {};
  for (const e of src.stringMap(envEntry?.value ?? null, `${path}.env`, 'interface')) {
    if (e.key.includes(' ') || e.value.includes(' ')) {
      throw src.error(e.key.includes(' ') ? e.keyNode : e.valueNode, 'E_RUN_YAML_ENV_SPACES',
        `spaces not allowed in env key/value: '${e.key}':'${e.value}'`,
        'OSv splits the command line on spaces; remove them (e.g. use commas, or several variables).');
    }
    env[e.key] = e.value;
  }
  const baseEntry = findEntry(fields, 'base');
  const base = src.string(baseEntry?.value ?? null, `${path}.base`, 'interface') || undefined;
  if (base !== undefined) {
    const i = base.indexOf(':');
    if (i <= 0 || i === base.length - 1) {
      throw src.error(baseEntry?.value, 'E_RUN_YAML_BASE_FORMAT', `'base' must be in format <pkg_name>:<config_set>, found '${base}'`,
        'Name the package and its config set, e.g. `base: "openjdk8-zulu-compact1:java"`.');
    }
  }

  const problem = validateRuntimeFields(runtime, f, base, env);
  if (problem) {
    const at = problem.key ? findEntry(fields, problem.key)?.keyNode : entry.keyNode;
    throw src.error(at ?? entry.keyNode, problem.code, `config set '${name}': ${problem.problem}`, problem.hint);
  }

  // The set's own soft env: its env first (it wins), then runtime defaults for missing keys.
  const derived = runtimeDerivation(runtime, f, base);
  const ownEnv: Record<string, string> = { ...env };
  for (const [k, v] of derived.defaults) if (v !== '' && !Object.hasOwn(ownEnv, k)) ownEnv[k] = v;
  for (const [k, v] of derived.forced) ownEnv[k] = v;

  const at = src.position(entry.keyNode);
  const set: ConfigSet = {
    name,
    script: '',
    runtime,
    env: ownEnv,
    location: { file: src.file, line: at.line, column: at.column },
  };
  if (f.bootcmd !== undefined) set.bootcmd = f.bootcmd;
  if (derived.base) {
    const i = derived.base.indexOf(':');
    set.inherits = { package: derived.base.slice(0, i), configSet: derived.base.slice(i + 1) };
  } else {
    set.script = softEnvPrefix(ownEnv) + (f.bootcmd ?? '');
  }
  return set;
}
