// Words of an OSv command line (core/commands.cc): split at spaces, a command ends at `;`, `&`
// or `!`, and a word in double quotes keeps its spaces and those characters.

/** One word as OSv must read it: quoted when it holds a space, a quote or a separator. */
export function osvWord(w: string): string {
  return /[\s";&!]/.test(w) ? `"${w.replace(/"/g, '')}"` : w;
}
