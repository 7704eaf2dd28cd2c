// `capstan stack push|run` (alias `openstack`): Capstan's OpenStack commands over
// lib/cloud/openstack — push composes the package in the current folder at the disk size of
// the flavor that fits --size, uploads it to Glance and removes the local image unless
// --keep-image; run boots --count servers from a pushed image with the smallest flavor that
// fits (or --flavor), waits until they are ACTIVE and prints them.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { buildOptions, composeWith } from '../../commands/compose.js';
import { authSettingsFromEnv, resolveAuthSettings, type AuthSettings } from '../../cloud/openstack/clouds-yaml.js';
import { listFlavors, namedFlavor, pickFlavor } from '../../cloud/openstack/nova.js';
import { connectOpenStack, pushImage, runInstances } from '../../cloud/openstack/stack.js';
import { composedImageIndex, writeImageIndex } from '../../repository/images.js';
import { checkRepositoryName } from '../../repository/remote/remote.js';
import { repositoryImagePath } from '../../repository/root.js';
import { parseDiskSize } from '../../image/size.js';
import type { CapstanEvent } from '../../events.js';
import { bool, list, str, type FlagSpec, type ParsedArgs } from '../args.js';
import { buildRemote, JSON_FLAG, type Command, type CommandContext } from '../command.js';
import { envFlags, expectArgs, intFlag, sizeFlag } from '../values.js';

/** Capstan's OPENSTACK_CREDENTIALS_FLAGS, and the OS_* variable each stands for. */
const CREDENTIAL_FLAGS: ReadonlyArray<[string, string]> = [
  ['OS_AUTH_URL', 'OpenStack auth url (e.g. http://10.0.2.15:5000/v3)'],
  ['OS_TENANT_ID', 'OpenStack tenant (project) id'],
  ['OS_TENANT_NAME', 'OpenStack tenant (project) name'],
  ['OS_PROJECT_NAME', 'OpenStack project name (e.g. admin)'],
  ['OS_USERNAME', 'OpenStack username (e.g. admin)'],
  ['OS_PASSWORD', 'OpenStack password'],
  ['OS_REGION_NAME', 'OpenStack region (e.g. RegionOne)'],
];

const COMMON_FLAGS: readonly FlagSpec[] = [
  ...CREDENTIAL_FLAGS.map(([name, usage]): FlagSpec => ({ name, type: 'string', usage })),
  { name: 'os-cloud', type: 'string', usage: 'a cloud of clouds.yaml (default $OS_CLOUD; without it the OS_* variables are used) (not in Capstan)' },
  { name: 'verbose', aliases: ['v'], type: 'boolean', usage: 'verbose mode' },
  JSON_FLAG,
];

/**
 * The credentials, as Capstan takes them: when any --OS_* flag is given, the flags alone
 * (the environment is ignored); otherwise the clouds.yaml cloud (--os-cloud, $OS_CLOUD) or the
 * OS_* variables.
 */
function credentials(ctx: CommandContext, p: ParsedArgs): AuthSettings {
  const given = CREDENTIAL_FLAGS.map(([name]) => [name, str(p, name)] as const).filter(([, v]) => v !== undefined && v !== '');
  if (given.length > 0) {
    const env: NodeJS.ProcessEnv = Object.fromEntries(given);
    // Domains are not among Capstan's flags: take them from the environment, else "Default".
    for (const k of ['OS_USER_DOMAIN_NAME', 'OS_PROJECT_DOMAIN_NAME', 'OS_USER_DOMAIN_ID', 'OS_PROJECT_DOMAIN_ID', 'OS_CACERT']) {
      if (ctx.env[k]) env[k] = ctx.env[k];
    }
    return resolveAuthSettings({ hostEnv: {}, overrides: { ...authSettingsFromEnv(env), source: 'the --OS_* flags' } });
  }
  return resolveAuthSettings({ cloud: str(p, 'os-cloud'), hostEnv: ctx.env, cwd: ctx.cwd });
}

const push: Command = {
  name: 'push',
  usage: 'composes OSv image and pushes it to OpenStack',
  args: 'image-name',
  json: true,
  description: [
    'Compose package, build .qcow2 image and upload it to OpenStack under nickname <image-name>.',
    'The flavor is the smallest whose disk holds --size (or --flavor); the image is composed at',
    'that disk size, uploaded to Glance (min_disk = the flavor\'s disk, tags tagOSv, tagCapstan),',
    'its checksum checked, and older images of that name pushed by us deleted. The local image',
    '(repository/<image-name>) is removed afterwards unless --keep-image.',
    'Differences from Capstan: ROFS, not ZFS; credentials also from clouds.yaml (--os-cloud).',
  ].join('\n'),
  flags: [
    { name: 'size', aliases: ['s'], type: 'string', usage: 'minimal size of the target user partition (use M or G suffix); enlarged to the flavor\'s disk', default: '10G' },
    { name: 'flavor', aliases: ['f'], type: 'string', usage: 'OpenStack flavor name that created OSv image should fit to' },
    { name: 'run', type: 'string', usage: 'the command line to be executed in the VM' },
    { name: 'keep-image', type: 'boolean', usage: 'don\'t delete local composed image in the repository' },
    { name: 'pull-missing', aliases: ['p'], type: 'boolean', usage: 'attempt to pull packages missing from a local repository' },
    { name: 'boot', type: 'string', multiple: true, usage: 'config_set name to boot unikernel with (run left to right)' },
    { name: 'env', type: 'string', multiple: true, usage: 'environment variable e.g. PORT=8000' },
    { name: 'loader_image', aliases: ['l'], type: 'string', usage: 'the base loader image (not in Capstan)', default: 'osv-loader' },
    ...COMMON_FLAGS,
  ],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'USAGE: capstan stack push [command options] image-name', ctx.path);
    const name = checkRepositoryName(p.args[0]!, 'image', true);
    const size = sizeFlag(str(p, 'size'), '--size', ctx.path) ?? '10G';
    const env = envFlags(list(p, 'env'), ctx.path);
    const verbose = bool(p, 'verbose');
    const auth = credentials(ctx, p);
    const session = await connectOpenStack({ auth, events: ctx.out.events, silent: !verbose });
    const diskGB = Math.ceil(parseDiskSize(size, '--size') / 1024 ** 3);
    const flavors = await listFlavors(session);
    const flavorName = str(p, 'flavor');
    const flavor = flavorName !== undefined ? namedFlavor(flavors, flavorName, { diskGB: 0 }) : pickFlavor(flavors, { diskGB });
    ctx.out.events?.({ event: 'flavor', id: flavor.id, name: flavor.name, disk: flavor.disk, ram: flavor.ram, vcpus: flavor.vcpus, picked: flavorName === undefined });
    if (verbose) ctx.out.line(`Picked flavor ${flavor.name} (disk ${flavor.disk}GB, memory ${flavor.ram}MB)`);
    ctx.out.line(`Creating image of user-usable size ${flavor.disk * 1024} MB.`);
    const out = repositoryImagePath(name, ctx.root);
    const boot = list(p, 'boot');
    const image = await composeWith(buildOptions({
      ...buildRemote(ctx), cwd: ctx.cwd, out, format: 'qcow2', size: `${flavor.disk}G`, loader: str(p, 'loader_image'),
      run: str(p, 'run'), boot: boot.length ? boot : undefined, env, pullMissing: bool(p, 'pull-missing'), verbose, events: ctx.out.events,
    }));
    await writeImageIndex(path.dirname(out), await composedImageIndex(image.loader));
    ctx.out.line('Uploading image to OpenStack. This may take a while.');
    const keep = bool(p, 'keep-image');
    const pushed = await pushImage(out, { session, name, flavor: flavor.name, events: ctx.out.events, silent: !verbose });
    // As Capstan: the local copy goes once it is in Glance (the whole repository entry).
    if (!keep) await rm(path.dirname(out), { recursive: true, force: true });
    else if (verbose) ctx.out.line('Keeping image locally. Please remove it manually.');
    ctx.out.line(`Image '${name}' [src: ${ctx.cwd}] successfully uploaded to OpenStack.`);
    if (verbose) ctx.out.line(`Glance image ${pushed.id}, ${pushed.size} bytes, md5 ${pushed.checksum}${pushed.replaced.length ? `, replacing ${pushed.replaced.join(', ')}` : ''}`);
  },
};

const run: Command = {
  name: 'run',
  usage: 'runs image that was previously pushed to OpenStack',
  args: 'image-name',
  json: true,
  description: [
    "Run image that you've previously uploaded with 'capstan stack push'. The image size cannot",
    'change here, but the memory can (--mem). The --count servers are made in one request',
    '(named <name>-1 … <name>-N when N > 1, as Capstan names them); the command waits until all',
    'are ACTIVE and prints them.',
    'Not in Capstan: --networks (auto, the default; none; or network names, comma-separated),',
    '--ready (wait until each console shows this text, and print the consoles).',
  ].join('\n'),
  flags: [
    { name: 'flavor', aliases: ['f'], type: 'string', usage: 'OpenStack flavor to be run with' },
    { name: 'mem', aliases: ['m'], type: 'string', usage: 'MB of memory (RAM) to be run with' },
    { name: 'name', aliases: ['n'], type: 'string', usage: 'instance name (default instance-of-<image-name>)' },
    { name: 'count', aliases: ['c'], type: 'string', usage: 'number of instances to run', default: '1' },
    { name: 'networks', type: 'string', usage: 'auto, none, or network names/ids (comma-separated)', default: 'auto' },
    { name: 'ready', type: 'string', usage: 'wait until every console shows this text, then print the consoles' },
    ...COMMON_FLAGS,
  ],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'USAGE: capstan stack run [command options] image-name', ctx.path);
    const count = intFlag(str(p, 'count'), '--count', ctx.path) ?? 1;
    const verbose = bool(p, 'verbose');
    const networksText = str(p, 'networks') ?? 'auto';
    const networks = networksText === 'auto' || networksText === 'none' ? networksText : networksText.split(',').map((s) => s.trim()).filter(Boolean);
    const auth = credentials(ctx, p);
    ctx.out.line(`Launching ${count} instances from image '${p.args[0]}'...`);
    // Progress for a person: the flavor (Capstan's line), then each server's state as it changes.
    const events = (e: CapstanEvent) => {
      ctx.out.events?.(e);
      if (e.event === 'flavor') ctx.out.line(`Picked flavor ${e.name} (disk ${e.disk}GB, memory ${e.ram}MB)`);
      if (e.event === 'server') ctx.out.line(`  ${e.name}: ${e.status}${e.fault ? ` (${e.fault})` : ''} after ${(e.ms / 1000).toFixed(1)} s`);
    };
    const stack = await runInstances(p.args[0]!, {
      auth, count, flavor: str(p, 'flavor'), memory: str(p, 'mem'), name: str(p, 'name'), networks,
      events, silent: !verbose, verbose,
    });
    for (const s of stack.servers) ctx.out.line(`${s.name.padEnd(40)} ${s.id} ${s.status}`);
    const ready = str(p, 'ready');
    if (ready !== undefined) {
      const consoles = await stack.waitForConsole(ready);
      for (const s of stack.servers) ctx.out.line(`--- console of ${s.name}\n${(consoles.get(s.id) ?? '').trimEnd()}`);
    }
    ctx.out.line('Instances launched.');
  },
};

export const stackCommand: Command = {
  name: 'stack',
  aliases: ['openstack'],
  usage: 'OpenStack manipulation tools',
  subcommands: [push, run],
};
