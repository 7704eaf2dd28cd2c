// Typed, position-aware reading of Capstan's YAML files, with the meaning Capstan's reader
// (go-yaml v2) gives them. The `yaml` library only parses (failsafe schema: every scalar is
// text); what a scalar means is go-yaml's, from ./go-scalar.ts. What go-yaml accepts is
// accepted: repeated keys (the last one wins, with a warning naming file:line), merge keys
// (`<<`), aliases, YAML 1.1 words (yes/no/on/off…), octal and hex numbers, extra documents.
// `strict` turns every warning into an error. Every problem is a typed error naming
// file:line:column, so no raw YAML error escapes.
//
// The same readers accept plain objects (inline gulpfile options): they are wrapped in a YAML
// Document without source ranges, so messages then name the option path instead of a line.
import {
  Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Node, type YAMLMap,
} from 'yaml';
import { ManifestError, type CapstanError, type CapstanErrorDetails } from '../errors.js';
import { GoScalarError, isMergeKey, marshalledText, resolveScalar, type GoScalar } from './go-scalar.js';

export interface ManifestWarning {
  code: string;
  message: string;
  file: string;
  line?: number | undefined;
  column?: number | undefined;
  /** What to do about it. */
  hint?: string | undefined;
}

export interface ParseOptions {
  /** Turn warnings (unknown and repeated keys, ignored documents) into errors. */
  strict?: boolean | undefined;
  /** Receives warnings; without it they are dropped. */
  onWarning?: ((warning: ManifestWarning) => void) | undefined;
  /** The error type thrown (default ManifestError). */
  errorClass?: (new (problem: string, details: CapstanErrorDetails) => CapstanError) | undefined;
}

/**
 * How a scalar becomes the text of a Go string: `text` as go-yaml fills a string field (the
 * scalar as written: `version: 1.10` is "1.10", `yes` is "yes"); `interface` as it comes out
 * after interface{} and yaml.Marshal (run.yaml config sets: `yes` is "true", `0755` is "493").
 */
export type Decode = 'text' | 'interface';

export interface Entry {
  key: string;
  keyNode: Node | null;
  /** The value that counts (the last one given for the key). */
  value: Node | null;
  /** Every value given for the key, in go-yaml's decoding order (see mergedMap). */
  values: Array<Node | null>;
}

interface Occurrence { keyNode: Node | null; value: Node | null; merged: boolean }

interface Position { line?: number | undefined; column?: number | undefined }

export class YamlSource {
  private constructor(
    readonly file: string,
    readonly root: Node | null,
    private readonly doc: Document.Parsed | undefined,
    private readonly lineCounter: LineCounter | undefined,
    private readonly options: ParseOptions,
  ) {}

  /** Parses YAML text; syntax errors become typed errors with the position of the first. */
  static parse(text: string, file: string, options: ParseOptions = {}): YamlSource {
    const lineCounter = new LineCounter();
    const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, version: '1.1', schema: 'failsafe', uniqueKeys: false });
    const ErrorClass = options.errorClass ?? ManifestError;
    // go-yaml's Unmarshal reads the first document only; the others are not even parsed.
    const doc = (docs as Document.Parsed[])[0];
    const first = doc?.errors[0] ?? (docs as unknown as { errors?: Array<{ pos: [number, number]; message: string; code: string }> }).errors?.[0];
    if (first) {
      const { line, col } = lineCounter.linePos(first.pos[0]);
      throw new ErrorClass(`invalid YAML: ${firstLine(first.message)}`, {
        code: 'E_YAML_SYNTAX', file, line, column: col, hint: yamlHint(first.code),
      });
    }
    const src = new YamlSource(file, (doc?.contents as Node | null | undefined) ?? null, doc, lineCounter, options);
    if (doc) src.checkAliases(doc);
    const extra = (docs as Document.Parsed[])[1];
    if (extra) {
      src.warn(extra.contents as Node | null, 'W_YAML_EXTRA_DOCUMENT',
        `${file} holds more than one YAML document; only the first is read (as Capstan does), the rest is ignored`,
        'Remove the `---` and everything after it, or move it to another file.');
    }
    return src;
  }

  /** Wraps a plain value (an inline option) so the same readers validate it. */
  static fromValue(value: unknown, file: string, options: ParseOptions = {}): YamlSource {
    const doc = new Document(value, { version: '1.1' });
    return new YamlSource(file, (doc.contents as Node | null) ?? null, undefined, undefined, options);
  }

  position(node: Node | null | undefined): Position {
    const offset = node?.range?.[0];
    if (offset === undefined || !this.lineCounter) return {};
    const { line, col } = this.lineCounter.linePos(offset);
    return { line, column: col };
  }

  error(node: Node | null | undefined, code: string, problem: string, hint?: string): CapstanError {
    const at = this.position(node ?? this.root);
    const pos = this.lineCounter ? { line: at.line ?? 1, column: at.column ?? 1 } : {};
    const ErrorClass = this.options.errorClass ?? ManifestError;
    return new ErrorClass(problem, { code, file: this.file, ...pos, hint });
  }

  warn(node: Node | null | undefined, code: string, message: string, hint?: string): void {
    if (this.options.strict) throw this.error(node, code.replace(/^W_/, 'E_'), message, hint ?? 'Remove it (strict mode turns this warning into an error).');
    const at = this.position(node);
    this.options.onWarning?.({ code, message, file: this.file, line: at.line, column: at.column, hint });
  }

  /**
   * The fields of a Go struct. A key given twice warns and the last value counts; for the
   * fields of map type named in `mapFields`, go-yaml fills the same map again, so read those
   * with mergedMap(). Null (an empty document or value) reads as no fields.
   */
  struct(node: Node | null, path: string, mapFields: readonly string[] = []): Entry[] {
    const where = path ? ` in ${path}` : '';
    return this.entries(node, path, 'text', (key, earlier) => mapFields.includes(key)
      ? [`\`${key}\`${where} is given again (first at line ${this.lineOf(earlier)}); Capstan's YAML reader adds these entries to the earlier ones, later ones winning`,
        'Merge the two into one mapping.']
      : [`\`${key}\`${where} is given again (first at line ${this.lineOf(earlier)}); Capstan's YAML reader keeps the last value, this one`,
        'Remove one of the two (the earlier one is ignored).']);
  }

  /** The entries of a Go map (keys decoded as `decode`). A repeated key warns; the last one wins. */
  map(node: Node | null, path: string, decode: Decode = 'text'): Entry[] {
    return this.entries(node, path, decode, (key, earlier) => [
      `key \`${key}\`${path ? ` in ${path}` : ''} is given again (first at line ${this.lineOf(earlier)}); Capstan's YAML reader keeps the last one, this one`,
      'Remove one of the two (the earlier one is ignored).']);
  }

  /**
   * A struct field of map type given more than once (`config_set:` twice): go-yaml decodes each
   * into the same map, so the entries add up and a later entry replaces an earlier one of the
   * same key; an empty value empties the map.
   */
  mergedMap(entry: Entry | undefined, path: string, decode: Decode = 'text'): Entry[] {
    if (!entry) return [];
    const merged = new Map<string, Entry>();
    for (const value of entry.values) {
      if (this.isNull(value)) { merged.clear(); continue; }
      for (const e of this.map(value, path, decode)) {
        const before = merged.get(e.key);
        if (before && entry.values.length > 1) {
          this.warn(e.keyNode, 'W_YAML_DUPLICATE_KEY',
            `key \`${e.key}\` in ${path} is given again (first at line ${this.lineOf(before.keyNode)}, in an earlier \`${lastKey(path)}\`); Capstan's YAML reader keeps the last one, this one`,
            'Remove one of the two, or merge them.');
        }
        merged.set(e.key, before ? { ...e, values: [...before.values, ...e.values] } : e);
      }
    }
    return [...merged.values()];
  }

  /** A scalar read into a Go string; undefined for null. Lists and mappings are errors. */
  string(node: Node | null, path: string, decode: Decode = 'text'): string | undefined {
    node = this.deref(node);
    if (node === null) return undefined;
    if (!isScalar(node)) {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be a single value, found ${kindOf(node)}`,
        `Write ${path} as text on one line, e.g. \`${lastKey(path)}: value\`.`);
    }
    const value = this.scalar(node);
    if (value.kind === 'null') return undefined;
    return decode === 'text' ? this.textOf(node, value) : marshalledText(value);
  }

  /** A list of scalars (Go []string); an empty value reads as [], an empty item as ''. */
  stringList(node: Node | null, path: string, decode: Decode = 'text'): string[] {
    node = this.deref(node);
    if (this.isNull(node)) return [];
    if (!isSeq(node)) {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be a list, found ${kindOf(node)}`,
        `Write each item on its own line starting with "- " under \`${lastKey(path)}:\`, or as [a, b].`);
    }
    return node.items.map((item, index) => this.string(item as Node | null, `${path}[${index}]`, decode) ?? '');
  }

  /** A Go bool: true/false and the YAML 1.1 words go-yaml knows (yes, no, on, off, y, n…). */
  bool(node: Node | null, path: string): boolean | undefined {
    node = this.deref(node);
    if (node === null) return undefined;
    const value = isScalar(node) ? this.scalar(node) : undefined;
    if (value?.kind === 'null') return undefined;
    if (value?.kind !== 'bool') {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be true or false, found ${isScalar(node) ? JSON.stringify(this.textOf(node, value!)) : kindOf(node)}`,
        `Write \`${lastKey(path)}: true\` or \`${lastKey(path)}: false\` (unquoted; yes/no and on/off work too).`);
    }
    return value.value;
  }

  /** A mapping of scalar values (Go map[string]string), in source order; null values read as ''. */
  stringMap(node: Node | null, path: string, decode: Decode = 'text'): Array<{ key: string; value: string; keyNode: Node | null; valueNode: Node | null }> {
    return this.stringMapOf(this.map(node, path, decode), path, decode);
  }

  stringMapOf(entries: Entry[], path: string, decode: Decode = 'text'): Array<{ key: string; value: string; keyNode: Node | null; valueNode: Node | null }> {
    return entries.map(({ key, keyNode, value }) => ({
      key, keyNode, valueNode: value, value: this.string(value, `${path}.${key}`, decode) ?? '',
    }));
  }

  /** Warns about keys not in `known` (go-yaml ignores them). */
  checkKeys(entries: Entry[], known: readonly string[], where: string): void {
    for (const e of entries) {
      if (!known.includes(e.key)) {
        this.warn(e.keyNode, 'W_UNKNOWN_KEY', `unknown key \`${e.key}\`${where ? ` in ${where}` : ''} is ignored (known: ${known.join(', ')})`,
          suggest(e.key, known));
      }
    }
  }

  /** True for an absent value or a scalar go-yaml reads as null (``, `~`, `null`…). */
  isNull(node: Node | null): boolean {
    node = this.deref(node);
    return node === null || (isScalar(node) && this.scalar(node).kind === 'null');
  }

  private entries(node: Node | null, path: string, decode: Decode, duplicate: (key: string, earlier: Node | null) => [message: string, hint: string]): Entry[] {
    node = this.deref(node);
    if (this.isNull(node)) return [];
    if (!isMap(node)) {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be a mapping (key: value lines), found ${kindOf(node)}`,
        `Write ${path || 'it'} as indented "key: value" lines.`);
    }
    const byKey = new Map<string, Entry & { lastExplicit: Node | null | undefined }>();
    for (const o of this.occurrences(node, path)) {
      const key = this.keyText(o.keyNode, node, path, decode);
      const before = byKey.get(key);
      if (!before) {
        byKey.set(key, { key, keyNode: o.keyNode, value: o.value, values: [o.value], lastExplicit: o.merged ? undefined : o.keyNode });
        continue;
      }
      if (!o.merged && before.lastExplicit !== undefined) {
        this.warn(o.keyNode, 'W_YAML_DUPLICATE_KEY', ...duplicate(key, before.lastExplicit));
      } else if (o.merged && before.lastExplicit !== undefined) {
        // go-yaml applies a merge where `<<` stands, over keys written before it.
        this.warn(before.lastExplicit, 'W_YAML_MERGE_OVERRIDE',
          `\`${key}\` is replaced by the value from the \`<<\` merge below it (Capstan's YAML reader applies a merge where it stands)`,
          'Put the `<<:` line first in the mapping, so the keys written out override the merged ones.');
      }
      before.value = o.value;
      before.values.push(o.value);
      if (!o.merged) { before.keyNode = o.keyNode; before.lastExplicit = o.keyNode; }
    }
    return [...byKey.values()].map(({ lastExplicit: _, ...e }) => e);
  }

  /** The key/value pairs of a mapping with `<<` merges expanded in place, as go-yaml decodes them. */
  private occurrences(map: YAMLMap, path: string, merged = false): Occurrence[] {
    const out: Occurrence[] = [];
    for (const pair of map.items) {
      const keyNode = this.deref(pair.key as Node | null);
      const value = this.deref(pair.value as Node | null);
      if (isScalar(keyNode) && isMergeKey(String(keyNode.source ?? keyNode.value), keyNode.type === 'PLAIN' || keyNode.source === undefined, keyNode.tag)) {
        const sources = isMap(value) ? [value] : isSeq(value) ? [...value.items].reverse().map((i) => this.deref(i as Node | null)) : [value];
        for (const s of sources) {
          if (!isMap(s)) {
            throw this.error(s ?? keyNode, 'E_YAML_MERGE', `${describe(path)}: a \`<<\` merge needs a mapping or a list of mappings, found ${kindOf(s)}`,
              'Merge an anchored mapping (`<<: *defaults`) or a list of them (`<<: [*a, *b]`).');
          }
          out.push(...this.occurrences(s, path, true));
        }
        continue;
      }
      out.push({ keyNode, value, merged });
    }
    return out;
  }

  private keyText(keyNode: Node | null, map: Node, path: string, decode: Decode): string {
    if (keyNode === null) return '';
    if (!isScalar(keyNode)) {
      throw this.error(keyNode ?? map, 'E_YAML_TYPE', `${describe(path)} has a key that is not a plain name`, 'Use simple text keys.');
    }
    const value = this.scalar(keyNode);
    if (value.kind === 'null') return '';
    return (decode === 'text' ? this.textOf(keyNode, value) : marshalledText(value)) ?? '';
  }

  /** What go-yaml resolves a scalar node to (explicit tags included). */
  private scalar(node: Node): GoScalar {
    const s = node as Node & { value: unknown; source?: string; type?: string; tag?: string };
    if (s.source === undefined) return fromJs(s.value);
    try {
      if (s.tag !== undefined) return resolveScalar(s.source, s.tag);
      return s.type === 'PLAIN' ? resolveScalar(s.source) : { kind: 'str', value: s.source };
    } catch (error) {
      if (error instanceof GoScalarError) throw this.error(node, 'E_YAML_TYPE', error.message, 'Remove the tag, or fix the value to match it.');
      throw error;
    }
  }

  /** The text go-yaml puts into a string field: the scalar as written (binary decoded). */
  private textOf(node: Node, value: GoScalar): string {
    const s = node as Node & { value: unknown; source?: string };
    if (s.source === undefined) return value.kind === 'str' ? value.value : marshalledText(value) ?? '';
    return value.kind === 'str' ? value.value : s.source;
  }

  private lineOf(node: Node | null): number | string {
    return this.position(node).line ?? '?';
  }

  private deref(node: Node | null | undefined): Node | null {
    if (node && isAlias(node)) {
      const target = this.doc ? node.resolve(this.doc) : undefined;
      if (!target) throw this.error(node, 'E_YAML_ALIAS', `unknown anchor '${node.source}' referenced`, `Define it first with &${node.source}, or write the value out.`);
      return target as Node;
    }
    return node ?? null;
  }

  /** go-yaml refuses an alias inside the node its anchor names ("value contains itself"). */
  private checkAliases(doc: Document.Parsed): void {
    visit(doc, {
      Alias: (_, alias) => {
        const target = alias.resolve(doc) as Node | undefined;
        const inner = alias.range?.[0];
        const range = target?.range;
        if (inner !== undefined && range && range[0] <= inner && inner < range[2]) {
          throw this.error(alias, 'E_YAML_ALIAS', `anchor '${alias.source}' value contains itself`, 'An alias cannot point at the mapping or list it is in.');
        }
      },
    });
  }
}

export function findEntry(entries: Entry[], key: string): Entry | undefined {
  return entries.find((e) => e.key === key);
}

/** A warning as one log line: `file:line:column: message (hint)`. */
export function formatWarning(w: ManifestWarning): string {
  return `${w.file}${w.line !== undefined ? `:${w.line}:${w.column ?? 1}` : ''}: ${w.message}${w.hint ? ` (${w.hint})` : ''}`;
}

/** An inline option's JS value, as the Go value it stands for. */
function fromJs(value: unknown): GoScalar {
  if (value === null || value === undefined) return { kind: 'null' };
  if (typeof value === 'boolean') return { kind: 'bool', value };
  if (typeof value === 'number') return Number.isInteger(value) ? { kind: 'int', value: BigInt(value) } : { kind: 'float', value };
  if (typeof value === 'bigint') return { kind: 'int', value };
  if (value instanceof Date) return { kind: 'str', value: value.toISOString() };
  return { kind: 'str', value: String(value) };
}

function kindOf(node: Node | null): string {
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return JSON.stringify(String((node as { source?: string }).source ?? node.value));
  return 'an unsupported value';
}

function describe(path: string): string {
  return path ? `\`${path}\`` : 'the file';
}

function lastKey(path: string): string {
  const parts = path.replace(/\[\d+\]$/, '').split('.');
  return parts[parts.length - 1] || 'key';
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
}

function yamlHint(code: string): string {
  switch (code) {
    case 'BAD_INDENT':
    case 'MISSING_CHAR': return 'Check the indentation: nested keys need more spaces than their parent, and siblings the same amount.';
    case 'TAB_AS_INDENT': return 'Indent with spaces; YAML does not allow tabs for indentation.';
    default: return 'Fix the YAML syntax at this position (quote values that contain ": " or start with a special character).';
  }
}

/** A "did you mean" hint for a mistyped key. */
function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = distance(key.toLowerCase(), candidate);
    if (d < bestDistance) { best = candidate; bestDistance = d; }
  }
  return best ? `Did you mean \`${best}\`?` : 'Remove it, or check the spelling against the documentation.';
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
