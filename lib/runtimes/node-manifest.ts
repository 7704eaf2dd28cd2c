// Node.js in the manifest: an existing Node project with none of Capstan's files becomes a
// `native` config set that runs it (zero-config), and Capstan's `runtime: node` learns that
// the host can stand in for its long-gone package. Between reading the inputs and assembling
// the manifest, so every later step sees one plain manifest.
import { ManifestError } from '../errors.js';
import { assembleManifest, type AssembleHooks, type ManifestInputs, type ManifestOptions } from '../manifest/assemble.js';
import type { Manifest } from '../manifest/types.js';
import { CAPSTAN_NODE_PACKAGE, NODE_GUEST_PATH, nodeRuntimeEnv, withExitSuffix, type NodeRuntimeOptions } from './node.js';
import { analyseNodeProject, NODE_PROJECT_IGNORES, readPackageJson, type NodeProject, type NodeProjectOptions } from './node-project.js';

export interface NodeManifestOptions extends NodeRuntimeOptions, NodeProjectOptions {}

/** OSv's command-line words: a word with a space, a quote or a separator (`;`, `&`, `!`) goes in double quotes. */
function word(w: string): string {
  return /[\s";&!]/.test(w) ? `"${w.replace(/"/g, '')}"` : w;
}

/** The boot command that runs a Node project's entry. */
export function nodeProjectCommand(project: Pick<NodeProject, 'main' | 'nodeArgs' | 'args'>): string {
  return [NODE_GUEST_PATH, ...project.nodeArgs, project.main, ...project.args].map(word).join(' ');
}

/**
 * Assembles the manifest, recognising a Node.js project (package.json, no meta/run.yaml, no
 * Capstanfile, no inline run) unless `options.node === false`.
 */
export function assembleApplication(inputs: ManifestInputs, options: ManifestOptions & { node?: NodeManifestOptions | false | undefined }, hooks: AssembleHooks = {}): Manifest {
  const { node: nodeOption, ...manifestOptions } = options;
  if (nodeOption !== undefined && nodeOption !== false && (typeof nodeOption !== 'object' || nodeOption === null)) {
    throw new ManifestError('`node` must be an object of Node.js runtime options, or false', {
      code: 'E_OPTION', file: 'resolveManifest options', hint: "e.g. node: { main: 'server.js' } or node: false",
    });
  }
  const nodeOptions = nodeOption === false ? undefined : nodeOption ?? {};
  const capstanFiles = inputs.runYaml || inputs.capstanfile || typeof options.run === 'object' || options.capstanfile;
  const pkg = nodeOptions && !capstanFiles ? readPackageJson(inputs.root) : undefined;
  if (!pkg || !nodeOptions) {
    const manifest = assembleManifest(inputs, manifestOptions, hooks);
    if (nodeOptions && manifest.run?.runtime === 'node') {
      return { ...manifest, hostRuntime: { kind: 'node', root: inputs.root, addons: [], capstanPackage: CAPSTAN_NODE_PACKAGE, ...nodeOptions } };
    }
    return manifest;
  }
  const project = analyseNodeProject(inputs.root, pkg, nodeOptions);
  const label = `${inputs.root}/package.json (Node.js project)`;
  const run = {
    runtime: 'native',
    config_set: { default: { bootcmd: withExitSuffix(nodeProjectCommand(project), nodeOptions), env: { NODE_ENV: 'production', ...nodeRuntimeEnv(nodeOptions) } } },
    config_set_default: 'default',
  };
  // No Capstan files, so no Capstan compose to follow: the ROFS skeleton serves instead of osv.bootstrap unless asked.
  const manifest = assembleManifest(inputs, {
    ...manifestOptions, run: typeof options.run === 'string' ? options.run : run as Record<string, unknown>, bootstrap: options.bootstrap ?? false,
  }, hooks);
  for (const note of project.notes) hooks.onWarning?.({ code: 'W_NODE_PROJECT', file: label, message: note });
  for (const user of project.childProcessUsers) {
    hooks.onWarning?.({
      code: 'W_NODE_CHILD_PROCESS', file: user.file,
      message: `production dependency ${user.package} uses child_process (fork/exec/spawn): OSv runs one process, so such a call fails at run time`,
      hint: 'Make sure that code path is not taken, or replace the dependency.',
    });
  }
  return {
    ...manifest,
    run: manifest.run && typeof options.run !== 'string' ? { ...manifest.run, file: label } : manifest.run,
    ignore: [...manifest.ignore, ...NODE_PROJECT_IGNORES],
    nodeModules: { production: project.production, packages: project.packages },
    hostRuntime: { kind: 'node', root: inputs.root, addons: project.addons, ...nodeOptions },
    detected: 'node-project',
  };
}
