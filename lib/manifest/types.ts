// The manifest: everything Capstan's inputs say about one application, resolved into plain data.
// Produced by resolveManifest, read by every later step (see ../carrier.ts for how it travels).

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
}

/** One config set of meta/run.yaml, already turned into the text of its `/run/<name>` file. */
export interface ConfigSet {
  name: string;
  /** The boot command Capstan writes to `/run/<name>` (env soft prefixes included). */
  script: string;
}

/** meta/run.yaml (capstan-behaviour.md §2.3). */
export interface RunConfig {
  runtime: RuntimeName;
  configSets: ConfigSet[];
  /** `config_set_default`, split on commas; empty when absent. */
  configSetDefault: string[];
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
}
