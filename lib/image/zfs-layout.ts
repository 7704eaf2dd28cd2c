// The two ZFS dataset layouts of osv-image-formats.md §4.5, and the command lines that write
// each. Files must go into the dataset the image's loader mounts as root:
//   master  OSv master after 0e34e4dc (Aug 2026): root dataset `osv`; cpiod writes under the
//           pool root (`--prefix /zfs/`, with the trailing slash cpiod needs to join names),
//           then the datasets are unmounted and the pool exported;
//   v0.57   OSv v0.57.0 and before (the current release, and Capstan): root dataset `osv/zfs`;
//           cpiod writes under `/zfs/zfs` and unmounts both datasets itself.
// Both builders need --preload-zfs-library (v0.57.0 has it): without it mkfs.so fails with
// "failed looking up symbol zpool_prop_init" and QEMU hangs.
import { ImageError } from '../errors.js';
import type { KernelFacts } from './osv-kernel.js';

export type ZfsLayout = 'master' | 'v0.57';
export const ZFS_LAYOUTS: readonly ZfsLayout[] = ['master', 'v0.57'];

const BUILDER_OPTIONS = '--console=serial --norandom --nomount --noinit --preload-zfs-library';

/** The ZFS builder's command line for a layout. */
export function builderCmdline(layout: ZfsLayout): string {
  return layout === 'master'
    ? `${BUILDER_OPTIONS} /tools/mkfs.so; /tools/cpiod.so --prefix /zfs/; /zfs.so set compression=off osv; /tools/umount.so /zfs/zfs; /tools/umount.so /zfs; /zpool.so export osv`
    : `${BUILDER_OPTIONS} /tools/mkfs.so; /tools/cpiod.so --prefix /zfs/zfs; /zfs.so set compression=off osv`;
}

/**
 * The command line that boots an image itself to receive an update into its mounted root
 * (§8; Capstan's, plus two options). --preload-zfs-library: cpiod.so needs `mkdirp`, which
 * libsolaris.so provides; without the preload it is not visible to cpiod and the guest aborts
 * ("failed looking up symbol mkdirp", measured on master 0e34e4dc). --rootfs=zfs: as in the
 * image's own command line.
 */
export const UPDATE_CMDLINE = '--console=serial --preload-zfs-library --rootfs=zfs /tools/cpiod.so --prefix /';

/** The dataset a layout's loader mounts. */
export function rootDatasetOf(layout: ZfsLayout): 'osv' | 'osv/zfs' {
  return layout === 'master' ? 'osv' : 'osv/zfs';
}

/**
 * The image's command line: `--rootfs=zfs` in front unless it names a root filesystem itself.
 * OSv's own build writes it for ZFS images too; it skips the rofs/virtiofs/ext probes of
 * auto-discovery, and a pool that cannot be mounted is then an error, not "Staying on bootfs".
 */
export function zfsImageCmdline(cmdline: string): string {
  return /(^|\s)--rootfs=/.test(leadingOptions(cmdline)) ? cmdline : `--rootfs=zfs ${cmdline}`;
}

/** The leading `-…` tokens of a command line (the loader's options). */
function leadingOptions(cmdline: string): string {
  const tokens = cmdline.trimStart().split(/\s+/);
  const out: string[] = [];
  for (const t of tokens) { if (!t.startsWith('-')) break; out.push(t); }
  return out.join(' ');
}

export interface LayoutDecision {
  layout: ZfsLayout;
  /** How it was decided: `loader` (its kernel), `builder` (its kernel), or `option`. */
  from: 'loader' | 'builder' | 'option';
}

/**
 * The layout to write: what the loader's kernel mounts, else what the builder's kernel
 * mounts, else the option. An option the loader contradicts is an error (the image would not
 * boot); one that nothing can check is taken as given.
 */
export function decideZfsLayout(loader: KernelFacts | undefined, builder: KernelFacts | undefined, option: ZfsLayout | undefined, where: { loader: string; builder?: string | undefined }): LayoutDecision {
  if (option !== undefined && !ZFS_LAYOUTS.includes(option)) {
    throw new ImageError(`unknown zfsLayout "${String(option)}"`, { code: 'E_OPTIONS', hint: 'Use "master" (OSv built from master after Aug 2026) or "v0.57" (OSv v0.57.0 and before, as Capstan writes), or leave it out to detect it from the loader.' });
  }
  const fromLoader = loader?.zfsRootDataset ? layoutOf(loader.zfsRootDataset) : undefined;
  if (fromLoader) {
    if (option !== undefined && option !== fromLoader) {
      throw new ImageError(`zfsLayout "${option}" was asked for, but this loader mounts dataset ${loader!.zfsRootDataset} as its root, which is the "${fromLoader}" layout: the image would boot with an empty root`, {
        code: 'E_ZFS_LAYOUT', file: where.loader, hint: `Leave zfsLayout out (it is detected from the loader), or use a loader of the "${option}" generation.`,
      });
    }
    return { layout: fromLoader, from: 'loader' };
  }
  if (option !== undefined) return { layout: option, from: 'option' };
  const fromBuilder = builder?.zfsRootDataset ? layoutOf(builder.zfsRootDataset) : undefined;
  if (fromBuilder) return { layout: fromBuilder, from: 'builder' };
  throw new ImageError('cannot tell which ZFS dataset this loader mounts as its root (its kernel could not be read)', {
    code: 'E_ZFS_LAYOUT', file: where.loader,
    hint: 'Set zfsLayout: "v0.57" for OSv v0.57.0 and older loaders (Capstan\'s layout), or "master" for loaders built from OSv master after Aug 2026.',
  });
}

function layoutOf(dataset: 'osv' | 'osv/zfs'): ZfsLayout {
  return dataset === 'osv' ? 'master' : 'v0.57';
}

/** What a builder's bootfs must hold for a layout; the first thing missing, if any. */
export function builderMissing(builder: KernelFacts, layout: ZfsLayout): string | undefined {
  const names = new Set(builder.bootfs?.entries.map((e) => e.name) ?? []);
  const needed = ['/tools/mkfs.so', '/tools/cpiod.so', '/zfs.so', '/usr/lib/fs/libsolaris.so', ...(layout === 'master' ? ['/tools/umount.so', '/zpool.so'] : [])];
  return needed.find((n) => !names.has(n));
}
