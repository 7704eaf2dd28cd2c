// Scaffolding, as `capstan runtime list|preview|init` and `capstan package init` do it
// (Capstan cmd/runtime.go, cmd/package.go InitPackage).
import fs from 'node:fs/promises';
import path from 'node:path';
import { Document } from 'yaml';
import { ManifestError } from '../errors.js';
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
}

/** The meta/run.yaml template for a runtime (`capstan runtime preview`), commented unless plain. */
export function previewRuntime(runtime: string, options: PreviewRuntimeOptions = {}): string {
  const def = RUNTIMES[checkRuntime(runtime)];
  // composeConf: the runtime part is trimmed and indented under the sample config set.
  const part = def.template.trim().replaceAll('\n', '\n      ');
  const text = `
runtime: ${def.name}

config_set: 

   ################################################################
   ### This is one configuration set (feel free to rename it).  ###
   ################################################################
   myconfig1:
      ${part}   

   # Add as many named configurations as you need

# OPTIONAL
# What config_set should be used as default.
# This value can be overwritten with the boot option (capstan: --boot).
config_set_default: myconfig1
`;
  return options.plain ? removeComments(text) : text;
}

/** Capstan's removeComments: comment lines, then blank lines. */
export function removeComments(text: string): string {
  return text.replace(/^ *#.*$[\r\n]+/gm, '').replace(/^ *$[\r\n]+/gm, '');
}

export interface InitRuntimeOptions extends PreviewRuntimeOptions {
  /** Overwrite an existing meta/run.yaml. */
  force?: boolean | undefined;
}

/**
 * Writes the runtime template to `<dir>/meta/run.yaml` (`capstan runtime init`). The folder must
 * be a package (meta/package.yaml present); an existing run.yaml is kept unless `force`.
 * Resolves with the path written.
 */
export async function initRuntime(dir: string, runtime: string, options: InitRuntimeOptions = {}): Promise<string> {
  const content = previewRuntime(runtime, options);
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
  // Key order and omissions follow Capstan's Package struct (omitempty).
  const data: Record<string, unknown> = { name: options.name, title: options.title, author: options.author };
  if (options.version) data.version = options.version;
  if (options.require?.length) data.require = [...options.require];
  data.created = rfc3339(options.created ?? new Date());
  if (options.platform) data.platform = options.platform;
  await fs.mkdir(meta, { recursive: true, mode: 0o755 });
  await fs.writeFile(packageYaml, new Document(data, { version: '1.1' }).toString(), { mode: 0o644 });
  const result: InitPackageResult = { packageYaml };
  if (options.runtime !== undefined) result.runYaml = await initRuntime(dir, options.runtime, { force: true });
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
