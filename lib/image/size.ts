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

/**
 * Parses a disk size into bytes: `"10G"` → 10 GiB, `"512M"` → 512 MiB, `1048576` → 1 MiB.
 * Text needs Capstan's unit, as ParseMemSize does: `"1024"` is refused, not read as MiB.
 * `what` names the size in messages ("the image size", "the volume size").
 */
export function parseDiskSize(value: string | number, what = 'the image size'): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new ImageError(`${what} ${value} is not a positive whole number of bytes`, { code: 'E_SIZE_INVALID' });
    }
    return value;
  }
  const text = String(value);
  const mib = parseSizeMiB(text);
  if (mib === undefined) {
    const zero = /^\s*0+\s*(m|mb|M|MB|g|gb|G|GB)\s*$/.test(text);
    const bare = /^\s*\d+\s*$/.test(text);
    // Capstan's own words: "<size>: memory size must be larger than zero" / "unrecognized memory size".
    throw new ImageError(zero ? `${what} "${text}" must be larger than zero` : `${what} "${text}" is not understood${bare ? ': it has no unit' : ''}`, {
      code: 'E_SIZE_INVALID',
      hint: bare
        ? `Capstan's sizes need a unit: write "${text.trim()}M" for MiB or "${text.trim()}G" for GiB (or give a number of bytes).`
        : 'Write it as Capstan does: a positive number followed by M/MB (MiB) or G/GB (GiB), e.g. "10G" or "512M".',
    });
  }
  return mib * MIB;
}
