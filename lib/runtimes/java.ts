// Java for OSv, taken from the host: a JDK or JRE found as users expect (the `home` option,
// JAVA_HOME, the `java` on PATH), laid as a tree at /usr/lib/jvm/java, trimmed of what a server
// never needs, or a jlink'ed runtime of the modules asked for. Measured on OSv master 0e34e4dc
// under TCG with OpenJDK 17 (the README's "Java and Python from the host" has the figures):
//
// 1. The whole lib/ folder comes along, not just what `bin/java` needs: the JVM dlopens
//    libjvm.so, libjava.so, libnet.so, libnio.so … by path as classes need them, none of them in
//    any DT_NEEDED. So the closure is that of every shared object in the tree; what they need
//    from each other (libjvm.so, which none of them finds by RUNPATH: the JVM has loaded it
//    before) is the tree's, and only the rest (libz, libgcc_s) is captured from the host. A
//    library the host lacks is reported, not fatal: the object that needs it is loaded on demand
//    and only that feature fails (as it would on this host).
// 2. The command ends with OSv's `!` (core/commands.cc): the JVM's own threads (GC, compiler,
//    signal dispatcher…) outlive `main`, and OSv waits for every thread of an app, so without it
//    a program whose main returns never powers the VM off.
// 3. /proc is mounted (OSv's ROFS fstab as it is). The JVM ran as well without it (hello and
//    an HTTP server, measured), but HotSpot and the JDK read /proc where Linux has it (cgroup
//    and CPU detection, ProcessHandle, the OS MXBean), and Node's procfs trouble does not arise
//    here; `procfs: false` leaves it out.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HostError } from '../errors.js';
import { captureClosure, type ClosureEntry } from '../host/closure.js';
import { isElfFile, readElf } from '../host/elf.js';
import { captureTree, excludePatterns, type TreeEntry } from '../host/tree.js';
import type { RunConfig } from '../manifest/types.js';
import { FSTAB_WITH_PROC, FSTAB_WITHOUT_PROC, OSV_STOP_THREADS_SUFFIX } from './node.js';

/** Where the runtime lays the JDK in the guest (as Capstan's openjdk packages did). */
export const JAVA_GUEST_HOME = '/usr/lib/jvm/java';
export const JAVA_GUEST_PATH = `${JAVA_GUEST_HOME}/bin/java`;
/** Links to the launcher: `/usr/bin/java`, and `/java.so`, the name Capstan's openjdk packages gave their launcher. */
export const JAVA_LINKS: readonly string[] = ['/usr/bin/java', '/java.so'];
/** The stand-in's default -Xms (Capstan's packages had 512m, the same as their -Xmx). */
export const JAVA_STAND_IN_XMS = '16m';
/** Capstan's package for `runtime: java` (from a bucket that is gone). */
export const CAPSTAN_JAVA_PACKAGE = 'openjdk8-zulu-compact1';

/**
 * What a server never needs, left out unless `trim: false`: documentation, man pages, C headers,
 * the jmods jlink reads, the sources, and the libraries that only serve a display or a sound
 * card (X11 AWT, splash screen, JAWT, sound, GNOME accessibility). Patterns relative to the JDK.
 */
export const JDK_TRIM: readonly string[] = [
  'docs', 'man', 'include', 'jmods', 'demo', 'sample', 'lib/src.zip', 'src.zip',
  'lib/libawt_xawt.so', 'lib/libjawt.so', 'lib/libsplashscreen.so', 'lib/libjsound.so', 'lib/libatk-wrapper.so',
  '**/*.debuginfo', '**/*.diz',
];

export interface JavaRuntimeOptions {
  /** The JDK/JRE folder. Default: $JAVA_HOME, else the one the `java` on PATH belongs to. */
  home?: string | undefined;
  /** Leave out docs, man, headers, jmods, src.zip and the desktop libraries (default true); false keeps all; a list replaces JDK_TRIM. */
  trim?: boolean | readonly string[] | undefined;
  /** A jlink'ed runtime of these modules instead of the whole JDK (e.g. ['java.base', 'jdk.httpserver']). */
  modules?: readonly string[] | undefined;
  /** Mount /proc (default true: HotSpot and the JDK read it where Linux has it; false leaves it out). */
  procfs?: boolean | undefined;
  /** End the command with OSv's `!`, so the VM powers off when main returns (default true). */
  exit?: boolean | undefined;
}

/** What a manifest asks of the host Java runtime (set by resolveManifest, read by fetchPackages). */
export interface JavaRuntimeRequest extends JavaRuntimeOptions {
  kind: 'java';
  root: string;
  /** The Capstan package this runtime stands in for when it is missing (`runtime: java` in run.yaml). */
  capstanPackage?: string | undefined;
}

export interface JavaRuntimeFiles {
  /** The host `bin/java`. */
  binary: string;
  /** The host folder the tree comes from (a jlink output when `modules` is given). */
  home: string;
  version: string;
  /** The JDK's files at JAVA_GUEST_HOME, and the JAVA_LINKS. */
  tree: TreeEntry[];
  /** The host libraries the tree's shared objects need (libz, libgcc_s…). */
  closure: ClosureEntry[];
  generated: { guestPath: string; contents: Buffer; mode: number }[];
  /** Things worth telling: dangling links left out, libraries the host lacks. */
  notes: string[];
  /** The config set `java` Capstan's openjdk packages had. */
  run: RunConfig;
}

/** A java command line as the runtime wants it: with OSv's `!` unless `exit: false`. */
export function withJavaExit(command: string, options: JavaRuntimeOptions): string {
  return options.exit === false ? command : `${command} ${OSV_STOP_THREADS_SUFFIX}`;
}

/** The JDK folder: the option, $JAVA_HOME, or where the `java` on PATH really lives. */
export function findJavaHome(home: string | undefined, root: string, env: NodeJS.ProcessEnv = process.env): string {
  const check = (dir: string, how: string) => {
    if (!existsSync(path.join(dir, 'bin', 'java'))) {
      throw new HostError(`${dir} (${how}) has no bin/java`, {
        code: 'E_JAVA_HOME', file: dir, hint: 'Point java.home (or JAVA_HOME) at a JDK or JRE folder, the one holding bin/java and lib/.',
      });
    }
    return dir;
  };
  if (home !== undefined) return check(path.resolve(root, home), 'the home option');
  if (env.JAVA_HOME) return check(path.resolve(env.JAVA_HOME), 'JAVA_HOME');
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'java');
    try {
      if (!statSync(candidate).isFile()) continue;
      return check(path.dirname(path.dirname(realpathSync(candidate))), `the java on PATH, ${candidate}`);
    } catch (error) {
      if (error instanceof HostError) throw error;
    }
  }
  throw new HostError('no Java on this host: JAVA_HOME is not set and there is no java on PATH', {
    code: 'E_JAVA_HOME', hint: 'Install a JDK (e.g. apt-get install openjdk-17-jdk-headless), set JAVA_HOME, or pass java: { home: "/path/to/jdk" }.',
  });
}

/** `17.0.15` from the JDK's `release` file, else from `java -version`. */
export function javaVersion(home: string): string {
  try {
    const m = /^JAVA_VERSION="([^"]+)"/m.exec(readFileSync(path.join(home, 'release'), 'utf8'));
    if (m) return m[1]!;
  } catch { /* no release file (JDK 8 has one too, but a hand-made JRE may not) */ }
  try {
    const out = execFileSync(path.join(home, 'bin', 'java'), ['-version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return /version "([^"]+)"/.exec(out)?.[1] ?? 'unknown';
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    const m = /version "([^"]+)"/.exec(stderr);
    if (m) return m[1]!;
    throw new HostError(`cannot run ${home}/bin/java -version: ${(error as Error).message.split('\n')[0]}`, {
      code: 'E_JAVA_HOME', file: path.join(home, 'bin', 'java'), hint: 'Give a working Linux x86-64 JDK or JRE.',
    });
  }
}

/**
 * A jlink'ed runtime of `modules`, made once per JDK and module list and kept under the
 * system's temporary folder (jlink takes seconds; the output is only read).
 */
export function jlinkRuntime(home: string, modules: readonly string[]): string {
  const jlink = path.join(home, 'bin', 'jlink');
  if (!existsSync(jlink)) {
    throw new HostError(`${home} has no bin/jlink: it is a JRE, and only a JDK can make a smaller runtime`, {
      code: 'E_JAVA_JLINK', file: home, hint: 'Point java.home at a JDK (with jmods/ or, from JDK 24, linkable run-time images), or leave out `modules`.',
    });
  }
  const list = [...new Set(modules)].sort();
  const stamp = `${realpathSync(home)}\n${statSync(path.join(home, 'lib', 'modules'), { throwIfNoEntry: false })?.mtimeMs ?? 0}\n${list.join(',')}`;
  const dir = path.join(os.tmpdir(), 'gulp-capstan-jlink', createHash('sha256').update(stamp).digest('hex').slice(0, 16));
  if (existsSync(path.join(dir, 'release'))) return dir;
  const building = `${dir}.${process.pid}.tmp`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(path.dirname(dir), { recursive: true });
  try {
    execFileSync(jlink, ['--add-modules', list.join(','), '--strip-debug', '--no-man-pages', '--no-header-files', '--output', building], {
      encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    rmSync(building, { recursive: true, force: true });
    const detail = ((error as { stderr?: string }).stderr || (error as { stdout?: string }).stdout || (error as Error).message).trim().split('\n')[0];
    throw new HostError(`jlink --add-modules ${list.join(',')} failed: ${detail}`, {
      code: 'E_JAVA_JLINK', file: jlink, hint: 'Name modules this JDK has (java --list-modules), e.g. modules: ["java.base", "jdk.httpserver"].',
    });
  }
  try { renameSync(building, dir); } catch { rmSync(building, { recursive: true, force: true }); } // another build made it meanwhile
  return dir;
}


export function javaRuntimeFiles(request: JavaRuntimeRequest): JavaRuntimeFiles {
  const jdk = findJavaHome(request.home, request.root);
  const home = request.modules?.length ? jlinkRuntime(jdk, request.modules) : jdk;
  const version = javaVersion(home);
  const trim = request.trim === false ? [] : request.trim === undefined || request.trim === true ? JDK_TRIM : request.trim;
  const exclude = excludePatterns(trim);
  const captured = captureTree(home, JAVA_GUEST_HOME, { exclude: (rel) => exclude(rel) });
  const notes = captured.dangling.map((d) => `${path.join(home, d.path)} is a link to ${d.target}, which is not there: left out`);
  const tree = captured.entries;
  // Every ELF shared object of the tree (and the launcher), at its guest path.
  const objects = tree.filter((e) => e.type === 'file' && (/\.so(\.\d+)*$/.test(e.guestPath) || e.guestPath === JAVA_GUEST_PATH) && isElfFile(e.hostPath));
  const provided = new Set<string>();
  for (const o of objects) {
    provided.add(path.posix.basename(o.guestPath));
    const soname = readElf(o.hostPath).dynamic?.soname;
    if (soname) provided.add(soname);
  }
  const closure = captureClosure(objects.map((o) => ({ path: o.hostPath, at: o.guestPath })), {
    withGccS: true, alsoProvided: [...provided], missing: 'report',
  });
  for (const m of closure.missing) {
    notes.push(`${m.name} is not on this host; ${m.neededBy.map((n) => path.basename(n)).join(', ')} will not load in the guest (nor here)`);
  }
  // The tree's own objects are in `tree` already; from the closure only what it adds.
  const entries = closure.entries.filter((e) => e.type !== 'program');
  // `java` for commands that name it so, and /java.so for Capstan's (its packages' JVM launcher had that name).
  for (const link of JAVA_LINKS) tree.push({ type: 'symlink', guestPath: link, hostPath: path.join(home, 'bin', 'java'), target: JAVA_GUEST_PATH, size: 0 });
  const generated = [{ guestPath: '/etc/fstab', contents: Buffer.from(request.procfs === false ? FSTAB_WITHOUT_PROC : FSTAB_WITH_PROC), mode: 0o644 }];
  const run: RunConfig = {
    runtime: 'native',
    configSetDefault: [],
    file: `${JAVA_GUEST_PATH} (host runtime)`,
    // Capstan's openjdk packages' meta/run.yaml, with the host's java for their /java.so, and
    // one change: their XMS of 512m made every `xmx` below 512m fail ("Initial heap size set to
    // a larger value than the maximum heap size"); 16m is where the JVM starts at 1G anyway.
    configSets: [{
      name: 'java', runtime: 'native', script: '',
      bootcmd: withJavaExit(`${JAVA_GUEST_PATH} -Xms$XMS -Xmx$XMX -cp $CLASSPATH $JVM_ARGS $MAIN $ARGS`, request),
      env: { XMS: JAVA_STAND_IN_XMS, XMX: '512m', CLASSPATH: '/', JVM_ARGS: '-Duser.dir=/', MAIN: 'main.Hello', ARGS: '' },
    }],
  };
  return { binary: path.join(home, 'bin', 'java'), home, version, tree, closure: entries, generated, notes, run };
}
