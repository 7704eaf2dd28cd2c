// Memory sizes the way Capstan reads them (`-m 1G`, osv-image-formats.md §7 ParseMemSize):
// N with m/mb/M/MB (MiB) or g/gb/G/GB (GiB); a bare number is MiB.
import { VmError } from '../errors.js';

/** Size in MiB. */
export function parseMemory(value: string | number, what = 'memory'): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value > 0) return value;
  } else {
    const m = /^\s*(\d+)\s*(m|mb|g|gb)?\s*$/i.exec(value);
    if (m) {
      const n = Number(m[1]);
      const mib = m[2] && m[2].toLowerCase().startsWith('g') ? n * 1024 : n;
      if (mib > 0) return mib;
    }
  }
  throw new VmError(`bad ${what} size "${value}"`, {
    code: 'E_VM_SIZE', hint: 'Give a positive size such as 512M, 1G or 2048 (MiB).',
  });
}
