// One-shot builds for scripts and other build tools (no gulp needed): compose(options) writes
// the image, run(options) composes and boots it. Both are the five steps in one pipeline(),
// the same the gulp tasks run.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Vinyl from 'vinyl';
import { capstanOf, type ImageInfo } from '../carrier.js';
import { ImageError } from '../errors.js';
import { fetchPackages } from '../steps/fetch-packages.js';
import { layoutFiles } from '../steps/layout-files.js';
import { resolveManifest } from '../steps/resolve-manifest.js';
import { writeImage } from '../steps/write-image.js';
import { src } from '../vinyl/src.js';
import { boot } from '../vm/boot.js';
import type { Vm } from '../vm/vm.js';
import { reportVm } from '../vm/vm-events.js';
import { mergeOptions, packageJsonOptions, stepOptions, type StepOptions, type UnikernelOptions } from './options.js';

export interface ComposedImage extends ImageInfo {
  /** Where the image is. */
  path: string;
}

/** The source and the four image steps, ready for pipeline(): what `gulp unikernel` runs. */
export function imageSteps(s: StepOptions, source?: Readable): [Readable, ...Transform[]] {
  return [
    source ?? src(s.files, { cwd: s.cwd, dot: true, ignore: s.exclude }) as unknown as Readable,
    resolveManifest(s.manifest), fetchPackages(s.packages), layoutFiles(s.layout), writeImage(s.image),
  ];
}

/** Options as a build sees them: package.json's `capstan` field, then these. */
export function buildOptions(options: UnikernelOptions = {}): StepOptions {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  return stepOptions(mergeOptions(packageJsonOptions(cwd), options, { cwd }));
}

/** Composes the image; resolves with where it is and what it holds. */
export async function compose(options: UnikernelOptions = {}): Promise<ComposedImage> {
  return composeWith(buildOptions(options));
}

/** How a build is fed (watch mode replays what an earlier build listed or laid out). */
export interface ComposeHow {
  /** Replaces the listing of `files`. */
  source?: Readable | undefined;
  /** Sees what the source gives, before the steps. */
  tap?: Transform | undefined;
  /** Sees what layoutFiles gives, before writeImage. */
  laidOutTap?: Transform | undefined;
  /** Laid-out entries to write: replaces the source and the steps before writeImage. */
  laidOut?: Readable | undefined;
}

/**
 * compose() with options already split. `source` replaces the listing of `files` (watch mode
 * replays one); `tap` sees what the source gives before the steps do.
 */
export async function composeWith(s: StepOptions, how: ComposeHow = {}): Promise<ComposedImage> {
  await mkdir(path.dirname(s.out), { recursive: true });
  let image: Vinyl | undefined;
  const sink = new Writable({
    objectMode: true,
    write(file: Vinyl, _encoding, done) {
      if (capstanOf(file)?.kind === 'image') image = file;
      done();
    },
  });
  if (how.laidOut) {
    await pipeline([how.laidOut, writeImage(s.image), sink] as unknown as NodeJS.ReadWriteStream[]);
  } else {
    const [source, ...steps] = imageSteps(s, how.source);
    const write = steps.pop()!;
    await pipeline([source, ...(how.tap ? [how.tap] : []), ...steps, ...(how.laidOutTap ? [how.laidOutTap] : []), write, sink] as unknown as NodeJS.ReadWriteStream[]);
  }
  const info = image && capstanOf(image)?.image;
  if (!image || !info) throw new ImageError('the build ended without an image', { code: 'E_NO_IMAGE', file: s.out });
  return { ...info, path: image.path };
}

/** Composes the image and boots it; resolves with the VM once QEMU runs (`vm.ready`, `vm.exited` tell the rest). */
export async function run(options: UnikernelOptions = {}): Promise<Vm> {
  const s = buildOptions(options);
  const image = await composeWith(s);
  const started = Date.now();
  const vm = await boot({ path: image.path, info: image }, s.vm);
  reportVm(vm, options.events, started);
  return vm;
}

