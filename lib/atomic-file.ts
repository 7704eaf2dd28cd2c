// Files that appear whole or not at all: written to a temp file beside their final path (same
// filesystem, so the rename is atomic) and renamed over it. Temp names are unique per call,
// so two writers in one process, or in two, never share one.
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** `<dir>/.<name>.<pid>-<random>.<suffix>`: hidden, unique, beside `file`. */
export function tempPathBeside(file: string, suffix = 'tmp'): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.${suffix}`);
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
