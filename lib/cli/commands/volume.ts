// `capstan volume create|delete`: empty disks in ./volumes of the package (lib/vm/volumes.ts).
import { formatBytes } from '../../log.js';
import { createVolume, deleteVolume } from '../../vm/volumes.js';
import { bool, str } from '../args.js';
import type { Command } from '../command.js';
import { expectArgs, oneOf, sizeFlag } from '../values.js';

const create: Command = {
  name: 'create',
  usage: 'create empty volume and store it into ./volumes directory',
  args: '[volume-name]',
  description: 'Written without qemu-img: raw (sparse), qcow2, vdi (dynamic) or vmdk (monolithicSparse), all empty.',
  flags: [
    { name: 'size', aliases: ['s'], type: 'string', usage: 'total size of the target image (use M or G suffix)', default: '1G' },
    { name: 'format', aliases: ['f'], type: 'string', usage: 'volume format: raw, qcow2, vdi or vmdk', default: 'raw' },
  ],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan volume create [volume-name]', ctx.path);
    const size = sizeFlag(str(p, 'size'), '--size', ctx.path) ?? '1G';
    const format = oneOf(str(p, 'format'), ['raw', 'qcow2', 'vdi', 'vmdk'], '--format', ctx.path);
    const volume = await createVolume(ctx.cwd, p.args[0]!, { size, format });
    ctx.out.line(`Created volume ${volume.path} (${volume.format}, ${formatBytes(volume.size)})`);
  },
};

const remove: Command = {
  name: 'delete',
  usage: 'delete volume by name',
  args: '[volume-name]',
  flags: [{ name: 'verbose', aliases: ['v'], type: 'boolean', usage: 'verbose mode' }],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan volume delete [volume-name]', ctx.path);
    const [volume, metadata] = await deleteVolume(ctx.cwd, p.args[0]!);
    if (bool(p, 'verbose')) {
      ctx.out.line(`Removed volume ${volume}`);
      if (metadata) ctx.out.line(`Removed volume metadata ${metadata}`);
    }
  },
};

export const volumeCommand: Command = {
  name: 'volume',
  usage: 'volume manipulation tools',
  subcommands: [create, remove],
};
