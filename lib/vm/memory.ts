// Memory sizes the way Capstan reads them (`-m 1G`, osv-image-formats.md §7 ParseMemSize):
// N with m/mb/M/MB (MiB) or g/gb/G/GB (GiB); a bare number is MiB.
import { VmError } from '../errors.js';
import { parseSizeMiB } from '../image/size.js';

/** Size in MiB. */
export function parseMemory(value: string | number, what = 'memory'): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value > 0) return value;
  } else {
    const mib = parseSizeMiB(value, true);
    if (mib !== undefined) return mib;
  }
  throw new VmError(`bad ${what} size "${value}"`, {
    code: 'E_VM_SIZE', hint: 'Give a positive size such as 512M, 1G or 2048 (MiB).',
  });
}
