// Python in the manifest: a Python project with none of Capstan's files (pyproject.toml or
// requirements.txt, a venv for its packages) becomes a `native` config set that runs it with the
// host's Python 3, and Capstan's `runtime: python` (python-2.7) or the recommended
// `require: [osv.python3x]` get the host's Python when the package is missing. One of
// application.ts's detectors.
import path from 'node:path';
import type { ProjectDetector } from './application.js';
import { CAPSTAN_PYTHON_PACKAGE, OSV_PYTHON3_PACKAGE, PYTHON_GUEST_PATH, withPythonExit, type PythonRuntimeOptions, type PythonRuntimeRequest } from './python.js';
import { analysePythonProject, isPythonProject, PYTHON_PROJECT_IGNORES, type PythonProject, type PythonProjectOptions } from './python-project.js';
import { osvWord } from './words.js';

export interface PythonManifestOptions extends PythonRuntimeOptions, PythonProjectOptions {}

/** The python command line of a project. */
export function pythonProjectCommand(project: Pick<PythonProject, 'entry' | 'pythonArgs' | 'args'>): string {
  return [PYTHON_GUEST_PATH, ...project.pythonArgs, ...project.entry, ...project.args].map(osvWord).join(' ');
}

/** The environment a project's config set gets: output unbuffered (the console is how a VM is watched), its src/ on sys.path. */
export function pythonProjectEnv(project: Pick<PythonProject, 'path'>): Record<string, string> {
  return { PYTHONUNBUFFERED: '1', ...(project.path.length ? { PYTHONPATH: project.path.join(':') } : {}) };
}

function runtimeRequest(root: string, options: PythonManifestOptions, extra: Partial<PythonRuntimeRequest> = {}): PythonRuntimeRequest {
  const { binary, venv, trim, procfs, exit } = options;
  return {
    kind: 'python', root,
    ...(binary !== undefined ? { binary } : {}), ...(venv !== undefined ? { venv } : {}), ...(trim !== undefined ? { trim } : {}),
    ...(procfs !== undefined ? { procfs } : {}), ...(exit !== undefined ? { exit } : {}), ...extra,
  };
}

export const pythonDetector: ProjectDetector<PythonManifestOptions> = {
  kind: 'python',
  explicit: (options) => Boolean(options.main || options.module),
  detect(inputs, options) {
    if (!isPythonProject(inputs.root) && !options.main && !options.module) return undefined;
    const project = analysePythonProject(inputs.root, options, options.venv);
    const label = `${inputs.root}/${project.entrySource === 'option' ? project.entry.at(-1)!.replace(/^\//, '') : project.entrySource} (Python project)`;
    // A venv inside the project is not copied as it is (its bin/ links to the host's python): its packages come through the runtime.
    const venvIgnore = project.venv && project.venv.startsWith(inputs.root + path.sep) ? [`/${path.relative(inputs.root, project.venv).split(path.sep).join('/')}`] : [];
    return {
      label,
      bootcmd: withPythonExit(pythonProjectCommand(project), options),
      env: pythonProjectEnv(project),
      ignore: [...PYTHON_PROJECT_IGNORES, ...venvIgnore],
      hostRuntime: runtimeRequest(inputs.root, options, { venv: project.venv ?? false }),
      detected: 'python-project',
      warnings: project.notes.map((message) => ({ code: 'W_PYTHON_PROJECT', file: label, message })),
    };
  },
  standIn: (root, capstanPackage, options) => runtimeRequest(root, options, { capstanPackage }),
  standsInFor: (name) => name === CAPSTAN_PYTHON_PACKAGE || name === OSV_PYTHON3_PACKAGE || /^python-/.test(name),
};
