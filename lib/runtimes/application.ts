// What the application is, when Capstan's files do not say: a Node.js, Java or Python project
// found by its own files (zero-config), and Capstan's runtime packages that the host can stand
// in for when they are missing (`runtime: node|java|python`, or a `require` of one). Between
// reading the inputs and assembling the manifest, so every later step sees one plain manifest.
//
// The detectors are tried in order, node, java, python, except that one whose options name an
// entry (`java: { main }`) goes first; the first that recognises the folder wins. Any of Capstan's
// files (meta/run.yaml, Capstanfile, an inline run) turns detection off: Capstan's rules apply.
import { ManifestError } from '../errors.js';
import { assembleManifest, type AssembleHooks, type ManifestInputs, type ManifestOptions } from '../manifest/assemble.js';
import { RUNTIMES } from '../manifest/runtimes.js';
import type { Manifest } from '../manifest/types.js';
import type { ManifestWarning } from '../yaml/source.js';
import type { HostRuntimeRequest } from './host-runtime.js';
import { javaDetector, type JavaManifestOptions } from './java-manifest.js';
import { nodeDetector, type NodeManifestOptions } from './node-manifest.js';
import { pythonDetector, type PythonManifestOptions } from './python-manifest.js';

export interface ApplicationOptions extends ManifestOptions {
  /** Node.js: options for a project recognised by its package.json and for `runtime: node`; false turns both off. */
  node?: NodeManifestOptions | false | undefined;
  /** Java: options for a project recognised by its jar or build file and for `runtime: java`; false turns both off. */
  java?: JavaManifestOptions | false | undefined;
  /** Python 3: options for a project recognised by pyproject.toml or requirements.txt and for `runtime: python`; false turns both off. */
  python?: PythonManifestOptions | false | undefined;
}

/** A project recognised without Capstan's files: how it boots and what comes with it. */
export interface DetectedProject {
  /** The run config's label, `<root>/package.json (Node.js project)`. */
  label: string;
  bootcmd: string;
  env: Record<string, string>;
  /** Patterns (Capstan's syntax) of the project's tree left out of the image. */
  ignore: readonly string[];
  hostRuntime: HostRuntimeRequest;
  detected: NonNullable<Manifest['detected']>;
  warnings: ManifestWarning[];
  /** Fields of the manifest the project adds (a Node project's production packages). */
  extra?: Pick<Manifest, 'nodeModules'> | undefined;
}

export interface ProjectDetector<O extends object> {
  kind: HostRuntimeRequest['kind'];
  /** The options name an entry, so this detector is tried first. */
  explicit(options: O): boolean;
  /** The project in `root`, or undefined when this is not one of its kind. */
  detect(inputs: ManifestInputs, options: O): DetectedProject | undefined;
  /** The host runtime that stands in for Capstan's package `capstanPackage`. */
  standIn(root: string, capstanPackage: string, options: O): HostRuntimeRequest;
  /** Capstan packages this runtime can stand in for. */
  standsInFor(name: string): boolean;
}

type AnyDetector = ProjectDetector<object>;
const DETECTORS: ReadonlyArray<{ key: 'node' | 'java' | 'python'; detector: AnyDetector }> = [
  { key: 'node', detector: nodeDetector as AnyDetector },
  { key: 'java', detector: javaDetector as AnyDetector },
  { key: 'python', detector: pythonDetector as AnyDetector },
];

/** Variables Capstan's runtimes fill from lists, joined with spaces. */
const LIST_VARIABLES = ['JVM_ARGS', 'ARGS', 'NODE_ARGS', 'PYTHON_ARGS'];

/**
 * Assembles the manifest, recognising a Node.js, Java or Python project (no meta/run.yaml, no
 * Capstanfile, no inline run) unless its option is false, and letting the host stand in for a
 * missing runtime package.
 */
export function assembleApplication(inputs: ManifestInputs, options: ApplicationOptions, hooks: AssembleHooks = {}): Manifest {
  const { node, java, python, ...manifestOptions } = options;
  const given = { node, java, python };
  for (const { key } of DETECTORS) {
    const value = given[key];
    if (value !== undefined && value !== false && (typeof value !== 'object' || value === null || Array.isArray(value))) {
      throw new ManifestError(`\`${key}\` must be an object of ${key === 'node' ? 'Node.js' : key === 'java' ? 'Java' : 'Python'} runtime options, or false`, {
        code: 'E_OPTION', file: 'resolveManifest options',
        hint: key === 'node' ? "e.g. node: { main: 'server.js' } or node: false" : key === 'java' ? "e.g. java: { main: 'target/app.jar' } or java: false" : "e.g. python: { main: 'app.py' } or python: false",
      });
    }
  }
  const enabled = DETECTORS.filter(({ key }) => given[key] !== false).map(({ key, detector }) => ({ detector, options: (given[key] || {}) as object }));
  const capstanFiles = inputs.runYaml || inputs.capstanfile || typeof options.run === 'object' || options.capstanfile;
  if (!capstanFiles) {
    const ordered = [...enabled.filter((d) => d.detector.explicit(d.options)), ...enabled.filter((d) => !d.detector.explicit(d.options))];
    for (const { detector, options: own } of ordered) {
      const project = detector.detect(inputs, own);
      if (project) return projectManifest(inputs, manifestOptions, project, hooks);
    }
  }
  const manifest = assembleManifest(inputs, manifestOptions, hooks);
  warnListVariables(manifest, hooks);
  // One package is stood in for: the one a config set inherits from (`base: openjdk7:java`),
  // else the runtime's own (runtime: java needs openjdk8-zulu-compact1), else any required one.
  const bases = (manifest.run?.configSets ?? []).map((set) => set.inherits?.package).filter((p): p is string => p !== undefined);
  const wanted = manifest.run && manifest.run.runtime !== 'native' ? RUNTIMES[manifest.run.runtime].dependencies : [];
  for (const name of [...bases, ...wanted, ...manifest.require]) {
    const match = enabled.find((d) => d.detector.standsInFor(name));
    if (match && manifest.require.includes(name)) return { ...manifest, hostRuntime: match.detector.standIn(inputs.root, name, match.options) };
  }
  return manifest;
}

function projectManifest(inputs: ManifestInputs, options: ManifestOptions, project: DetectedProject, hooks: AssembleHooks): Manifest {
  const run = {
    runtime: 'native',
    config_set: { default: { bootcmd: project.bootcmd, ...(Object.keys(project.env).length ? { env: project.env } : {}) } },
    config_set_default: 'default',
  };
  // No Capstan files, so no Capstan compose to follow: the ROFS skeleton serves instead of osv.bootstrap unless asked.
  const manifest = assembleManifest(inputs, {
    ...options, run: typeof options.run === 'string' ? options.run : run as Record<string, unknown>, bootstrap: options.bootstrap ?? false,
  }, hooks);
  for (const w of project.warnings) hooks.onWarning?.(w);
  return {
    ...manifest,
    run: manifest.run && typeof options.run !== 'string' ? { ...manifest.run, file: project.label } : manifest.run,
    ignore: [...manifest.ignore, ...project.ignore],
    ...project.extra,
    hostRuntime: project.hostRuntime,
    detected: project.detected,
  };
}

/**
 * OSv reads a /run script line word by word and substitutes each `$VAR` as one word, so a list
 * Capstan joins with spaces (`args: [a, b]` → `--env=ARGS?=a b`) splits the line before the
 * program: `b` would be taken for an option or the program. Capstan writes the same; we warn.
 */
function warnListVariables(manifest: Manifest, hooks: AssembleHooks): void {
  if (!manifest.run || manifest.run.runtime === 'native') return;
  for (const set of manifest.run.configSets) {
    for (const key of LIST_VARIABLES) {
      const value = set.env?.[key];
      if (value === undefined || !/\s/.test(value)) continue;
      hooks.onWarning?.({
        code: 'W_RUN_ENV_WORDS', file: set.location?.file ?? manifest.run.file ?? 'meta/run.yaml', line: set.location?.line, column: set.location?.column,
        message: `config set '${set.name}': ${key} is "${value}", several words; OSv splits the /run/${set.name} line at the spaces (\`--env=${key}?=${value.split(/\s+/)[0]}\` ends there) and passes $${key} as one argument, so this set will not boot as meant (Capstan writes the same)`,
        hint: 'Use a runtime: native config set whose bootcmd lists each word, or give one value per list.',
      });
    }
  }
}
