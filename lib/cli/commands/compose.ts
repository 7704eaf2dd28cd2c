// Capstan's plain `compose <image-name> <path>`: an image of a raw folder or one file, no
// package metadata (lib/commands/compose-folder.ts), into the local repository.
import path from 'node:path';
import { composeFolder } from '../../commands/compose-folder.js';
import { composedImageIndex, writeImageIndex } from '../../repository/images.js';
import { checkRepositoryName } from '../../repository/remote/remote.js';
import { repositoryImagePath } from '../../repository/root.js';
import { bool, str } from '../args.js';
import { JSON_FLAG, remoteOptions, type Command } from '../command.js';
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
    'Differences from Capstan: ROFS (Capstan defaults to ZFS, not available here yet); the',
    'ROFS skeleton (/etc/fstab, …) is added so that a real OSv boots it.',
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
