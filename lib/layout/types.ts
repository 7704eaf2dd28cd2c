// Plain data for entries the layout step synthesises; the stream adapter turns them into vinyl.

/** Precedence of synthesised fallbacks (ROFS skeleton, implied folders): below every package. */
export const SKELETON_LAYER = -1;

interface GeneratedBase {
  /** Absolute guest path. */
  guestPath: string;
  /** Permission bits (no file-type bits). */
  mode: number;
  /** Why the entry exists, for verbose logs. */
  reason: string;
}

export type GeneratedEntry =
  | (GeneratedBase & { type: 'directory' })
  | (GeneratedBase & { type: 'file'; contents: Buffer })
  | (GeneratedBase & { type: 'symlink'; target: string });

/** What occupies a guest path so far (metadata only: contents are never held). */
export type GuestEntryType = 'directory' | 'file' | 'symlink';
