// Capstan's `build [image-name]`, the legacy Capstanfile mode: run the Capstanfile's `build`
// command (split on whitespace, no shell, as Capstan runs it), then compose the folder's
// `rootfs` and `files` with its `cmdline` into the local repository. Capstan copies a `base`
// image and uploads the files into it through a VM; here the image is written directly from the
// loader, like every other compose: `base` is not used, and no package goes in unless asked for
// (`require`, `bootstrap`), where `package compose` of the same folder adds osv.bootstrap.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ManifestError } from '../errors.js';
import type { ImageFormat } from '../image/disk.js';
import { parseCapstanfile } from '../manifest/capstanfile.js';
import { hostPathKind } from '../manifest/load.js';
import { composedImageIndex, writeImageIndex } from '../repository/images.js';
import { checkRepositoryName } from '../repository/remote/remote.js';
import { capstanRoot, repositoryImagePath } from '../repository/root.js';
import { buildOptions, composeWith, type ComposedImage } from './compose.js';
import type { UnikernelOptions } from './options.js';

/** Capstan's hypervisors, and the disk format each one's image file is. */
const FORMAT_OF_HYPERVISOR: Record<string, ImageFormat> = { qemu: 'qcow2', vbox: 'vdi', vmw: 'vmdk', gce: 'gce' };

export interface CapstanfileBuildOptions extends Omit<UnikernelOptions, 'out' | 'format' | 'run' | 'package'> {
  /** Image name in the repository. Default: the folder's name, as in Capstan. */
  name?: string | undefined;
  /** `qemu` (default: a qcow2 `<name>.qemu`), `vbox` (VDI), `vmw` (VMDK) or `gce` (a GCE tarball). */
  hypervisor?: string | undefined;
}

export interface CapstanfileBuild extends ComposedImage {
  /** The image name it was stored under. */
  name: string;
  /** The build command that ran, if the Capstanfile has one. */
  command?: string[] | undefined;
}

/** The image name `capstan build` gives a folder: its own name. */
export function defaultBuildName(cwd: string): string {
  return path.basename(path.resolve(cwd));
}

/** Runs the Capstanfile's build command, then composes the image into the local repository. */
export async function capstanfileBuild(options: CapstanfileBuildOptions = {}): Promise<CapstanfileBuild> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const hypervisor = options.hypervisor ?? 'qemu';
  const format = FORMAT_OF_HYPERVISOR[hypervisor];
  if (!format) {
    throw new ManifestError(`'${hypervisor}' is not a hypervisor an image can be built for here`, {
      code: 'E_HYPERVISOR', hint: `Use one of: ${Object.keys(FORMAT_OF_HYPERVISOR).join(', ')}.`,
    });
  }
  const name = checkRepositoryName(options.name ?? defaultBuildName(cwd), 'image', true);
  const file = path.join(cwd, 'Capstanfile');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ManifestError(missing ? 'there is no Capstanfile here' : `cannot read the Capstanfile: ${(error as Error).message}`, {
      code: missing ? 'E_CAPSTANFILE_MISSING' : 'E_MANIFEST_READ', file, cause: error,
      hint: missing ? 'Run it in the folder that has the Capstanfile; for a package folder (meta/package.yaml) use package compose.' : 'Check the file permissions.',
    });
  }
  // Parsed here for the build command; the compose reads it again (after the build, whose
  // outputs the `files` entries may name).
  const capstanfile = parseCapstanfile(text, file, { root: cwd, pathKind: hostPathKind });
  if (capstanfile.build) await runBuildCommand(capstanfile.build, cwd, file);
  const root = capstanRoot(options.root);
  const out = repositoryImagePath(name, root, hypervisor);
  const { name: _name, hypervisor: _hypervisor, ...compose } = options;
  // No packages unless asked for: Capstan's build takes what its base image has and adds only
  // the folder's files (the ROFS skeleton stands in for the base's /etc).
  const image = await composeWith(buildOptions({ bootstrap: false, ...compose, cwd, root, out, format }));
  const index = await composedImageIndex(image.loader);
  await writeImageIndex(path.dirname(out), { ...index, build: capstanfile.build?.join(' ') ?? '' });
  return { ...image, name, command: capstanfile.build };
}

/** Runs `command` in `cwd` as Capstan does (no shell); a failure carries the end of what it printed. */
async function runBuildCommand(command: string[], cwd: string, capstanfile: string): Promise<void> {
  const [program, ...args] = command as [string, ...string[]];
  // stdout and stderr together, in the order they came (Capstan's CombinedOutput); only the
  // end is shown, so only the last 64 KiB are kept.
  let output = '';
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException }>((resolve) => {
    const child = spawn(program, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (chunk: Buffer) => { output = (output + chunk.toString('utf8')).slice(-65536); };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  if (!ended.error && ended.code === 0) return;
  const tail = output.trimEnd().split('\n').slice(-20).join('\n');
  const notFound = ended.error?.code === 'ENOENT';
  const how = notFound ? 'was not found' : ended.error ? `could not be started: ${ended.error.message}`
    : ended.signal ? `was killed by ${ended.signal}` : `failed (exit status ${ended.code})`;
  throw new ManifestError(`the build command \`${command.join(' ')}\` ${how}`, {
    code: 'E_CAPSTANFILE_BUILD_FAILED', file: capstanfile,
    hint: notFound
      ? `Install ${program}, or fix the \`build\` line (it runs without a shell, split on spaces).`
      : `${tail ? `It printed:\n${tail}\n` : ''}Fix the build, or run it by hand to see more.`,
  });
}

export interface JarBuildOptions extends Omit<CapstanfileBuildOptions, 'files' | 'hypervisor'> {
  /** The runnable jar (Main-Class in its manifest), relative to `cwd`. */
  jar: string;
}

/**
 * Capstan's `run <file>.jar`: an image of the jar alone, named after it (`app.jar` → `app`),
 * booting `java -jar /<jar>`. Capstan builds it on the `cloudius/osv-openjdk` base image; the
 * host's JDK stands in for that here, as for `runtime: java` (lib/runtimes/java.ts).
 */
export async function jarBuild(options: JarBuildOptions): Promise<CapstanfileBuild> {
  const jar = path.resolve(options.cwd ?? process.cwd(), options.jar);
  const jarName = path.basename(jar);
  const name = checkRepositoryName(options.name ?? jarName.replace(/\.jar$/, ''), 'image', true);
  if (!hostPathKind(jar)) {
    throw new ManifestError('no such jar', { code: 'E_JAR_MISSING', file: jar, hint: 'Give the path of a runnable jar (built with Main-Class), e.g. capstan run target/app.jar.' });
  }
  const { jar: _jar, name: _name, java, cwd: _cwd, ...compose } = options;
  const root = capstanRoot(options.root);
  const out = repositoryImagePath(name, root);
  const image = await composeWith(buildOptions({
    bootstrap: false, ...compose, root, out, format: 'qcow2',
    cwd: path.dirname(jar), files: [jarName], java: { ...(typeof java === 'object' ? java : {}), main: jarName },
  }));
  await writeImageIndex(path.dirname(out), await composedImageIndex(image.loader));
  return { ...image, name };
}
