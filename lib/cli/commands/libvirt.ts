// `capstan run --target libvirt --uri <uri>` and the libvirt side of `instances`, `stop` and
// `delete`: the same flags as a local run, on any libvirt host (lib/vm/libvirt).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { CloudError } from '../../errors.js';
import { bootLibvirt, deleteLibvirtInstance, listLibvirtInstances, stopLibvirtInstance, type LibvirtVm } from '../../vm/libvirt/libvirt.js';
import { instanceNameFor } from '../../vm/instances.js';
import { imageFile } from './images.js';
import { bool, list, str, type FlagSpec, type ParsedArgs } from '../args.js';
import type { CommandContext } from '../command.js';
import { EX_INTERRUPTED, UsageError } from '../exit-codes.js';
import { goColumns } from '../table.js';
import { envFlags, intFlag, oneOf } from '../values.js';

/** The flags that choose the libvirt target (added to run, instances, stop and delete). */
export const TARGET_FLAGS: readonly FlagSpec[] = [
  { name: 'target', type: 'string', usage: 'where the instance runs: qemu (here, the default) or libvirt (not in Capstan)', default: 'qemu' },
  { name: 'uri', type: 'string', usage: 'libvirt URI with --target libvirt, e.g. qemu+ssh://host/system (default $LIBVIRT_DEFAULT_URI, else qemu:///system)' },
];

export const POOL_FLAG: FlagSpec = { name: 'pool', type: 'string', usage: 'libvirt storage pool for the instance\'s disk and console (default "default")' };

export function wantsLibvirt(p: ParsedArgs, command: string): boolean {
  return oneOf(str(p, 'target'), ['qemu', 'libvirt'], '--target', command) === 'libvirt';
}

/** `capstan run --target libvirt`: boot on the host, follow the console until the guest ends or Ctrl+C. */
export async function runOnLibvirt(ctx: CommandContext, p: ParsedArgs): Promise<number> {
  if (p.args.length > 1) throw new UsageError('too many arguments; usage: capstan run --target libvirt [-i image] [instance-name]', ctx.path);
  for (const flag of ['f', 'volume', 'gce-upload-dir']) {
    if (list(p, flag).length || str(p, flag) !== undefined) {
      throw new UsageError(`-${flag.length > 1 ? '-' : ''}${flag} is not available with --target libvirt`, ctx.path, 'Port forwards and extra volumes are set up on the libvirt host itself (a libvirt network, virsh attach-disk).');
    }
  }
  const image = str(p, 'i') ?? p.args[0];
  if (image === undefined) throw new UsageError('name the image: capstan run --target libvirt -i <image> [instance-name]', ctx.path);
  const file = imageFile(image, ctx);
  const name = str(p, 'i') !== undefined ? p.args[0] : undefined;
  const network = oneOf(str(p, 'n'), ['nat', 'bridge', 'none'], '-n', ctx.path);
  const bootSets = list(p, 'boot');
  const detached = bool(p, 'detach');
  const vm: LibvirtVm = await bootLibvirt(file, {
    uri: str(p, 'uri'), hostEnv: ctx.env, name: name ?? (existsSync(path.resolve(ctx.cwd, image)) ? instanceNameFor(file) : image.replaceAll('/', '-')),
    pool: str(p, 'pool'), memory: str(p, 'm') ?? '1G', cpus: intFlag(str(p, 'c'), '-c', ctx.path) ?? 2, network, networkDevice: str(p, 'b'), mac: str(p, 'mac'),
    execute: str(p, 'execute'), boot: bootSets.length ? bootSets : undefined, env: envFlags(list(p, 'env'), ctx.path),
    // A domain nobody follows must stay defined to be managed by name.
    persist: bool(p, 'persist') || detached, replace: true, echo: ctx.out.console, events: ctx.out.events,
    readyTimeout: detached ? 120_000 : 0, silent: !bool(p, 'v'),
  });
  ctx.out.line(`Created instance: ${vm.name} on ${vm.uri} (${vm.virtType})`);
  if (detached) {
    await vm.ready;
    vm.release();
    ctx.out.line(`Instance ${vm.name} runs on ${vm.uri}; stop it with 'capstan stop --target libvirt --uri ${vm.uri} ${vm.name}'`);
    return 0;
  }
  // Stopping and removing a domain takes a few virsh calls: a listener of our own keeps the
  // process alive for them (execa's signal-exit re-raises a signal nobody else listens to).
  const hold = () => {};
  process.on('SIGINT', hold);
  process.on('SIGTERM', hold);
  let ended: { exit: Awaited<LibvirtVm['exited']> } | { signal: NodeJS.Signals };
  try {
    ended = await Promise.race([vm.exited.then((exit) => ({ exit })), ctx.interrupted().then((signal) => ({ signal }))]);
    if ('signal' in ended) {
      await vm.stop({ graceMs: 3000 });
      return EX_INTERRUPTED;
    }
  } finally {
    process.off('SIGINT', hold);
    process.off('SIGTERM', hold);
  }
  if (bool(p, 'v')) ctx.out.line(`Domain ${vm.name} ended: ${ended.exit.state}${ended.exit.reason ? ` (${ended.exit.reason})` : ''}`);
  if (ended.exit.state === 'crashed') {
    throw new CloudError(`the domain ${vm.name} crashed`, { code: 'E_VM_FAILED', hint: 'See the console output above, and the QEMU log on the host (/var/log/libvirt/qemu/).' });
  }
  return 0;
}

/** `capstan instances --target libvirt`: the table local instances get, platform "libvirt". */
export async function libvirtInstancesTable(ctx: CommandContext, p: ParsedArgs): Promise<string> {
  const widths = [35, 10, 10, 15];
  let text = `${goColumns(['Name', 'Platform', 'Status', 'Image'], widths)}\n`;
  for (const i of await listLibvirtInstances({ uri: str(p, 'uri'), hostEnv: ctx.env })) {
    text += `${goColumns([i.name, 'libvirt', i.running ? 'Running' : 'Stopped', i.image], widths)}\n`;
  }
  return text;
}

export async function stopOnLibvirt(ctx: CommandContext, p: ParsedArgs, name: string): Promise<string> {
  const outcome = await stopLibvirtInstance(name, { uri: str(p, 'uri'), hostEnv: ctx.env });
  return outcome === 'gone' ? `Instance ${name} was not running` : `Stopped instance: ${name}`;
}

export async function deleteOnLibvirt(ctx: CommandContext, p: ParsedArgs, name: string): Promise<string> {
  await deleteLibvirtInstance(name, { uri: str(p, 'uri'), hostEnv: ctx.env });
  return `Deleted instance: ${name}`;
}
