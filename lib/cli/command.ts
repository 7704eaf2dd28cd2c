// What a command is (its name, arguments, flags, help) and what it runs with (the global flags,
// the working folder, where to write). Commands are plain data plus a `run` function; the
// dispatcher (main.ts) parses, checks and calls them.
import type { RemoteOptions } from '../repository/remote/settings.js';
import type { FlagSpec, ParsedArgs } from './args.js';
import type { CliOutput } from './output.js';

export interface GlobalFlags {
  /** `-u`: the S3-style repository URL. */
  repoUrl?: string | undefined;
  /** `--release-tag, -r`. */
  releaseTag?: string | undefined;
  /** `--s3`. */
  s3: boolean;
}

export interface CommandContext {
  /** The command as typed, for messages (`capstan package compose`). */
  path: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** The Capstan root ($CAPSTAN_ROOT, else ~/.capstan). */
  root: string;
  global: GlobalFlags;
  out: CliOutput;
  /** Resolves when the user pressed Ctrl+C (or the process got SIGTERM), once it is asked for. */
  interrupted(): Promise<NodeJS.Signals>;
}

export interface Command {
  name: string;
  aliases?: readonly string[] | undefined;
  /** One line for the command lists. */
  usage: string;
  /** The positional arguments, for the help text (`[image-name]`). */
  args?: string | undefined;
  /** More text for `--help`: what differs from Capstan, defaults, examples. */
  description?: string | undefined;
  flags?: readonly FlagSpec[] | undefined;
  subcommands?: readonly Command[] | undefined;
  /** Whether the command takes --json (then stdout carries only events). */
  json?: boolean | undefined;
  /** Runs the command; resolves with the exit status (0 when nothing is returned). */
  run?: ((ctx: CommandContext, parsed: ParsedArgs) => Promise<number | void>) | undefined;
}

/** The flag every --json command has. */
export const JSON_FLAG: FlagSpec = {
  name: 'json', type: 'boolean', usage: 'write one JSON event per line on stdout (messages and the console go to stderr)',
};

/** RemoteOptions from the global flags (Capstan's NewRepoFromCli). */
export function remoteOptions(ctx: CommandContext, extra: Partial<RemoteOptions> = {}): RemoteOptions {
  return {
    root: ctx.root,
    remote: ctx.global.s3 ? 's3' : 'github',
    releaseTag: ctx.global.releaseTag,
    repoUrl: ctx.global.repoUrl,
    env: ctx.env,
    events: ctx.out.events,
    ...extra,
  };
}

/** The same, for build options (UnikernelOptions), whose `env` is the guest's environment. */
export function buildRemote(ctx: CommandContext): { root: string; remote: 'github' | 's3'; releaseTag: string | undefined; repoUrl: string | undefined } {
  return { root: ctx.root, remote: ctx.global.s3 ? 's3' : 'github', releaseTag: ctx.global.releaseTag, repoUrl: ctx.global.repoUrl };
}
