// Scaffolding, as `capstan runtime list|preview|init` and `capstan package init` do it
// (Capstan cmd/runtime.go, cmd/package.go InitPackage).
import fs from 'node:fs/promises';
import path from 'node:path';
import { ManifestError } from '../errors.js';
import { marshalGoFields, type GoField } from '../yaml/go-emit.js';
import { RUNTIME_NAMES, RUNTIMES, isRuntimeName } from './runtimes.js';
import type { RuntimeName } from './types.js';

export interface RuntimeDescription {
  runtime: RuntimeName;
  description: string;
  /** Packages the runtime implicitly requires (prepended to `require`). */
  dependencies: string[];
}

/** The supported runtimes (`capstan runtime list`). */
export function listRuntimes(): RuntimeDescription[] {
  return RUNTIME_NAMES.map((runtime) => ({ runtime, description: RUNTIMES[runtime].description, dependencies: [...RUNTIMES[runtime].dependencies] }));
}

export interface PreviewRuntimeOptions {
  /** Strip comments and blank lines (`--plain`). */
  plain?: boolean | undefined;
  /**
   * The whole output of `capstan runtime preview`: the template between its dashed lines, and
   * the closing note about `capstan runtime init`. Default false: the template alone.
   */
  frame?: boolean | undefined;
  /**
   * Not Capstan's: comment out the template's `base: "<package-name>:<config_set>"` line, which
   * Capstan's (and our) validation refuses next to java, node and python fields, so the template
   * parses as it stands. With `plain` the line is then removed. Default false (Capstan's text).
   */
  commentOutBase?: boolean | undefined;
}

// cmd/runtime.go composeConf, to the byte (the stale --runconfig note and trailing spaces too).
const CONF_SKELETON = `
runtime: RUNTIME

config_set: 

   ################################################################
   ### This is one configuration set (feel free to rename it).  ###
   ################################################################
   myconfig1:
      PLACEHOLDER   

   # Add as many named configurations as you need

# OPTIONAL
# What config_set should be used as default.
# This value can be overwritten with --runconfig argument.
config_set_default: myconfig1
`;

const BASE_LINE = 'base: "<package-name>:<config_set>"';

/** The meta/run.yaml template for a runtime (`capstan runtime preview`), commented unless plain. */
export function previewRuntime(runtime: string, options: PreviewRuntimeOptions = {}): string {
  const def = RUNTIMES[checkRuntime(runtime)];
  let template = def.template;
  if (options.commentOutBase) template = template.split('\n').map((l) => l === BASE_LINE ? `# ${l}` : l).join('\n');
  let text = composeConf(def.name, template);
  if (options.frame) text = `--------- meta/run.yaml ---------\n${text}---------------------------------\n`;
  if (options.plain) text = removeComments(text);
  if (options.frame) text += "Use 'capstan runtime init' to persist this template into $CWD/meta/run.yaml\n";
  return text;
}

function composeConf(name: string, template: string): string {
  // The runtime part is trimmed and indented under the sample config set; then RUNTIME is
  // replaced everywhere, in Capstan's order (functions, so `$` in a template stays literal).
  const part = template.trim().replaceAll('\n', '\n      ');
  return CONF_SKELETON.replaceAll('PLACEHOLDER', () => part).replaceAll('RUNTIME', () => name);
}

/**
 * Capstan's removeComments: `(?m)^ *#.*$[\r\n]+`, then `(?m)^ *$[\r\n]+`, with Go's regexp
 * meaning (a line starts after \n only; `.` takes \r too).
 */
export function removeComments(text: string): string {
  return text.replace(/(?<=^|\n) *#[^\n]*\n[\r\n]*/g, '').replace(/(?<=^|\n) *\n[\r\n]*/g, '');
}

export interface InitRuntimeOptions extends Omit<PreviewRuntimeOptions, 'frame'> {
  /** Overwrite an existing meta/run.yaml. */
  force?: boolean | undefined;
}

/**
 * Writes the runtime template to `<dir>/meta/run.yaml` (`capstan runtime init`). The folder must
 * be a package (meta/package.yaml present); an existing run.yaml is kept unless `force`.
 * Resolves with the path written.
 */
export async function initRuntime(dir: string, runtime: string, options: InitRuntimeOptions = {}): Promise<string> {
  const content = previewRuntime(runtime, { plain: options.plain, commentOutBase: options.commentOutBase });
  const packageYaml = path.join(dir, 'meta', 'package.yaml');
  if (!(await exists(packageYaml))) {
    throw new ManifestError(`${dir} is not a package: meta/package.yaml is missing`, {
      code: 'E_PACKAGE_YAML_NOT_FOUND', file: packageYaml, hint: 'Create it first with initPackage(dir, {name, title, author}).',
    });
  }
  const target = path.join(dir, 'meta', 'run.yaml');
  if (!options.force) await refuseExisting(target, 'E_RUN_YAML_EXISTS');
  await fs.writeFile(target, content, { mode: 0o644 });
  return target;
}

export interface InitPackageOptions {
  name: string;
  title: string;
  author: string;
  version?: string | undefined;
  require?: readonly string[] | undefined;
  platform?: string | undefined;
  /** Also write a meta/run.yaml stub for this runtime. */
  runtime?: string | undefined;
  /** Overwrite existing meta/package.yaml (and meta/run.yaml). */
  force?: boolean | undefined;
  /** The `created` stamp (default now). */
  created?: Date | undefined;
  /** With `runtime`: comment out the stub's `base` line (see previewRuntime). */
  commentOutBase?: boolean | undefined;
}

/**
 * meta/package.yaml as `capstan package init` writes it: yaml.Marshal of core.Package, so its
 * field order, omitempty and go-yaml's quoting (`created` is double-quoted, a title with `: `
 * single-quoted, a long one folded at 80 columns).
 */
export function packageYamlText(p: Pick<InitPackageOptions, 'name' | 'title' | 'author' | 'version' | 'require' | 'platform'> & { created: Date }): string {
  const fields: GoField[] = [['name', p.name], ['title', p.title]];
  if (p.author) fields.push(['author', p.author]);
  if (p.version) fields.push(['version', p.version]);
  if (p.require?.length) fields.push(['require', [...p.require]]);
  fields.push(['created', rfc3339(p.created)]);
  if (p.platform) fields.push(['platform', p.platform]);
  return marshalGoFields(fields);
}

export interface InitPackageResult {
  packageYaml: string;
  runYaml?: string | undefined;
}

/** Writes `<dir>/meta/package.yaml` (`capstan package init`), and a run.yaml stub with `runtime`. */
export async function initPackage(dir: string, options: InitPackageOptions): Promise<InitPackageResult> {
  for (const key of ['name', 'title', 'author'] as const) {
    if (typeof options?.[key] !== 'string' || options[key].trim() === '') {
      throw new ManifestError(`initPackage: '${key}' must be provided for the package`, { code: `E_PACKAGE_YAML_${key.toUpperCase()}_MISSING`, hint: `Pass {${key}: '…'}.` });
    }
  }
  if (options.runtime !== undefined) checkRuntime(options.runtime);
  const meta = path.join(dir, 'meta');
  const packageYaml = path.join(meta, 'package.yaml');
  const runYaml = path.join(meta, 'run.yaml');
  if (!options.force) {
    await refuseExisting(packageYaml, 'E_PACKAGE_YAML_EXISTS');
    if (options.runtime !== undefined) await refuseExisting(runYaml, 'E_RUN_YAML_EXISTS');
  }
  await fs.mkdir(meta, { recursive: true, mode: 0o755 });
  await fs.writeFile(packageYaml, packageYamlText({ ...options, created: options.created ?? new Date() }), { mode: 0o644 });
  const result: InitPackageResult = { packageYaml };
  // Capstan stubs the commented template and overwrites an existing run.yaml.
  if (options.runtime !== undefined) result.runYaml = await initRuntime(dir, options.runtime, { force: true, commentOutBase: options.commentOutBase });
  return result;
}

/** Go's time.RFC3339 in local time: 2006-01-02T15:04:05-07:00 (Z for UTC). */
export function rfc3339(date: Date): string {
  const pad = (n: number) => String(Math.trunc(Math.abs(n))).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const zone = offset === 0 ? 'Z' : `${offset > 0 ? '+' : '-'}${pad(offset / 60)}:${pad(offset % 60)}`;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${zone}`;
}

function checkRuntime(runtime: string): RuntimeName {
  if (!isRuntimeName(runtime)) {
    throw new ManifestError(`unknown runtime '${runtime}'`, { code: 'E_RUN_YAML_RUNTIME_UNKNOWN', hint: `Use one of: ${RUNTIME_NAMES.join(', ')}.` });
  }
  return runtime;
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false);
}

async function refuseExisting(file: string, code: string): Promise<void> {
  if (await exists(file)) {
    throw new ManifestError(`${file} already exists`, { code, file, hint: 'Pass {force: true} to overwrite it.' });
  }
}
