// Typed, position-aware reading of Capstan's YAML files. Every problem, from a syntax error to
// a wrong type, becomes a ManifestError naming file:line:column, so no raw YAML error escapes.
// The same readers accept plain objects (inline gulpfile options): they are wrapped in a YAML
// Document without source ranges, so messages then name the option path instead of a line.
import { Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { ManifestError } from '../errors.js';

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
  /** Turn warnings (unknown keys) into errors. */
  strict?: boolean | undefined;
  /** Receives warnings; without it they are dropped. */
  onWarning?: ((warning: ManifestWarning) => void) | undefined;
}

export interface Entry {
  key: string;
  keyNode: Node | null;
  value: Node | null;
}

interface Position { line?: number | undefined; column?: number | undefined }

// yaml.v2 (Capstan's parser) follows YAML 1.1: yes/no/on/off are booleans there too.
const YAML_VERSION = '1.1' as const;

export class YamlSource {
  private constructor(
    readonly file: string,
    readonly root: Node | null,
    private readonly lineCounter: LineCounter | undefined,
    private readonly options: ParseOptions,
  ) {}

  /** Parses YAML text; syntax errors become ManifestError with the position of the first. */
  static parse(text: string, file: string, options: ParseOptions = {}): YamlSource {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter, prettyErrors: false, version: YAML_VERSION, uniqueKeys: true });
    const first = doc.errors[0];
    if (first) {
      const { line, col } = lineCounter.linePos(first.pos[0]);
      throw new ManifestError(`invalid YAML: ${firstLine(first.message)}`, {
        code: 'E_YAML_SYNTAX', file, line, column: col,
        hint: yamlHint(first.code),
      });
    }
    return new YamlSource(file, (doc.contents as Node | null) ?? null, lineCounter, options);
  }

  /** Wraps a plain value (an inline option) so the same readers validate it. */
  static fromValue(value: unknown, file: string, options: ParseOptions = {}): YamlSource {
    const doc = new Document(value, { version: YAML_VERSION });
    return new YamlSource(file, (doc.contents as Node | null) ?? null, undefined, options);
  }

  position(node: Node | null | undefined): Position {
    const offset = node?.range?.[0];
    if (offset === undefined || !this.lineCounter) return {};
    const { line, col } = this.lineCounter.linePos(offset);
    return { line, column: col };
  }

  error(node: Node | null | undefined, code: string, problem: string, hint?: string): ManifestError {
    const at = this.position(node ?? this.root);
    const pos = this.lineCounter ? { line: at.line ?? 1, column: at.column ?? 1 } : {};
    return new ManifestError(problem, { code, file: this.file, ...pos, hint });
  }

  warn(node: Node | null | undefined, code: string, message: string, hint?: string): void {
    if (this.options.strict) throw this.error(node, code, message, hint ?? 'Remove it (strict mode turns this warning into an error).');
    const at = this.position(node);
    this.options.onWarning?.({ code, message, file: this.file, line: at.line, column: at.column, hint });
  }

  /** The entries of a mapping; null (an empty value) reads as no entries. */
  mapping(node: Node | null, path: string): Entry[] {
    node = this.deref(node);
    if (node === null || (isScalar(node) && node.value === null)) return [];
    if (!isMap(node)) {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be a mapping (key: value lines), found ${kindOf(node)}`,
        `Write ${path || 'it'} as indented "key: value" lines.`);
    }
    const entries: Entry[] = [];
    for (const pair of node.items) {
      const keyNode = this.deref(pair.key as Node | null);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
        throw this.error(keyNode ?? node, 'E_YAML_TYPE', `${describe(path)} has a key that is not a plain name`, 'Use simple text keys.');
      }
      entries.push({ key: scalarText(keyNode), keyNode, value: this.deref(pair.value as Node | null) });
    }
    return entries;
  }

  /** A scalar read as text, the way yaml.v2 fills a Go string (numbers keep their spelling). */
  string(node: Node | null, path: string): string | undefined {
    node = this.deref(node);
    if (node === null || (isScalar(node) && node.value === null)) return undefined;
    if (!isScalar(node)) {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be a single value, found ${kindOf(node)}`,
        `Write ${path} as text on one line, e.g. \`${lastKey(path)}: value\`.`);
    }
    return scalarText(node);
  }

  /** A list of scalars (yaml.v2 []string); an empty value reads as []. */
  stringList(node: Node | null, path: string): string[] {
    node = this.deref(node);
    if (node === null || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be a list, found ${kindOf(node)}`,
        `Write each item on its own line starting with "- " under \`${lastKey(path)}:\`, or as [a, b].`);
    }
    return node.items.map((item, index) => {
      const value = this.string(item as Node | null, `${path}[${index}]`);
      if (value === undefined) throw this.error((item as Node | null) ?? node, 'E_YAML_TYPE', `${describe(`${path}[${index}]`)} is empty`, 'Remove the empty item or give it a value.');
      return value;
    });
  }

  bool(node: Node | null, path: string): boolean | undefined {
    node = this.deref(node);
    if (node === null || (isScalar(node) && node.value === null)) return undefined;
    if (!isScalar(node) || typeof node.value !== 'boolean') {
      throw this.error(node, 'E_YAML_TYPE', `${describe(path)} must be true or false, found ${isScalar(node) ? JSON.stringify(scalarText(node)) : kindOf(node)}`,
        `Write \`${lastKey(path)}: true\` or \`${lastKey(path)}: false\`.`);
    }
    return node.value;
  }

  /** A mapping of scalar values (Go map[string]string), in source order. */
  stringMap(node: Node | null, path: string): Array<{ key: string; value: string; keyNode: Node | null; valueNode: Node | null }> {
    return this.mapping(node, path).map(({ key, keyNode, value }) => ({
      key, keyNode, valueNode: value, value: this.string(value, `${path}.${key}`) ?? '',
    }));
  }

  /** Rejects (or warns about) keys not in `known`. */
  checkKeys(entries: Entry[], known: readonly string[], where: string): void {
    for (const e of entries) {
      if (!known.includes(e.key)) {
        this.warn(e.keyNode, 'W_UNKNOWN_KEY', `unknown key \`${e.key}\`${where ? ` in ${where}` : ''} is ignored (known: ${known.join(', ')})`,
          suggest(e.key, known));
      }
    }
  }

  private deref(node: Node | null | undefined): Node | null {
    if (node && isAlias(node)) {
      // Aliases are rare in these files; resolve them against the document they came from.
      throw this.error(node, 'E_YAML_ALIAS', 'YAML aliases (*name) are not supported here', 'Write the value out in full.');
    }
    return node ?? null;
  }
}

export function findEntry(entries: Entry[], key: string): Entry | undefined {
  return entries.find((e) => e.key === key);
}

function scalarText(node: Node): string {
  const s = node as Node & { value: unknown; source?: string; type?: string };
  if (typeof s.value === 'string') return s.value;
  // Plain scalars keep their spelling (version: 1.10 stays "1.10", created stays a string).
  if (s.source !== undefined && (s.type === 'PLAIN' || s.type === undefined)) return s.source;
  if (s.value instanceof Date) return s.value.toISOString();
  return String(s.value);
}

function kindOf(node: Node | null): string {
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return `${JSON.stringify(scalarText(node))}`;
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
    case 'DUPLICATE_KEY': return 'Each key may appear only once in a mapping; remove or merge the duplicate.';
    case 'BAD_INDENT':
    case 'MISSING_CHAR': return 'Check the indentation: nested keys need more spaces than their parent, and siblings the same amount.';
    case 'TAB_AS_INDENT': return 'Indent with spaces; YAML does not allow tabs for indentation.';
    case 'MULTIPLE_DOCS': return 'Keep one YAML document per file (remove the extra `---`).';
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
