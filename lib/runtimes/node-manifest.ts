// Node.js in the manifest: an existing Node project with none of Capstan's files becomes a
// `native` config set that runs it (zero-config), and Capstan's `runtime: node` learns that
// the host can stand in for its long-gone package. One of application.ts's detectors.
import type { ProjectDetector } from './application.js';
import { CAPSTAN_NODE_PACKAGE, NODE_GUEST_PATH, nodeRuntimeEnv, withExitSuffix, type NodeRuntimeOptions } from './node.js';
import { analyseNodeProject, NODE_PROJECT_IGNORES, readPackageJson, type NodeProject, type NodeProjectOptions } from './node-project.js';
import { osvWord } from './words.js';

export interface NodeManifestOptions extends NodeRuntimeOptions, NodeProjectOptions {}

/** The boot command that runs a Node project's entry. */
export function nodeProjectCommand(project: Pick<NodeProject, 'main' | 'nodeArgs' | 'args'>): string {
  return [NODE_GUEST_PATH, ...project.nodeArgs, project.main, ...project.args].map(osvWord).join(' ');
}

export const nodeDetector: ProjectDetector<NodeManifestOptions> = {
  kind: 'node',
  explicit: (options) => Boolean(options.main),
  detect(inputs, options) {
    const pkg = readPackageJson(inputs.root);
    if (!pkg) return undefined;
    const project = analyseNodeProject(inputs.root, pkg, options);
    const label = `${inputs.root}/package.json (Node.js project)`;
    const warnings = project.notes.map((note) => ({ code: 'W_NODE_PROJECT', file: label, message: note }));
    for (const user of project.childProcessUsers) {
      warnings.push({
        code: 'W_NODE_CHILD_PROCESS', file: user.file,
        message: `production dependency ${user.package} uses child_process (fork/exec/spawn): OSv runs one process, so such a call fails at run time`,
        hint: 'Make sure that code path is not taken, or replace the dependency.',
      } as typeof warnings[number]);
    }
    return {
      label,
      bootcmd: withExitSuffix(nodeProjectCommand(project), options),
      env: { NODE_ENV: 'production', ...nodeRuntimeEnv(options) },
      ignore: NODE_PROJECT_IGNORES,
      hostRuntime: { kind: 'node', root: inputs.root, addons: project.addons, ...options },
      detected: 'node-project',
      warnings,
      extra: { nodeModules: { production: project.production, packages: project.packages } },
    };
  },
  standIn: (root, capstanPackage, options) => ({ kind: 'node', root, addons: [], capstanPackage, ...options }),
  standsInFor: (name) => name === CAPSTAN_NODE_PACKAGE || /^node-/.test(name),
};
