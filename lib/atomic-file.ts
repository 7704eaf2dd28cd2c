// Files that appear whole or not at all: written to a temp file beside their final path (same
// filesystem, so the rename is atomic) and renamed over it. Temp names are unique per call,
// so two writers in one process, or in two, never share one.
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { onProcessEnd, type ProcessEndHook } from './process-end.js';

/** `<dir>/.<name>.<pid>-<random>.<suffix>`: hidden, unique, beside `file`. */
export function tempPathBeside(file: string, suffix = 'tmp'): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.${suffix}`);
}

/**
 * Removes the temp file `file` if the process ends before release() — gulp exits at once when
 * a task fails, often while a step downstream of the failure is still writing; a signal that
 * ends the process counts too. Release once the file is renamed into place or removed.
 */
export function removeOnProcessEnd(file: string): ProcessEndHook {
  return onProcessEnd(() => {
    try { unlinkSync(file); } catch { /* already gone */ }
  }, 'when-fatal');
}

export async function writeFileAtomic(file: string, data: string | Buffer, mode?: number): Promise<void> {
  const temp = tempPathBeside(file);
  try {
    await writeFile(temp, data, mode === undefined ? {} : { mode });
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}
