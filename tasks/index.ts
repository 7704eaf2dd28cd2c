// gulp-capstan/tasks: ready gulp tasks, shared the way gulp recommends — a custom registry.
//
//   import gulp from 'gulp'; import { CapstanRegistry } from 'gulp-capstan/tasks';
//   gulp.registry(new CapstanRegistry());   // or new CapstanRegistry({ ...options })
//
// gives `unikernel`, `unikernel:run`, `unikernel:watch`, `unikernel:clean`,
// `unikernel:instances` and `unikernel:stop`, and for other machines `unikernel:push`,
// `unikernel:stack-run` (OpenStack) and `unikernel:libvirt` (any libvirt host). Or take the tasks as functions
// (`export const { unikernel } = capstanTasks()`) for gulpfiles that export their tasks.
// Each task is the five steps in one pipeline(): copy one into a gulpfile to change it.
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import DefaultRegistry from 'undertaker-registry';
import type Vinyl from 'vinyl';
import {
  bootVm, deleteInstance, fetchPackages, jsonLines, layoutFiles, listInstances, resolveManifest, src, stopInstance, writeImage,
} from '../lib/index.js';
import { mergeOptions, packageJsonOptions, stepOptions, type StepOptions, type UnikernelOptions } from '../lib/commands/options.js';
import { BUILD_FLAGS, parseTaskFlags, RUN_FLAGS } from './flags.js';
import { reportFailure, taskConsole, type TaskConsole } from './console.js';
import { watchAndReboot } from './watch.js';
import { libvirtTask, LIBVIRT_FLAGS, PUSH_FLAGS, pushTask, STACK_RUN_FLAGS, stackRunTask, type StackTaskOptions } from './stack.js';

export interface CapstanTaskOptions extends UnikernelOptions, StackTaskOptions {
  /** Task names start with this. Default `unikernel`. */
  prefix?: string | undefined;
  /** The command line to read flags from. Default process.argv. */
  argv?: readonly string[] | undefined;
  /** Where the console goes (default process.stdout / process.stderr). */
  stdout?: NodeJS.WritableStream | undefined;
  stderr?: NodeJS.WritableStream | undefined;
}

/** A gulp task function with what `gulp --tasks` shows. */
export type CapstanTask = (() => Promise<void>) & { displayName: string; description: string; flags?: Record<string, string> };

export interface CapstanTasks {
  unikernel: CapstanTask;
  run: CapstanTask;
  watch: CapstanTask;
  clean: CapstanTask;
  instances: CapstanTask;
  stop: CapstanTask;
  push: CapstanTask;
  stackRun: CapstanTask;
  libvirt: CapstanTask;
}

/**
 * Options, lowest first: defaults, package.json's `capstan` field, these options, the command
 * line's flags. Capstan's own files (meta/*.yaml, Capstanfile) say the rest, as for Capstan.
 */
function settingsFor(options: CapstanTaskOptions): { s: StepOptions; out: TaskConsole } {
  const flags = parseTaskFlags(options.argv ? [...options.argv] : process.argv.slice(2));
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const merged = mergeOptions(packageJsonOptions(cwd), options, flags, { cwd });
  const out = taskConsole({ json: flags.json ?? false, stdout: options.stdout, stderr: options.stderr });
  const s = stepOptions({ ...merged, events: merged.events ?? out.events, verbose: merged.verbose });
  // With --json, stdout carries only events: our lines go to stderr.
  for (const step of [s.manifest, s.packages, s.layout, s.image] as Array<{ logTo?: NodeJS.WritableStream | undefined }>) step.logTo = out.logTo;
  return { s, out };
}

/** Drains the pipeline's end (the image vinyl) so the task ends when the image is written. */
function drain(onFile?: (file: Vinyl) => void): Writable {
  return new Writable({ objectMode: true, write(file: Vinyl, _e, done) { onFile?.(file); done(); } });
}

function task(name: string, description: string, flags: Record<string, string> | undefined, body: () => Promise<void>): CapstanTask {
  const fn = body as CapstanTask;
  Object.defineProperty(fn, 'name', { value: name });
  fn.displayName = name;
  fn.description = description;
  if (flags) fn.flags = flags;
  return fn;
}

export function capstanTasks(options: CapstanTaskOptions = {}): CapstanTasks {
  const prefix = options.prefix ?? 'unikernel';

  /**
   * The project's files through the steps (and `bootVm` when `boot` makes one), then `after` on
   * the image; a failure is reported once. Every composing task is this.
   */
  const compose = async (boot?: (s: StepOptions, out: TaskConsole) => Transform, after?: (s: StepOptions, out: TaskConsole) => Promise<void>) => {
    const { s, out } = settingsFor(options);
    await mkdir(path.dirname(s.out), { recursive: true });
    try {
      await pipeline([
        src(s.files, { cwd: s.cwd, dot: true, ignore: s.exclude }),
        resolveManifest(s.manifest), fetchPackages(s.packages), layoutFiles(s.layout), writeImage(s.image),
        ...(boot ? [boot(s, out)] : []),
        drain(),
      ]);
      await after?.(s, out);
    } catch (error) {
      throw reportFailure(error, out);
    }
  };

  const unikernel = task(prefix, 'Compose the project into an OSv unikernel image (build/<folder>.qcow2), pulling the loader and packages when missing', BUILD_FLAGS,
    () => compose());

  const run = task(`${prefix}:run`, 'Compose and boot the image in the foreground, the console on the terminal, until the guest exits or Ctrl+C', RUN_FLAGS,
    () => compose((s, out) => bootVm({ ...s.vm, echo: out.console, logTo: out.logTo, until: 'exit' })));

  const watch = task(`${prefix}:watch`, 'Compose, boot, then rebuild and reboot on every change (Ctrl+C stops the VM)', RUN_FLAGS, async () => {
    const { s, out } = settingsFor(options);
    await watchAndReboot(s, options, out);
  });

  const clean = task(`${prefix}:clean`, 'Remove the image, its temp files and the stopped instance of this project', undefined, async () => {
    const { s, out } = settingsFor(options);
    const dir = path.dirname(s.out);
    const base = path.basename(s.out);
    const names = await readdir(dir).catch(() => [] as string[]);
    const removed = names.filter((n) => n === base || (n.startsWith(`.${base}.`) && /\.(tmp|part|staging-raw)$/.test(n)));
    for (const n of removed) await rm(path.join(dir, n), { force: true });
    const instance = (await listInstances({ root: s.vm.root })).find((i) => i.name === s.name);
    if (instance && !instance.running) await deleteInstance(s.name, { root: s.vm.root });
    out.line(`${prefix}:clean: removed ${removed.length ? removed.join(', ') : 'nothing'} in ${dir}${instance && !instance.running ? `, instance ${s.name}` : ''}`);
  });

  const instances = task(`${prefix}:instances`, 'List the VM instances (running or persisted), as `capstan instances`', undefined, async () => {
    const { s, out } = settingsFor(options);
    const list = await listInstances({ root: s.vm.root });
    out.line(`${'Name'.padEnd(30)} ${'Status'.padEnd(10)} ${'PID'.padEnd(8)} Image`);
    for (const i of list) out.line(`${i.name.padEnd(30)} ${(i.running ? 'Running' : 'Stopped').padEnd(10)} ${String(i.pid ?? '').padEnd(8)} ${i.config?.image ?? ''}`);
  });

  const stop = task(`${prefix}:stop`, 'Stop this project\'s VM (or --name <instance>)', { '--name <instance>': 'the instance to stop (default: the project\'s)' }, async () => {
    const { s, out } = settingsFor(options);
    const outcome = await stopInstance(s.name, { root: s.vm.root });
    out.line(`${prefix}:stop: ${s.name}: ${outcome === 'gone' ? 'was not running' : `stopped (${outcome})`}`);
  });

  const argv = () => (options.argv ? [...options.argv] : process.argv.slice(2));

  const push = task(`${prefix}:push`, 'Compose the image and upload it to OpenStack Glance (capstan stack push), credentials from OS_* or clouds.yaml', { ...PUSH_FLAGS, ...BUILD_FLAGS },
    () => compose(undefined, (s, out) => pushTask(s, out, options, argv())));

  const stackRun = task(`${prefix}:stack-run`, 'Boot --count servers on OpenStack from the pushed image (capstan stack run), wait until they are ACTIVE', STACK_RUN_FLAGS, async () => {
    const { s, out } = settingsFor(options);
    try {
      await stackRunTask(s, out, options, argv());
    } catch (error) {
      throw reportFailure(error, out);
    }
  });

  const libvirt = task(`${prefix}:libvirt`, 'Compose and boot the image on a libvirt host (--uri), the console on the terminal, until the guest exits or Ctrl+C', LIBVIRT_FLAGS,
    () => compose(undefined, (s, out) => libvirtTask(s, out, options, argv())));

  return { unikernel, run, watch, clean, instances, stop, push, stackRun, libvirt };
}

/** The minimal registry surface gulp (undertaker) uses. */
export interface TaskRegistry {
  init(taker: { task(name: string, fn: CapstanTask): void }): void;
  get(name: string): unknown;
  set(name: string, fn: unknown): unknown;
  tasks(): Record<string, unknown>;
}

const RegistryBase = DefaultRegistry as unknown as new () => TaskRegistry;

/** gulp.registry(new CapstanRegistry(options)): the tasks, registered by name. */
export class CapstanRegistry extends RegistryBase {
  readonly options: CapstanTaskOptions;

  constructor(options: CapstanTaskOptions = {}) {
    super();
    this.options = options;
  }

  override init(taker: { task(name: string, fn: CapstanTask): void }): void {
    for (const fn of Object.values(capstanTasks(this.options))) taker.task(fn.displayName, fn);
  }
}

export { jsonLines };
