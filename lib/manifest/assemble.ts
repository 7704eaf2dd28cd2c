// Builds the Manifest from the inputs found (file texts) and the inline options, in Capstan's
// order. Pure: the caller finds the files (stream or disk) and says what exists on the host.
import { ManifestError } from '../errors.js';
import { composeBootCommand, validateHardEnv } from './boot-command.js';
import { capstanfileFromObject, parseCapstanfile, type PathKind } from './capstanfile.js';
import { collectCapstanignorePatterns } from './capstanignore.js';
import { fallbackPackageInfo, packageInfoFromObject, parsePackageYaml } from './package-yaml.js';
import { parseRunYaml, runConfigFromObject } from './run-yaml.js';
import { RUNTIMES } from './runtimes.js';
import type { Capstanfile, Manifest, PackageInfo, RunConfig } from './types.js';
import type { ManifestWarning } from '../yaml/source.js';

export const DEFAULT_BOOTSTRAP_PACKAGE = 'osv.bootstrap';
const OPTIONS_LABEL = 'resolveManifest options';

/** Options describing (or overriding) the application; every one optional. */
export interface ManifestOptions {
  /** Inline meta/package.yaml (same keys). Replaces the file when given. */
  package?: Record<string, unknown> | undefined;
  /**
   * A string: the image command line, verbatim (Capstan `--run`), highest priority.
   * An object: inline meta/run.yaml (same keys), replacing the file.
   */
  run?: string | Record<string, unknown> | undefined;
  /** Inline Capstanfile (same keys). Replaces the file when given. */
  capstanfile?: Record<string, unknown> | undefined;
  /** Config sets to boot, in order (Capstan `--boot`): `runscript /run/<name>;` each. */
  boot?: string | readonly string[] | undefined;
  /** Variables hard-set on the command line (Capstan `--env`): `--env=K=V ` prefixes. */
  env?: Readonly<Record<string, string>> | undefined;
  /** Extra packages, appended after package.yaml `require` (Capstan `--require`). */
  require?: readonly string[] | undefined;
  /** The package required first; `false` for none. Default `osv.bootstrap`. */
  bootstrap?: string | false | undefined;
  /** Extra ignore patterns, appended after .capstanignore's. */
  ignore?: readonly string[] | undefined;
  /** Unknown keys in the YAML files become errors instead of warnings. Default false. */
  strict?: boolean | undefined;
}

export interface ManifestTextInput {
  text: string;
  /** Label used in messages: a host path, or stream-relative name. */
  file: string;
}

export interface ManifestInputs {
  /** Package root on the host (where meta/ lives). */
  root: string;
  packageYaml?: ManifestTextInput | undefined;
  runYaml?: ManifestTextInput | undefined;
  capstanfile?: ManifestTextInput | undefined;
  capstanignore?: ManifestTextInput | undefined;
}

export interface AssembleHooks {
  pathKind?: ((absolutePath: string) => PathKind) | undefined;
  onWarning?: ((warning: ManifestWarning) => void) | undefined;
}

/** Checks option types up front, so a wrong gulpfile fails when the stream is created. */
export function validateManifestOptions(options: ManifestOptions): void {
  const fail = (problem: string, hint: string) => new ManifestError(problem, { code: 'E_OPTION', file: OPTIONS_LABEL, hint });
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (options === null || typeof options !== 'object') throw fail('options must be an object', 'Call resolveManifest({...}) or resolveManifest().');
  for (const key of ['package', 'capstanfile'] as const) {
    if (options[key] !== undefined && !isObject(options[key])) throw fail(`\`${key}\` must be an object with the keys of the YAML file`, `e.g. ${key === 'package' ? "package: {name: 'my.app', title: 'My app', author: 'me'}" : "capstanfile: {cmdline: '/app.so'}"}`);
  }
  if (options.run !== undefined && typeof options.run !== 'string' && !isObject(options.run)) {
    throw fail('`run` must be a command line string or a run.yaml object', "e.g. run: '/hello.so' or run: {runtime: 'native', config_set: {default: {bootcmd: '/hello.so'}}}");
  }
  const isStringList = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (options.boot !== undefined && typeof options.boot !== 'string' && !isStringList(options.boot)) throw fail('`boot` must be a config set name or a list of names', "e.g. boot: ['myconfig1']");
  for (const name of typeof options.boot === 'string' ? [options.boot] : options.boot ?? []) {
    if (!/^[^/\s;]+$/.test(name.trim())) throw fail(`\`boot\` name '${name}' is not a config set name`, 'Give config set names as in meta/run.yaml: no slashes, spaces or semicolons.');
  }
  if (options.require !== undefined && !isStringList(options.require)) throw fail('`require` must be a list of package names', "e.g. require: ['osv.httpserver-api']");
  if (options.ignore !== undefined && !isStringList(options.ignore)) throw fail('`ignore` must be a list of patterns', "e.g. ignore: ['/test', '/**/*.md']");
  if (options.bootstrap !== undefined && options.bootstrap !== false && (typeof options.bootstrap !== 'string' || options.bootstrap === '')) throw fail('`bootstrap` must be a package name or false', "e.g. bootstrap: 'osv.bootstrap' or bootstrap: false");
  if (options.env !== undefined) {
    if (!isObject(options.env)) throw fail('`env` must be an object of variable names to values', "e.g. env: {PORT: '8000'}");
    validateHardEnv(options.env, `${OPTIONS_LABEL}.env`);
  }
  if (options.ignore?.includes('/meta')) throw fail("'/meta' cannot be ignored", 'Remove it from `ignore`: meta/run.yaml is needed for the /run scripts.');
}

export function assembleManifest(inputs: ManifestInputs, options: ManifestOptions = {}, hooks: AssembleHooks = {}): Manifest {
  validateManifestOptions(options);
  const parse = { strict: options.strict, onWarning: hooks.onWarning };
  const sources: NonNullable<Manifest['sources']> = {};

  let pkg: PackageInfo;
  if (options.package) { pkg = packageInfoFromObject(options.package, `${OPTIONS_LABEL}.package`, parse); sources.packageYaml = 'options'; }
  else if (inputs.packageYaml) { pkg = parsePackageYaml(inputs.packageYaml.text, inputs.packageYaml.file, parse); sources.packageYaml = inputs.packageYaml.file; }
  else pkg = fallbackPackageInfo();

  let run: RunConfig | undefined;
  if (typeof options.run === 'object') { run = runConfigFromObject(options.run, `${OPTIONS_LABEL}.run`, parse); sources.runYaml = 'options'; }
  else if (inputs.runYaml) { run = parseRunYaml(inputs.runYaml.text, inputs.runYaml.file, parse); sources.runYaml = inputs.runYaml.file; }

  const capstanfileOptions = { ...parse, root: inputs.root, pathKind: hooks.pathKind };
  let capstanfile: Capstanfile | undefined;
  if (options.capstanfile) { capstanfile = capstanfileFromObject(options.capstanfile, `${OPTIONS_LABEL}.capstanfile`, capstanfileOptions); sources.capstanfile = 'options'; }
  else if (inputs.capstanfile) { capstanfile = parseCapstanfile(inputs.capstanfile.text, inputs.capstanfile.file, capstanfileOptions); sources.capstanfile = inputs.capstanfile.file; }

  const ignore = inputs.capstanignore ? collectCapstanignorePatterns(inputs.capstanignore.text, inputs.capstanignore.file) : [];
  if (inputs.capstanignore) sources.capstanignore = inputs.capstanignore.file;
  ignore.push(...(options.ignore ?? []));

  // Capstan's CollectPackage order: bootstrap, runtime deps, package.yaml require, --require.
  const require = [
    ...(options.bootstrap === false ? [] : [options.bootstrap ?? DEFAULT_BOOTSTRAP_PACKAGE]),
    ...(run ? RUNTIMES[run.runtime].dependencies : []),
    ...pkg.require,
    ...(options.require ?? []),
  ];

  const boot = typeof options.boot === 'string' ? [options.boot] : options.boot;
  const { command, source } = composeBootCommand({
    run: typeof options.run === 'string' ? options.run : undefined,
    boot,
    capstanfileCmdline: capstanfile?.cmdline,
    configSetDefault: run?.configSetDefault,
    env: options.env,
    envLabel: `${OPTIONS_LABEL}.env`,
  });
  if (source === 'default' && run && !run.configSets.some((c) => c.name === 'default')) {
    hooks.onWarning?.({
      code: 'W_BOOT_DEFAULT_MISSING', file: run.file ?? 'meta/run.yaml',
      message: `the command line falls back to 'runscript /run/default;' but ${run.file ?? 'run.yaml'} has no config set 'default' (it has: ${run.configSets.map((c) => c.name).join(', ')}); set config_set_default or the boot option`,
    });
  }

  return { root: inputs.root, package: pkg, run, capstanfile, ignore, require, bootCommand: command, bootSource: source, sources };
}
