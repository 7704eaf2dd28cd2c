// writeImage: consumes laid-out entries and writes one bootable OSv disk (loader, MBR entry,
// command line, ROFS), streaming file data into the image as entries arrive; with `fs: 'zfs'`
// the files are gathered and sent to the OSv ZFS builder at the end (lib/image/zfs-compose.ts).
// Emits one vinyl for the image (kind 'image', `capstan.image` = ImageInfo); the image itself
// is already at `out` (the vinyl has null contents, so nothing is read back into memory).
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Transform } from 'node:stream';
import Vinyl from 'vinyl';
import { annotate, APP_LAYER, BUILD_KINDS, capstanOf } from '../carrier.js';
import { CapstanError, ImageError, toPluginError } from '../errors.js';
import { checkCmdline } from '../image/cmdline.js';
import { DEFAULT_LOADER, loaderReference } from '../image/loader.js';
import { checkImageFormat, ImageComposer, type FileEntryOptions } from '../image/compose.js';
import type { AddResult } from '../image/rofs-builder.js';
import type { ImageFormat } from '../image/disk.js';
import { incrementalSettings, type IncrementalOptions } from '../image/incremental.js';
import type { VmdkSubformat } from '../image/vmdk.js';
import { parseDiskSize } from '../image/size.js';
import { formatBytes, stepLogger, wantsProgress, type LogOptions } from '../log.js';
import type { Manifest } from '../manifest/types.js';
import { ensureLoader, ensureZfsBuilder, RepositoryClient } from '../repository/pull.js';
import { checkZfsOptions, ZfsImageComposer, zfsSummaryNote } from '../image/zfs-compose.js';
import type { ZfsEntryOptions } from '../image/zfs-files.js';
import type { ZfsLayout } from '../image/zfs-layout.js';
import type { AccelChoice } from '../vm/accel.js';
import { remoteSettings, type RemoteOptions } from '../repository/remote/settings.js';
import { ReadAhead, type AheadFile } from '../vinyl/read-ahead.js';
import { stepStream } from '../vinyl/step-stream.js';
import { hostFileFacts } from '../vinyl/source-facts.js';
import { hostFileSource } from '../vinyl/host-file.js';
import { relativeOf } from '../layout/index.js';

export interface WriteImageOptions extends LogOptions, Omit<RemoteOptions, 'events' | 'silent'> {
  /** Path of the image to write (its folder must exist). Required. */
  out: string;
  /** Loader image: a path, or a name in the local repository. Default `osv-loader`. */
  loader?: string | undefined;
  /** Capstan root for loader names (default $CAPSTAN_ROOT, else ~/.capstan). */
  root?: string | undefined;
  /** `qcow2` (default), `raw`, `vmdk`, `vdi`, or `gce` (a tar.gz holding disk.raw). */
  format?: ImageFormat | undefined;
  /** For `vmdk`: `monolithicSparse` (default) or `streamOptimized`. */
  vmdkSubformat?: VmdkSubformat | undefined;
  /** Boot command line; default: the manifest's boot command. */
  cmdline?: string | undefined;
  /** Virtual disk size, Capstan syntax (`10G`, `512M`) or bytes. Default: just large enough. */
  size?: string | number | undefined;
  /** Keep permission bits in ROFS inodes (OSv ignores them). Default false. */
  permissions?: boolean | undefined;
  /** Pull a loader given by name when it is not in the local repository (default true; `offline` forbids it). */
  pull?: boolean | undefined;
  /**
   * Write a qcow2 overlay over the previous image at `out` that reuses the data of unchanged
   * files (not read again: host files are compared by their stat, contents by hash), flattened
   * after `maxGenerations` (8) or when `maxDeadFraction` (0.5) of the data is dead. For watch
   * mode. Other formats are built in full.
   */
  incremental?: boolean | IncrementalOptions | undefined;
  /** Root filesystem: `rofs` (default here; Capstan's default is `zfs`) or `zfs` (writable, built by the OSv ZFS builder). */
  fs?: 'rofs' | 'zfs' | undefined;
  /** ZFS: the OSv ZFS builder, a path or a local-repository name (default `osv-zfs-builder`, pulled from the loader's release when missing). */
  zfsBuilder?: string | undefined;
  /** ZFS: dataset layout (`master` or `v0.57`), only needed when the loader's kernel cannot be read. */
  zfsLayout?: ZfsLayout | undefined;
  /** ZFS: send only changed files into the existing image (Capstan's `--update`). */
  update?: boolean | undefined;
  /** ZFS update: files that left the build stay in the image (`keep`, as Capstan) or cause a full rebuild. */
  updateDeleted?: 'keep' | 'rebuild' | undefined;
  /** ZFS: QEMU executable for the builder VM (default $CAPSTAN_QEMU_PATH, else Capstan's locations). */
  qemu?: string | undefined;
  /** ZFS: accelerator for the builder VM (default `auto`: KVM when usable, falling back to TCG). */
  accel?: AccelChoice | undefined;
}


export function writeImage(options: WriteImageOptions): Transform {
  const opts = normaliseOptions(options);
  const log = stepLogger('writeImage', options);
  log.start();
  const started = Date.now();
  // The image is opened when the first file comes (or at the end, for an image of nothing).
  let opening: Promise<ImageComposer | ZfsImageComposer> | undefined;
  let composer: ImageComposer | ZfsImageComposer | undefined;
  const open = () => (opening ??= openComposer(opts).then((c) => (composer = c)));
  let closed = false;
  let manifest: Manifest | undefined;
  let count = 0;
  let streamed = 0;
  let shadowed = 0;
  const progress = wantsProgress() && !options.silent ? startProgress(() => `${count} entries, ${(streamed / 1048576).toFixed(0)} MiB`) : undefined;
  const ahead = new ReadAhead((n) => { streamed += n; });
  /** The file whose contents are being written (let go of when the stream is destroyed). */
  let writing: AheadFile | undefined;
  const done = (guestPath: string, result: AddResult) => {
    count++;
    if (result === 'shadowed') shadowed++;
    if (options.verbose) log.detail(`${guestPath}${result === 'added' ? '' : ` (${result})`}`);
  };
  /** Adds one entry to the image; a promise only when data is written (not for a reused file). */
  const add = (c: ImageComposer | ZfsImageComposer, item: AheadFile): Promise<void> | undefined => {
    const file = item.file;
    const meta = capstanOf(file);
    const guestPath = meta?.guestPath ?? '/' + relativeOf(file).split(path.sep).join('/');
    const entry: FileEntryOptions & ZfsEntryOptions = {
      layer: meta?.layer ?? meta?.package?.layer ?? APP_LAYER,
      mode: meta?.mode ?? (file.stat ? file.stat.mode & 0o7777 : undefined),
      source: file.path,
      // ZFS gathers files first: a host file (read: false) is read only when it is sent.
      hostFile: c instanceof ZfsImageComposer && item.hostFile ? hostFileSource(file.path, file.stat!) : undefined,
    };
    if (file.isSymbolic()) {
      if (typeof file.symlink !== 'string') throw new ImageError('is a symlink without a target', { code: 'E_SYMLINK_TARGET', file: file.path });
      return void done(guestPath, c.addSymlink(guestPath, file.symlink, entry));
    }
    if (file.isDirectory()) return void done(guestPath, c.addDirectory(guestPath, entry));
    if (!file.isBuffer() && !item.hostFile && !item.content) {
      throw new ImageError('has no contents', {
        code: 'E_NO_CONTENTS', file: file.path,
        hint: 'Read files with src(glob, {encoding: false}), or with {read: false} so that writeImage reads regular files itself; a vinyl without contents needs the `stat` of a regular file.',
      });
    }
    // A host file (read: false) is identified by its stat, and then not even opened when its
    // data can be reused; buffers are hashed by the composer.
    if (opts.incremental && item.hostFile) entry.facts = hostFileFacts(file.stat);
    const reused = entry.facts && c instanceof ImageComposer && c.reuseFile(guestPath, entry);
    if (reused) return void done(guestPath, reused);
    // Content at hand (a Buffer, or a host file that fits in one read) onto a disk written
    // synchronously: added before this returns, without a promise per file.
    const now = c instanceof ImageComposer && c.canAddSync ? (file.isBuffer() ? file.contents : item.hostChunksSync()) : undefined;
    if (now && c instanceof ImageComposer) {
      let result: AddResult;
      try {
        result = c.addFileSync(guestPath, now, entry);
      } catch (error) {
        throw readFailure(error, file.path);
      }
      if (file.isBuffer()) streamed += file.contents.length;
      done(guestPath, result);
      return item.pace();
    }
    return (async () => {
      let result: AddResult;
      writing = item;
      try {
        const content = item.content ?? file.contents as Buffer;
        result = c instanceof ZfsImageComposer
          ? await c.addFile(guestPath, entry.hostFile ? undefined : content, entry)
          : await c.addFile(guestPath, content, entry);
      } catch (error) {
        throw readFailure(error, file.path);
      } finally {
        writing = undefined;
      }
      // A shadowed file's content was never read: close it. (Only then: destroying vinyl-fs
      // stream contents that were read to their end kept their data alive, +180 MB of peak
      // RSS on the bench tree.)
      if (result === 'shadowed') await item.release();
      if (file.isBuffer()) streamed += file.contents.length;
      done(guestPath, result);
    })();
  };
  /**
   * An entry whose turn it is (with read-ahead, not always the file that just came in): its
   * errors name it.
   */
  const take = (item: AheadFile): Promise<void> | undefined => {
    const named = (error: unknown) => toPluginError(error, item.file.path);
    try {
      const writing = composer ? add(composer, item) : open().then((c) => (closed ? undefined : add(c, item)));
      return writing?.catch((error: unknown) => { throw named(error); });
    } catch (error) {
      throw named(error);
    }
  };
  return stepStream({
    each(file, push) {
      const meta = capstanOf(file);
      manifest ??= meta?.manifest;
      if (meta?.kind === 'image') return void push(file);
      if (meta && BUILD_KINDS.has(meta.kind)) return;
      const item = ahead.push(file);
      if (item) return take(item);
    },
    async end(push) {
      for (let item = ahead.shift(); item && !closed; item = ahead.shift()) {
        const writing = take(item);
        if (writing) await writing;
      }
      if (closed) return;
      const cmdline = opts.cmdline ?? (manifest?.bootCommand ? manifest.bootCommand : undefined);
      if (cmdline === undefined) {
        throw new ImageError('no command line for the image', {
          code: 'E_CMDLINE_MISSING',
          hint: 'Pass `cmdline` to writeImage (e.g. { cmdline: "/hello" }), or run resolveManifest first so the manifest\'s boot command is used.',
        });
      }
      const c = await open();
      const finished = await c.finish(cmdline);
      const { info } = finished;
      const incremental = 'incremental' in finished ? finished.incremental : undefined;
      const image = new Vinyl({ cwd: process.cwd(), base: path.dirname(c.out), path: c.out, contents: null, stat: await stat(c.out) });
      annotate(image, { kind: 'image', image: info, manifest });
      progress?.stop();
      const tree = 'rofs' in finished ? finished.rofs : finished.zfs;
      const fullReason = c instanceof ImageComposer ? c.fullReason : undefined;
      log.summary(`${c.out}: ${info.format}${'zfs' in finished ? zfsSummaryNote(finished.zfs) : ''}, ${tree.files} files (${formatBytes(tree.fileBytes)}), ` +
        `${tree.directories} folders, ${tree.symlinks} symlinks${shadowed ? `, ${shadowed} entries overridden` : ''} in ${((Date.now() - started) / 1000).toFixed(2)} s` +
        (incremental?.mode === 'incremental' ? `; incremental: generation ${incremental.generation}, ${incremental.reused} files reused, ${incremental.written} written`
          : fullReason ? `; full build (${fullReason})` : ''),
        { files: tree.files, bytes: tree.fileBytes });
      if (incremental?.warning) log.warn(incremental.warning);
      log.event({ event: 'image', path: c.out, format: info.format, size: image.stat!.size });
      push(image);
    },
    // Ended, failed, or destroyed by an error elsewhere in the pipeline (which rejects at
    // once): the abort starts here, and its temp file is unlinked before destroy() returns, so
    // nothing of an unfinished image is left beside `out`. (An image still being opened is
    // aborted as soon as it is open; the writers and composers refuse any write after an
    // abort; a finished image's abort does nothing.) The contents being read are let go too,
    // so a slow file (a stream still coming) does not keep the step waiting.
    close() {
      closed = true;
      progress?.stop();
      ahead.releaseAll();
      writing?.release().catch(() => {});
      if (composer) return composer.abort().catch(() => {});
      // Not awaited: the opening may be a loader download.
      opening?.then((c) => c.abort(), () => {}).catch(() => {});
      return undefined;
    },
  });
}

/** An error while a file was added: ours as they are, anything else as a read failure naming the file. */
function readFailure(error: unknown, file: string): Error {
  if (error instanceof CapstanError) return error;
  return new ImageError(`could not read the file while writing the image: ${(error as Error).message}`, {
    code: 'E_READ_FAILED', file, cause: error, hint: 'Was it removed or changed during the build? Run the build again.',
  });
}

/** Opens the image, with the loader pulled first when it is named and missing (and, for ZFS, the builder when it is needed). */
async function openComposer(opts: WriteImageOptions): Promise<ImageComposer | ZfsImageComposer> {
  const ref = loaderReference(opts.loader ?? DEFAULT_LOADER, opts.root);
  const client = opts.pull === false ? undefined : new RepositoryClient(opts);
  const loader = await ensureLoader(ref.path, ref.name, client);
  if (opts.fs !== 'zfs') return ImageComposer.open({ ...opts, loader });
  const log = stepLogger('writeImage', opts);
  return ZfsImageComposer.open({
    out: opts.out, loader, format: opts.format, vmdkSubformat: opts.vmdkSubformat, size: opts.size,
    builder: () => ensureZfsBuilder(opts.zfsBuilder, { root: opts.root, client, loaderPath: loader, warn: (m) => log.warn(m) }),
    layout: opts.zfsLayout, update: opts.update, updateDeleted: opts.updateDeleted, qemu: opts.qemu, accel: opts.accel,
    hostEnv: opts.env, log,
  });
}

/** Validates options up front (bad options throw when the stream is created). */
function normaliseOptions(options: WriteImageOptions): WriteImageOptions {
  try {
    if (!options || typeof options.out !== 'string' || options.out.length === 0) {
      throw new ImageError('writeImage needs `out`, the path of the image to write', { code: 'E_OPTIONS', hint: 'e.g. writeImage({ out: "build/app.qemu" })' });
    }
    checkImageFormat(options.format ?? 'qcow2', options.vmdkSubformat);
    if (options.cmdline !== undefined) checkCmdline(options.cmdline);
    if (options.size !== undefined) parseDiskSize(options.size);
    incrementalSettings(options.incremental);
    checkZfsOptions(options);
    remoteSettings(options); // bad remote options fail now, not at the first file
    return { ...options };
  } catch (error) {
    throw toPluginError(error);
  }
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
