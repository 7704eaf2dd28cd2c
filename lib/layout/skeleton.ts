// The minimal filesystem a ROFS root needs (osv-image-formats.md §3.11). After the pivot the
// kernel mounts what /etc/fstab lists, and on ROFS it cannot create missing mount points, so
// without these an image boots with no /dev, /proc, /sys and a read-only /tmp.
import type { GeneratedEntry } from './types.js';

/** OSv's static/etc/fstab_rofs (the first line is ignored at pivot, but OSv ships it). */
export const ROFS_FSTAB = [
  '/dev/vblk0.1 /          rofs      defaults 0 0',
  'none         /dev       devfs     defaults 0 0',
  'none         /proc      procfs    defaults 0 0',
  'none         /sys       sysfs     defaults 0 0',
  'none         /tmp       ramfs     defaults 0 0',
  '',
].join('\n');

/** OSv's static/etc/hosts. */
export const OSV_ETC_HOSTS = '127.0.0.1 localhost osv.local\n';

/**
 * OSv's usr_rofs.manifest.skel, minus the binaries (libenviron.so, libgcc_s, mount tools come
 * from packages such as osv.bootstrap): fstab, hosts, the mnttab link and the mount points.
 * `/data` is included as in OSv's skeleton: an empty mount point for `--mount-fs=…,/data`,
 * which ROFS could not create at boot.
 */
export function rofsSkeleton(): GeneratedEntry[] {
  const reason = 'ROFS skeleton';
  return [
    ...['/dev', '/proc', '/sys', '/tmp', '/data'].map((guestPath): GeneratedEntry => ({ type: 'directory', guestPath, mode: 0o755, reason })),
    { type: 'file', guestPath: '/etc/fstab', mode: 0o644, contents: Buffer.from(ROFS_FSTAB), reason },
    { type: 'file', guestPath: '/etc/hosts', mode: 0o644, contents: Buffer.from(OSV_ETC_HOSTS), reason },
    { type: 'symlink', guestPath: '/etc/mnttab', mode: 0o777, target: '/proc/mounts', reason },
  ];
}
