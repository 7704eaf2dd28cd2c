// Capstan's tables are Go fmt.Printf formats (`%-50s %-50s %-15s %-20s %-15s`, often passed
// through strings.TrimSpace): a value wider than its column pushes the rest right, nothing is
// cut. These helpers make the same text, so scripts written against Capstan's output still work.
import type { PackageInfo } from '../manifest/types.js';

/** Go's `%-Ns`: the value, then spaces up to N runes (never truncated). */
export function goLeft(value: string, width: number): string {
  const runes = [...value].length;
  return runes >= width ? value : value + ' '.repeat(width - runes);
}

/** Values formatted `%-w1s<sep>%-w2s…`, as one Sprintf with those verbs. */
export function goColumns(values: readonly string[], widths: readonly number[], separator = ' '): string {
  return values.map((v, i) => goLeft(v, widths[i] ?? 0)).join(separator);
}

/** Go's `%-Ns` of a []string: each element padded, inside brackets, space-separated. */
export function goStringSlice(values: readonly string[], width: number): string {
  return `[${values.map((v) => goLeft(v, width)).join(' ')}]`;
}

/** Columns of Capstan's FileInfoHeader / FileInfo.String / Package.String. */
const FILE_INFO_WIDTHS = [50, 50, 15, 20, 15];

export function fileInfoHeader(): string {
  return goColumns(['Name', 'Description', 'Version', 'Created', 'Platform'], FILE_INFO_WIDTHS).trim();
}

/** A row of the images table (FileInfo.String): an empty platform shows as N/A. */
export function imageRow(name: string, description: string, version: string, created: string | undefined, platform: string | undefined): string {
  return goColumns([name, description, version, friendlyTime(created), platform || 'N/A'], FILE_INFO_WIDTHS).trim();
}

/** A row of the packages tables (Package.String): the title in the Description column. */
export function packageRow(p: PackageInfo): string {
  return goColumns([p.name, p.title, p.version ?? '', friendlyTime(p.created), p.platform ?? ''], FILE_INFO_WIDTHS).trim();
}

/**
 * Capstan's YamlTime as it prints: RFC 3339 or `2006-01-02 15:04` read, shown as
 * `2006-01-02 15:04` (the wall time in the zone written); anything else `N/A`.
 */
export function friendlyTime(text: string | undefined): string {
  if (!text) return 'N/A';
  const rfc3339 = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}):\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (rfc3339) return `${rfc3339[1]} ${rfc3339[2]}`;
  return /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/.test(text) ? text : 'N/A';
}

/** Go's os.FileMode.String() for the members `package describe --content` lists. */
export function goFileMode(type: 'file' | 'directory' | 'symlink', mode: number): string {
  const kind = type === 'directory' ? 'd' : type === 'symlink' ? 'L' : '-';
  const rwx = 'rwxrwxrwx';
  let bits = '';
  for (let i = 0; i < 9; i++) bits += mode & (1 << (8 - i)) ? rwx[i] : '-';
  return kind + bits;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Go's time.RFC822 (`02 Jan 06 15:04 MST`) in UTC, as a tar header's ModTime prints. */
export function rfc822(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${p(date.getUTCFullYear() % 100)} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())} UTC`;
}
