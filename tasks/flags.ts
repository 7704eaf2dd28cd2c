// Capstan's run flags on the gulp command line (`gulp unikernel:run --memory 2G --forward
// 8080:8080`): gulp-cli passes flags it does not know through, so the tasks read them from
// argv. Unknown flags are left alone (they may be gulp's own or another plugin's).
import { parseArgs } from 'node:util';
import { OptionsError, type UnikernelOptions } from '../lib/commands/options.js';

/** The flags every task documents in `gulp --tasks`. */
export const RUN_FLAGS: Record<string, string> = {
  '--memory <size>': 'guest memory, e.g. 512M or 2G (default 1G)',
  '--cpus <n>': 'virtual CPUs (default 2)',
  '--forward <host:guest>': 'forward a host port to a guest port, repeatable; host 0 picks a free port',
  '--boot <config_set>': 'run this config set of meta/run.yaml, repeatable',
  '--env <KEY=VALUE>': 'set an environment variable in the guest, repeatable',
  '--execute <cmdline>': 'run this command line instead of the image\'s (the image is unchanged)',
  '--network <mode>': 'nat (default), bridge, tap or none',
  '--name <instance>': 'instance name (default the folder\'s); unikernel:stop stops the one of this name',
  '--format <format>': 'image format: qcow2 (default), raw, vmdk, vdi, gce',
  '--size <size>': 'virtual disk size, e.g. 10G',
  '--verbose': 'every file, every step',
  '--json': 'machine-readable events on stdout, one JSON object per line (the console goes to stderr)',
  '--offline': 'no network: fail, saying what is missing, instead of pulling the loader or packages',
};

export const BUILD_FLAGS: Record<string, string> = Object.fromEntries(
  ['--env <KEY=VALUE>', '--boot <config_set>', '--format <format>', '--size <size>', '--verbose', '--json', '--offline'].map((k) => [k, RUN_FLAGS[k]!]),
);

export interface TaskFlags extends UnikernelOptions {
  json?: boolean | undefined;
}

export function parseTaskFlags(argv: readonly string[] = process.argv.slice(2)): TaskFlags {
  const { values } = parseArgs({
    args: [...argv],
    strict: false,
    allowPositionals: true,
    options: {
      memory: { type: 'string' }, cpus: { type: 'string' }, forward: { type: 'string', multiple: true },
      boot: { type: 'string', multiple: true }, env: { type: 'string', multiple: true }, execute: { type: 'string' },
      network: { type: 'string' }, format: { type: 'string' }, size: { type: 'string' }, name: { type: 'string' },
      verbose: { type: 'boolean' }, json: { type: 'boolean' }, offline: { type: 'boolean' },
    },
  });
  const v = values as Record<string, string | string[] | boolean | undefined>;
  const flags: TaskFlags = {};
  const str = (k: string) => (typeof v[k] === 'string' ? v[k] as string : undefined);
  const list = (k: string) => (Array.isArray(v[k]) ? v[k] as string[] : undefined);
  if (str('memory')) flags.memory = str('memory');
  if (str('cpus')) {
    const n = Number(str('cpus'));
    if (!Number.isInteger(n) || n < 1) throw flagError('--cpus', str('cpus')!, 'a whole number ≥ 1, e.g. --cpus 2');
    flags.cpus = n;
  }
  if (list('forward')) flags.forward = list('forward');
  if (list('boot')) flags.boot = list('boot');
  if (list('env')) {
    flags.env = {};
    for (const pair of list('env')!) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw flagError('--env', pair, 'KEY=VALUE, e.g. --env PORT=8080');
      flags.env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  if (str('execute')) flags.execute = str('execute');
  if (str('network')) flags.network = str('network') as UnikernelOptions['network'];
  if (str('format')) flags.format = str('format') as UnikernelOptions['format'];
  if (str('size')) flags.size = str('size');
  if (str('name')) flags.name = str('name');
  if (v.verbose === true) flags.verbose = true;
  if (v.json === true) flags.json = true;
  if (v.offline === true) flags.offline = true;
  return flags;
}

function flagError(flag: string, value: string, want: string): OptionsError {
  return new OptionsError(`${flag} ${JSON.stringify(value)} is not valid`, { code: 'E_USAGE', hint: `Give ${want}.` });
}
