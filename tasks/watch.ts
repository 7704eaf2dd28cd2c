// unikernel:watch — compose and boot, then rebuild and reboot on every change. Several saves
// within the debounce are one rebuild; one rebuild runs at a time (a change during it queues
// one more); the old VM is stopped only once the new image is written, so a failed build keeps
// the last good VM running and prints the error once; Ctrl+C stops the VM and the watcher.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import globWatcher from 'glob-watcher';
import { composeWith } from '../lib/commands/compose.js';
import type { StepOptions } from '../lib/commands/options.js';
import { boot } from '../lib/vm/boot.js';
import type { Vm } from '../lib/vm/vm.js';
import { reportVm } from '../lib/vm/vm-events.js';
import { LaidOutListing, SourceListing } from '../lib/vinyl/listing.js';
import { reportFailure, type TaskConsole } from './console.js';

/** Never watched: the build output, VCS metadata, installed packages (npm install, then save to rebuild). */
const NOT_WATCHED = ['.git/**', 'node_modules/**'];

export interface WatchOptions {
  /** Globs that trigger a rebuild; default the files that go into the image. */
  watch?: string | string[] | undefined;
  /** Debounce in ms (default 200). */
  debounce?: number | undefined;
  /** Resolves to stop watching (default: SIGINT or SIGTERM). */
  until?: Promise<unknown> | undefined;
  /** Called after each rebuild (tests, editors). */
  onRebuild?: ((result: { ok: boolean; vm: Vm | undefined; error?: unknown; ms: number }) => void) | undefined;
}

/**
 * Files whose change can change what the application is (its manifest): a change to one of
 * them runs every step again; any other edit in place is only new contents.
 */
const MANIFEST_INPUTS = /^(meta\/.*|Capstanfile|\.capstanignore|package\.json|pom\.xml|build\.gradle(\.kts)?|pyproject\.toml|requirements\.txt)$/;

/**
 * One watch session: its VM, what the last build listed and laid out, the changes seen since.
 * Only state of one task run, never of the module.
 *
 * A rebuild after edits in place (no manifest input, nothing added or removed) replays the last
 * layout straight into writeImage, with the edited files re-stat'ed, and writes an incremental
 * image over the previous one: the cost follows what changed, not the size of the tree.
 * Anything else runs the steps again, over a replay of the last listing, or over a new listing
 * when files came or went.
 */
class Session {
  vm: Vm | undefined;
  rebuilds = 0;
  private readonly listing = new SourceListing();
  private readonly laidOut = new LaidOutListing();
  private listed = false;
  private changed = new Set<string>();
  private structural = false;
  private manifestChanged = false;

  /** The watcher sees changes (it is started after the first build and lists the tree first). */
  watching = false;

  constructor(private readonly s: StepOptions, private readonly out: TaskConsole) {}

  noteChange(event: string, file: string): void {
    if (event !== 'change') this.structural = true; // add, unlink, addDir, unlinkDir: list again
    else if (MANIFEST_INPUTS.test(file.split(path.sep).join('/'))) this.manifestChanged = true;
    else this.changed.add(path.resolve(this.s.cwd, file));
  }

  async build(): Promise<void> {
    await mkdir(path.dirname(this.s.out), { recursive: true });
    const changed = this.changed;
    const inPlace = this.listed && !this.structural;
    const layoutStays = inPlace && !this.manifestChanged && this.laidOut.refresh(changed);
    const replay = inPlace && this.listing.refresh(changed);
    this.changed = new Set();
    this.structural = false;
    this.manifestChanged = false;
    this.listed = false; // until this build's listings are complete
    const image = layoutStays
      ? await composeWith(this.s, { laidOut: this.laidOut.stream() })
      : await composeWith(this.s, { ...(replay ? { source: this.listing.stream() } : { tap: this.listing.record() }), laidOutTap: this.laidOut.record() });
    this.listed = true;
    // The new image is complete: now the old VM may go. A ROFS disk is read-only, so it is
    // killed rather than powered down: nothing to flush, and the new VM needs its ports.
    if (this.s.image.fs === 'zfs') await this.vm?.stop({ graceMs: 5000 }); // a writable disk: let the guest shut down
    else await this.vm?.kill();
    const started = Date.now();
    const vm = await boot({ path: image.path, info: image }, { ...this.s.vm, echo: this.out.console, replace: true });
    reportVm(vm, this.out.events, started);
    this.vm = vm;
    await vm.ready;
    this.out.line(`unikernel:watch: ${vm.name} is up (${((Date.now() - started) / 1000).toFixed(2)} s, pid ${vm.pid}${vm.forwards.length ? `, ${vm.forwards.map((f) => `${f.address}:${f.host}→${f.guest}`).join(', ')}` : ''})${this.watching ? '; watching for changes' : ''}`);
  }
}

export async function watchAndReboot(steps: StepOptions, options: WatchOptions, out: TaskConsole): Promise<void> {
  // Rebuilds reuse the previous image's data blocks (a qcow2 over it) for files that did not change.
  const s: StepOptions = (steps.image.format === undefined || steps.image.format === 'qcow2') && steps.image.fs !== 'zfs'
    ? { ...steps, image: { ...steps.image, incremental: true } }
    : steps;
  const session = new Session(s, out);
  const rebuild = async (): Promise<void> => {
    const started = Date.now();
    try {
      await session.build();
      options.onRebuild?.({ ok: true, vm: session.vm, ms: Date.now() - started });
    } catch (error) {
      // Printed once, and the last good VM keeps running.
      const failure = reportFailure(error, out);
      out.line(failure.toString());
      if (session.vm) out.line(`unikernel:watch: the build failed; ${session.vm.name} keeps running the last good image`);
      options.onRebuild?.({ ok: false, vm: session.vm, error, ms: Date.now() - started });
    }
    session.rebuilds += 1;
  };
  await rebuild();
  const globs = typeof options.watch === 'string' ? [options.watch] : options.watch ?? s.files;
  const outRel = path.relative(s.cwd, path.dirname(s.out)).split(path.sep).join('/');
  const ignored = [...NOT_WATCHED, ...s.exclude, ...(outRel && !outRel.startsWith('..') ? [`${outRel}/**`] : [])];
  // Started once the first VM is up (listing the tree beside the first build slowed it by about
  // as much as the listing takes: 1.3 s of the main thread for 10,000 files here). A save is
  // seen only once the watcher has listed the tree: "watching for changes" says when.
  const watcher = globWatcher([...globs, ...ignored.map((g) => `!${g}`)], { cwd: s.cwd, delay: options.debounce ?? 200, queue: true, ignoreInitial: true }, (done) => {
    rebuild().then(() => done(), done);
  });
  watcher.on('all', (event: string, file: string) => session.noteChange(event, file));
  await new Promise<void>((resolve) => { watcher.once('ready', () => resolve()); });
  session.watching = true;
  out.line('unikernel:watch: watching for changes');
  out.events?.({ event: 'watching', instance: session.vm?.name ?? s.name });
  const stop = options.until ?? new Promise<void>((resolve) => {
    const onSignal = () => { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); resolve(); };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  await stop;
  await watcher.close();
  await session.vm?.stop({ graceMs: 2000 });
}
