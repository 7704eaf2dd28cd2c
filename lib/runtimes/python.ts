// Python 3 for OSv, taken from the host: the interpreter (python3 on PATH, a given one, or the
// one of a virtualenv), its standard library with lib-dynload and the libraries those extension
// modules need, and a virtualenv's site-packages. Laid at the host's own prefix (/usr for a
// distribution's Python, ~/.pyenv/versions/X for pyenv's), because that is where the
// interpreter looks when nothing tells it otherwise: `bootcmd: python3` needs no environment.
// The venv's packages go to the site folder that prefix's `site` module reads, so they come
// after the standard library on sys.path, as in the venv. Measured on OSv master 0e34e4dc under
// TCG (the README's "Java and Python from the host" has the figures).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { HostError } from '../errors.js';
import { captureClosure, type ClosureEntry } from '../host/closure.js';
import { isElfFile } from '../host/elf.js';
import { captureTree, excludePatterns, type TreeEntry } from '../host/tree.js';
import type { RunConfig } from '../manifest/types.js';
import { FSTAB_WITH_PROC, FSTAB_WITHOUT_PROC, OSV_STOP_THREADS_SUFFIX } from './node.js';

/** Capstan's package for `runtime: python` (python 2.7, from a bucket that is gone). */
export const CAPSTAN_PYTHON_PACKAGE = 'python-2.7';
/** The package Capstan's documentation recommends instead: `native`, `require: [osv.python3x]`, `bootcmd: python3`. */
export const OSV_PYTHON3_PACKAGE = 'osv.python3x';
/** Where the runtime puts a link to the interpreter: OSv looks for a bare `python3` in / and /usr/lib. */
export const PYTHON_ROOT_LINK = '/python3';
export const PYTHON_GUEST_PATH = '/usr/bin/python3';

/** Left out of the standard library unless `trim: false`: tests, IDLE, Tk, the pip installer, turtle demos. */
export const PYTHON_STDLIB_TRIM: readonly string[] = [
  '**/test', '**/tests', '**/idle_test', 'idlelib', 'tkinter', 'turtledemo', 'turtle.py', 'ensurepip', 'lib2to3/tests',
  'site-packages', 'dist-packages', '**/*.a', 'lib-dynload/_tkinter*.so', 'lib-dynload/_test*.so', 'lib-dynload/xxlimited*.so',
];
/** Left out of a venv's site-packages: the installers, which nothing imports at run time. */
export const PYTHON_VENV_TRIM: readonly string[] = ['pip', 'pip-*.dist-info', '_distutils_hack', 'distutils-precedence.pth'];

export interface PythonRuntimeOptions {
  /** The interpreter: 'host' (default: python3 on PATH, or the venv's), or a path. */
  binary?: string | undefined;
  /** A virtualenv to take site-packages from: a folder, or false for none. Default $VIRTUAL_ENV, else .venv/ or venv/ of the project. */
  venv?: string | false | undefined;
  /** Leave out tests, IDLE, Tk, ensurepip (default true); false keeps all; a list replaces PYTHON_STDLIB_TRIM. */
  trim?: boolean | readonly string[] | undefined;
  /** Mount /proc (default false: Python does not need it). */
  procfs?: boolean | undefined;
  /** End the command with OSv's `!`, so the VM powers off when the program ends (default true). */
  exit?: boolean | undefined;
}

export interface PythonRuntimeRequest extends PythonRuntimeOptions {
  kind: 'python';
  root: string;
  capstanPackage?: string | undefined;
}

/** What the host interpreter says about itself. */
export interface PythonInstall {
  /** `3.11.7`. */
  version: string;
  /** `3.11`. */
  short: string;
  /** The interpreter's real file. */
  executable: string;
  basePrefix: string;
  stdlib: string;
  platstdlib: string;
  /** lib-dynload. */
  dynload: string;
  /** The static-library folder (config-3.11-x86_64-linux-gnu), left out. */
  libpl: string | undefined;
  /** The site folder the base prefix reads (where a venv's packages go in the guest). */
  siteDir: string;
  /** The venv's site-packages when the interpreter asked is a venv's. */
  venvSite: string | undefined;
  venv: string | undefined;
}

// Printed by the interpreter itself: a venv's python knows its base, pyenv's shim execs the real one.
const QUERY = `
import json, os, platform, site, sys, sysconfig
base = sys.base_prefix
base_exec = sys.base_exec_prefix
in_venv = sys.prefix != base
site_dirs = site.getsitepackages([base])
guess = sysconfig.get_path('purelib', vars={'base': base, 'platbase': base_exec})
print(json.dumps({
  'version': platform.python_version(),
  'short': '%d.%d' % sys.version_info[:2],
  'executable': os.path.realpath(getattr(sys, '_base_executable', None) or sys.executable),
  'basePrefix': base,
  'stdlib': sysconfig.get_path('stdlib'),
  'platstdlib': sysconfig.get_path('platstdlib'),
  'dynload': sysconfig.get_config_var('DESTSHARED') or os.path.join(sysconfig.get_path('platstdlib'), 'lib-dynload'),
  'libpl': sysconfig.get_config_var('LIBPL'),
  'siteDir': guess if guess in site_dirs else (site_dirs[0] if site_dirs else guess),
  'venvSite': sysconfig.get_path('purelib') if in_venv else None,
  'venv': sys.prefix if in_venv else None,
}))
`;

/** The venv to use: the option, $VIRTUAL_ENV, or the project's .venv/ or venv/ (a folder with pyvenv.cfg). */
export function findVenv(option: string | false | undefined, root: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (option === false) return undefined;
  const isVenv = (dir: string) => existsSync(path.join(dir, 'pyvenv.cfg'));
  if (option !== undefined) {
    const dir = path.resolve(root, option);
    if (!isVenv(dir)) {
      throw new HostError(`${dir} is not a virtualenv (no pyvenv.cfg)`, {
        code: 'E_PYTHON_VENV', file: dir, hint: 'Make one: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt, or pass python: { venv: false }.',
      });
    }
    return dir;
  }
  if (env.VIRTUAL_ENV && isVenv(env.VIRTUAL_ENV)) return path.resolve(env.VIRTUAL_ENV);
  for (const name of ['.venv', 'venv']) if (isVenv(path.join(root, name))) return path.join(root, name);
  return undefined;
}

/** Asks the interpreter (the venv's when there is one) where its parts are. */
export function queryPython(binary: string | undefined, venv: string | undefined, root: string): PythonInstall {
  const program = binary !== undefined && binary !== 'host' ? path.resolve(root, binary) : venv ? path.join(venv, 'bin', 'python') : 'python3';
  let out: string;
  try {
    out = execFileSync(program, ['-I', '-c', QUERY], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new HostError(`cannot run ${program}: ${(error as Error).message.split('\n')[0]}`, {
      code: 'E_PYTHON_BINARY', file: program, hint: 'Install Python 3 (python3 on PATH), or give its path: python: { binary: "/usr/bin/python3" }.',
    });
  }
  const info = JSON.parse(out) as PythonInstall;
  if (!info.version.startsWith('3.')) {
    throw new HostError(`${program} is Python ${info.version}; this runtime takes Python 3`, {
      code: 'E_PYTHON_BINARY', file: program, hint: 'Give a Python 3 interpreter: python: { binary: "/usr/bin/python3" }.',
    });
  }
  return { ...info, libpl: info.libpl ?? undefined, venvSite: info.venvSite ?? undefined, venv: info.venv ?? undefined };
}

export interface PythonRuntimeFiles {
  binary: string;
  version: string;
  install: PythonInstall;
  tree: TreeEntry[];
  closure: ClosureEntry[];
  generated: { guestPath: string; contents: Buffer; mode: number }[];
  notes: string[];
  run: RunConfig;
}

/** A python command line as the runtime wants it: with OSv's `!` unless `exit: false`. */
export function withPythonExit(command: string, options: PythonRuntimeOptions): string {
  return options.exit === false ? command : `${command} ${OSV_STOP_THREADS_SUFFIX}`;
}

/** The soft environment every python config set gets: its home (explicit, though the interpreter would find it), no .pyc writes on a read-only disk. */
export function pythonRuntimeEnv(install: Pick<PythonInstall, 'basePrefix'>): Record<string, string> {
  return { PYTHONHOME: install.basePrefix, PYTHONDONTWRITEBYTECODE: '1' };
}


/** Guest path = host path: the interpreter's prefix is where it looks. */
function relativeTo(dir: string, file: string | undefined): string | undefined {
  if (!file) return undefined;
  const rel = path.relative(dir, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : undefined;
}

export function pythonRuntimeFiles(request: PythonRuntimeRequest): PythonRuntimeFiles {
  const venv = findVenv(request.venv, request.root);
  const install = queryPython(request.binary, venv, request.root);
  const notes: string[] = [];
  const trim = request.trim === false ? [] : request.trim === undefined || request.trim === true ? PYTHON_STDLIB_TRIM : request.trim;
  const libpl = relativeTo(install.stdlib, install.libpl);
  const stdlibExclude = excludePatterns(libpl && trim.length ? [...trim, libpl] : trim);
  const tree: TreeEntry[] = [];
  const folders = [install.stdlib];
  if (install.platstdlib !== install.stdlib) folders.push(install.platstdlib);
  if (!relativeTo(install.stdlib, install.dynload) && !relativeTo(install.platstdlib, install.dynload)) folders.push(install.dynload);
  for (const folder of folders) {
    if (!existsSync(folder)) continue;
    const captured = captureTree(folder, folder, { exclude: (rel) => stdlibExclude(rel) });
    for (const d of captured.dangling) notes.push(`${path.join(folder, d.path)} is a link to ${d.target}, which is not there: left out`);
    tree.push(...captured.entries);
  }
  if (install.venvSite && existsSync(install.venvSite)) {
    const venvExclude = excludePatterns(request.trim === false ? [] : PYTHON_VENV_TRIM);
    const captured = captureTree(install.venvSite, install.siteDir, { exclude: (rel) => venvExclude(rel) });
    for (const d of captured.dangling) notes.push(`${path.join(install.venvSite, d.path)} is a link to ${d.target}, which is not there: left out`);
    tree.push(...captured.entries);
  }
  // The interpreter and every extension module, with what they need from the host.
  const objects = tree.filter((e) => e.type === 'file' && /\.so(\.\d+)*$/.test(e.guestPath) && isElfFile(e.hostPath));
  const closure = captureClosure([{ path: install.executable, at: install.executable }, ...objects.map((o) => ({ path: o.hostPath, at: o.guestPath }))], {
    withGccS: true, missing: 'report',
  });
  for (const m of closure.missing) notes.push(`${m.name} is not on this host; ${m.neededBy.map((n) => path.basename(n)).join(', ')} will not load in the guest (nor here)`);
  const closureEntries = closure.entries.filter((e) => e.type !== 'program' || e.guestPath === install.executable);
  for (const link of [PYTHON_GUEST_PATH, PYTHON_ROOT_LINK]) {
    if (link !== install.executable) tree.push({ type: 'symlink', guestPath: link, hostPath: install.executable, target: install.executable, size: 0 });
  }
  const generated = [{ guestPath: '/etc/fstab', contents: Buffer.from(request.procfs ? FSTAB_WITH_PROC : FSTAB_WITHOUT_PROC), mode: 0o644 }];
  const run: RunConfig = {
    runtime: 'native',
    configSetDefault: [],
    file: `${PYTHON_GUEST_PATH} (host runtime)`,
    // Capstan's python-2.7 package: `/python $PYTHON_ARGS $MAIN $ARGS`, MAIN `-` (the shell) by default.
    configSets: [{
      name: 'python', runtime: 'native', script: '',
      bootcmd: withPythonExit(`${PYTHON_GUEST_PATH} $PYTHON_ARGS $MAIN $ARGS`, request),
      env: { ...pythonRuntimeEnv(install), PYTHON_ARGS: '-O', MAIN: '-', ARGS: '' },
    }],
  };
  return { binary: install.executable, version: install.version, install, tree, closure: closureEntries, generated, notes, run };
}
