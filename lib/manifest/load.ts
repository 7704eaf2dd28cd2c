// Reading the manifest inputs from a package folder on disk.
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ManifestError } from '../errors.js';
import { assembleApplication, type ApplicationOptions } from '../runtimes/application.js';
import type { AssembleHooks, ManifestInputs, ManifestOptions, ManifestTextInput } from './assemble.js';
import type { PathKind } from './capstanfile.js';
import type { Manifest } from './types.js';

/** Where each input lives, relative to the package root ('/'-separated). */
export const MANIFEST_INPUT_PATHS = {
  packageYaml: 'meta/package.yaml',
  runYaml: 'meta/run.yaml',
  capstanfile: 'Capstanfile',
  capstanignore: '.capstanignore',
} as const;

export type ManifestInputName = keyof typeof MANIFEST_INPUT_PATHS;

/** What exists at a host path (sync: a handful of stats while parsing one Capstanfile). */
export function hostPathKind(absolutePath: string): PathKind {
  try {
    const st = statSync(absolutePath);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch {
    return undefined;
  }
}

/** Reads one input file if it exists. */
export async function readInputFile(root: string, name: ManifestInputName): Promise<ManifestTextInput | undefined> {
  const file = path.join(root, ...MANIFEST_INPUT_PATHS[name].split('/'));
  try {
    return { text: await fs.readFile(file, 'utf8'), file };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ManifestError(`cannot read ${file}: ${(error as Error).message}`, { code: 'E_MANIFEST_READ', file, hint: 'Check the file permissions.', cause: error });
  }
}

/** Reads every input present in `root`. */
export async function readManifestInputs(root: string): Promise<ManifestInputs> {
  const inputs: ManifestInputs = { root };
  for (const name of Object.keys(MANIFEST_INPUT_PATHS) as ManifestInputName[]) {
    const found = await readInputFile(root, name);
    if (found) inputs[name] = found;
  }
  return inputs;
}

export interface ResolveFromDirOptions extends ManifestOptions {
  /** As resolveManifest's `node`, `java` and `python` options. */
  node?: ApplicationOptions['node'];
  java?: ApplicationOptions['java'];
  python?: ApplicationOptions['python'];
  onWarning?: AssembleHooks['onWarning'];
}

/**
 * The manifest of the package folder `dir` (meta/package.yaml, meta/run.yaml, Capstanfile,
 * .capstanignore), with the same options as the resolveManifest step. For scripts.
 */
export async function resolveManifestFromDir(dir: string, options: ResolveFromDirOptions = {}): Promise<Manifest> {
  const root = path.resolve(dir);
  const { onWarning, ...manifestOptions } = options;
  return assembleApplication(await readManifestInputs(root), manifestOptions, { pathKind: hostPathKind, onWarning });
}
