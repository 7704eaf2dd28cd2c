// The `capstan` command: global flags, then a command (and a subcommand for package, runtime,
// volume and config), then its flags and arguments — Capstan's command tree (capstan.go), over
// this package's typed API. main() returns the exit status instead of exiting, so it can be
// called from tests and other programs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { capstanRoot } from '../repository/root.js';
import { bool, HELP_FLAG, parseFlags, str, type FlagSpec } from './args.js';
import { JSON_FLAG, type Command, type CommandContext, type GlobalFlags } from './command.js';
import { buildCommand, composeCommand } from './commands/compose.js';
import { configCommand } from './commands/config.js';
import { importCommand, imagesCommand, infoCommand, pullCommand, rmiCommand, searchCommand } from './commands/images.js';
import { deleteCommand, instancesCommand, runCommand, stopCommand } from './commands/instances.js';
import { packageCommand } from './commands/package.js';
import { runtimeCommand } from './commands/runtime.js';
import { stackCommand } from './commands/stack.js';
import { volumeCommand } from './commands/volume.js';
import { EX_OK, UsageError } from './exit-codes.js';
import { commandHelp, rootHelp } from './help.js';
import { CliOutput, type CliStreams } from './output.js';

export const COMMANDS: readonly Command[] = [
  configCommand, infoCommand, importCommand, pullCommand, rmiCommand, runCommand, buildCommand, composeCommand,
  imagesCommand, searchCommand, instancesCommand, stopCommand, deleteCommand, packageCommand, stackCommand, runtimeCommand, volumeCommand,
];

const GLOBAL_FLAGS: readonly FlagSpec[] = [
  { name: 'u', type: 'string', usage: 'remote (S3-style) repository URL (default: "https://mikelangelo-capstan.s3.amazonaws.com/")' },
  { name: 'release-tag', aliases: ['r'], type: 'string', usage: 'the release tag: any, latest, v0.51.0' },
  { name: 's3', type: 'boolean', usage: 'search and download from the S3 repository instead of the OSv GitHub releases' },
  HELP_FLAG,
  { name: 'version', aliases: ['v'], type: 'boolean', usage: 'print the version' },
];

const NOTES = [
  'Capstan\'s commands, flags, tables and exit codes (64: usage, 65: data, 1: other failures),',
  'made by gulp-capstan: images are ROFS unless --fs zfs, written without qemu-img or qemu-nbd.',
  'Not here: hypervisors other than QEMU for run (run --target libvirt runs on any libvirt host).',
].join('\n');

export interface MainOptions extends Partial<CliStreams> {
  cwd?: string | undefined;
}

/** Runs `capstan <argv…>`; resolves with the exit status. */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const streams: CliStreams = { stdout: options.stdout ?? process.stdout, stderr: options.stderr ?? process.stderr, env: options.env ?? process.env };
  let out = new CliOutput(streams);
  try {
    const global = parseFlags(argv, GLOBAL_FLAGS, 'capstan', true);
    if (bool(global, 'version')) { out.line(`capstan version ${packageVersion()}`); return EX_OK; }
    const [name, ...rest] = global.args;
    if (bool(global, 'help') || name === undefined) { out.write(rootHelp(packageVersion(), COMMANDS, GLOBAL_FLAGS, NOTES)); return EX_OK; }
    if (name === 'help' || name === 'h') return help(rest, out);
    let command = find(COMMANDS, name, 'capstan');
    let commandPath = `capstan ${command.name}`;
    let args = rest;
    while (command.subcommands) {
      const [sub, ...more] = args;
      if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') { out.write(commandHelp(commandPath, command)); return EX_OK; }
      if (sub.startsWith('-')) throw new UsageError(`flag provided but not defined: ${sub}`, commandPath);
      command = find(command.subcommands, sub, commandPath);
      commandPath = `${commandPath} ${command.name}`;
      args = more;
    }
    const parsed = parseFlags(args, [...(command.flags ?? []), HELP_FLAG], commandPath);
    if (bool(parsed, 'help')) { out.write(commandHelp(commandPath, command)); return EX_OK; }
    if (command.json && bool(parsed, JSON_FLAG.name)) out = new CliOutput(streams, true);
    const cwd = path.resolve(options.cwd ?? process.cwd());
    const globals: GlobalFlags = { repoUrl: str(global, 'u'), releaseTag: str(global, 'release-tag'), s3: bool(global, 's3') };
    const ctx: CommandContext = {
      path: commandPath, cwd, env: streams.env, root: capstanRoot(undefined, streams.env), global: globals, out,
      interrupted: interruption(),
    };
    const unhook = out.listenToSteps();
    try {
      return (await command.run!(ctx, parsed)) ?? EX_OK;
    } finally {
      unhook();
    }
  } catch (error) {
    return out.fail(error);
  }
}

/** `capstan help [command [subcommand]]`. */
function help(words: readonly string[], out: CliOutput): number {
  let list = COMMANDS;
  let commandPath = 'capstan';
  let command: Command | undefined;
  for (const word of words) {
    command = find(list, word, commandPath);
    commandPath = `${commandPath} ${command.name}`;
    list = command.subcommands ?? [];
  }
  out.write(command ? commandHelp(commandPath, command) : rootHelp(packageVersion(), COMMANDS, GLOBAL_FLAGS, NOTES));
  return EX_OK;
}

function find(commands: readonly Command[], name: string, parent: string): Command {
  const found = commands.find((c) => c.name === name || c.aliases?.includes(name));
  if (found) return found;
  const near = commands.map((c) => c.name).filter((n) => distance(n, name) <= Math.max(1, Math.floor(n.length / 3)));
  throw new UsageError(`'${name}' is not a ${parent} command`, parent,
    `${near.length ? `Did you mean ${near.map((n) => `'${parent} ${n}'`).join(' or ')}? ` : ''}See '${parent} --help'.`);
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/** A promise of the first SIGINT / SIGTERM, listened for only once a command asks. */
function interruption(): () => Promise<NodeJS.Signals> {
  let waiting: Promise<NodeJS.Signals> | undefined;
  return () => waiting ??= new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => { process.off('SIGINT', on); process.off('SIGTERM', on); resolve(signal); };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** This package's version (package.json above this file, in lib/ or dist/lib/). */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    try {
      const json = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (json.name === 'gulp-capstan' && json.version) return json.version;
    } catch { /* not here */ }
  }
  return 'unknown';
}
