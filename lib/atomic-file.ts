// Files that appear whole or not at all: written to a temp file beside their final path (same
// filesystem, so the rename is atomic) and renamed over it. Temp names are unique per call,
// so two writers in one process, or in two, never share one.
import { randomBytes } from 'node:crypto';
import { createWriteStream, unlinkSync, type WriteStream } from 'node:fs';
import { open, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { onProcessEnd, type ProcessEndHook } from './process-end.js';

/** `<dir>/.<name>.<pid>-<random>.<suffix>`: hidden, unique, beside `file`. */
export function tempPathBeside(file: string, suffix = 'tmp'): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.${suffix}`);
}

/**
 * A temp file that is removed if the process ends before it is published or discarded — gulp
 * exits at once when a task fails, often while a step downstream of the failure is still
 * writing; a signal that ends the process counts too (see process-end.ts).
 */
export class TempFile {
  readonly path: string;
  private readonly guard: ProcessEndHook;

  constructor(file: string) {
    this.path = file;
    this.guard = onProcessEnd(() => {
      try { unlinkSync(file); } catch { /* already gone */ }
    }, 'when-fatal');
  }

  /** A new, unique temp file beside `dest` (tempPathBeside). */
  static beside(dest: string, suffix = 'tmp'): TempFile {
    return new TempFile(tempPathBeside(dest, suffix));
  }

  /**
   * A write stream on the file, created now (exclusively): opened before this returns, not in
   * the stream's background, where a writer failing at once could have the file created after
   * it was discarded.
   */
  async writeStream(): Promise<WriteStream> {
    return createWriteStream(this.path, { fd: await open(this.path, 'wx', 0o644) });
  }

  /** Renames it to `dest`; from then on it is not ours to remove. */
  async publish(dest: string): Promise<void> {
    await rename(this.path, dest);
    this.guard.release();
  }

  /**
   * Removes it, if it is there. The unlink is done before this returns its promise (it is a
   * blocking call of a few microseconds), so a caller that cannot wait — a stream being
   * destroyed — still leaves nothing behind; an open descriptor may outlive the name.
   */
  async discard(): Promise<void> {
    try { unlinkSync(this.path); } catch { /* not there */ }
    this.guard.release();
  }
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
