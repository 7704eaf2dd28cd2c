// Capstan's plain `compose <image-name> <path>`: an image of a raw folder or one file, no
// package metadata (lib/commands/compose-folder.ts), into the local repository; and its
// legacy `build [image-name]` from a Capstanfile (lib/commands/capstanfile-build.ts).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { capstanfileBuild, defaultBuildName } from '../../commands/capstanfile-build.js';
import { composeFolder } from '../../commands/compose-folder.js';
import { composedImageIndex, writeImageIndex } from '../../repository/images.js';
import { checkRepositoryName } from '../../repository/remote/remote.js';
import { repositoryImagePath } from '../../repository/root.js';
import { bool, str } from '../args.js';
import { buildRemote, JSON_FLAG, remoteOptions, type Command } from '../command.js';
import { UsageError } from '../exit-codes.js';
import { parseMemory } from '../../vm/memory.js';
import { checkHypervisor } from './images.js';
import { expectArgs, sizeFlag } from '../values.js';
import { checkFilesystem, FS_FLAG } from './package.js';

export const composeCommand: Command = {
  name: 'compose',
  usage: 'compose the image from a folder or a file',
  args: '[image-name] [path-to-upload]',
  json: true,
  description: [
    'The folder\'s whole tree goes to the image root; a single file lands at /<basename>.',
    'No packages, no .capstanignore. Without -c the loader\'s own command line is kept.',
    'Differences from Capstan: ROFS unless --fs zfs (Capstan defaults to ZFS); the ROFS',
    'skeleton (/etc/fstab, …) is added so that a real OSv boots it.',
  ].join('\n'),
  flags: [
    { name: 'loader_image', aliases: ['l'], type: 'string', usage: 'the base loader image', default: 'osv-loader' },
    { name: 'size', aliases: ['s'], type: 'string', usage: 'size of the target user partition (use M or G suffix); default: just large enough' },
    { name: 'command_line', aliases: ['c'], type: 'string', usage: 'command line OSv will boot with' },
    { name: 'verbose', aliases: ['v'], type: 'boolean', usage: 'verbose mode' },
    FS_FLAG,
    JSON_FLAG,
  ],
  async run(ctx, p) {
    expectArgs(p.args, 2, 'Usage: capstan compose [image-name] [path-to-upload] (directory or file)', ctx.path);
    const name = checkRepositoryName(p.args[0]!, 'image', true);
    const size = sizeFlag(str(p, 'size'), '--size', ctx.path);
    const fs = checkFilesystem(str(p, 'fs'), ctx.path);
    const out = repositoryImagePath(name, ctx.root);
    const image = await composeFolder(path.resolve(ctx.cwd, p.args[1]!), {
      ...remoteOptions(ctx), out, loader: str(p, 'loader_image'), cmdline: str(p, 'command_line'), size, fs,
      verbose: bool(p, 'verbose'), events: ctx.out.events,
    });
    await writeImageIndex(path.dirname(out), await composedImageIndex(image.loader));
    ctx.out.line(`Command line set to: '${image.cmdline}'`);
  },
};

export const buildCommand: Command = {
  name: 'build',
  usage: 'build an image',
  args: '[image-name]',
  json: true,
  description: [
    'Legacy Capstanfile mode: runs the Capstanfile\'s `build` command (split on spaces, no shell),',
    'then writes its `rootfs` folder and `files` with its `cmdline` to repository/<image-name>/',
    '<image-name>.<hypervisor>. The image name defaults to the folder\'s name.',
    'Differences from Capstan: the image is written from the loader, as package compose writes',
    'one (Capstan copies the `base` image and uploads the files through a VM, so `base` and -m',
    'are not used; -m is still checked); it is ROFS unless --fs zfs; -p vbox, vmw and gce write',
    'VDI, VMDK and a GCE tarball; an index.yaml records the build command.',
  ].join('\n'),
  flags: [
    { name: 'p', type: 'string', usage: 'hypervisor: qemu|vbox|vmw|gce', default: 'qemu' },
    { name: 'm', type: 'string', usage: 'memory size (of Capstan\'s upload VM; none is booted here)', default: '512M' },
    { name: 'v', type: 'boolean', usage: 'verbose mode' },
    FS_FLAG,
    JSON_FLAG,
  ],
  async run(ctx, p) {
    if (p.args.length > 1) throw new UsageError('too many arguments; usage: capstan build [image-name]', ctx.path);
    // As Capstan: without a name, the folder's — and only where there is a Capstanfile.
    if (p.args.length === 0 && !existsSync(path.join(ctx.cwd, 'Capstanfile'))) throw new UsageError('usage: capstan build [image-name]', ctx.path, 'Run it in a folder with a Capstanfile.');
    const name = checkRepositoryName(p.args[0] ?? defaultBuildName(ctx.cwd), 'image', true);
    const hypervisor = checkHypervisor(str(p, 'p') ?? 'qemu');
    try {
      parseMemory(str(p, 'm') ?? '512M', '-m');
    } catch {
      throw new UsageError(`invalid value "${str(p, 'm')}" for flag -m`, ctx.path, 'e.g. -m 512M or -m 1G');
    }
    const fs = checkFilesystem(str(p, 'fs'), ctx.path);
    ctx.out.line(`Building ${name}...`);
    const built = await capstanfileBuild({
      ...buildRemote(ctx), cwd: ctx.cwd, name, hypervisor, fs, verbose: bool(p, 'v'), events: ctx.out.events,
    });
    ctx.out.line(`Command line set to: '${built.cmdline}'`);
  },
};
