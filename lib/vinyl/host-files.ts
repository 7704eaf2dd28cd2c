// hostFiles: a gulp source of host programs and the shared libraries they need, each already
// annotated with its guest path (captureClosure decides where OSv's loader will find it).
//
// The vinyls are `read: false` ones, as gulp.src({read: false}) makes: null contents and the
// real file's stat, so writeImage reads each file itself when it writes it (a 100 MB node
// binary is never buffered) and checks it did not change meanwhile. Their path is the real
// host file (what writeImage reads), with base '/', so `relative` is that host path; the
// guest path is `capstan.guestPath`, which layoutFiles keeps for such files.
// Symlinks (libz.so.1 → libz.so.1.2.13) are vinyl symlinks with their guest target.
import { statSync } from 'node:fs';
import { Readable } from 'node:stream';
import Vinyl from 'vinyl';
import { annotate } from '../carrier.js';
import { HostError, toPluginError } from '../errors.js';
import { captureClosure, type ClosureEntry, type ClosureOptions, type ProgramSpec } from '../host/closure.js';
import { S_IFLNK, syntheticStat } from './synthetic-stat.js';

export type HostFilesOptions = ClosureOptions;

/** An object-mode Readable of the programs and their library closure, as vinyl files. */
export function hostFiles(programs: ReadonlyArray<string | ProgramSpec>, options: HostFilesOptions = {}): Readable {
  // The closure is captured when the stream is first read, so an error reaches the pipeline.
  return Readable.from((function* () {
    let entries: ClosureEntry[];
    try {
      entries = captureClosure(programs, options).entries;
    } catch (error) {
      throw toPluginError(error);
    }
    for (const entry of entries) yield hostVinyl(entry);
  })(), { objectMode: true });
}

/** The vinyl of one closure entry (or of a file of a runtime's folder: lib/host/tree.ts). */
export function hostVinyl(entry: Pick<ClosureEntry, 'guestPath' | 'hostPath' | 'target'> & { type: string }): Vinyl {
  let file: Vinyl;
  if (entry.type === 'symlink') {
    file = new Vinyl({ cwd: '/', base: '/', path: entry.hostPath, contents: null, stat: syntheticStat(S_IFLNK | 0o777) });
    file.symlink = entry.target!;
  } else {
    let stat;
    try {
      stat = statSync(entry.hostPath);
    } catch (error) {
      throw toPluginError(new HostError(`disappeared while its closure was being captured: ${(error as Error).message}`, {
        code: 'E_HOST_NOT_FOUND', file: entry.hostPath, cause: error, hint: 'Do not change the installed programs during the build; run it again.',
      }));
    }
    file = new Vinyl({ cwd: '/', base: '/', path: entry.hostPath, contents: null, stat });
  }
  annotate(file, { kind: 'app', guestPath: entry.guestPath });
  return file;
}
