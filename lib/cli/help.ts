// Help text in the shape urfave/cli gives Capstan's (NAME, USAGE, COMMANDS, OPTIONS), so
// `capstan <command> --help` reads as Capstan users know it, with our notes where we differ.
import type { FlagSpec } from './args.js';
import type { Command } from './command.js';

function flagNames(spec: FlagSpec): string {
  const value = spec.type === 'string' ? ` ${spec.value ?? 'value'}` : '';
  return [spec.name, ...(spec.aliases ?? [])].map((n) => `${n.length === 1 ? '-' : '--'}${n}${value}`).join(', ');
}

function flagUsage(spec: FlagSpec): string {
  let text = spec.usage;
  if (spec.default !== undefined) text += ` (default: ${JSON.stringify(spec.default)})`;
  if (spec.multiple) text += ' (repeatable)';
  return text;
}

function table(rows: Array<[string, string]>): string {
  const width = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `   ${l.padEnd(width)}  ${r}`.trimEnd()).join('\n');
}

export function commandHelp(path: string, command: Command): string {
  const parts = [`NAME:\n   ${path} - ${command.usage}`];
  if (command.subcommands?.length) {
    parts.push(`USAGE:\n   ${path} command [command options] [arguments...]`);
    parts.push(`COMMANDS:\n${table(command.subcommands.map((c) => [[c.name, ...(c.aliases ?? [])].join(', '), c.usage]))}`);
  } else {
    parts.push(`USAGE:\n   ${path}${command.flags?.length ? ' [command options]' : ''}${command.args ? ` ${command.args}` : ''}`);
  }
  if (command.description) parts.push(`DESCRIPTION:\n${command.description.replace(/^(?=.)/gm, '   ')}`);
  const flags = [...(command.flags ?? []), { name: 'help', aliases: ['h'], type: 'boolean', usage: 'show help' } satisfies FlagSpec];
  parts.push(`OPTIONS:\n${table(flags.map((f) => [flagNames(f), flagUsage(f)]))}`);
  return `${parts.join('\n\n')}\n`;
}

export function rootHelp(version: string, commands: readonly Command[], globals: readonly FlagSpec[], notes: string): string {
  return [
    'NAME:\n   capstan - pack, ship, and run applications in light-weight VMs',
    'USAGE:\n   capstan [global options] command [command options] [arguments...]',
    `VERSION:\n   ${version}`,
    `DESCRIPTION:\n${notes.replace(/^(?=.)/gm, '   ')}`,
    `COMMANDS:\n${table(commands.map((c) => [[c.name, ...(c.aliases ?? [])].join(', '), c.usage]))}`,
    `GLOBAL OPTIONS:\n${table(globals.map((f) => [flagNames(f), flagUsage(f)]))}`,
  ].join('\n\n') + '\n';
}
