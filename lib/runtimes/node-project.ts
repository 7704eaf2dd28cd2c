// An existing Node.js project, read as a unikernel needs it: how it starts (package.json),
// which installed packages are production dependencies (by walking node_modules the way
// Node resolves them — npm, yarn, pnpm and workspace layouts alike, symlinks followed), its
// native addons, and which production packages reach for child_process (OSv runs one
// process: no fork, no exec). Reads the disk; decides nothing about the image itself.
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { ManifestError } from '../errors.js';

export interface PackageJson {
  name?: string;
  version?: string;
  main?: string;
  type?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

export interface NodeProjectOptions {
  /** Entry script (project-relative or guest path); default from package.json. */
  main?: string | undefined;
  /** Arguments after the script. */
  args?: readonly string[] | undefined;
  /** Node options before the script. */
  nodeArgs?: readonly string[] | undefined;
  /** Scan production packages for child_process use (default true). */
  checkChildProcess?: boolean | undefined;
}

export interface NodeProject {
  root: string;
  packageJson: PackageJson;
  /** Guest path of the entry script (`/server.js`). */
  main: string;
  mainSource: 'option' | 'start-script' | 'server.js' | 'main' | 'index.js';
  nodeArgs: string[];
  args: string[];
  /** Guest paths of production packages under node_modules: folders, and the symlinks that lead to them. */
  production: string[];
  /** Installed packages that are not production ones (devDependencies and theirs), guest paths. */
  devOnly: string[];
  /** Number of production packages (each counted once, however it is linked). */
  packages: number;
  /** Host paths of native addons (`*.node`) in production packages and the app. */
  addons: string[];
  /** Production packages whose code loads child_process. */
  childProcessUsers: { package: string; file: string }[];
  /** Things worth telling (a dependency not installed, one outside the project). */
  notes: string[];
}

/** Default ignores for a Node project's own tree (Capstan patterns, anchored at the root). */
export const NODE_PROJECT_IGNORES: readonly string[] = [
  '/test', '/tests', '/__tests__', '/coverage', '/.nyc_output', '/.github', '/.vscode', '/.idea',
  '/node_modules/.cache', '/gulpfile.js', '/gulpfile.mjs', '/gulpfile.cjs', '/gulpfile.ts', '/.gulp.cjs',
];

export function readPackageJson(root: string): PackageJson | undefined {
  const file = path.join(root, 'package.json');
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { return undefined; }
  try {
    const json = JSON.parse(text) as unknown;
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('not an object');
    return json as PackageJson;
  } catch (error) {
    const m = /position (\d+)/.exec((error as Error).message);
    const at = m ? lineColumn(text, Number(m[1])) : {};
    throw new ManifestError(`package.json is not valid JSON: ${(error as Error).message}`, {
      code: 'E_PACKAGE_JSON', file, ...at, hint: 'Fix the JSON (npm would refuse it too).',
    });
  }
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

export function analyseNodeProject(root: string, pkg: PackageJson, options: NodeProjectOptions = {}): NodeProject {
  const notes: string[] = [];
  const entry = findEntry(root, pkg, options);
  const walk = productionPackages(root, pkg, notes);
  const addons: string[] = [];
  const childProcessUsers: NodeProject['childProcessUsers'] = [];
  const checkChildProcess = options.checkChildProcess ?? true;
  for (const dir of walk.realDirs) {
    scanPackage(dir, (file) => {
      if (file.endsWith('.node')) addons.push(file);
      else if (checkChildProcess && /\.(c|m)?js$/.test(file) && usesChildProcess(file)) {
        const name = readPackageJson(dir)?.name ?? path.basename(dir);
        if (!childProcessUsers.some((u) => u.package === name)) childProcessUsers.push({ package: name, file });
      }
    });
  }
  // The app's own addons (outside node_modules), e.g. a build/Release/*.node of its own.
  scanPackage(root, (file) => { if (file.endsWith('.node')) addons.push(file); }, true);
  return {
    root, packageJson: pkg, ...entry, production: walk.keep.sort(), packages: walk.realDirs.length, devOnly: installedPackages(root).filter((p) => !walk.keepSet.has(p)).sort(),
    addons: [...new Set(addons)].sort(), childProcessUsers, notes,
  };
}

/** How `npm start` would start it: the start script, else server.js (npm's default), else main, else index.js. */
function findEntry(root: string, pkg: PackageJson, options: NodeProjectOptions): Pick<NodeProject, 'main' | 'mainSource' | 'nodeArgs' | 'args'> {
  const nodeArgs = [...(options.nodeArgs ?? [])];
  const args = [...(options.args ?? [])];
  const guest = (rel: string) => '/' + path.posix.normalize(rel.replace(/\\/g, '/')).replace(/^(\.\/|\/)+/, '');
  if (options.main) return { main: guest(resolveScript(root, options.main) ?? options.main), mainSource: 'option', nodeArgs, args };
  const start = pkg.scripts?.start;
  if (start) {
    const parsed = parseNodeCommand(start);
    const script = parsed && resolveScript(root, parsed.script);
    if (parsed && script) return { main: guest(script), mainSource: 'start-script', nodeArgs: [...parsed.nodeArgs, ...nodeArgs], args: [...parsed.args, ...args] };
  }
  if (existsSync(path.join(root, 'server.js'))) return { main: '/server.js', mainSource: 'server.js', nodeArgs, args };
  if (pkg.main) {
    const script = resolveScript(root, pkg.main);
    if (script) return { main: guest(script), mainSource: 'main', nodeArgs, args };
  }
  if (existsSync(path.join(root, 'index.js'))) return { main: '/index.js', mainSource: 'index.js', nodeArgs, args };
  throw new ManifestError('cannot tell how this Node.js project starts', {
    code: 'E_NODE_MAIN', file: path.join(root, 'package.json'),
    hint: 'Give package.json a "start" script of the form "node <file> [args]" or a "main" file, or pass the entry: { node: { main: "server.js" } }.',
  });
}

/** `node [--flags] file.js [args]` (optionally with a leading `exec`); undefined for anything else (shell syntax, other programs). */
export function parseNodeCommand(command: string): { nodeArgs: string[]; script: string; args: string[] } | undefined {
  if (/[|&;<>$`()]/.test(command)) return undefined;
  const words = [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
  if (words[0] === 'exec') words.shift();
  if (words[0] !== 'node') return undefined;
  let i = 1;
  const nodeArgs: string[] = [];
  // Options that take a separate value.
  const withValue = new Set(['-r', '--require', '--import', '--loader', '--experimental-loader', '--env-file', '--conditions', '-C', '--title']);
  while (i < words.length && words[i]!.startsWith('-')) {
    const w = words[i++]!;
    nodeArgs.push(w);
    if (withValue.has(w) && i < words.length) nodeArgs.push(words[i++]!);
  }
  const script = words[i++];
  return script === undefined ? undefined : { nodeArgs, script, args: words.slice(i) };
}

/** A script path as Node resolves a main: the file, `.js`, `.mjs`, `.cjs`, or a folder's index.js. Project-relative. */
function resolveScript(root: string, file: string): string | undefined {
  const rel = file.replace(/^\/+/, '');
  for (const candidate of [rel, `${rel}.js`, `${rel}.mjs`, `${rel}.cjs`, path.posix.join(rel, 'index.js')]) {
    try { if (statSync(path.join(root, candidate)).isFile()) return candidate; } catch { /* next */ }
  }
  return undefined;
}

interface ProductionWalk {
  /** Guest paths kept (folders and symlinks). */
  keep: string[];
  keepSet: Set<string>;
  /** Real host folders of production packages inside the project. */
  realDirs: string[];
}

/**
 * Production packages: the root's dependencies, optionalDependencies and peerDependencies,
 * then theirs, resolved from each package's real folder up to the project root as Node does.
 */
function productionPackages(root: string, pkg: PackageJson, notes: string[]): ProductionWalk {
  const realRoot = realpathSync(root);
  const keepSet = new Set<string>();
  const realDirs: string[] = [];
  const visited = new Set<string>();
  const guestOf = (host: string) => '/' + path.relative(realRoot, host).split(path.sep).join('/');
  const inside = (host: string) => host === realRoot || host.startsWith(realRoot + path.sep);
  const queue: Array<{ from: string; deps: string[]; optional: Set<string>; by: string }> = [];
  const depsOf = (p: PackageJson) => ({
    deps: [...new Set([...Object.keys(p.dependencies ?? {}), ...Object.keys(p.optionalDependencies ?? {}), ...Object.keys(p.peerDependencies ?? {})])],
    optional: new Set([...Object.keys(p.optionalDependencies ?? {}), ...Object.keys(p.peerDependencies ?? {})]),
  });
  queue.push({ from: realRoot, ...depsOf(pkg), by: pkg.name ?? 'the project' });
  while (queue.length > 0) {
    const { from, deps, optional, by } = queue.shift()!;
    for (const name of deps) {
      const found = resolvePackage(from, name, realRoot);
      if (!found) {
        if (!optional.has(name)) notes.push(`${by} depends on ${name}, which is not installed (run npm install)`);
        continue;
      }
      let real = found;
      const st = lstatSync(found);
      if (st.isSymbolicLink()) {
        keepSet.add(guestOf(found));
        try { real = realpathSync(found); } catch {
          notes.push(`${guestOf(found)} is a dangling symlink (${name}); left out`);
          keepSet.delete(guestOf(found));
          continue;
        }
        if (!inside(real)) {
          notes.push(`${name} (needed by ${by}) is a link to ${real}, outside the project: it is not in the image`);
          keepSet.delete(guestOf(found));
          continue;
        }
      }
      keepSet.add(guestOf(real));
      if (visited.has(real)) continue;
      visited.add(real);
      realDirs.push(real);
      const child = readPackageJson(real);
      if (child) queue.push({ from: real, ...depsOf(child), by: name });
    }
  }
  return { keep: [...keepSet], keepSet, realDirs };
}

/** `<dir>/node_modules/<name>` for dir = from, its parents, … up to the project root; lstat only. */
function resolvePackage(from: string, name: string, realRoot: string): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (path.basename(dir) !== 'node_modules') {
      const candidate = path.join(dir, 'node_modules', ...name.split('/'));
      try { lstatSync(candidate); return candidate; } catch { /* up */ }
    }
    if (dir === realRoot || dir === path.dirname(dir) || !dir.startsWith(realRoot)) return undefined;
  }
}

/** Every installed package folder under node_modules (any depth), as guest paths; .bin and dot-folders skipped. */
function installedPackages(root: string): string[] {
  const out: string[] = [];
  const visitModules = (dir: string, guest: string) => {
    let names: string[];
    try { names = readdirSync(dir); } catch { return; }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      if (name.startsWith('@')) {
        let scoped: string[];
        try { scoped = readdirSync(path.join(dir, name)); } catch { continue; }
        for (const s of scoped) addPackage(path.join(dir, name, s), `${guest}/${name}/${s}`);
      } else {
        addPackage(path.join(dir, name), `${guest}/${name}`);
      }
    }
  };
  const addPackage = (dir: string, guest: string) => {
    out.push(guest);
    try { if (lstatSync(dir).isDirectory()) visitModules(path.join(dir, 'node_modules'), `${guest}/node_modules`); } catch { /* gone */ }
  };
  visitModules(path.join(root, 'node_modules'), '/node_modules');
  return out;
}

/** Calls `onFile` for the files of a package folder, not descending into its own node_modules (separate packages). */
function scanPackage(dir: string, onFile: (file: string) => void, skipNodeModulesOnly = false): void {
  const stack = [dir];
  let budget = 20_000;
  while (stack.length > 0 && budget > 0) {
    const current = stack.pop()!;
    let entries;
    try { entries = readdirSync(current, { withFileTypes: true }); } catch { continue; }
    for (const e of entries) {
      if (--budget <= 0) break;
      if (e.name === 'node_modules' || (skipNodeModulesOnly && e.name.startsWith('.'))) continue;
      const full = path.join(current, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile()) onFile(full);
    }
  }
}

const CHILD_PROCESS = /\brequire\(\s*['"](?:node:)?child_process['"]\s*\)|\bfrom\s*['"](?:node:)?child_process['"]|\bimport\(\s*['"](?:node:)?child_process['"]\s*\)/;

function usesChildProcess(file: string): boolean {
  try {
    if (statSync(file).size > 2 * 1024 * 1024) return false;
    return CHILD_PROCESS.test(readFileSync(file, 'latin1'));
  } catch {
    return false;
  }
}

/**
 * Whether a guest path survives the production filter: paths outside node_modules always do;
 * inside, the package a path belongs to (the name after its last `/node_modules/`) must be a
 * production one, or the path a folder on the way to one.
 */
export function nodeModulesFilter(production: readonly string[]): (guestPath: string) => boolean {
  const keep = new Set(production);
  const onTheWay = new Set<string>();
  for (const p of production) for (let d = path.posix.dirname(p); d !== '/' && !onTheWay.has(d); d = path.posix.dirname(d)) onTheWay.add(d);
  return (guestPath) => {
    const at = guestPath.lastIndexOf('/node_modules/');
    if (at < 0) return true;
    if (onTheWay.has(guestPath) || keep.has(guestPath)) return true;
    const rest = guestPath.slice(at + '/node_modules/'.length).split('/');
    const pkgDir = guestPath.slice(0, at + '/node_modules/'.length) + (rest[0]!.startsWith('@') ? rest.slice(0, 2).join('/') : rest[0]);
    return keep.has(pkgDir);
  };
}
