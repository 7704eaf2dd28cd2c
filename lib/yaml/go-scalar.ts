// How Capstan's YAML reader, go-yaml v2 (gopkg.in/yaml.v2 v2.2.8, resolve.go), reads one scalar:
// which plain words are booleans, nulls, integers (with Go's strconv base prefixes), floats or
// timestamps, and what text such a value has once yaml.Marshal has written it again (Capstan
// sends every run.yaml config set through interface{} and back, see ../manifest/run-yaml.ts).
// Pure functions: no YAML library here, only go-yaml's rules.

export type GoScalar =
  | { kind: 'null' }
  | { kind: 'bool'; value: boolean }
  /** int, int64 or uint64 in Go: kept exact. */
  | { kind: 'int'; value: bigint }
  | { kind: 'float'; value: number }
  /** go-yaml hands a timestamp to interface{} as its text (for "backward compatibility"). */
  | { kind: 'timestamp'; text: string }
  | { kind: 'str'; value: string };

export const TAG_PREFIX = 'tag:yaml.org,2002:';
const STR = `${TAG_PREFIX}str`;
const BINARY = `${TAG_PREFIX}binary`;
const BOOL = `${TAG_PREFIX}bool`;
const INT = `${TAG_PREFIX}int`;
const FLOAT = `${TAG_PREFIX}float`;
const NULL = `${TAG_PREFIX}null`;
const TIMESTAMP = `${TAG_PREFIX}timestamp`;
const MERGE = `${TAG_PREFIX}merge`;
const RESOLVABLE = new Set(['', STR, BOOL, INT, FLOAT, NULL, TIMESTAMP]);

/** A value go-yaml cannot decode with its explicit tag (`!!int abc`). */
export class GoScalarError extends Error {}

// resolveMapList: exactly these spellings, nothing case-folded beyond them.
const WORDS = new Map<string, GoScalar>();
for (const w of ['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']) WORDS.set(w, { kind: 'bool', value: true });
for (const w of ['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']) WORDS.set(w, { kind: 'bool', value: false });
for (const w of ['', '~', 'null', 'Null', 'NULL']) WORDS.set(w, { kind: 'null' });
for (const w of ['.nan', '.NaN', '.NAN']) WORDS.set(w, { kind: 'float', value: Number.NaN });
for (const w of ['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF']) WORDS.set(w, { kind: 'float', value: Number.POSITIVE_INFINITY });
for (const w of ['-.inf', '-.Inf', '-.INF']) WORDS.set(w, { kind: 'float', value: Number.NEGATIVE_INFINITY });

const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
// strconv.ParseFloat on text starting with '.': Go float syntax, `_` only between digits.
const DOT_FLOAT = /^\.[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+(?:_[0-9]+)*)?$/;

/** True for a plain `<<` (a merge key). */
export function isMergeKey(text: string, plain: boolean, tag: string | undefined): boolean {
  return text === '<<' && (plain && tag === undefined || tag === MERGE);
}

/**
 * go-yaml's resolve(tag, in) for a plain scalar (`tag` empty) or an explicitly tagged one.
 * Quoted and block scalars without a tag are strings and never come here.
 */
export function resolveScalar(text: string, tag = ''): GoScalar {
  if (!RESOLVABLE.has(tag)) {
    // !!binary, custom and non-specific (`!`) tags: the text itself.
    if (tag === BINARY) return { kind: 'str', value: decodeBinary(text) };
    return { kind: 'str', value: text };
  }
  const resolved = tag === STR ? { kind: 'str', value: text } as GoScalar : resolveUntagged(text, tag);
  if (tag === '' || tag === STR) return resolved;
  const got = tagOf(resolved);
  if (got === tag) return resolved;
  if (tag === FLOAT && resolved.kind === 'int') return { kind: 'float', value: Number(resolved.value) };
  throw new GoScalarError(`cannot decode !!${got.slice(TAG_PREFIX.length)} \`${text}\` as a !!${tag.slice(TAG_PREFIX.length)}`);
}

function resolveUntagged(text: string, tag: string): GoScalar {
  const first = text[0];
  const hint = first === undefined ? 'N' : first === '+' || first === '-' ? 'S' : first >= '0' && first <= '9' ? 'D'
    : 'yYnNtTfFoO~'.includes(first) ? 'M' : first === '.' ? '.' : '';
  if (hint === '') return { kind: 'str', value: text };
  const word = WORDS.get(text);
  if (word) return word;
  if (hint === '.') {
    if (DOT_FLOAT.test(text)) {
      const value = Number(text.replaceAll('_', ''));
      if (Number.isFinite(value)) return { kind: 'float', value };
    }
  } else if (hint === 'D' || hint === 'S') {
    if ((tag === '' || tag === TIMESTAMP) && isGoTimestamp(text)) return { kind: 'timestamp', text };
    const plain = text.replaceAll('_', '');
    const int = parseGoInt(plain);
    if (int !== undefined) return { kind: 'int', value: int };
    if (YAML_STYLE_FLOAT.test(plain)) {
      // ParseFloat fails (ErrRange) on overflow: go-yaml then keeps the text as a string.
      const value = Number(plain);
      if (Number.isFinite(value)) return { kind: 'float', value };
    }
    // resolve.go's own 0b / -0b branches are covered by ParseInt's base prefixes (Go ≥ 1.13).
  }
  return { kind: 'str', value: text };
}

function tagOf(v: GoScalar): string {
  switch (v.kind) {
    case 'null': return NULL;
    case 'bool': return BOOL;
    case 'int': return INT;
    case 'float': return FLOAT;
    case 'timestamp': return TIMESTAMP;
    case 'str': return STR;
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** strconv.ParseInt(s, 0, 64), then ParseUint(s, 0, 64), as resolve.go tries them. */
export function parseGoInt(s: string): bigint | undefined {
  const signed = parseBase0(s, true);
  if (signed !== undefined && signed >= INT64_MIN && signed <= INT64_MAX) return signed;
  const unsigned = parseBase0(s, false);
  if (unsigned !== undefined && unsigned >= 0n && unsigned <= UINT64_MAX) return unsigned;
  return undefined;
}

function parseBase0(s: string, allowSign: boolean): bigint | undefined {
  let negative = false;
  if (allowSign && (s[0] === '+' || s[0] === '-')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '') return undefined;
  let digits = s;
  let base = 10;
  if (s[0] === '0') {
    const p = s[1]?.toLowerCase();
    if (s.length >= 3 && p === 'b') { base = 2; digits = s.slice(2); }
    else if (s.length >= 3 && p === 'o') { base = 8; digits = s.slice(2); }
    else if (s.length >= 3 && p === 'x') { base = 16; digits = s.slice(2); }
    else { base = 8; digits = s.slice(1); }
  }
  const valid = base === 2 ? /^[01]*$/ : base === 8 ? /^[0-7]*$/ : base === 16 ? /^[0-9a-fA-F]*$/ : /^[0-9]*$/;
  if (!valid.test(digits)) return undefined;
  let n = 0n;
  const b = BigInt(base);
  for (const c of digits) n = n * b + BigInt(Number.parseInt(c, 16));
  return negative ? -n : n;
}

// resolve.go tries these time.Parse layouts after a quick "YYYY-" check:
// 2006-1-2T15:4:5.999999999Z07:00 (also with a lower-case t), 2006-1-2 15:4:5.999999999, 2006-1-2.
const TIMESTAMP_FORMS = [
  /^(\d{4})-(\d{1,2})-(\d{1,2})[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/,
  /^(\d{4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d{1,9})?$/,
  /^(\d{4})-(\d{1,2})-(\d{1,2})$/,
];

/** Whether go-yaml v2 reads this plain scalar as a timestamp. */
export function isGoTimestamp(s: string): boolean {
  if (!/^\d{4}-/.test(s)) return false;
  for (const form of TIMESTAMP_FORMS) {
    const m = form.exec(s);
    if (!m) continue;
    const [year, month, day, hour = '0', minute = '0', second = '0', zh = '0', zm = '0'] = m.slice(1) as Array<string | undefined>;
    const y = Number(year); const mo = Number(month); const d = Number(day);
    if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo)) continue;
    if (Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) continue;
    if (Number(zh) > 24 || Number(zm) > 60) continue;
    return true;
  }
  return false;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** strconv.FormatFloat(x, 'g', -1, 64), with go-yaml's spellings of the infinities and NaN. */
export function goFormatFloat(x: number): string {
  if (Number.isNaN(x)) return '.nan';
  if (x === Number.POSITIVE_INFINITY) return '.inf';
  if (x === Number.NEGATIVE_INFINITY) return '-.inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const sign = x < 0 ? '-' : '';
  // toExponential() gives the shortest digits that read back as x, as Go's shortest mode does.
  const [mantissa = '', exponent = '0'] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exp = Number(exponent);
  // %g with the shortest precision: %e when exp < -4 || exp >= 6 (Go uses 6 here, not the digit count).
  if (exp < -4 || exp >= 6) {
    const frac = digits.length > 1 ? `.${digits.slice(1)}` : '';
    const e = Math.abs(exp);
    return `${sign}${digits[0]}${frac}e${exp < 0 ? '-' : '+'}${e < 10 ? `0${e}` : String(e)}`;
  }
  const dp = exp + 1; // digits before the point
  if (dp <= 0) return `${sign}0.${'0'.repeat(-dp)}${digits}`;
  if (dp >= digits.length) return `${sign}${digits}${'0'.repeat(dp - digits.length)}`;
  return `${sign}${digits.slice(0, dp)}.${digits.slice(dp)}`;
}

/**
 * The text a Go string field gets after the value went into interface{}, out through
 * yaml.Marshal and back (run.yaml config sets): `yes` → "true", `0755` → "493", `1.10` → "1.1",
 * `1e6` → "1e+06". Null gives undefined (the field stays empty).
 */
export function marshalledText(v: GoScalar): string | undefined {
  switch (v.kind) {
    case 'null': return undefined;
    case 'bool': return v.value ? 'true' : 'false';
    case 'int': return v.value.toString();
    case 'float': return goFormatFloat(v.value);
    case 'timestamp': return v.text;
    case 'str': return v.value;
  }
}

function decodeBinary(text: string): string {
  const compact = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) {
    throw new GoScalarError('!!binary value contains invalid base64 data');
  }
  return Buffer.from(compact, 'base64').toString('utf8');
}
