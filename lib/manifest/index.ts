// Public API of the manifest domain: Capstan's meta/package.yaml, meta/run.yaml, Capstanfile
// and .capstanignore, the boot command, the /run scripts, and the runtime templates.
export type {
  BootSource, Capstanfile, ConfigSet, Manifest, ManifestSources, PackageInfo, RunConfig, RuntimeName,
} from './types.js';
export type { ManifestWarning, ParseOptions, Decode as YamlDecode } from '../yaml/source.js';
export { formatWarning } from '../yaml/source.js';
export { parsePackageYaml, packageInfoFromObject, fallbackPackageInfo } from './package-yaml.js';
export { parseRunYaml, runConfigFromObject } from './run-yaml.js';
export { parseCapstanfile, capstanfileFromObject, type CapstanfileOptions, type PathKind as HostPathKind } from './capstanfile.js';
export { collectCapstanignorePatterns } from './capstanignore.js';
export { composeBootCommand, runscriptCommand, type BootCommandInputs } from './boot-command.js';
export {
  resolveBootScripts, withResolvedBootScripts, bootScriptOf, softEnvPrefix, hardEnvPrefix, type BootScript, type BootScriptSource,
} from './boot-scripts.js';
export {
  assembleManifest, validateManifestOptions, DEFAULT_BOOTSTRAP_PACKAGE,
  type ManifestOptions, type ManifestInputs, type ManifestTextInput, type AssembleHooks,
} from './assemble.js';
export {
  resolveManifestFromDir, readManifestInputs, MANIFEST_INPUT_PATHS,
  type ResolveFromDirOptions, type ManifestInputName,
} from './load.js';
export { RUNTIMES as RUNTIME_DEFINITIONS, RUNTIME_NAMES, type RuntimeDefinition } from './runtimes.js';
export {
  listRuntimes, previewRuntime, initRuntime, initPackage, packageYamlText, rfc3339, removeComments as removeTemplateComments,
  type RuntimeDescription, type PreviewRuntimeOptions, type InitRuntimeOptions, type InitPackageOptions, type InitPackageResult,
} from './templates.js';
