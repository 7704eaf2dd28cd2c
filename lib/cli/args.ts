// Command-line flags the way Capstan's users type them (urfave/cli over Go's flag package):
// `-s 10G`, `--size 10G`, `-size=10G`, `--size=10G`; a string flag always takes the next word
// as its value, even one that starts with a dash (`-e "--verbose /hello"` is an OSv command
// line, not a flag), which node:util parseArgs refuses. Unlike urfave, flags may also come
// after the positional arguments (`capstan package compose app --run /hello`). `--` ends flags.
import { UsageError } from './exit-codes.js';

export interface FlagSpec {
  /** Long name (`size`). */
  name: string;
  /** Other names (`s`); one or two dashes work for every name, as with Go's flags. */
  aliases?: readonly string[] | undefined;
  type: 'string' | 'boolean';
  /** May be given several times; the values are kept in order. */
  multiple?: boolean | undefined;
  /** What the value is, for the help text (`value` by default). */
  value?: string | undefined;
  /** The default as the help text shows it (the command applies it). */
  default?: string | undefined;
  usage: string;
}

export type FlagValue = string | string[] | boolean;

export interface ParsedArgs {
  flags: Record<string, FlagValue | undefined>;
  args: string[];
}

/** The help flag every command has. */
export const HELP_FLAG: FlagSpec = { name: 'help', aliases: ['h'], type: 'boolean', usage: 'show help' };

/**
 * Parses `argv` against `specs`. `command` names the command in error messages (`capstan run`).
 * With `stopAtFirstArg`, the first positional argument and everything after it are left
 * unparsed in `args` (for the global flags, which come before the command name).
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], command: string, stopAtFirstArg = false): ParsedArgs {
  const byName = new Map<string, FlagSpec>();
  for (const spec of specs) for (const n of [spec.name, ...(spec.aliases ?? [])]) byName.set(n, spec);
  const flags: Record<string, FlagValue | undefined> = {};
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') { args.push(...argv.slice(i + 1)); break; }
    if (!word.startsWith('-') || word === '-') {
      if (stopAtFirstArg) { args.push(...argv.slice(i)); break; }
      args.push(word);
      continue;
    }
    const body = word.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = byName.get(name);
    if (!spec) {
      throw new UsageError(`flag provided but not defined: ${word.startsWith('--') ? '--' : '-'}${name}`, command);
    }
    let value: string | boolean;
    if (spec.type === 'boolean') {
      if (eq < 0) value = true;
      else {
        const text = body.slice(eq + 1);
        // Go's strconv.ParseBool words.
        if (/^(1|t|T|TRUE|true|True)$/.test(text)) value = true;
        else if (/^(0|f|F|FALSE|false|False)$/.test(text)) value = false;
        else throw new UsageError(`invalid boolean value "${text}" for flag -${name}`, command);
      }
    } else if (eq >= 0) {
      value = body.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`, command);
      value = argv[++i]!;
    }
    if (spec.multiple && typeof value === 'string') {
      const list = flags[spec.name];
      flags[spec.name] = Array.isArray(list) ? [...list, value] : [value];
    } else {
      flags[spec.name] = value;
    }
  }
  return { flags, args };
}

/** Typed readers over ParsedArgs.flags. */
export function str(parsed: ParsedArgs, name: string): string | undefined {
  const v = parsed.flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function list(parsed: ParsedArgs, name: string): string[] {
  const v = parsed.flags[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

export function bool(parsed: ParsedArgs, name: string): boolean {
  return parsed.flags[name] === true;
}
