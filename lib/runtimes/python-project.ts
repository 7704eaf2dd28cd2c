// An existing Python project, read as a unikernel needs it: a pyproject.toml or a
// requirements.txt marks it, and its entry is, in this order:
//   1. the `main` option (a script), or the `module` option (`python3 -m …`);
//   2. `__main__.py` in the project root;
//   3. `main.py`, then `app.py` in the root;
//   4. the one script of pyproject's [project.scripts] (or [tool.poetry.scripts]),
//      `name = "pkg.module:func"`, run as `python3 -c "…; sys.exit(func())"`;
//   5. the one package with a __main__.py (in src/ or the root), run as `python3 -m pkg`.
// The dependencies come from a virtualenv (python.ts finds it); without one, a project that
// lists requirements gets a warning. Reads the disk; decides nothing about the image itself.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ManifestError } from '../errors.js';
import { findVenv } from './python.js';

export interface PythonProjectOptions {
  /** Entry script (project-relative or guest path). */
  main?: string | undefined;
  /** A module to run with -m instead (`myapp.server`). */
  module?: string | undefined;
  /** Interpreter options before the script (`-X`, `-W`…). */
  pythonArgs?: readonly string[] | undefined;
  /** Arguments after the script. */
  args?: readonly string[] | undefined;
}

export interface PythonProject {
  root: string;
  /** The words after the interpreter's options: [`/main.py`], [`-m`, `pkg`] or [`-c`, `…`]. */
  entry: string[];
  entrySource: 'option' | '__main__.py' | 'main.py' | 'app.py' | 'project.scripts' | 'package';
  pythonArgs: string[];
  args: string[];
  /** Folders (guest paths) to put on sys.path: `/src` for a src layout. */
  path: string[];
  /** The venv whose site-packages come along, if any (host path). */
  venv: string | undefined;
  /** Things worth telling. */
  notes: string[];
}

/** Default ignores for a Python project's tree: caches, tests, build output, the venv (its packages come through the runtime). */
export const PYTHON_PROJECT_IGNORES: readonly string[] = [
  '/.venv', '/venv', '/.pytest_cache', '/.mypy_cache', '/.ruff_cache', '/.tox', '/.nox', '/tests', '/test', '/.coverage', '/htmlcov',
  '/*.egg-info', '/src/*.egg-info', '/build', '/dist', '/.idea', '/.vscode', '/.github',
];

const MARKERS = ['pyproject.toml', 'requirements.txt'];

export function isPythonProject(root: string): boolean {
  return MARKERS.some((m) => existsSync(path.join(root, m)));
}

function readPyproject(root: string): Record<string, unknown> | undefined {
  const file = path.join(root, 'pyproject.toml');
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { return undefined; }
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (error) {
    const e = error as Error & { line?: number; column?: number };
    throw new ManifestError(`pyproject.toml is not valid TOML: ${e.message.split('\n')[0]}`, {
      code: 'E_PYPROJECT', file, line: e.line, column: e.column, hint: 'Fix the TOML (pip would refuse it too).',
    });
  }
}

const isFile = (p: string) => { try { return statSync(p).isFile(); } catch { return false; } };
const guestOf = (rel: string) => '/' + path.posix.normalize(rel.replace(/\\/g, '/')).replace(/^(\.\/|\/)+/, '');
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** `pkg.module:func` (or `pkg.module:obj.method`) as a `-c` program that runs it the way a console script does. */
export function consoleScriptProgram(spec: string): string | undefined {
  const m = /^\s*([^:\s]+)\s*:\s*([^\s\[]+)\s*(\[.*\])?\s*$/.exec(spec);
  if (!m || !IDENTIFIER.test(m[1]!) || !IDENTIFIER.test(m[2]!)) return undefined;
  const [head] = m[2]!.split('.');
  return `import sys; from ${m[1]} import ${head}; sys.exit(${m[2]}())`;
}

export function analysePythonProject(root: string, options: PythonProjectOptions = {}, venvOption?: string | false): PythonProject {
  const notes: string[] = [];
  const pythonArgs = [...(options.pythonArgs ?? [])];
  const args = [...(options.args ?? [])];
  const srcLayout = existsSync(path.join(root, 'src')) && statSync(path.join(root, 'src')).isDirectory();
  const sysPath = srcLayout ? ['/src'] : [];
  const venv = findVenv(venvOption, root);
  const base = { root, pythonArgs, args, path: sysPath, venv, notes };
  if (!venv && existsSync(path.join(root, 'requirements.txt')) && readFileSync(path.join(root, 'requirements.txt'), 'utf8').split('\n').some((l) => l.trim() && !l.trim().startsWith('#'))) {
    notes.push('requirements.txt lists packages but there is no virtualenv (.venv/, venv/ or $VIRTUAL_ENV): they are not in the image. Make one: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt');
  }
  if (options.module) return { ...base, entry: ['-m', options.module], entrySource: 'option' };
  if (options.main) {
    const rel = options.main.replace(/^\/+/, '');
    if (!isFile(path.join(root, rel))) {
      throw new ManifestError(`the entry script ${options.main} is not in the project`, {
        code: 'E_PYTHON_MAIN', file: path.join(root, rel), hint: 'Give a script inside the project: python: { main: "app.py" }, or a module: python: { module: "myapp" }.',
      });
    }
    return { ...base, entry: [guestOf(rel)], entrySource: 'option' };
  }
  for (const name of ['__main__.py', 'main.py', 'app.py'] as const) {
    if (isFile(path.join(root, name))) return { ...base, entry: [`/${name}`], entrySource: name };
  }
  const pyproject = readPyproject(root);
  const project = pyproject?.project as { scripts?: Record<string, unknown> } | undefined;
  const poetry = (pyproject?.tool as { poetry?: { scripts?: Record<string, unknown> } } | undefined)?.poetry;
  const scripts = Object.entries(project?.scripts ?? poetry?.scripts ?? {}).filter(([, v]) => typeof v === 'string') as Array<[string, string]>;
  if (scripts.length === 1) {
    const program = consoleScriptProgram(scripts[0]![1]);
    if (program) return { ...base, entry: ['-c', program], entrySource: 'project.scripts' };
    notes.push(`[project.scripts] ${scripts[0]![0]} = "${scripts[0]![1]}" is not of the form "module:function"`);
  }
  const packages: string[] = [];
  for (const dir of srcLayout ? ['src', ''] : ['']) {
    let names: string[];
    try { names = readdirSync(path.join(root, dir)); } catch { continue; }
    for (const n of names) if (IDENTIFIER.test(n) && isFile(path.join(root, dir, n, '__main__.py'))) packages.push(n);
  }
  if (packages.length === 1) return { ...base, entry: ['-m', packages[0]!], entrySource: 'package' };
  throw new ManifestError(scripts.length > 1
    ? `cannot tell how this Python project starts: [project.scripts] has ${scripts.length} scripts (${scripts.map(([k]) => k).join(', ')})`
    : 'cannot tell how this Python project starts', {
    code: 'E_PYTHON_MAIN', file: path.join(root, existsSync(path.join(root, 'pyproject.toml')) ? 'pyproject.toml' : 'requirements.txt'),
    hint: 'Add a main.py (or app.py, __main__.py), or name the entry: python: { main: "server.py" } or python: { module: "myapp" }.',
  });
}
