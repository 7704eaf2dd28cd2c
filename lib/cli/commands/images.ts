// The local image repository: `images` (`i`), `pull`, `rmi`, `import`, `info`
// (lib/repository/images.ts, pull.ts, lib/image/probe.ts), printed as Capstan prints them.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { capstanInfo } from '../../image/probe.js';
import { importImage, listImages, removeImage } from '../../repository/images.js';
import { checkRepositoryName } from '../../repository/remote/remote.js';
import { repositoryImagePath } from '../../repository/root.js';
import { pullImage, pullLoader, searchImages } from '../../repository/pull.js';
import { RepositoryError, VmError } from '../../errors.js';
import { UsageError } from '../exit-codes.js';
import { str } from '../args.js';
import { JSON_FLAG, remoteOptions, type Command, type CommandContext } from '../command.js';
import { fileInfoHeader, imageRow } from '../table.js';
import { expectArgs } from '../values.js';

const HYPERVISORS = ['qemu', 'vbox', 'vmw', 'gce', 'hkit'];

/** Capstan's isValidHypervisor check, with its message (a data error, as in Capstan). */
export function checkHypervisor(value: string): string {
  if (!HYPERVISORS.includes(value)) {
    throw new RepositoryError(`'${value}' is not a supported hypervisor`, { code: 'E_HYPERVISOR', hint: `Use one of: ${HYPERVISORS.join(', ')}.` });
  }
  return value;
}

export const imagesCommand: Command = {
  name: 'images',
  aliases: ['i'],
  usage: 'list images',
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan images', ctx.path);
    const images = await listImages({ root: ctx.root });
    let text = `${fileInfoHeader()}\n`;
    for (const image of images) {
      const i = image.index;
      text += `${imageRow(image.name, i?.description ?? '', i?.version ?? '', i?.created, i?.platform)}\n`;
    }
    ctx.out.write(text);
  },
};

export const searchCommand: Command = {
  name: 'search',
  usage: 'search a remote images',
  args: '[image-name]',
  description: [
    'Images of the S3 repository (-u, else config.yaml\'s repo_url, else CAPSTAN_REPO_URL): every',
    '<namespace>/<name>/index.yaml of the bucket whose <name> contains the argument, as Capstan',
    'lists them (its table, whatever --s3 says). An index that cannot be read is left out.',
  ].join('\n'),
  async run(ctx, p) {
    if (p.args.length > 1) throw new UsageError('too many arguments; usage: capstan search [image-name]', ctx.path);
    const images = await searchImages(p.args[0] ?? '', remoteOptions(ctx));
    let text = `${fileInfoHeader()}\n`;
    for (const i of images) text += `${imageRow(i.name, i.description, i.version, i.created, i.platform)}\n`;
    ctx.out.write(text);
  },
};

export const pullCommand: Command = {
  name: 'pull',
  usage: 'pull an image from a remote repository',
  args: '[image-name]',
  json: true,
  description: [
    'A namespaced name (mike/osv-loader) is an image of the S3 repository (-u), as in Capstan.',
    'A plain name (osv-loader, osv-loader-hidden) is a loader, pulled from the OSv GitHub',
    "releases (or S3 with --s3) with its kernel ELF; Capstan's git-clone fallback is not there.",
  ].join('\n'),
  flags: [{ name: 'p', type: 'string', usage: 'hypervisor: qemu|vbox|vmw|gce', default: 'qemu' }, JSON_FLAG],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan pull [image-name]', ctx.path);
    const name = p.args[0]!;
    const hypervisor = checkHypervisor(str(p, 'p') ?? 'qemu');
    if (name.includes('/')) {
      // Capstan looks images up in the S3 repository whatever --s3 says.
      const dest = await pullImage(name, { ...remoteOptions(ctx), remote: 's3', hypervisor });
      ctx.out.line(`Downloaded image (${name}) into ${dest}`);
    } else {
      const loader = await pullLoader(name, remoteOptions(ctx));
      ctx.out.line(`Downloaded loader image (${name}, ${loader.release}) into ${loader.path}${loader.kernel ? `, with its kernel ${loader.kernel}` : ''}`);
    }
  },
};

export const rmiCommand: Command = {
  name: 'rmi',
  usage: 'delete an image from a repository',
  args: '[image-name]',
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan rmi [image-name]', ctx.path);
    ctx.out.line(`Removing ${p.args[0]}...`);
    await removeImage(p.args[0]!, { root: ctx.root });
  },
};

export const importCommand: Command = {
  name: 'import',
  usage: 'import an image to the local repository',
  args: '[image-name] [image-file]',
  flags: [
    { name: 'v', type: 'string', usage: 'image version' },
    { name: 'c', type: 'string', usage: 'image creation date' },
    { name: 'd', type: 'string', usage: 'image description' },
    { name: 'b', type: 'string', usage: 'image build command' },
  ],
  async run(ctx, p) {
    expectArgs(p.args, 2, 'usage: capstan import [image-name] [image-file]', ctx.path);
    const [name, file] = p.args as [string, string];
    ctx.out.line(`Importing ${name}...`);
    const dest = await importImage(name, file, {
      root: ctx.root, version: str(p, 'v') ?? '', created: str(p, 'c') ?? '', description: str(p, 'd') ?? '', build: str(p, 'b') ?? '',
    });
    ctx.out.line(`Importing into ${dest}`);
  },
};

export const infoCommand: Command = {
  name: 'info',
  usage: 'show disk image information',
  args: '[image-file]',
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan info [image-file]', ctx.path);
    ctx.out.line(await capstanInfo(p.args[0]!));
  },
};

/** An image file, or a repository image by name (`capstan run <image>`, `--target libvirt`). */
export function imageFile(image: string, ctx: CommandContext): string {
  const asFile = path.resolve(ctx.cwd, image);
  // As Capstan: a folder of that name (often the package folder itself) is not the image.
  if (existsSync(asFile) && !statSync(asFile).isDirectory()) return asFile;
  checkRepositoryName(image, 'image', true);
  const inRepository = repositoryImagePath(image, ctx.root);
  if (!existsSync(inRepository)) {
    throw new VmError(`${image}: no such image at: ${inRepository}`, {
      code: 'E_VM_IMAGE', file: inRepository, hint: `Compose it (capstan package compose ${image}), import it (capstan import), or pull it (capstan pull).`,
    });
  }
  return inRepository;
}
