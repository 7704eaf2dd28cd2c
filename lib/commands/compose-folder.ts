// Capstan's plain `compose <image> <path>`: an image of a raw folder (its whole tree at the
// image root) or of a single file (at /<basename>), with no package metadata, no packages and
// no ignore rules — what Capstan uploads. The layout step still adds the ROFS skeleton and the
// folders nobody provided, so the image boots under a real OSv. Without a command line the
// loader's own is kept, as Capstan leaves it.
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Vinyl from 'vinyl';
import { annotate, capstanOf } from '../carrier.js';
import { ImageError } from '../errors.js';
import type { EventSink } from '../events.js';
import type { ImageFormat } from '../image/disk.js';
import { decodeCmdline } from '../image/cmdline.js';
import { DEFAULT_LOADER, loaderReference, readLoader } from '../image/loader.js';
import { ensureLoader, RepositoryClient } from '../repository/pull.js';
import type { RemoteOptions } from '../repository/remote/settings.js';
import { layoutFiles } from '../steps/layout-files.js';
import { writeImage } from '../steps/write-image.js';
import { src } from '../vinyl/src.js';
import type { ComposedImage } from './compose.js';

export interface ComposeFolderOptions extends Omit<RemoteOptions, 'silent'> {
  /** The image to write. Required. */
  out: string;
  /** Loader name or path. Default `osv-loader` (pulled when missing, unless offline). */
  loader?: string | undefined;
  /** The boot command line. Default: the loader's own. */
  cmdline?: string | undefined;
  format?: ImageFormat | undefined;
  /** Root filesystem: `rofs` (default) or `zfs`. */
  fs?: 'rofs' | 'zfs' | undefined;
  /** Virtual disk size (`10G`, `512M`); default just large enough. */
  size?: string | number | undefined;
  verbose?: boolean | undefined;
  silent?: boolean | undefined;
  events?: EventSink | undefined;
}

/** Writes an image of `source` (a folder or one file). */
export async function composeFolder(source: string, options: ComposeFolderOptions): Promise<ComposedImage> {
  const from = path.resolve(source);
  let isDir: boolean;
  try {
    const st = await stat(from);
    if (!st.isDirectory() && !st.isFile()) throw new Error('neither a file nor a folder');
    isDir = st.isDirectory();
  } catch {
    throw new ImageError('does not exist (or is neither a file nor a folder)', { code: 'E_SRC_NOT_FOUND', file: from, hint: 'Give the folder or the file to put into the image.' });
  }
  const out = path.resolve(options.out);
  await mkdir(path.dirname(out), { recursive: true });
  const log = { verbose: options.verbose, silent: options.silent, events: options.events };
  const remote: RemoteOptions = { ...options, silent: options.silent };
  let cmdline = options.cmdline;
  let loader = options.loader ?? DEFAULT_LOADER;
  if (cmdline === undefined) {
    // The loader's own command line: read it from the loader, pulled first when it is named.
    const ref = loaderReference(loader, options.root);
    loader = await ensureLoader(ref.path, ref.name, new RepositoryClient(remote));
    cmdline = decodeCmdline((await readLoader(loader)).bytes);
    if (cmdline === '') {
      throw new ImageError('the loader has no command line of its own, and none was given', {
        code: 'E_CMDLINE_MISSING', file: loader, hint: 'Give one with -c / --command_line, e.g. -c /hello.',
      });
    }
  }
  const cwd = isDir ? from : path.dirname(from);
  const globs = isDir ? ['**'] : [path.basename(from).replace(/[*?[\]{}()!+@\\]/g, '\\$&')];
  const rel = path.relative(cwd, out);
  const ignore = rel.startsWith('..') || path.isAbsolute(rel) ? [] : [rel.split(path.sep).join('/'), `${path.dirname(rel).split(path.sep).join('/')}/.${path.basename(out)}.*`];
  let image: Vinyl | undefined;
  await pipeline([
    src(globs, { cwd, dot: true, ignore }) as unknown as Readable,
    // Each file lands where it is in the folder: no ignore rules, no meta/ handling.
    new Transform({
      objectMode: true,
      transform(file: Vinyl, _e, done) {
        if (file.relative === '') { done(); return; }
        annotate(file, { guestPath: `/${file.relative.split(path.sep).join('/')}` });
        done(null, file);
      },
    }),
    layoutFiles(log),
    writeImage({ ...remote, ...log, out, loader, cmdline, format: options.format, size: options.size, fs: options.fs }),
    new Writable({ objectMode: true, write(file: Vinyl, _e, done) { if (capstanOf(file)?.kind === 'image') image = file; done(); } }),
  ]);
  const info = image && capstanOf(image)?.image;
  if (!image || !info) throw new ImageError('the build ended without an image', { code: 'E_NO_IMAGE', file: out });
  return { ...info, path: image.path };
}
