// VMs: `run` (foreground, the console on the terminal, until the guest exits or Ctrl+C),
// `instances` (`I`), `stop`, `delete` — over lib/vm (boot, bootInstance, instances) and, for
// `capstan run` in a package folder, the one-shot compose (lib/commands/compose.ts).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { capstanfileBuild, defaultBuildName, jarBuild } from '../../commands/capstanfile-build.js';
import { buildOptions, composeWith } from '../../commands/compose.js';
import type { ImageInfo } from '../../carrier.js';
import { VmError } from '../../errors.js';
import { parsePackageYaml } from '../../manifest/package-yaml.js';
import { composedImageIndex, recordedLoader, writeImageIndex } from '../../repository/images.js';
import { checkRepositoryName } from '../../repository/remote/remote.js';
import { pullImage } from '../../repository/pull.js';
import { repositoryImagePath } from '../../repository/root.js';
import { boot, bootInstance, type BootOptions } from '../../vm/boot.js';
import { deleteInstance, instanceNameFor, listInstances, stopInstance } from '../../vm/instances.js';
import { reportVm } from '../../vm/vm-events.js';
import type { Vm } from '../../vm/vm.js';
import { bool, list, str, type ParsedArgs } from '../args.js';
import { buildRemote, JSON_FLAG, remoteOptions, type Command, type CommandContext } from '../command.js';
import { EX_INTERRUPTED, UsageError } from '../exit-codes.js';
import { goColumns } from '../table.js';
import { envFlags, expectArgs, intFlag, oneOf } from '../values.js';
import { checkHypervisor, imageFile } from './images.js';
import { deleteOnLibvirt, libvirtInstancesTable, POOL_FLAG, runOnLibvirt, stopOnLibvirt, TARGET_FLAGS, wantsLibvirt } from './libvirt.js';

/** How long a VM gets to power off when Ctrl+C stops it, before QEMU is ended. */
const STOP_GRACE_MS = 3000;

export const runCommand: Command = {
  name: 'run',
  usage: 'launch a VM. You may pass the image name as the first argument.',
  args: '[instance-name]',
  json: true,
  description: [
    'capstan run <instance>          boots a persisted instance again (its stored settings;',
    '                                -e/--boot/--env set a new command line)',
    'capstan run <image>             boots a repository image (or an image file) as a new instance',
    'capstan run -i <image> [name]   the same, naming the instance',
    'capstan run <file>.jar          an image of the jar with the host\'s JDK, named after the jar',
    'capstan run                     in a package folder: composes it (pulling what is missing),',
    '                                then boots it, image and instance named after the package;',
    '                                in a Capstanfile folder: capstan build, then boots it',
    'The VM runs in the foreground, its console on the terminal, until the guest exits or Ctrl+C',
    '(which stops it: no QEMU is left). Differences from Capstan: QEMU only (-p other than qemu is',
    'refused); -n takes nat, bridge, tap or none. As in Capstan, a <namespace>/<name> image that',
    'is not here is pulled from the S3 repository first. --detach (ours) leaves the VM running in',
    "the background, for 'capstan instances' and 'capstan stop'.",
  ].join('\n'),
  flags: [
    { name: 'i', type: 'string', usage: 'image_name (a repository image or an image file)' },
    { name: 'p', type: 'string', usage: 'hypervisor: qemu (the only one here)', default: 'qemu' },
    { name: 'm', type: 'string', usage: 'memory size', default: '1G' },
    { name: 'c', type: 'string', usage: 'number of CPUs', default: '2' },
    { name: 'n', type: 'string', usage: 'networking: nat|bridge|tap|none', default: 'nat' },
    { name: 'v', type: 'boolean', usage: 'verbose mode (prints the QEMU command line)' },
    { name: 'b', type: 'string', usage: 'networking device (bridge or tap): e.g., virbr0, tap0' },
    { name: 'f', type: 'string', multiple: true, usage: 'port forwarding rule host:guest (host 0 picks a free port)' },
    { name: 'gce-upload-dir', type: 'string', usage: 'not supported here (GCE)' },
    { name: 'mac', type: 'string', usage: 'MAC address. If not specified, the MAC address will be generated automatically.' },
    { name: 'execute', aliases: ['e'], type: 'string', usage: 'set the command line to execute' },
    { name: 'boot', type: 'string', multiple: true, usage: 'config_set name to boot unikernel with (run left to right)' },
    { name: 'persist', type: 'boolean', usage: 'persist instance parameters (only relevant for qemu instances)' },
    { name: 'env', type: 'string', multiple: true, usage: 'environment variable e.g. PORT=8000' },
    { name: 'volume', type: 'string', multiple: true, usage: '{path}[:{key=val}], e.g. ./volume.img:format=raw; defaults :format=raw:aio=native:cache=none' },
    { name: 'detach', type: 'boolean', usage: 'leave the VM running in the background once it is up (not in Capstan)' },
    ...TARGET_FLAGS,
    POOL_FLAG,
    JSON_FLAG,
  ],
  run: runVm,
};

/** The run-time command line flags (also what a persisted instance takes). */
function runtimeFlags(ctx: CommandContext, p: ParsedArgs) {
  const bootSets = list(p, 'boot');
  return { execute: str(p, 'execute'), boot: bootSets.length ? bootSets : undefined, env: envFlags(list(p, 'env'), ctx.path) };
}

async function runVm(ctx: CommandContext, p: ParsedArgs): Promise<number> {
  if (wantsLibvirt(p, ctx.path)) return runOnLibvirt(ctx, p);
  if (p.args.length > 1) throw new UsageError('too many arguments; usage: capstan run [instance-name] (or capstan run -i image [instance-name])', ctx.path);
  if (checkHypervisor(str(p, 'p') ?? 'qemu') !== 'qemu') {
    throw new VmError(`hypervisor '${str(p, 'p')}' is not supported here`, { code: 'E_HYPERVISOR', hint: 'Only QEMU runs images here; drop -p, or use Capstan itself for vbox, vmw, gce and hkit.' });
  }
  if (str(p, 'gce-upload-dir') !== undefined) {
    throw new VmError('--gce-upload-dir is not supported here', { code: 'E_HYPERVISOR', hint: 'Build a GCE tarball with the API (writeImage format "gce") and upload it with gsutil.' });
  }
  const network = oneOf(str(p, 'n'), ['nat', 'bridge', 'tap', 'none', 'vhost', 'vnet', 'vpnkit'], '-n', ctx.path);
  if (network === 'vhost' || network === 'vnet' || network === 'vpnkit') {
    throw new VmError(`networking '${network}' is not supported here`, { code: 'E_VM_NETWORK', hint: 'Use nat (the default), bridge, tap or none.' });
  }
  const runtime = runtimeFlags(ctx, p);
  const cpus = intFlag(str(p, 'c'), '-c', ctx.path);
  const detached = bool(p, 'detach');
  const common: BootOptions = {
    ...buildRemote(ctx), events: ctx.out.events, hostEnv: ctx.env, ...runtime,
    // The console is shown, not typed into: QEMU's stdio console takes a terminal raw (Ctrl+C
    // would go to the guest, with no way out), so stdin stays ours and Ctrl+C stops the VM.
    echo: ctx.out.console, detached,
    // In the foreground the guest may stay silent as long as it likes.
    readyTimeout: detached ? 60_000 : 0,
  };
  const started = Date.now();
  let vm: Vm;
  let image = str(p, 'i');
  let instance = p.args[0];
  if (image === undefined && instance !== undefined && (await listInstances({ root: ctx.root })).some((i) => i.name === instance && i.persisted)) {
    vm = await bootInstance(instance, common);
    ctx.out.line(`\nRunning (already existing) instance: ${instance}`);
    ctx.out.line("NOTE: instance parameters will NOT reflect arguments to 'capstan run' command!");
    ctx.out.line(`      (use 'capstan delete ${instance}' to remove existing instance first)\n`);
  } else {
    let imagePath: string;
    let info: ImageInfo | undefined;
    let loader: string | undefined;
    if (image === undefined && instance === undefined && existsSync(path.join(ctx.cwd, 'Capstanfile'))) {
      // A Capstanfile folder (Capstan looks for it first): `capstan build` it, then run it.
      // Capstan builds only when the image is missing; here it is rebuilt each time, as a
      // package folder is recomposed, so what runs is what the folder holds now.
      const name = checkRepositoryName(defaultBuildName(ctx.cwd), 'image', true);
      const built = await capstanfileBuild({ ...buildRemote(ctx), cwd: ctx.cwd, name, verbose: bool(p, 'v'), events: ctx.out.events });
      imagePath = built.path;
      info = built;
      instance = name;
    } else if (image === undefined && instance === undefined) {
      // A package folder: compose it into the repository first, as Capstan's `run` does.
      const name = projectName(ctx.cwd);
      imagePath = repositoryImagePath(name, ctx.root);
      info = await composeWith(buildOptions({
        ...buildRemote(ctx),
        cwd: ctx.cwd, out: imagePath, format: 'qcow2', pullMissing: true, verbose: bool(p, 'v'), events: ctx.out.events,
      }));
      await writeImageIndex(path.dirname(imagePath), await composedImageIndex(info.loader));
      instance = name;
    } else {
      if (image === undefined) { image = instance!; instance = undefined; }
      if (image.endsWith('.jar')) {
        // As Capstan: an image of the jar alone, named after it (the instance too), built first.
        const built = await jarBuild({ ...buildRemote(ctx), cwd: ctx.cwd, jar: image, verbose: bool(p, 'v'), events: ctx.out.events });
        imagePath = built.path;
        info = built;
        instance = built.name;
      } else {
        await pullWhenRemote(image, ctx);
        imagePath = imageFile(image, ctx);
        instance ??= capstanInstanceName(image);
        // An image we composed into the repository boots through its loader's kernel (-kernel), as
        // `capstan run` in its package folder does, while that loader is unchanged.
        loader = await recordedLoader(imagePath);
      }
    }
    // A new instance of this name replaces whatever instance had it (Capstan deletes it first).
    if ((await listInstances({ root: ctx.root })).some((i) => i.name === instance)) await deleteInstance(instance!, { root: ctx.root });
    vm = await boot({ path: imagePath, info }, {
      ...common, name: instance, replace: true, persist: bool(p, 'persist'), loader,
      memory: str(p, 'm') ?? '1G', cpus: cpus ?? 2, network, networkDevice: str(p, 'b'), mac: str(p, 'mac'),
      forward: list(p, 'f'), volumes: list(p, 'volume'),
    });
    ctx.out.line(`Created instance: ${vm.name}`);
  }
  for (const f of vm.forwards) ctx.out.line(`Forwarding ${f.protocol} ${f.address}:${f.host} → guest port ${f.guest}`);
  reportVm(vm, ctx.out.events, started);
  if (bool(p, 'v')) ctx.out.line(vm.command);
  if (detached) {
    await vm.ready;
    const ports = vm.forwards.map((f) => `${f.host}→${f.guest}/${f.protocol}`).join(', ');
    ctx.out.line(`Instance ${vm.name} runs in the background (pid ${vm.pid}${ports ? `, ${ports}` : ''}); stop it with 'capstan stop ${vm.name}'`);
    return 0;
  }
  return foreground(vm, ctx, bool(p, 'v'));
}

/**
 * Capstan's instance name for `run <image>`: the argument as typed with "/" as "-"
 * (`build/app.qcow2` → `build-app.qcow2`), cleaned to a valid name (no leading dot or dash).
 */
function capstanInstanceName(image: string): string {
  const name = image.replaceAll('/', '-').replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '').slice(0, 64);
  return name || instanceNameFor(image);
}

/**
 * As Capstan: an S3 image (`<namespace>/<name>`) that is neither a file here nor in the local
 * repository is pulled first, when the S3 repository has it (else imageFile says it is missing).
 */
async function pullWhenRemote(image: string, ctx: CommandContext): Promise<void> {
  const parts = image.split('/');
  if (parts.length !== 2 || parts.some((part) => part === '' || part.startsWith('.'))) return;
  // A disk file's name (out/app.qcow2) that is not there is a local mistake, not an S3 image.
  if (/\.(qemu|qcow2|img|raw|vmdk|vdi|vbox|vmw|gce|tar\.gz)$/i.test(image)) return;
  if (existsSync(path.resolve(ctx.cwd, image)) || existsSync(repositoryImagePath(image, ctx.root))) return;
  try {
    await pullImage(image, { ...remoteOptions(ctx), remote: 's3', hypervisor: 'qemu' });
  } catch (error) {
    if ((error as { code?: string }).code !== 'E_REMOTE_MISSING') throw error;
  }
}

/**
 * The Image column: the repository name of the image an instance of ours was made from, else
 * its file name; blank for one Capstan made (Capstan leaves the column blank).
 */
function imageLabel(config: { image?: unknown; network?: unknown } | undefined, root: string): string {
  if (!config || typeof config.image !== 'string' || config.network === undefined) return '';
  const repository = path.join(root, 'repository') + path.sep;
  return config.image.startsWith(repository) ? path.dirname(config.image.slice(repository.length)).split(path.sep).join('/') : path.basename(config.image);
}

/** Waits for the guest to end, or stops it on Ctrl+C; the exit status says which. */
async function foreground(vm: Vm, ctx: CommandContext, verbose: boolean): Promise<number> {
  const ended = await Promise.race([
    vm.exited.then((exit) => ({ exit })),
    ctx.interrupted().then((signal) => ({ signal })),
  ]);
  if ('signal' in ended) {
    // The VM's own guard already sent QEMU SIGTERM; make sure it is gone before we are.
    const gone = await Promise.race([vm.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), STOP_GRACE_MS).unref())]);
    if (!gone) await vm.kill();
    return EX_INTERRUPTED;
  }
  const { exit } = ended;
  if (verbose) ctx.out.line(`VM ${vm.name} ended: status ${exit.exitCode ?? exit.signal}${exit.reason ? ` (${exit.reason})` : ''}`);
  if (exit.exitCode === 0 || exit.endedBy !== 'guest') return 0;
  // QEMU that ended before the guest said anything explains itself in the readiness error.
  const early = await vm.ready.then(() => undefined, (error: unknown) => error);
  if (early) throw early;
  throw new VmError(`VM ${vm.name} ended with status ${exit.exitCode ?? exit.signal}`, {
    code: 'E_VM_FAILED', file: vm.image, hint: exit.stderr ? `QEMU said: ${exit.stderr.split('\n').slice(-3).join(' | ')}` : 'See the console output above.',
  });
}

/** The name `capstan run` gives a package folder's image and instance: the package's, else the folder's. */
function projectName(cwd: string): string {
  const file = path.join(cwd, 'meta', 'package.yaml');
  if (existsSync(file)) return checkRepositoryName(parsePackageYaml(readFileSync(file, 'utf8'), file).name, 'image', true);
  if (!existsSync(path.join(cwd, 'package.json'))) { // (a Capstanfile folder was built before this)
    throw new VmError('nothing to run here: no meta/package.yaml, Capstanfile or package.json', {
      code: 'E_RUN_NOTHING', file: cwd,
      hint: "Run it in a package folder, or name an image: 'capstan run <image>' / 'capstan run -i <image> <instance>'.",
    });
  }
  return instanceNameFor(cwd);
}

export const instancesCommand: Command = {
  name: 'instances',
  aliases: ['I'],
  usage: 'list instances',
  description: 'Persisted instances (run --persist), as Capstan lists them, and the running ones.\nWith --target libvirt: the domains gulp-capstan defined on that libvirt host.',
  flags: TARGET_FLAGS,
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan instances', ctx.path);
    if (wantsLibvirt(p, ctx.path)) { ctx.out.write(await libvirtInstancesTable(ctx, p)); return; }
    const widths = [35, 10, 10, 15];
    let text = `${goColumns(['Name', 'Platform', 'Status', 'Image'], widths)}\n`;
    for (const i of await listInstances({ root: ctx.root })) {
      if (!i.persisted && !i.running) continue;
      text += `${goColumns([i.name, 'qemu', i.running ? 'Running' : 'Stopped', imageLabel(i.config, ctx.root)], widths)}\n`;
    }
    ctx.out.write(text);
  },
};

export const stopCommand: Command = {
  name: 'stop',
  usage: 'stop an instance',
  args: '[instance-name]',
  flags: TARGET_FLAGS,
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan stop [instance_name]', ctx.path);
    if (wantsLibvirt(p, ctx.path)) { ctx.out.line(await stopOnLibvirt(ctx, p, p.args[0]!)); return; }
    const outcome = await stopInstance(p.args[0]!, { root: ctx.root });
    // Capstan prints this line whatever the instance was doing; scripts look for it.
    if (outcome === 'gone') ctx.out.warn(`${p.args[0]} was not running`);
    ctx.out.line(`Stopped instance: ${p.args[0]}`);
  },
};

export const deleteCommand: Command = {
  name: 'delete',
  usage: 'delete an instance',
  args: '[instance-name]',
  flags: TARGET_FLAGS,
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan delete [instance_name]', ctx.path);
    if (wantsLibvirt(p, ctx.path)) { ctx.out.line(await deleteOnLibvirt(ctx, p, p.args[0]!)); return; }
    await deleteInstance(p.args[0]!, { root: ctx.root });
    ctx.out.line(`Deleted instance: ${p.args[0]}`);
  },
};
