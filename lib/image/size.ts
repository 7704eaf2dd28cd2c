// Capstan's `--size` syntax (osv-image-formats.md §7): N followed by m/mb/M/MB (MiB) or
// g/gb/G/GB (GiB). A number is taken as bytes.
import { ImageError } from '../errors.js';

const MIB = 1024 * 1024;

/**
 * Capstan's ParseMemSize: `N` and a unit, m/mb/M/MB (MiB) or g/gb/G/GB (GiB), in MiB;
 * undefined when the text is not such a size. `lenient` also takes a bare number (MiB) and
 * units in any case, as memory sizes do here.
 */
export function parseSizeMiB(text: string, lenient = false): number | undefined {
  const match = (lenient ? /^\s*(\d+)\s*(m|mb|g|gb)?\s*$/i : /^\s*(\d+)\s*(m|mb|M|MB|g|gb|G|GB)\s*$/).exec(text);
  const mib = match ? Number(match[1]) * (match[2] && /^g/i.test(match[2]) ? 1024 : 1) : 0;
  return mib > 0 ? mib : undefined;
}

/** Parses a disk size into bytes: `"10G"` → 10 GiB, `"512M"` → 512 MiB, `1048576` → 1 MiB. */
export function parseDiskSize(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new ImageError(`the image size ${value} is not a positive whole number of bytes`, { code: 'E_SIZE_INVALID' });
    }
    return value;
  }
  const mib = parseSizeMiB(String(value));
  if (mib === undefined) {
    throw new ImageError(`the image size "${value}" is not understood`, {
      code: 'E_SIZE_INVALID',
      hint: 'Write it as Capstan does: a positive number followed by M/MB (MiB) or G/GB (GiB), e.g. "10G" or "512M".',
    });
  }
  return mib * MIB;
}
