// bootVm: for each disk image that comes down the stream (writeImage's image vinyl, or any
// vinyl whose path is a disk image), start a VM under QEMU, wait until it is ready, and pass
// the file on; other files pass through untouched. The stream ends when every VM has ended
// (`until: 'exit'`, like `capstan run`), or once every VM is ready (`until: 'ready'`), after
// stopping them unless they are `detached`. An error or a destroyed stream stops them too.
import type { Transform } from 'node:stream';
import { objectTransform } from 'through2';
import type Vinyl from 'vinyl';
import { capstanOf } from '../carrier.js';
import { VmError, toPluginError } from '../errors.js';
import { stepLogger, type LogOptions } from '../log.js';
import { boot, type BootOptions } from '../vm/boot.js';
import type { Vm, VmExit } from '../vm/vm.js';
import { reportVm } from '../vm/vm-events.js';

export interface BootVmOptions extends BootOptions, LogOptions {
  /**
   * When the stream ends: `exit` — when every VM has ended (default, unless `detached`);
   * `ready` — once every VM is ready, stopping the VMs that are not `detached`.
   */
  until?: 'exit' | 'ready' | undefined;
  /** Called with each VM as soon as it starts (before it is ready). */
  onVm?: ((vm: Vm, file: Vinyl) => void) | undefined;
  /** Time a VM gets to power off when the step stops it, in ms. Default 5000. */
  stopGraceMs?: number | undefined;
}

const IMAGE_EXTENSIONS = /\.(qemu|img|raw|qcow2)$/i;

/** True for the vinyls bootVm boots: writeImage's images and disk-image files without our annotation. */
function isImage(file: Vinyl): boolean {
  const meta = capstanOf(file);
  if (meta) return meta.kind === 'image';
  return !file.isDirectory() && IMAGE_EXTENSIONS.test(file.path);
}

export function bootVm(options: BootVmOptions = {}): Transform {
  const opts = normaliseOptions(options);
  const log = stepLogger('bootVm', options);
  const vms: Vm[] = [];
  const stopAll = async () => {
    await Promise.all(vms.filter((vm) => !vm.detached).map((vm) => vm.stop({ graceMs: opts.stopGraceMs ?? 5000 })));
  };
  const stream = objectTransform(async function* (files: AsyncIterable<Vinyl>) {
    let current: string | undefined;
    let images = 0;
    try {
      for await (const file of files) {
        if (!isImage(file)) { yield file; continue; }
        current = file.path;
        const started = Date.now();
        images++;
        const manifest = capstanOf(file)?.manifest;
        const vm = await boot({ path: file.path, info: capstanOf(file)?.image }, {
          ...opts,
          // The package's volumes are those of the application the image was built from.
          volumes: opts.volumes === 'package' && manifest ? { package: manifest.root } : opts.volumes,
          // One `name` for several images: the second is <name>-2, and so on.
          name: opts.name !== undefined && images > 1 ? `${opts.name}-${images}` : opts.name,
          echo: opts.echo ?? !options.silent,
        });
        vms.push(vm);
        reportVm(vm, options.events, started);
        opts.onVm?.(vm, file);
        await vm.ready;
        const ports = vm.forwards.map((f) => `${f.address}:${f.host}→${f.guest}/${f.protocol}`).join(', ');
        log.note(`${vm.name} ready in ${((Date.now() - started) / 1000).toFixed(2)} s ` +
          `(${vm.accel}${vm.kernel ? ', -kernel' : ''}, pid ${vm.pid}${ports ? `, ${ports}` : ''})`);
        yield file;
      }
      current = undefined;
      if (opts.until === 'exit') {
        const exits = await Promise.all(vms.map((vm) => vm.exited.then((exit) => ({ vm, exit }))));
        for (const { vm, exit } of exits) {
          log.note(`${vm.name} ended: ${describeExit(exit)}`);
          if (exit.exitCode !== 0 && !opts.debugExit && exit.endedBy === 'guest') {
            throw new VmError(`VM ${vm.name} ended with ${describeExit(exit)}`, {
              code: 'E_VM_FAILED', file: vm.image,
              hint: exit.stderr ? `QEMU said: ${exit.stderr.split('\n').slice(-3).join(' | ')}` : 'See the console output above.',
            });
          }
        }
      } else {
        await stopAll();
      }
    } catch (error) {
      await stopAll().catch(() => {});
      throw toPluginError(error, current);
    }
  }) as unknown as Transform;
  // A stream torn down from outside (an error elsewhere in the pipeline) must not leave VMs.
  stream.once('close', () => { void stopAll().catch(() => {}); });
  return stream;
}

function describeExit(exit: VmExit): string {
  const why = exit.reason ? `, ${exit.reason}` : '';
  if (exit.signal) return `signal ${exit.signal} (${exit.endedBy}${why})`;
  const debug = exit.debugExitCode !== undefined ? `, guest code ${exit.debugExitCode}` : '';
  return `status ${exit.exitCode}${debug} (${exit.endedBy}${why})`;
}

function normaliseOptions(options: BootVmOptions): BootVmOptions {
  try {
    if (options.until !== undefined && options.until !== 'exit' && options.until !== 'ready') {
      throw new VmError(`unknown \`until\` value "${String(options.until)}"`, { code: 'E_OPTIONS', hint: 'Use "exit" or "ready".' });
    }
    return { ...options, until: options.until ?? (options.detached ? 'ready' : 'exit') };
  } catch (error) {
    throw toPluginError(error);
  }
}
