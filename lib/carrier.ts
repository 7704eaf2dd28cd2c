// How Capstan data travels through a gulp stream: as an annotation on each vinyl file, the
// way gulp-sourcemaps carries `file.sourceMap`. The annotation lives at `file.capstan`.
// vinyl's clone() copies custom properties, so it survives other plugins in between.
import type Vinyl from 'vinyl';
import type { ImageFormat } from './image/disk.js';
import type { Manifest, PackageInfo, RunConfig } from './manifest/types.js';

/** What a vinyl file is to us. */
export type EntryKind =
  /** The one manifest file resolveManifest emits first; later steps read it, the image ignores it. */
  | 'manifest'
  /** A file of the application. */
  | 'app'
  /** The descriptor of one resolved package (no contents; carries its metadata and run.yaml). */
  | 'package'
  /** A file that came out of a package. */
  | 'package-file'
  /** A file synthesised by the layout step (ROFS skeleton, /run scripts, implied folders). */
  | 'generated'
  /** The disk image writeImage emits. */
  | 'image';

/** Kinds that describe the build rather than being files of the image. */
export const BUILD_KINDS: ReadonlySet<EntryKind> = new Set<EntryKind>(['manifest', 'package']);

/** A package as it travels: which one, and where it stands in the resolution order. */
export interface PackageRef {
  name: string;
  /** Position in the resolution order; later layers win (see APP_LAYER). */
  layer: number;
  info?: PackageInfo | undefined;
  run?: RunConfig | undefined;
}

/** The precedence layer of application files: above every package. */
export const APP_LAYER = Number.MAX_SAFE_INTEGER;

/** Facts about an image writeImage produced; bootVm and users read them. */
export interface ImageInfo {
  format: ImageFormat;
  /** VMDK subformat, for `vmdk` images. */
  vmdkSubformat?: 'monolithicSparse' | 'streamOptimized' | undefined;
  /** Virtual disk size in bytes (for `gce`: the size of disk.raw, a whole number of GiB). */
  virtualSize: number;
  /** The filesystem partition (MBR entry 2, byte offsets on the disk). */
  partition: { start: number; size: number };
  cmdline: string;
  /** Path of the loader the image was built from. */
  loader: string;
  /** Number of ROFS inodes (root included); for ZFS, the entries sent plus the root. */
  inodes: number;
  /** The root filesystem: `rofs` (absent in older infos) or `zfs`. */
  fs?: 'rofs' | 'zfs' | undefined;
}

export interface CapstanMeta {
  kind: EntryKind;
  /** The build's manifest, shared by reference by every file of one build. */
  manifest?: Manifest | undefined;
  package?: PackageRef | undefined;
  /** Absolute guest path (`/usr/lib/x.so`), set by layoutFiles. */
  guestPath?: string | undefined;
  /** Permission bits inside the image, when they differ from `file.stat.mode`. */
  mode?: number | undefined;
  /** Precedence: packages in resolution order, application files last (APP_LAYER). */
  layer?: number | undefined;
  image?: ImageInfo | undefined;
}

export type CapstanFile = Vinyl & { capstan?: CapstanMeta };

export function capstanOf(file: Vinyl): CapstanMeta | undefined {
  return (file as CapstanFile).capstan;
}

/** Merges `patch` into the file's annotation (creating it, kind `app` by default). */
export function annotate(file: Vinyl, patch: Partial<CapstanMeta>): CapstanMeta {
  const f = file as CapstanFile;
  f.capstan = { kind: 'app', ...f.capstan, ...patch };
  return f.capstan;
}
