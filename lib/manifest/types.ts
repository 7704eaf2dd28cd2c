// The manifest: everything Capstan's inputs say about one application, resolved into plain data.
// Produced by resolveManifest, read by every later step (see ../carrier.ts for how it travels).
import type { HostRuntimeRequest } from '../runtimes/host-runtime.js';

export type RuntimeName = 'native' | 'java' | 'node' | 'python';

/** meta/package.yaml (capstan-behaviour.md §2.2), or Capstan's fallback App/App/Anonymous. */
export interface PackageInfo {
  name: string;
  title: string;
  author: string;
  version?: string | undefined;
  /** Package names, in the order written. No version constraints exist. */
  require: string[];
  created?: string | undefined;
  platform?: string | undefined;
  /** `binary` map (parsed and kept; Capstan has no behaviour for it). */
  binary?: Record<string, string> | undefined;
}

/** One config set of meta/run.yaml, already turned into the text of its `/run/<name>` file. */
export interface ConfigSet {
  name: string;
  /**
   * The boot command Capstan writes to `/run/<name>` (env soft prefixes included).
   * Exact when `inherits` is undefined. A set that inherits another package's set (`base`, and
   * every java/node/python set, which inherit their runtime package) cannot be computed from
   * this file alone: `script` is then '' and `resolveBootScripts()` gives the final text once the
   * packages' run.yaml are known.
   */
  script: string;
  /** Runtime of the run.yaml this set belongs to. */
  runtime?: RuntimeName | undefined;
  /** `bootcmd` (native runtime). */
  bootcmd?: string | undefined;
  /**
   * The set's own soft environment, in order: its `env` entries, then the runtime's defaults
   * (XMS, CLASSPATH, MAIN, …) for keys `env` does not set. Inherited sets only add missing keys.
   */
  env?: Record<string, string> | undefined;
  /** The config set this one inherits its boot command from (`base: pkg:set`, or the runtime's). */
  inherits?: { package: string; configSet: string } | undefined;
  /** Where the set is defined (for error messages about inheritance). */
  location?: { file: string; line?: number | undefined; column?: number | undefined } | undefined;
}

/** meta/run.yaml (capstan-behaviour.md §2.3). */
export interface RunConfig {
  runtime: RuntimeName;
  configSets: ConfigSet[];
  /** `config_set_default`, split on commas; empty when absent. */
  configSetDefault: string[];
  /** The file it was read from (label used in messages). */
  file?: string | undefined;
}

/** A legacy Capstanfile (capstan-behaviour.md §2.1). */
export interface Capstanfile {
  base?: string | undefined;
  cmdline: string;
  /** `build`, split on whitespace (Capstan runs it without a shell). */
  build?: string[] | undefined;
  /** Guest path → host path (absolute), with `&` already replaced by the target's basename. */
  files: Record<string, string>;
  /** Host folder mirrored into the image root (absolute), when given or when `ROOTFS` exists. */
  rootfs?: string | undefined;
}

export interface Manifest {
  /** The package root on the host: where meta/, Capstanfile and .capstanignore live. */
  root: string;
  package: PackageInfo;
  run?: RunConfig | undefined;
  capstanfile?: Capstanfile | undefined;
  /** User patterns from .capstanignore (the default ignores are added by the layout step). */
  ignore: string[];
  /**
   * Packages to fetch, in Capstan's order: the bootstrap package, the runtime's implicit
   * dependencies, package.yaml `require`, then extras. Their own requirements are resolved
   * recursively by fetchPackages.
   */
  require: string[];
  /** The image command line (capstan-behaviour.md §2.6 step 1). */
  bootCommand: string;
  /** Which input decided the boot command. */
  bootSource?: BootSource | undefined;
  /** Where each input came from: a stream file path, a host path, 'options', or absent. */
  sources?: ManifestSources | undefined;
  /**
   * A runtime taken from the host (a Node.js, Java or Python project, or Capstan's
   * `runtime: node|java|python` whose package may be missing): fetchPackages adds its files.
   */
  hostRuntime?: HostRuntimeRequest | undefined;
  /** A Node.js project's production packages (guest paths); the rest of node_modules is left out. */
  nodeModules?: { production: string[]; packages: number } | undefined;
  /** How the application was recognised: Capstan's files (absent), or a project found without them. */
  detected?: 'node-project' | 'java-project' | 'python-project' | undefined;
}

export type BootSource = 'run' | 'boot' | 'capstanfile' | 'config_set_default' | 'default';

export interface ManifestSources {
  packageYaml?: string | undefined;
  runYaml?: string | undefined;
  capstanfile?: string | undefined;
  capstanignore?: string | undefined;
}
