// Layout domain: where every file lands in the guest, what Capstan leaves out, and what the
// image needs besides (ROFS skeleton, /run scripts, implied folders). No stream code here.
export {
  CAPSTAN_DEFAULT_IGNORES, parseCapstanignore, capstanignoreToRegExpSource, compileIgnore, matchIgnoreRule, isIgnored,
  type IgnorePatternSource, type IgnoreRule, type IgnoreMatcher, type IgnoreMatch, type IgnoreFolderMemo, type CompileIgnoreOptions,
} from './ignore.js';
export {
  guestPathOf, relativeOf, parentDirectories, isMetaPath, rewriteSymlinkTarget, capstanfileLayout, capstanfileGuestPaths,
  type CapstanfileLayout,
} from './guest-path.js';
export { ROFS_FSTAB, OSV_ETC_HOSTS, rofsSkeleton } from './skeleton.js';
export { RUN_SCRIPT_MODE, runScriptEntries, type RunScriptSource, type RunScriptOverride, type RunScriptLayout } from './run-scripts.js';
export { GuestTree, type GuestClaim, type ClaimOutcome } from './guest-tree.js';
export { readHostEntry, type HostEntry } from './host-entry.js';
export { SKELETON_LAYER, type GeneratedEntry, type GuestEntryType } from './types.js';
