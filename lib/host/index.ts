// Host programs and their shared libraries: ELF reading, the host loader's search, and the
// closure an OSv image needs. No stream code here (the vinyl source is lib/vinyl/host-files.ts).
export * from './elf.js';
export * from './ld-cache.js';
export * from './osv-rules.js';
export { expandPathList, searchLibrary, type FoundVia, type HostObject, type SearchHit, type SearchResult, type SearchSettings } from './search.js';
export * from './closure.js';
export * from './tree.js';
