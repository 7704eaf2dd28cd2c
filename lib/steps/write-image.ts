// writeImage: consumes laid-out entries and writes one bootable OSv disk (loader, MBR entry,
// command line, ROFS), streaming file data into the image as entries arrive. Emits one vinyl
// for the image (kind 'image', `capstan.image` = ImageInfo); the image itself is already at
// `out` (the vinyl has null contents, so nothing is read back into memory).
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Transform } from 'node:stream';
import { objectTransform } from 'through2';
import Vinyl from 'vinyl';
import { annotate, APP_LAYER, capstanOf } from '../carrier.js';
import { CapstanError, ImageError, toPluginError } from '../errors.js';
import { checkCmdline } from '../image/cmdline.js';
import { ImageComposer } from '../image/compose.js';
import { parseDiskSize } from '../image/size.js';
import { stepLogger, wantsProgress, type LogOptions } from '../log.js';
import { contentChunks, type EventStream } from './contents.js';
import { HOST_READ_BUFFER_BYTES, hostFileChunks } from './host-file.js';
import type { Manifest } from '../manifest/types.js';

export interface WriteImageOptions extends LogOptions {
  /** Path of the image to write (its folder must exist). Required. */
  out: string;
  /** Loader image: a path, or a name in the local repository. Default `osv-loader`. */
  loader?: string | undefined;
  /** Capstan root for loader names (default $CAPSTAN_ROOT, else ~/.capstan). */
  root?: string | undefined;
  /** `qcow2` (default) or `raw`. */
  format?: 'raw' | 'qcow2' | undefined;
  /** Boot command line; default: the manifest's boot command. */
  cmdline?: string | undefined;
  /** Virtual disk size, Capstan syntax (`10G`, `512M`) or bytes. Default: just large enough. */
  size?: string | number | undefined;
  /** Keep permission bits in ROFS inodes (OSv ignores them). Default false. */
  permissions?: boolean | undefined;
}

/** Kinds that describe the build rather than being files of the image. */
const NOT_ENTRIES = new Set(['manifest', 'package']);

export function writeImage(options: WriteImageOptions): Transform {
  const opts = normaliseOptions(options);
  const log = stepLogger('writeImage', options);
  const stream: Transform = objectTransform(async function* (files: AsyncIterable<Vinyl>) {
    const started = Date.now();
    let composer: ImageComposer | undefined;
    let manifest: Manifest | undefined;
    let current: string | undefined;
    let count = 0;
    let streamed = 0;
    let shadowed = 0;
    const progress = wantsProgress() && !options.silent ? startProgress(() => `${count} entries, ${(streamed / 1048576).toFixed(0)} MiB`) : undefined;
    try {
      for await (const { file, content, release } of readAhead(files, (n) => { streamed += n; })) {
        const meta = capstanOf(file);
        manifest ??= meta?.manifest;
        if (meta?.kind === 'image') { yield file; continue; }
        if (meta && NOT_ENTRIES.has(meta.kind)) continue;
        current = file.path;
        composer ??= await ImageComposer.open(opts);
        const guestPath = meta?.guestPath ?? '/' + file.relative.split(path.sep).join('/');
        const entry = {
          layer: meta?.layer ?? meta?.package?.layer ?? APP_LAYER,
          mode: meta?.mode ?? (file.stat ? file.stat.mode & 0o7777 : undefined),
          source: file.path,
        };
        let result;
        if (file.isSymbolic()) {
          if (typeof file.symlink !== 'string') throw new ImageError('is a symlink without a target', { code: 'E_SYMLINK_TARGET', file: file.path });
          result = composer.addSymlink(guestPath, file.symlink, entry);
        } else if (file.isDirectory()) {
          result = composer.addDirectory(guestPath, entry);
        } else if (file.isBuffer() || content) {
          try {
            result = await composer.addFile(guestPath, content ?? file.contents as Buffer, entry);
          } catch (error) {
            if (error instanceof CapstanError) throw error;
            throw new ImageError(`could not read the file while writing the image: ${(error as Error).message}`, {
              code: 'E_READ_FAILED', file: file.path, cause: error, hint: 'Was it removed or changed during the build? Run the build again.',
            });
          }
          // A shadowed file's content was never read: close it. (Only then: destroying
          // vinyl-fs stream contents that were read to their end kept their data alive, +180 MB
          // of peak RSS on the bench tree.)
          if (result === 'shadowed') await release();
          if (file.isBuffer()) streamed += file.contents.length;
        } else {
          throw new ImageError('has no contents', {
            code: 'E_NO_CONTENTS', file: file.path,
            hint: 'Read files with src(glob, {encoding: false}), or with {read: false} so that writeImage reads regular files itself; a vinyl without contents needs the `stat` of a regular file.',
          });
        }
        count++;
        if (result === 'shadowed') shadowed++;
        log.detail(`${guestPath}${result === 'added' ? '' : ` (${result})`}`);
      }
      current = undefined;
      // through2 ends `files` quietly when the stream is destroyed (an error up- or downstream
      // in the pipeline): that is not the end of the input, so no image may be completed.
      if (stream.destroyed) return;
      const cmdline = opts.cmdline ?? (manifest?.bootCommand ? manifest.bootCommand : undefined);
      if (cmdline === undefined) {
        throw new ImageError('no command line for the image', {
          code: 'E_CMDLINE_MISSING',
          hint: 'Pass `cmdline` to writeImage (e.g. { cmdline: "/hello" }), or run resolveManifest first so the manifest\'s boot command is used.',
        });
      }
      composer ??= await ImageComposer.open(opts);
      const { info, rofs } = await composer.finish(cmdline);
      const image = new Vinyl({ cwd: process.cwd(), base: path.dirname(composer.out), path: composer.out, contents: null, stat: await stat(composer.out) });
      annotate(image, { kind: 'image', image: info, manifest });
      progress?.stop();
      log.summary(`${composer.out}: ${info.format}, ${rofs.files} files (${formatBytes(rofs.fileBytes)}), ` +
        `${rofs.directories} folders, ${rofs.symlinks} symlinks${shadowed ? `, ${shadowed} entries overridden` : ''} in ${((Date.now() - started) / 1000).toFixed(2)} s`);
      yield image;
    } catch (error) {
      throw toPluginError(error, current);
    } finally {
      progress?.stop();
      await composer?.abort(); // no-op once finished; removes the temp file otherwise
    }
  }) as unknown as Transform;
  return stream;
}

/** Validates options up front (bad options throw when the stream is created). */
function normaliseOptions(options: WriteImageOptions): WriteImageOptions {
  try {
    if (!options || typeof options.out !== 'string' || options.out.length === 0) {
      throw new ImageError('writeImage needs `out`, the path of the image to write', { code: 'E_OPTIONS', hint: 'e.g. writeImage({ out: "build/app.qemu" })' });
    }
    if (options.format !== undefined && options.format !== 'raw' && options.format !== 'qcow2') {
      throw new ImageError(`unknown image format "${String(options.format)}"`, { code: 'E_FORMAT', hint: 'Use "raw" or "qcow2".' });
    }
    if (options.cmdline !== undefined) checkCmdline(options.cmdline);
    if (options.size !== undefined) parseDiskSize(options.size);
    return { ...options };
  } catch (error) {
    throw toPluginError(error);
  }
}

/** Stream contents being read ahead: at most this many files … */
const READ_AHEAD_FILES = 8;
/** … and this many bytes of each before the writer gets to it. */
const READ_AHEAD_BYTES = 256 * 1024;

type Chunk = Uint8Array | string;
interface Primed { chunks: Chunk[]; rest?: AsyncGenerator<Chunk> | undefined; error?: unknown }
interface Ahead { file: Vinyl; primed?: Promise<Primed> | undefined }

/**
 * A vinyl whose data writeImage reads from `file.path` itself: null contents (src with
 * `read: false`) and the stat of a regular file. Vinyls that describe the build (the image,
 * the manifest, package descriptors) are never read.
 */
function readsFromHost(file: Vinyl): boolean {
  if (!file.isNull() || typeof file.stat?.isFile !== 'function' || !file.stat.isFile()) return false;
  const kind = capstanOf(file)?.kind;
  return kind !== 'image' && !(kind && NOT_ENTRIES.has(kind));
}

/**
 * Passes files through in order, starting to read the contents of the next few stream files
 * (vinyl-fs `buffer: false`) while the current one is written: opening and reading many small
 * files one after another is latency-bound. Memory stays bounded (files × bytes above). Host
 * files (`read: false`) are read when their turn comes. `release` closes what the writer did
 * not read (a shadowed file).
 */
async function* readAhead(files: AsyncIterable<Vinyl>, add: (n: number) => void): AsyncGenerator<{ file: Vinyl; content?: AsyncIterable<Chunk> | undefined; release: () => Promise<void> }> {
  const queue: Ahead[] = [];
  const pace = pacer();
  // One read buffer for every host file of this stream: RofsBuilder.addFile writes each chunk
  // into the image before it asks for the next, and files are added one at a time.
  const scratch = Buffer.allocUnsafe(HOST_READ_BUFFER_BYTES);
  const take = (item: Ahead) => ({
    file: item.file,
    content: item.primed ? replay(item.primed) : readsFromHost(item.file) ? fromHost(item.file, scratch, add, pace) : undefined,
    release: async () => { await dispose(item); },
  });
  try {
    for await (const file of files) {
      const primed = file.isStream() ? prime(contentChunks(file.contents as unknown as EventStream, add), READ_AHEAD_BYTES) : undefined;
      queue.push({ file, primed });
      if (queue.length > READ_AHEAD_FILES) yield take(queue.shift()!);
    }
    while (queue.length > 0) yield take(queue.shift()!);
  } finally {
    // Stopped early (an error): release the files still being read.
    for (const item of queue) void dispose(item);
  }
}

async function dispose(item: Ahead): Promise<void> {
  const stream = item.file.contents as { destroy?: () => void } | null;
  stream?.destroy?.();
  await (await item.primed)?.rest?.return(undefined);
}

/**
 * A host file's data (read: false), read synchronously when the writer gets to it (see
 * host-file.ts for why); a shadowed file is never opened.
 */
async function* fromHost(file: Vinyl, scratch: Buffer, add: (n: number) => void, pace: () => Promise<void>): AsyncGenerator<Uint8Array> {
  for (const chunk of hostFileChunks(file.path, file.stat, scratch)) {
    add(chunk.length);
    yield chunk;
    await pace();
  }
}

/** Lets the event loop run (timers, signals, other streams) once 20 ms of blocking reads have passed (checked after each chunk). */
function pacer(): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < 20) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
  };
}

async function prime(source: AsyncGenerator<Chunk>, limit: number): Promise<Primed> {
  const chunks: Chunk[] = [];
  let n = 0;
  try {
    while (n < limit) {
      const r = await source.next();
      if (r.done) return { chunks };
      chunks.push(r.value);
      n += r.value.length;
    }
    return { chunks, rest: source };
  } catch (error) {
    return { chunks, error };
  }
}

async function* replay(primed: Promise<Primed>): AsyncGenerator<Chunk> {
  const { chunks, rest, error } = await primed;
  for (const chunk of chunks) yield chunk;
  if (error !== undefined) throw error;
  if (rest) yield* rest;
}

function startProgress(text: () => string): { stop(): void } {
  let shown = false;
  const timer = setInterval(() => { shown = true; process.stderr.write(`\rwriteImage: ${text()}   `); }, 500);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (shown) { process.stderr.write('\r\x1b[K'); shown = false; }
    },
  };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1073741824) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1073741824).toFixed(2)} GiB`;
}
