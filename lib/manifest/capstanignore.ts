// .capstanignore (capstan-behaviour.md §2.4): collects the user's patterns. The layout step
// applies them (with Capstan's always-ignored defaults); here only `/meta` is rejected, as
// Capstan does, because ignoring it would drop the /run scripts.
import { ManifestError } from '../errors.js';

export function collectCapstanignorePatterns(text: string, fileLabel: string): string[] {
  const patterns: string[] = [];
  const lines = text.split(/\r\n|\n|\r/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line === '/meta') {
      throw new ManifestError("'/meta' cannot be ignored", {
        code: 'E_CAPSTANIGNORE_META', file: fileLabel, line: index + 1, column: raw.indexOf('/meta') + 1,
        hint: 'Remove this line: meta/ is never copied into the image anyway, and meta/run.yaml is needed for the /run scripts.',
      });
    }
    patterns.push(line);
  }
  return patterns;
}
