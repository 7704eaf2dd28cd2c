// What identifies a host file's content without reading it, for incremental images: the stat
// src() recorded for a `read: false` vinyl (size, times, inode, device). Synthetic stats (no
// inode) identify nothing; such files, and streams, are always written. Buffer contents need
// no facts: the image composer hashes them.
import type { Stats } from 'node:fs';
import type { SourceFacts } from '../image/incremental.js';

export function hostFileFacts(stat: Partial<Stats> | null | undefined): SourceFacts | undefined {
  if (!stat) return undefined;
  const { size, mtimeMs, ctimeMs, ino, dev } = stat;
  if (typeof size !== 'number' || typeof mtimeMs !== 'number' || typeof ino !== 'number' || typeof dev !== 'number' || ino === 0) return undefined;
  return { size, mtimeMs, ctimeMs: typeof ctimeMs === 'number' ? ctimeMs : undefined, ino, dev };
}
