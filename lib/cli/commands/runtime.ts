// `capstan runtime list|preview|init`: the meta/run.yaml templates (lib/manifest/templates.ts),
// printed as Capstan prints them.
import { initRuntime, listRuntimes, previewRuntime } from '../../manifest/templates.js';
import { bool, str, type FlagSpec } from '../args.js';
import type { Command } from '../command.js';
import { UsageError } from '../exit-codes.js';
import { goColumns, goStringSlice } from '../table.js';
import { expectArgs } from '../values.js';

const RUNTIME: FlagSpec = { name: 'runtime', aliases: ['r'], type: 'string', usage: "Runtime name. Use 'capstan runtime list' to see available names." };
const PLAIN: FlagSpec = { name: 'plain', type: 'boolean', usage: 'Remove comments' };

/** Capstan's RuntimeList: `%-20s%-50s%-20s` rows, the dependencies as a Go slice. */
export function runtimeTable(): string {
  let text = `${goColumns(['RUNTIME', 'DESCRIPTION', 'DEPENDENCIES'], [20, 50, 20], '')}\n`;
  for (const r of listRuntimes()) text += `${goColumns([r.runtime, r.description], [20, 50], '')}${goStringSlice(r.dependencies, 20)}\n`;
  return text;
}

function runtimeName(value: string | undefined, path: string): string {
  // Capstan says "preview" in the usage of both commands; the command typed is named here.
  if (!value) throw new UsageError(`usage: ${path} -r [runtime-name]`, path);
  return value;
}

const list: Command = {
  name: 'list',
  usage: 'list available runtimes',
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan runtime list', ctx.path);
    ctx.out.write(runtimeTable());
  },
};

const preview: Command = {
  name: 'preview',
  usage: 'prints runtime yaml template to the console',
  flags: [RUNTIME, PLAIN],
  async run(ctx, p) {
    ctx.out.write(previewRuntime(runtimeName(str(p, 'runtime'), ctx.path), { plain: bool(p, 'plain'), frame: true }));
  },
};

const init: Command = {
  name: 'init',
  usage: 'prepares meta/run.yaml stub for selected runtime',
  flags: [RUNTIME, PLAIN, { name: 'force', aliases: ['f'], type: 'boolean', usage: 'Override existing meta/run.yaml' }],
  async run(ctx, p) {
    await initRuntime(ctx.cwd, runtimeName(str(p, 'runtime'), ctx.path), { plain: bool(p, 'plain'), force: bool(p, 'force') });
    ctx.out.line('meta/run.yaml stub successfully added to your package. Please customize it in editor.');
  },
};

export const runtimeCommand: Command = {
  name: 'runtime',
  usage: 'package runtime manipulation tools (meta/run.yaml)',
  subcommands: [preview, init, list],
};
