// Capstanfile `files` entries whose host file did not come down the stream are read from disk,
// as Capstan's build would: regular files, symlinks (not followed) and folders (a folder is
// created empty: Capstan does not copy its contents for a `files` entry).
import { lstat, readlink } from 'node:fs/promises';
import { LayoutError } from '../errors.js';
import type { GuestEntryType } from './types.js';

export interface HostEntry {
  type: GuestEntryType;
  /** Full st_mode (type and permission bits). */
  mode: number;
  size: number;
  /** Symlink target, verbatim. */
  target?: string | undefined;
}

export async function readHostEntry(hostPath: string, guestPath: string, capstanfile?: string): Promise<HostEntry> {
  let stat;
  try {
    stat = await lstat(hostPath);
  } catch (error) {
    throw new LayoutError(`files entry '${guestPath}': host path ${hostPath} does not exist`, {
      code: 'E_CAPSTANFILE_FILES_MISSING', file: capstanfile,
      hint: 'Build the file first (Capstanfile `build`, or an earlier gulp task), or fix the path in `files`.',
      cause: error,
    });
  }
  if (stat.isSymbolicLink()) return { type: 'symlink', mode: stat.mode, size: 0, target: await readlink(hostPath) };
  if (stat.isDirectory()) return { type: 'directory', mode: stat.mode, size: 0 };
  if (stat.isFile()) return { type: 'file', mode: stat.mode, size: stat.size };
  throw new LayoutError(`files entry '${guestPath}': ${hostPath} is not a regular file, folder or symlink`, {
    code: 'E_CAPSTANFILE_FILES_TYPE', file: capstanfile,
    hint: 'Only regular files, folders and symlinks can go into an OSv image.',
  });
}
