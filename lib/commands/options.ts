// The options of a whole build (compose, run, the gulp tasks, the CLI): one flat set, as a
// user writes it in a gulpfile or in package.json's `capstan` field, split here into what
// each step takes. Normalised once; each source of options overrides the one before it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CapstanError } from '../errors.js';
import type { EventSink } from '../events.js';
import type { ResolveManifestOptions } from '../steps/resolve-manifest.js';
import type { FetchPackagesOptions } from '../steps/fetch-packages.js';
import type { LayoutFilesOptions } from '../steps/layout-files.js';
import type { WriteImageOptions } from '../steps/write-image.js';
import type { ImageFormat } from '../image/disk.js';
import type { BootOptions } from '../vm/boot.js';
import type { ForwardSpec, NetworkMode } from '../vm/network.js';
import type { VolumeSpec } from '../vm/drives.js';
import type { ApplicationOptions } from '../runtimes/application.js';

export class OptionsError extends CapstanError { override name = 'OptionsError'; }

export interface UnikernelOptions {
  /** The project (package root). Default process.cwd(). */
  cwd?: string | undefined;
  /** Globs of the files to put in, relative to `cwd`. Default `**` (dotfiles included). */
  files?: string | string[] | undefined;
  /** Globs to leave out of the source (besides .capstanignore). */
  exclude?: string[] | undefined;
  /** The image to write. Default `build/<folder name>.<format>` under `cwd`. */
  out?: string | undefined;
  format?: ImageFormat | undefined;
  /** Virtual disk size (`10G`, `512M`). */
  size?: string | number | undefined;
  /** Loader name or path. Default `osv-loader` (pulled when missing). */
  loader?: string | undefined;

  // What the application is (resolveManifest).
  package?: ResolveManifestOptions['package'];
  /** A command line (Capstan --run), or an inline meta/run.yaml. */
  run?: ResolveManifestOptions['run'];
  /** Config sets to boot (Capstan --boot). */
  boot?: string | string[] | undefined;
  /** Environment set on the command line (Capstan --env). */
  env?: Record<string, string> | undefined;
  require?: string[] | undefined;
  bootstrap?: string | false | undefined;
  ignore?: string[] | undefined;
  node?: ApplicationOptions['node'];
  java?: ApplicationOptions['java'];
  python?: ApplicationOptions['python'];
  strict?: boolean | undefined;

  // Where packages and the loader come from.
  /** Pull missing packages (Capstan --pull-missing). Default true here. */
  pullMissing?: boolean | undefined;
  offline?: boolean | undefined;
  remote?: 'github' | 's3' | undefined;
  releasesUrl?: string | undefined;
  releaseTag?: string | undefined;
  repoUrl?: string | undefined;
  /** Capstan root (default $CAPSTAN_ROOT, else ~/.capstan). */
  root?: string | undefined;

  // The VM.
  memory?: string | number | undefined;
  cpus?: number | undefined;
  /** Port forwards `host:guest` (host 0: a free port). */
  forward?: ForwardSpec[] | undefined;
  network?: NetworkMode | undefined;
  networkDevice?: string | undefined;
  mac?: string | undefined;
  volumes?: VolumeSpec[] | 'package' | undefined;
  /** Run-time command line, in the instance only (Capstan -e). */
  execute?: string | undefined;
  /** Kernel ELF for -kernel, or false for the disk boot. */
  kernel?: string | false | undefined;
  accel?: BootOptions['accel'];
  /** Instance name. Default the folder name. */
  name?: string | undefined;
  /** Readiness: a console line to wait for (default: the first line). */
  ready?: BootOptions['ready'];
  readyTimeout?: number | undefined;
  qemu?: string | undefined;

  // Watch.
  /** Globs that trigger a rebuild. Default: `files`. */
  watch?: string | string[] | undefined;
  /** ms of quiet before a rebuild (several saves → one). Default 200. */
  debounce?: number | undefined;

  // Output.
  verbose?: boolean | undefined;
  silent?: boolean | undefined;
  events?: EventSink | undefined;
}

/** Where the image goes by default: `build/<folder>.<ext>`. */
export function defaultImagePath(cwd: string, format: ImageFormat | undefined): string {
  const ext = ({ qcow2: 'qcow2', raw: 'raw', vmdk: 'vmdk', vdi: 'vdi', gce: 'tar.gz' } as Record<string, string>)[format ?? 'qcow2'] ?? 'img';
  return path.join(cwd, 'build', `${path.basename(cwd)}.${ext}`);
}

/** The `capstan` field of the project's package.json, when there is one. */
export function packageJsonOptions(cwd: string): UnikernelOptions {
  let text: string;
  try { text = readFileSync(path.join(cwd, 'package.json'), 'utf8'); } catch { return {}; }
  let json: unknown;
  try { json = JSON.parse(text); } catch { return {}; } // resolveManifest reports a broken package.json where it matters
  const field = (json as { capstan?: unknown } | null)?.capstan;
  if (field === undefined) return {};
  if (!field || typeof field !== 'object' || Array.isArray(field)) {
    throw new OptionsError('the "capstan" field of package.json must be an object of options', {
      code: 'E_OPTIONS', file: path.join(cwd, 'package.json'), hint: 'e.g. "capstan": { "memory": "512M", "forward": ["8080:8080"] }',
    });
  }
  return field as UnikernelOptions;
}

/** Later sources win; `undefined` never overrides. */
export function mergeOptions(...sources: Array<UnikernelOptions | undefined>): UnikernelOptions {
  const out: Record<string, unknown> = {};
  for (const s of sources) for (const [k, v] of Object.entries(s ?? {})) if (v !== undefined) out[k] = v;
  return out as UnikernelOptions;
}

export interface StepOptions {
  cwd: string;
  files: string[];
  exclude: string[];
  out: string;
  manifest: ResolveManifestOptions;
  packages: FetchPackagesOptions;
  layout: LayoutFilesOptions;
  image: WriteImageOptions;
  vm: BootOptions;
  name: string;
}

/** Splits the flat options into each step's. */
export function stepOptions(o: UnikernelOptions): StepOptions {
  const cwd = path.resolve(o.cwd ?? process.cwd());
  const log = { verbose: o.verbose, silent: o.silent, events: o.events };
  const remote = { root: o.root, offline: o.offline, remote: o.remote, releasesUrl: o.releasesUrl, releaseTag: o.releaseTag, repoUrl: o.repoUrl };
  const out = path.resolve(cwd, o.out ?? defaultImagePath(cwd, o.format));
  const name = o.name ?? path.basename(cwd);
  return {
    cwd,
    files: typeof o.files === 'string' ? [o.files] : o.files ?? ['**'],
    exclude: [...(o.exclude ?? []), ...excludeOutput(cwd, out)],
    out,
    name,
    manifest: {
      ...log, cwd, package: o.package, run: o.run, boot: o.boot, env: o.env, require: o.require, bootstrap: o.bootstrap,
      ignore: o.ignore, node: o.node, java: o.java, python: o.python, strict: o.strict,
    },
    packages: { ...log, ...remote, pullMissing: o.pullMissing ?? true },
    layout: { ...log },
    image: { ...log, ...remote, out, format: o.format, size: o.size, loader: o.loader },
    vm: {
      ...remote, silent: o.silent, events: o.events, name, memory: o.memory, cpus: o.cpus, forward: o.forward, network: o.network,
      networkDevice: o.networkDevice, mac: o.mac, volumes: o.volumes === 'package' ? { package: cwd } : o.volumes, execute: o.execute, kernel: o.kernel,
      accel: o.accel, ready: o.ready, readyTimeout: o.readyTimeout, qemu: o.qemu, replace: true,
    } as BootOptions,
  };
}

/** The image (and its temp files) must not be read back into itself when it lies inside the project. */
function excludeOutput(cwd: string, out: string): string[] {
  const rel = path.relative(cwd, path.dirname(out));
  if (rel.startsWith('..') || path.isAbsolute(rel)) return [];
  const dir = rel === '' ? '' : `${rel.split(path.sep).join('/')}/`;
  return [`${dir}${path.basename(out)}`, `${dir}.${path.basename(out)}.*`];
}
