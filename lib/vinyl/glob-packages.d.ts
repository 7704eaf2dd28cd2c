// Types for the small gulpjs glob helpers capstan.src shares with glob-stream (they ship none).
declare module 'glob-parent' {
  export default function globParent(glob: string, options?: { flipBackslashes?: boolean }): string;
}
declare module 'is-glob' {
  export default function isGlob(value: string, options?: { strict?: boolean }): boolean;
}
declare module '@gulpjs/to-absolute-glob' {
  export default function toAbsoluteGlob(glob: string, options?: { cwd?: string; root?: string }): string;
}
