// Capstan's YAML dialect (go-yaml v2.2.8): scalar resolution (expectations from its resolve.go,
// its decode_test.go tables and Go's strconv rules), the reader's handling of repeated keys,
// merges, aliases and extra documents, and the emitter, checked byte for byte against libyaml
// (which go-yaml's emitter is a port of) where python3 with PyYAML's C binding is available.
import { spawnSync } from 'node:child_process';
import test from 'ava';
import { ManifestError } from '../lib/errors.js';
import { marshalGoFields, type GoField } from '../lib/yaml/go-emit.js';
import { goFormatFloat, marshalledText, resolveScalar, type GoScalar } from '../lib/yaml/go-scalar.js';
import { findEntry, YamlSource, type ManifestWarning } from '../lib/yaml/source.js';

const int = (n: bigint | number): GoScalar => ({ kind: 'int', value: BigInt(n) });
const float = (value: number): GoScalar => ({ kind: 'float', value });
const bool = (value: boolean): GoScalar => ({ kind: 'bool', value });
const str = (value: string): GoScalar => ({ kind: 'str', value });
const NULL: GoScalar = { kind: 'null' };

test('resolve: the YAML 1.1 words go-yaml v2 knows, in exactly the spellings it lists', (t) => {
  for (const w of ['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']) t.deepEqual(resolveScalar(w), bool(true), w);
  for (const w of ['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']) t.deepEqual(resolveScalar(w), bool(false), w);
  for (const w of ['', '~', 'null', 'Null', 'NULL']) t.deepEqual(resolveScalar(w), NULL, w);
  // Other casings are strings.
  for (const w of ['yEs', 'tRUE', 'oN', 'nULL', 'NuLL', 'Off ', 'yes!']) t.deepEqual(resolveScalar(w), str(w), w);
  t.deepEqual(resolveScalar('.inf'), float(Infinity));
  t.deepEqual(resolveScalar('+.INF'), float(Infinity));
  t.deepEqual(resolveScalar('-.Inf'), float(-Infinity));
  t.true(Number.isNaN((resolveScalar('.NaN') as { value: number }).value));
  t.deepEqual(resolveScalar('.nAn'), str('.nAn'));
});

test('resolve: integers with Go\'s base prefixes, underscores, and int64/uint64 limits', (t) => {
  const cases: Array<[string, GoScalar]> = [
    ['10', int(10)], ['-10', int(-10)], ['+685_230', int(685230)], ['0755', int(493)], ['02472256', int(685230)],
    ['0x_0A_74_AE', int(685230)], ['0x1F', int(31)], ['-0x1F', int(-31)], ['0o17', int(15)], ['0b1010_0111_0100_1010_1110', int(685230)],
    ['-0b101010', int(-42)], ['0', int(0)], ['1_000', int(1000)], ['00', int(0)],
    ['9223372036854775807', int(9223372036854775807n)], ['-9223372036854775808', int(-9223372036854775808n)],
    ['9223372036854775808', int(9223372036854775808n)], // past int64: ParseUint
    ['18446744073709551616', float(18446744073709551616)], // past uint64: a float
    // Not valid octal, so ParseInt fails, and the float pattern takes it.
    ['08', float(8)], ['0789', float(789)],
    ['0x', str('0x')], ['0b2', str('0b2')], ['1_', int(1)], ['-', str('-')], ['+', str('+')], ['1:20', str('1:20')],
  ];
  for (const [text, expected] of cases) t.deepEqual(resolveScalar(text), expected, text);
});

test('resolve: floats (decode_test.go\'s table), and what is not one', (t) => {
  const cases: Array<[string, GoScalar]> = [
    ['0.1', float(0.1)], ['.1', float(0.1)], ['-.1', float(-0.1)], ['6.8523e+5', float(685230)], ['685.230_15e+03', float(685230.15)],
    ['685_230.15', float(685230.15)], ['1.10', float(1.1)], ['1e3', float(1000)], ['1.', float(1)], ['+.5', float(0.5)],
    ['.5_0', float(0.5)], ['._5', str('._5')], ['.5e', str('.5e')], ['1e400', str('1e400')], ['.5e400', str('.5e400')],
    ['1.2.3', str('1.2.3')], ['0.54.0', str('0.54.0')], ['1e', str('1e')], ['e3', str('e3')],
  ];
  for (const [text, expected] of cases) t.deepEqual(resolveScalar(text), expected, text);
});

test('resolve: timestamps as go-yaml tries them (4-digit year, then time.Parse layouts)', (t) => {
  for (const ts of ['2015-01-01', '2015-2-3T3:4:5Z', '2015-02-24t18:19:39Z', '2015-02-24 18:19:39', '2015-02-24T18:19:39.12Z',
    '2015-02-24T18:19:39.123456789-03:00', '2017-09-14T18:08:16+02:00', '2024-02-29']) {
    t.deepEqual(resolveScalar(ts), { kind: 'timestamp', text: ts }, ts);
  }
  // Not timestamps: go-yaml falls through to numbers and strings.
  for (const s of ['2001-12-14 21:59:43.10 -5', '2015-02-30', '2023-02-29', '2015-13-01', '2017-09-14 18:08', '15-01-01', '2015-01-01T25:00:00Z',
    '2015-02-24T18:19:39.1234567890Z']) {
    t.is(resolveScalar(s).kind, 'str', s);
  }
});

test('resolve: explicit tags, as go-yaml checks them', (t) => {
  t.deepEqual(resolveScalar('2015-01-01', 'tag:yaml.org,2002:str'), str('2015-01-01'));
  t.deepEqual(resolveScalar('12', 'tag:yaml.org,2002:int'), int(12));
  t.deepEqual(resolveScalar('12', 'tag:yaml.org,2002:float'), float(12));
  t.deepEqual(resolveScalar('aGVsbG8=', 'tag:yaml.org,2002:binary'), str('hello'));
  t.deepEqual(resolveScalar('x', '!custom'), str('x'));
  t.throws(() => resolveScalar('abc', 'tag:yaml.org,2002:int'), { message: 'cannot decode !!str `abc` as a !!int' });
  t.throws(() => resolveScalar('1.5', 'tag:yaml.org,2002:bool'), { message: 'cannot decode !!float `1.5` as a !!bool' });
});

test('goFormatFloat: strconv.FormatFloat(x, \'g\', -1, 64) as yaml.Marshal writes floats', (t) => {
  const cases: Array<[number, string]> = [
    [1.1, '1.1'], [1, '1'], [0.5, '0.5'], [100000, '100000'], [1e6, '1e+06'], [123456789, '1.23456789e+08'], [1000000.5, '1.0000005e+06'],
    [0.0001, '0.0001'], [0.00001, '1e-05'], [-0.1, '-0.1'], [685230.15, '685230.15'], [1e21, '1e+21'], [1.5e-300, '1.5e-300'],
    [-0, '-0'], [0, '0'], [Infinity, '.inf'], [-Infinity, '-.inf'], [Number.NaN, '.nan'], [18446744073709551616, '1.8446744073709552e+19'],
    [3.141592653589793, '3.141592653589793'], [5e-324, '5e-324'],
  ];
  for (const [x, expected] of cases) t.is(goFormatFloat(x), expected, String(x));
});

test('marshalledText: a config set value after interface{} and yaml.Marshal', (t) => {
  const through = (s: string) => marshalledText(resolveScalar(s));
  t.deepEqual(['yes', 'Off', '0755', '0x1F', '1_000', '1.10', '08', '1e6', '.inf', '-1', '2015-01-01', '~', 'hello'].map(through),
    ['true', 'false', '493', '31', '1000', '1.1', '8', '1e+06', '.inf', '-1', '2015-01-01', undefined, 'hello']);
});

// ---- the reader --------------------------------------------------------------------------

function read(text: string, strict = false): { src: YamlSource; warnings: ManifestWarning[] } {
  const warnings: ManifestWarning[] = [];
  return { src: YamlSource.parse(text, 'f.yaml', { strict, onWarning: (w) => warnings.push(w) }), warnings };
}

test('struct: a repeated key warns at the repeat with the first line; the last value counts', (t) => {
  const { src, warnings } = read('a: 1\nb: 2\na: 3\n');
  const entries = src.struct(src.root, '');
  t.deepEqual(entries.map((e) => [e.key, src.string(e.value, e.key)]), [['a', '3'], ['b', '2']]);
  t.like(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', file: 'f.yaml', line: 3, column: 1 }]);
  t.regex(warnings[0]!.message, /first at line 1/);
  const e = t.throws(() => { const s = read('a: 1\nb: 2\na: 3\n', true).src; s.struct(s.root, ''); }, { instanceOf: ManifestError });
  t.is(e!.code, 'E_YAML_DUPLICATE_KEY');
  t.regex(e!.message, /^f\.yaml:3:1: `a` is given again/);
});

test('struct: a repeated map field adds up (go-yaml fills the same map); an empty one empties it', (t) => {
  const { src, warnings } = read('m:\n  x: 1\n  y: 2\nm:\n  y: 3\n  z: 4\n');
  const m = findEntry(src.struct(src.root, '', ['m']), 'm');
  t.deepEqual(src.stringMapOf(src.mergedMap(m, 'm'), 'm').map((e) => [e.key, e.value]), [['x', '1'], ['y', '3'], ['z', '4']]);
  t.like(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', line: 4 }, { code: 'W_YAML_DUPLICATE_KEY', line: 5 }]);
  t.regex(warnings[0]!.message, /adds these entries to the earlier ones/);
  const reset = read('m:\n  x: 1\nm: ~\nm:\n  z: 2\n').src;
  t.deepEqual(reset.mergedMap(findEntry(reset.struct(reset.root, '', ['m']), 'm'), 'm').map((e) => e.key), ['z']);
});

test('map: a repeated key replaces the earlier value whole', (t) => {
  const { src, warnings } = read('s:\n  a: {x: 1}\n  a: {y: 2}\n');
  const s = src.map(findEntry(src.struct(src.root, ''), 's')!.value, 's');
  t.is(s.length, 1);
  t.deepEqual(src.map(s[0]!.value, 's.a').map((e) => e.key), ['y']);
  t.like(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', line: 3, column: 3 }]);
});

test('merge keys and aliases: go-yaml\'s merge example, applied where `<<` stands', (t) => {
  const { src, warnings } = read([
    'center: &CENTER {x: 1, y: 2}',
    'big: &BIG {r: 10}',
    'small: &SMALL {r: 1}',
    'one:',
    '  << : *CENTER',
    '  r: 10',
    'multiple:',
    '  << : [*CENTER, *BIG]',
    'override:',
    '  << : [*BIG, *SMALL]',
    '  x: 1',
    'tagged:',
    '  !!merge "<<" : [*CENTER, *BIG]',
    'before:',
    '  r: 5',
    '  << : *BIG',
    'list: &L [a, b]',
    'again: *L',
  ].join('\n'));
  const top = src.struct(src.root, '');
  const flat = (key: string) => Object.fromEntries(src.map(findEntry(top, key)!.value, key).map((e) => [e.key, src.string(e.value, e.key)]));
  t.deepEqual(flat('one'), { x: '1', y: '2', r: '10' });
  t.deepEqual(flat('multiple'), { x: '1', y: '2', r: '10' });
  t.deepEqual(flat('override'), { r: '10', x: '1' }); // earlier maps in the list take precedence
  t.deepEqual(flat('tagged'), { x: '1', y: '2', r: '10' });
  t.deepEqual(flat('before'), { r: '10' }); // go-yaml: the merge after `r: 5` replaces it
  t.deepEqual(src.stringList(findEntry(top, 'again')!.value, 'again'), ['a', 'b']);
  t.like(warnings, [{ code: 'W_YAML_MERGE_OVERRIDE', line: 15 }]);
  const bad = read('a: &x null\nb:\n  <<: [*x]\n').src;
  t.regex(t.throws(() => bad.map(findEntry(bad.struct(bad.root, ''), 'b')!.value, 'b'), { instanceOf: ManifestError })!.message,
    /^f\.yaml:1:7: `b`: a `<<` merge needs a mapping or a list of mappings/);
  t.regex(t.throws(() => read('a: &x [1, *x]\n'), { instanceOf: ManifestError })!.message, /anchor 'x' value contains itself/);
  const unknown = read('a: *nope\n').src;
  t.regex(t.throws(() => unknown.string(findEntry(unknown.struct(unknown.root, ''), 'a')!.value, 'a'), { instanceOf: ManifestError })!.message,
    /^f\.yaml:1:4: unknown anchor 'nope' referenced/);
});

test('documents: only the first is read (its errors count), the rest is ignored with a warning', (t) => {
  const { src, warnings } = read('a: 1\n---\nb: [\n');
  t.deepEqual(src.struct(src.root, '').map((e) => e.key), ['a']);
  t.like(warnings, [{ code: 'W_YAML_EXTRA_DOCUMENT', line: 3 }]);
  t.deepEqual(read('').src.struct(read('').src.root, ''), []);
  t.deepEqual(read('# nothing\n').warnings, []);
  t.is(t.throws(() => read('a: [\n---\nb: 1\n'), { instanceOf: ManifestError })!.code, 'E_YAML_SYNTAX');
});

test('string fields keep the scalar as written; bool fields take go-yaml\'s words; lists keep empty items', (t) => {
  const { src } = read('v: 1.10\nw: yes\nx: 0755\ny: "quoted"\nz: ~\nb1: on\nb2: "true"\nb3: 1\nl: [a, ~, 1.0]\nbin: !!binary aGk=\n');
  const e = src.struct(src.root, '');
  const s = (k: string) => src.string(findEntry(e, k)!.value, k);
  t.deepEqual(['v', 'w', 'x', 'y', 'z', 'bin'].map(s), ['1.10', 'yes', '0755', 'quoted', undefined, 'hi']);
  t.is(src.string(findEntry(e, 'w')!.value, 'w', 'interface'), 'true');
  t.true(src.bool(findEntry(e, 'b1')!.value, 'b1'));
  // A quoted "true" is a string, which go-yaml will not put into a bool.
  t.regex(t.throws(() => src.bool(findEntry(e, 'b2')!.value, 'b2'), { instanceOf: ManifestError })!.message, /^f\.yaml:7:5: `b2` must be true or false, found "true"/);
  t.throws(() => src.bool(findEntry(e, 'b3')!.value, 'b3'), { instanceOf: ManifestError });
  t.deepEqual(src.stringList(findEntry(e, 'l')!.value, 'l'), ['a', '', '1.0']);
  t.deepEqual(src.stringList(findEntry(e, 'l')!.value, 'l', 'interface'), ['a', '', '1']);
});

// ---- the emitter against libyaml ------------------------------------------------------------

// Emits the same events go-yaml's encoder gives libyaml's emitter (plain, double-quoted or
// literal requested by encoder.stringv; width 80, indent 2, unicode), through PyYAML's C binding.
const ORACLE = String.raw`
import sys, json, yaml
out = []
for fields in json.load(sys.stdin):
    ev = [yaml.StreamStartEvent(), yaml.DocumentStartEvent(explicit=False), yaml.MappingStartEvent(None, None, True, flow_style=False)]
    def sc(v, style):
        return yaml.ScalarEvent(None, None, (True, True), v, style={'plain': None, 'double': '"', 'literal': '|'}[style])
    for key, value in fields:
        ev.append(sc(key, 'plain'))
        if isinstance(value, dict):
            ev.append(sc(value['v'], value['s']))
        else:
            ev.append(yaml.SequenceStartEvent(None, None, True, flow_style=False))
            for item in value: ev.append(sc(item['v'], item['s']))
            ev.append(yaml.SequenceEndEvent())
    ev += [yaml.MappingEndEvent(), yaml.DocumentEndEvent(explicit=False), yaml.StreamEndEvent()]
    out.append(yaml.emit(ev, Dumper=yaml.CDumper, width=80, indent=2, allow_unicode=True, line_break='\n'))
json.dump(out, sys.stdout)
`;

const hasLibyaml = spawnSync('python3', ['-c', 'import yaml; assert yaml.__with_libyaml__; yaml.CDumper'], { stdio: 'ignore' }).status === 0;

(hasLibyaml ? test : test.skip)('marshalGoFields gives libyaml\'s bytes for 600 awkward documents (quotes, indicators, breaks, unicode, folding)', (t) => {
  let seed = 20240501;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const pieces = ['a', 'b', 'Z', '1', '0', ' ', ' ', ' ', ':', '#', "'", '"', '-', '?', ',', '[', ']', '{', '&', '*', '!', '|', '>', '%', '@', '`', '\\',
    '\t', 'é', '€', '😀', '\n', '.', '~', 'yes', 'null', '0x1F', '1.5', '2024-01-02', '\u0085', '\u2028', '\r', '\u00a0', '\ufeff', '\u0007', '---', '...'];
  const word = () => {
    let s = '';
    const n = rnd(12) + (rnd(2) === 0 ? 60 + rnd(140) : 0);
    for (let i = 0; i < n; i++) s += (rnd(3) ? 'abcdefgh'[rnd(8)] : pieces[rnd(pieces.length)]) ?? '';
    return s;
  };
  // encoder.stringv's request: literal for text with \n, plain when it reads back as a string, else double.
  const style = (v: string) => v.includes('\n') ? 'literal'
    : resolveScalar(v).kind === 'str' && !/^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/.test(v) ? 'plain' : 'double';
  const docs: GoField[][] = [];
  for (let d = 0; d < 600; d++) {
    const fields: GoField[] = [];
    for (let f = 0; f < 3; f++) fields.push([`k${f}`, rnd(4) ? word() : [word(), word()]]);
    docs.push(fields);
  }
  const input = docs.map((fields) => fields.map(([k, v]) => [k, typeof v === 'string' ? { v, s: style(v) } : v.map((x) => ({ v: x, s: style(x) }))]));
  const run = spawnSync('python3', ['-c', ORACLE], { input: JSON.stringify(input), maxBuffer: 64 * 1024 * 1024 });
  t.is(run.status, 0, run.stderr.toString());
  const expected = JSON.parse(run.stdout.toString()) as string[];
  let same = 0;
  docs.forEach((fields, i) => {
    if (marshalGoFields(fields) === expected[i]) same++;
    else t.is(marshalGoFields(fields), expected[i] ?? '(missing)', JSON.stringify(fields));
  });
  t.is(same, docs.length);
});

test('marshalGoFields: the volume metadata and package.yaml shapes Capstan writes', (t) => {
  t.is(marshalGoFields([['format', 'raw']]), 'format: raw\n');
  t.is(marshalGoFields([['name', 'x'], ['require', ['a', 'b']], ['created', '2017-09-14T18:08:16+02:00']]),
    'name: x\nrequire:\n- a\n- b\ncreated: "2017-09-14T18:08:16+02:00"\n');
  t.is(marshalGoFields([['created', 'N/A']]), 'created: N/A\n'); // core/yaml_test.go: an empty YamlTime
  t.is(marshalGoFields([['t', 'line one\nline two']]), 't: |-\n  line one\n  line two\n');
  t.is(marshalGoFields([['e', []]]), 'e: []\n');
});
