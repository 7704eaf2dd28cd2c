// The multi-machine tasks: `unikernel:push` (compose, then upload to OpenStack Glance, as
// `capstan stack push`), `unikernel:stack-run` (boot N Nova servers from the pushed image, as
// `capstan stack run`) and `unikernel:libvirt` (compose, then boot on a libvirt host, console on
// the terminal until the guest ends or Ctrl+C). Their flags come from the gulp command line.
import { parseArgs } from 'node:util';
import { pushImage, runInstances, type RunInstancesOptions } from '../lib/cloud/openstack/stack.js';
import { OptionsError } from '../lib/commands/options.js';
import type { StepOptions } from '../lib/commands/options.js';
import { bootLibvirt } from '../lib/vm/libvirt/libvirt.js';
import type { TaskConsole } from './console.js';

export interface StackTaskOptions {
  /** OpenStack settings of `:push` and `:stack-run` (flags override them). */
  stack?: {
    /** A clouds.yaml cloud (default $OS_CLOUD, else the OS_* variables). */
    cloud?: string | undefined;
    /** The Glance image name; default the project's name. */
    image?: string | undefined;
    flavor?: string | undefined;
    count?: number | undefined;
    networks?: RunInstancesOptions['networks'];
    /** Wait until each console shows this, and print the consoles. */
    ready?: string | undefined;
  } | undefined;
  /** The libvirt host of `:libvirt`. */
  libvirt?: { uri?: string | undefined; pool?: string | undefined } | undefined;
}

export const PUSH_FLAGS: Record<string, string> = {
  '--os-cloud <name>': 'a cloud of clouds.yaml (default $OS_CLOUD; else the OS_* variables)',
  '--image <name>': 'the Glance image name (default the project\'s name)',
  '--flavor <name>': 'a flavor the image must fit (its disk becomes the image\'s min_disk)',
  '--json': 'machine-readable events on stdout, one JSON object per line',
};

export const STACK_RUN_FLAGS: Record<string, string> = {
  '--os-cloud <name>': PUSH_FLAGS['--os-cloud <name>']!,
  '--image <name>': 'the pushed image to boot (default the project\'s name)',
  '--flavor <name>': 'flavor (default the smallest that fits the image and --memory)',
  '--memory <size>': 'memory the flavor must have, e.g. 512M',
  '--count <n>': 'number of servers, made in one request (default 1)',
  '--networks <auto|none|a,b>': 'networks of the servers (default auto)',
  '--ready <text>': 'wait until every console shows this text, and print the consoles',
  '--json': PUSH_FLAGS['--json']!,
};

export const LIBVIRT_FLAGS: Record<string, string> = {
  '--uri <uri>': 'the libvirt host, e.g. qemu+ssh://host/system (default $LIBVIRT_DEFAULT_URI, else qemu:///system)',
  '--pool <name>': 'storage pool for the instance\'s disk and console (default "default")',
  '--memory <size>': 'guest memory (default 1G)',
  '--cpus <n>': 'virtual CPUs (default 2)',
  '--network <mode>': 'nat (a libvirt network, default), bridge or none',
  '--execute <cmdline>': 'run this command line instead of the image\'s (written into the instance\'s copy)',
  '--json': PUSH_FLAGS['--json']!,
};

interface StackFlags { cloud?: string; image?: string; flavor?: string; count?: number; networks?: RunInstancesOptions['networks']; ready?: string; uri?: string; pool?: string }

export function parseStackFlags(argv: readonly string[]): StackFlags {
  const { values } = parseArgs({
    args: [...argv], strict: false, allowPositionals: true,
    options: {
      'os-cloud': { type: 'string' }, image: { type: 'string' }, flavor: { type: 'string' }, count: { type: 'string' },
      networks: { type: 'string' }, ready: { type: 'string' }, uri: { type: 'string' }, pool: { type: 'string' },
    },
  });
  const v = values as Record<string, string | boolean | undefined>;
  const s = (k: string) => (typeof v[k] === 'string' ? v[k] as string : undefined);
  const flags: StackFlags = {};
  if (s('os-cloud')) flags.cloud = s('os-cloud')!;
  if (s('image')) flags.image = s('image')!;
  if (s('flavor')) flags.flavor = s('flavor')!;
  if (s('count')) {
    const n = Number(s('count'));
    if (!Number.isInteger(n) || n < 1) throw new OptionsError(`--count ${JSON.stringify(s('count'))} is not valid`, { code: 'E_USAGE', hint: 'Give a whole number ≥ 1, e.g. --count 3.' });
    flags.count = n;
  }
  const networks = s('networks');
  if (networks) flags.networks = networks === 'auto' || networks === 'none' ? networks : networks.split(',').map((x) => x.trim()).filter(Boolean);
  if (s('ready')) flags.ready = s('ready')!;
  if (s('uri')) flags.uri = s('uri')!;
  if (s('pool')) flags.pool = s('pool')!;
  return flags;
}

/** After the image is composed (`s.out`): push it to Glance. */
export async function pushTask(s: StepOptions, out: TaskConsole, options: StackTaskOptions, argv: readonly string[]): Promise<void> {
  const f = parseStackFlags(argv);
  const name = f.image ?? options.stack?.image ?? s.name;
  const pushed = await pushImage(s.out, {
    name, cloud: f.cloud ?? options.stack?.cloud, flavor: f.flavor ?? options.stack?.flavor,
    events: out.events, logTo: out.logTo, silent: s.image.silent,
  });
  out.line(`push: ${s.out} is image "${name}" (${pushed.id}) in Glance, md5 ${pushed.checksum}`);
}

/** Boots the servers from the pushed image and reports them. */
export async function stackRunTask(s: StepOptions, out: TaskConsole, options: StackTaskOptions, argv: readonly string[]): Promise<void> {
  const f = parseStackFlags(argv);
  const image = f.image ?? options.stack?.image ?? s.name;
  const run = await runInstances(image, {
    cloud: f.cloud ?? options.stack?.cloud, flavor: f.flavor ?? options.stack?.flavor, memory: s.vm.memory,
    count: f.count ?? options.stack?.count ?? 1, networks: f.networks ?? options.stack?.networks,
    name: s.vm.name === s.name ? undefined : s.vm.name, events: out.events, logTo: out.logTo, silent: s.image.silent,
  });
  out.line(`stack-run: flavor ${run.flavor.name}; ${run.servers.map((x) => `${x.name} ${x.id} ${x.status}`).join(', ')}`);
  const ready = f.ready ?? options.stack?.ready;
  if (ready !== undefined) {
    const consoles = await run.waitForConsole(ready);
    for (const x of run.servers) out.line(`--- console of ${x.name}\n${(consoles.get(x.id) ?? '').trimEnd()}`);
  }
}

/** Boots the composed image on a libvirt host until the guest ends (or Ctrl+C stops it). */
export async function libvirtTask(s: StepOptions, out: TaskConsole, options: StackTaskOptions, argv: readonly string[]): Promise<void> {
  const f = parseStackFlags(argv);
  const network = s.vm.network === 'tap' ? undefined : s.vm.network;
  const vm = await bootLibvirt(s.out, {
    uri: f.uri ?? options.libvirt?.uri, pool: f.pool ?? options.libvirt?.pool, name: s.name, replace: true,
    memory: s.vm.memory, cpus: s.vm.cpus, network, networkDevice: s.vm.networkDevice, mac: s.vm.mac, execute: s.vm.execute,
    ready: s.vm.ready, readyTimeout: 0, echo: out.console, events: out.events, logTo: out.logTo, silent: s.image.silent,
  });
  // `on`, not `once`: execa's signal-exit listener re-raises the signal when ours is gone by the
  // time it looks, which would end the process before the domain is stopped and removed.
  const onSignal = () => { void vm.stop({ graceMs: 3000 }); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exit = await vm.exited;
    out.line(`libvirt: ${vm.name} on ${vm.uri} ended (${exit.state}${exit.reason ? `, ${exit.reason}` : ''})`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
