// writeImage: consumes laid-out entries and writes one bootable OSv disk (loader, MBR entry,
// command line, ROFS), streaming file data into the image as entries arrive; with `fs: 'zfs'`
// the files are gathered and sent to the OSv ZFS builder at the end (lib/image/zfs-compose.ts).
// Emits one vinyl for the image (kind 'image', `capstan.image` = ImageInfo); the image itself
// is already at `out` (the vinyl has null contents, so nothing is read back into memory).
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Transform } from 'node:stream';
import { objectTransform } from 'through2';
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
import { hostFileFacts } from '../vinyl/source-facts.js';
import { hostFileSource } from '../vinyl/host-file.js';

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
  // The image being opened, and once open, the image itself: shared with _destroy below.
  let opening: Promise<ImageComposer | ZfsImageComposer> | undefined;
  let opened: ImageComposer | ZfsImageComposer | undefined;
  const open = () => (opening ??= openComposer(opts).then((c) => (opened = c)));
  // The files being read ahead, and the one being written, for _destroy too.
  const reading: { ahead?: ReadAhead; writing?: AheadFile } = {};
  const stream: Transform = objectTransform(async function* (files: AsyncIterable<Vinyl>) {
    log.start();
    const started = Date.now();
    let composer: ImageComposer | ZfsImageComposer | undefined;
    let manifest: Manifest | undefined;
    let current: string | undefined;
    let count = 0;
    let streamed = 0;
    let shadowed = 0;
    const progress = wantsProgress() && !options.silent ? startProgress(() => `${count} entries, ${(streamed / 1048576).toFixed(0)} MiB`) : undefined;
    const ahead = (reading.ahead = new ReadAhead((n) => { streamed += n; }));
    const done = (guestPath: string, result: AddResult) => {
      count++;
      if (result === 'shadowed') shadowed++;
      if (options.verbose) log.detail(`${guestPath}${result === 'added' ? '' : ` (${result})`}`);
    };
    /** Adds one entry to the image; a promise only when data is written (not for a reused file). */
    const add = (c: ImageComposer | ZfsImageComposer, item: AheadFile): Promise<void> | undefined => {
      const file = item.file;
      const meta = capstanOf(file);
      current = file.path;
      const guestPath = meta?.guestPath ?? '/' + file.relative.split(path.sep).join('/');
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
        reading.writing = item;
        try {
          const content = item.content ?? file.contents as Buffer;
          result = c instanceof ZfsImageComposer
            ? await c.addFile(guestPath, entry.hostFile ? undefined : content, entry)
            : await c.addFile(guestPath, content, entry);
        } catch (error) {
          throw readFailure(error, file.path);
        } finally {
          reading.writing = undefined;
        }
        // A shadowed file's content was never read: close it. (Only then: destroying vinyl-fs
        // stream contents that were read to their end kept their data alive, +180 MB of peak
        // RSS on the bench tree.)
        if (result === 'shadowed') await item.release();
        if (file.isBuffer()) streamed += file.contents.length;
        done(guestPath, result);
      })();
    };
    try {
      for await (const file of files) {
        // Files queued before the stream was destroyed still come: the image is gone, stop.
        if (stream.destroyed) break;
        const meta = capstanOf(file);
        manifest ??= meta?.manifest;
        if (meta?.kind === 'image') { yield file; continue; }
        if (meta && BUILD_KINDS.has(meta.kind)) continue;
        const item = ahead.push(file);
        if (!item) continue;
        composer ??= await open();
        const writing = add(composer, item);
        if (writing) await writing;
      }
      for (let item = ahead.shift(); item && !stream.destroyed; item = ahead.shift()) {
        composer ??= await open();
        const writing = add(composer, item);
        if (writing) await writing;
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
      composer ??= await open();
      const done = await composer.finish(cmdline);
      const { info } = done;
      const incremental = 'incremental' in done ? done.incremental : undefined;
      const image = new Vinyl({ cwd: process.cwd(), base: path.dirname(composer.out), path: composer.out, contents: null, stat: await stat(composer.out) });
      annotate(image, { kind: 'image', image: info, manifest });
      progress?.stop();
      const tree = 'rofs' in done ? done.rofs : done.zfs;
      const fullReason = composer instanceof ImageComposer ? composer.fullReason : undefined;
      log.summary(`${composer.out}: ${info.format}${'zfs' in done ? zfsSummaryNote(done.zfs) : ''}, ${tree.files} files (${formatBytes(tree.fileBytes)}), ` +
        `${tree.directories} folders, ${tree.symlinks} symlinks${shadowed ? `, ${shadowed} entries overridden` : ''} in ${((Date.now() - started) / 1000).toFixed(2)} s` +
        (incremental?.mode === 'incremental' ? `; incremental: generation ${incremental.generation}, ${incremental.reused} files reused, ${incremental.written} written`
          : fullReason ? `; full build (${fullReason})` : ''),
        { files: tree.files, bytes: tree.fileBytes });
      if (incremental?.warning) log.warn(incremental.warning);
      log.event({ event: 'image', path: composer.out, format: info.format, size: image.stat!.size });
      yield image;
    } catch (error) {
      throw toPluginError(error, current);
    } finally {
      ahead.releaseAll();
      progress?.stop();
      await composer?.abort(); // no-op once finished; removes the temp file otherwise
    }
  }) as unknown as Transform;
  // An error elsewhere in the pipeline destroys this step while its generator waits, and
  // `pipeline` rejects right away; the generator unwinds (its finally aborts the image) only
  // after the stream has closed. So the abort starts here: its temp file is unlinked before
  // this returns, and nothing of the image is left beside `out` when `pipeline` rejects. (An
  // image still being opened is aborted as soon as it is open; the writers and composers
  // refuse any write after an abort.) The contents being read are let go too, so a slow file
  // (a stream still coming) does not keep the step waiting.
  const destroy = stream._destroy;
  stream._destroy = (error, callback) => {
    if (opened) opened.abort().catch(() => {});
    else opening?.then((c) => c.abort(), () => {}).catch(() => {});
    reading.ahead?.releaseAll();
    reading.writing?.release().catch(() => {});
    destroy.call(stream, error, callback);
  };
  return stream;
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
