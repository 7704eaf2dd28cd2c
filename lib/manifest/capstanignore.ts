// .capstanignore (capstan-behaviour.md §2.4): collects the user's patterns. The layout step
// applies them (with Capstan's always-ignored defaults); here only `/meta` is rejected, as
// Capstan does, because ignoring it would drop the /run scripts.
import { ManifestError } from '../errors.js';

/** One pattern of a .capstanignore, with where it stands. */
export interface CapstanignoreLine {
  pattern: string;
  file?: string | undefined;
  /** 1-based. */
  line: number;
  column: number;
}

/**
 * Reads .capstanignore text the way Capstan does: one pattern per line, surrounding whitespace
 * trimmed, blank lines and `#` comments skipped.
 */
export function capstanignoreLines(text: string, file?: string): CapstanignoreLine[] {
  const out: CapstanignoreLine[] = [];
  for (const [index, raw] of text.split(/\r\n|\n|\r/).entries()) {
    const pattern = raw.trim();
    if (pattern === '' || pattern.startsWith('#')) continue;
    out.push({ pattern, file, line: index + 1, column: raw.indexOf(pattern) + 1 });
  }
  return out;
}

/** The user's patterns; `/meta` is refused here, with its position. */
export function collectCapstanignorePatterns(text: string, fileLabel: string): string[] {
  return capstanignoreLines(text, fileLabel).map(({ pattern, line, column }) => {
    if (pattern === '/meta') {
      throw new ManifestError("'/meta' cannot be ignored", {
        code: 'E_CAPSTANIGNORE_META', file: fileLabel, line, column,
        hint: 'Remove this line: meta/ is never copied into the image anyway, and meta/run.yaml is needed for the /run scripts.',
      });
    }
    return pattern;
  });
}
