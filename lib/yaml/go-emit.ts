// yaml.Marshal as Capstan runs it (go-yaml v2.2.8 encode.go and its libyaml emitter port) for
// the flat structs Capstan writes: meta/package.yaml (`capstan package init`) and
// volumes/<name>.yaml (`capstan volume create`). Only what those need: a block mapping of
// string fields and string lists, with the emitter's choice of plain, single-quoted,
// double-quoted or literal style and its line folding at 80 columns, so the bytes are Capstan's.
import { resolveScalar } from './go-scalar.js';

export type GoField = readonly [key: string, value: string | readonly string[]];

const BEST_INDENT = 2;
const BEST_WIDTH = 80;

/** The YAML text yaml.Marshal gives for a struct with these fields, in this order. */
export function marshalGoFields(fields: readonly GoField[]): string {
  const e = new Emitter();
  if (fields.length === 0) return '{}\n';
  for (const [key, value] of fields) {
    e.writeIndent(0);
    e.scalar(key, 0, true);
    e.indicator(':', false);
    if (typeof value === 'string') {
      e.scalar(value, BEST_INDENT, false);
    } else if (value.length === 0) {
      e.indicator('[]', true);
    } else {
      // A sequence in a mapping is indentless: `- item` at the key's column.
      for (const item of value) {
        e.writeIndent(0);
        e.indicator('-', true, true);
        e.scalar(item, BEST_INDENT, false);
      }
    }
  }
  e.writeIndent(0);
  if (e.openEnded) {
    e.indicator('...', true);
    e.writeIndent(0);
  }
  return e.out;
}

type Style = 'plain' | 'single' | 'double' | 'literal';

interface Analysis {
  multiline: boolean;
  blockPlainAllowed: boolean;
  singleQuotedAllowed: boolean;
  blockAllowed: boolean;
}

class Emitter {
  out = '';
  column = 0;
  whitespace = true;
  indention = true;
  openEnded = false;

  private put(s: string): void {
    this.out += s;
    this.column += [...s].length;
  }

  private putBreak(): void {
    this.out += '\n';
    this.column = 0;
  }

  writeIndent(indent: number): void {
    if (!this.indention || this.column > indent || (this.column === indent && !this.whitespace)) this.putBreak();
    while (this.column < indent) this.put(' ');
    this.whitespace = true;
    this.indention = true;
  }

  indicator(text: string, needWhitespace: boolean, isIndention = false): void {
    if (needWhitespace && !this.whitespace) this.put(' ');
    this.put(text);
    this.whitespace = false;
    this.indention = this.indention && isIndention;
    this.openEnded = false;
  }

  /** One string scalar: encoder.stringv, then select_scalar_style and the writer. */
  scalar(value: string, indent: number, simpleKey: boolean): void {
    const a = analyze(value);
    // stringv: a string that would read back as something else (yes, 1.10, a timestamp…) is quoted.
    const resolvesToString = resolveScalar(value).kind === 'str' && !isBase60Float(value);
    let style: Style = value.includes('\n') ? 'literal' : resolvesToString ? 'plain' : 'double';
    if (simpleKey && a.multiline) style = 'double';
    if (style === 'plain') {
      if (!a.blockPlainAllowed) style = 'single';
      if (value.length === 0 && simpleKey) style = 'single';
    }
    if (style === 'single' && !a.singleQuotedAllowed) style = 'double';
    if (style === 'literal' && (!a.blockAllowed || simpleKey)) style = 'double';
    const cps = [...value];
    switch (style) {
      case 'plain': this.plain(cps, indent, !simpleKey); break;
      case 'single': this.singleQuoted(cps, indent, !simpleKey); break;
      case 'double': this.doubleQuoted(cps, indent, !simpleKey); break;
      case 'literal': this.literal(cps, indent); break;
    }
  }

  private plain(v: string[], indent: number, allowBreaks: boolean): void {
    if (!this.whitespace) this.put(' ');
    let spaces = false;
    let breaks = false;
    for (let i = 0; i < v.length; i++) {
      const c = v[i]!;
      if (c === ' ') {
        if (allowBreaks && !spaces && this.column > BEST_WIDTH && v[i + 1] !== ' ') this.writeIndent(indent);
        else this.put(c);
        spaces = true;
      } else if (isBreak(c)) {
        if (!breaks && c === '\n') this.putBreak();
        this.writeBreak(c);
        this.indention = true;
        breaks = true;
      } else {
        if (breaks) this.writeIndent(indent);
        this.put(c);
        this.indention = false;
        spaces = false;
        breaks = false;
      }
    }
    this.whitespace = false;
    this.indention = false;
  }

  private singleQuoted(v: string[], indent: number, allowBreaks: boolean): void {
    this.indicator("'", true);
    let spaces = false;
    let breaks = false;
    for (let i = 0; i < v.length; i++) {
      const c = v[i]!;
      if (c === ' ') {
        if (allowBreaks && !spaces && this.column > BEST_WIDTH && i > 0 && i < v.length - 1 && v[i + 1] !== ' ') this.writeIndent(indent);
        else this.put(c);
        spaces = true;
      } else if (isBreak(c)) {
        if (!breaks && c === '\n') this.putBreak();
        this.writeBreak(c);
        this.indention = true;
        breaks = true;
      } else {
        if (breaks) this.writeIndent(indent);
        if (c === "'") this.put("'");
        this.put(c);
        this.indention = false;
        spaces = false;
        breaks = false;
      }
    }
    this.indicator("'", false);
    this.whitespace = false;
    this.indention = false;
  }

  private doubleQuoted(v: string[], indent: number, allowBreaks: boolean): void {
    let spaces = false;
    this.indicator('"', true);
    for (let i = 0; i < v.length; i++) {
      const c = v[i]!;
      const cp = c.codePointAt(0)!;
      if (!isPrintable(cp) || cp === 0xfeff || isBreak(c) || c === '"' || c === '\\') {
        this.put('\\');
        this.put(escapeOf(cp));
        spaces = false;
      } else if (c === ' ') {
        if (allowBreaks && !spaces && this.column > BEST_WIDTH && i > 0 && i < v.length - 1) {
          this.writeIndent(indent);
          if (v[i + 1] === ' ') this.put('\\');
        } else {
          this.put(c);
        }
        spaces = true;
      } else {
        this.put(c);
        spaces = false;
      }
    }
    this.indicator('"', false);
    this.whitespace = false;
    this.indention = false;
  }

  private literal(v: string[], indent: number): void {
    this.indicator('|', true);
    // Block scalar hints: an indentation digit for a leading space or break, then chomping.
    if (v[0] === ' ' || isBreak(v[0] ?? '')) this.indicator(String(BEST_INDENT), false);
    this.openEnded = false;
    const last = v[v.length - 1];
    let chomp = '';
    if (v.length === 0 || !isBreak(last!)) chomp = '-';
    else if (v.length === 1 || isBreak(v[v.length - 2]!)) { chomp = '+'; this.openEnded = true; }
    if (chomp) this.indicator(chomp, false);
    this.putBreak();
    this.indention = true;
    this.whitespace = true;
    let breaks = true;
    for (const c of v) {
      if (isBreak(c)) {
        this.writeBreak(c);
        this.indention = true;
        breaks = true;
      } else {
        if (breaks) this.writeIndent(indent);
        this.put(c);
        this.indention = false;
        breaks = false;
      }
    }
  }

  private writeBreak(c: string): void {
    if (c === '\n') this.putBreak();
    else { this.out += c; this.column = 0; }
  }
}

/** yaml_emitter_analyze_scalar, for block context (no flow collections are written here). */
function analyze(value: string): Analysis {
  if (value.length === 0) return { multiline: false, blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: false };
  const v = [...value];
  let blockIndicators = false;
  let lineBreaks = false;
  let special = false;
  let leadingSpace = false; let leadingBreak = false; let trailingSpace = false; let trailingBreak = false;
  let breakSpace = false; let spaceBreak = false;
  let previousSpace = false; let previousBreak = false;
  if (value.startsWith('---') || value.startsWith('...')) blockIndicators = true;
  let precededByWhitespace = true;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    const next = v[i + 1];
    const followedByWhitespace = next === undefined || next === ' ' || next === '\t';
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(c)) blockIndicators = true;
      else if ((c === '?' || c === ':') && followedByWhitespace) blockIndicators = true;
      else if (c === '-' && followedByWhitespace) blockIndicators = true;
    } else if (c === ':' && followedByWhitespace) {
      blockIndicators = true;
    } else if (c === '#' && precededByWhitespace) {
      blockIndicators = true;
    }
    if (!isPrintable(c.codePointAt(0)!)) special = true;
    if (c === ' ') {
      if (i === 0) leadingSpace = true;
      if (i === v.length - 1) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true; previousBreak = false;
    } else if (isBreak(c)) {
      lineBreaks = true;
      if (i === 0) leadingBreak = true;
      if (i === v.length - 1) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false; previousBreak = true;
    } else {
      previousSpace = false; previousBreak = false;
    }
    precededByWhitespace = c === ' ' || c === '\t' || isBreak(c) || c === '\0';
  }
  let blockPlainAllowed = true;
  let singleQuotedAllowed = true;
  let blockAllowed = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) blockPlainAllowed = false;
  if (trailingSpace) blockAllowed = false;
  if (breakSpace) { blockPlainAllowed = false; singleQuotedAllowed = false; }
  if (spaceBreak || special) { blockPlainAllowed = false; singleQuotedAllowed = false; blockAllowed = false; }
  if (lineBreaks) blockPlainAllowed = false;
  if (blockIndicators) blockPlainAllowed = false;
  return { multiline: lineBreaks, blockPlainAllowed, singleQuotedAllowed, blockAllowed };
}

/** libyaml's is_printable, by code point: non-BMP characters and tabs count as unprintable. */
function isPrintable(cp: number): boolean {
  return cp === 0x0a || (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xd7ff)
    || (cp >= 0xe000 && cp <= 0xfffd && cp !== 0xfeff);
}

function isBreak(c: string): boolean {
  return c === '\r' || c === '\n' || c === '\u0085' || c === '\u2028' || c === '\u2029';
}

function escapeOf(cp: number): string {
  switch (cp) {
    case 0x00: return '0';
    case 0x07: return 'a';
    case 0x08: return 'b';
    case 0x09: return 't';
    case 0x0a: return 'n';
    case 0x0b: return 'v';
    case 0x0c: return 'f';
    case 0x0d: return 'r';
    case 0x1b: return 'e';
    case 0x22: return '"';
    case 0x5c: return '\\';
    case 0x85: return 'N';
    case 0xa0: return '_';
    case 0x2028: return 'L';
    case 0x2029: return 'P';
    default: {
      const hex = cp.toString(16).toUpperCase();
      if (cp <= 0xff) return `x${hex.padStart(2, '0')}`;
      if (cp <= 0xffff) return `u${hex.padStart(4, '0')}`;
      return `U${hex.padStart(8, '0')}`;
    }
  }
}

// encode.go's isBase60Float: quoted on the way out for other (YAML 1.1) parsers.
const BASE60_FLOAT = /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/;
function isBase60Float(s: string): boolean {
  return s !== '' && /^[-+0-9]/.test(s) && s.includes(':') && BASE60_FLOAT.test(s);
}
