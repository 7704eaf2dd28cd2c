// `capstan package …`: compose, collect, pull, search, list, describe, build, import, update,
// init — Capstan's package tools over the typed API (lib/repository/packages.ts, pull.ts,
// lib/commands/compose.ts, collect.ts, lib/manifest/templates.ts), printing what Capstan prints.
import path from 'node:path';
import { collectPackage } from '../../commands/collect.js';
import { composeRemote } from '../../commands/compose-remote.js';
import { buildOptions, composeWith } from '../../commands/compose.js';
import { formatBytes } from '../../log.js';
import { initPackage } from '../../manifest/templates.js';
import { composedImageIndex, writeImageIndex } from '../../repository/images.js';
import {
  buildPackage, describePackage, importPackage, listPackages, searchPackages, updatePackages, type PackageDescription,
} from '../../repository/packages.js';
import { pullPackage } from '../../repository/pull.js';
import { checkRepositoryName } from '../../repository/remote/remote.js';
import { repositoryImagePath } from '../../repository/root.js';
import { bool, list, str, type FlagSpec } from '../args.js';
import { buildRemote, JSON_FLAG, remoteOptions, type Command } from '../command.js';
import { UsageError } from '../exit-codes.js';
import { fileInfoHeader, goFileMode, goLeft, packageRow, rfc822 } from '../table.js';
import { envFlags, expectArgs, oneOf, sizeFlag } from '../values.js';

const PULL_MISSING: FlagSpec = { name: 'pull-missing', aliases: ['p'], type: 'boolean', usage: 'attempt to pull packages missing from a local repository' };
const VERBOSE: FlagSpec = { name: 'verbose', aliases: ['v'], type: 'boolean', usage: 'verbose mode' };
const REQUIRE: FlagSpec = { name: 'require', type: 'string', multiple: true, usage: 'specify extra package dependency' };
export const FS_FLAG: FlagSpec = { name: 'fs', type: 'string', usage: 'type of filesystem: rofs (read-only, the default here) or zfs (writable, through the OSv ZFS builder)', default: 'rofs' };

/**
 * `--fs`: `rofs` (the default here) or `zfs` (Capstan's default: a writable root, built by
 * booting OSv's ZFS builder; seconds more per image).
 */
export function checkFilesystem(value: string | undefined, command: string): 'rofs' | 'zfs' {
  return oneOf(value, ['rofs', 'zfs'], '--fs', command) as 'rofs' | 'zfs';
}

const compose: Command = {
  name: 'compose',
  usage: 'composes the package and all its dependencies into OSv image',
  args: '[image-name]',
  json: true,
  description: [
    'Writes repository/<image-name>/<image-name>.qemu (a qcow2) and its index.yaml, so that',
    "'capstan run <image-name>' boots it.",
    'Differences from Capstan: the filesystem is ROFS unless --fs zfs (Capstan defaults to ZFS;',
    'a ZFS image boots the OSv ZFS builder, pulled from the loader\'s release, and takes seconds',
    'more); --size is honoured for ROFS too (Capstan ignores it) and without it a ROFS disk is just',
    'large enough; --update sends only changed files into an existing ZFS image (Capstan\'s',
    'hash cache), and changes nothing for ROFS (rebuilt whole).',
    'Missing packages are pulled only with -p, as in Capstan (the loader always is).',
    'The "capstan" field of package.json applies, under these flags.',
  ].join('\n'),
  flags: [
    { name: 'size', aliases: ['s'], type: 'string', usage: 'total size of the target image (use M or G suffix); default: just large enough' },
    { name: 'update', type: 'boolean', usage: 'ZFS: upload only files that changed since the last compose' },
    VERBOSE,
    { name: 'run', type: 'string', usage: 'the command line to be executed in the VM' },
    PULL_MISSING,
    { name: 'boot', type: 'string', multiple: true, usage: 'config_set to boot with (run left to right)' },
    { name: 'env', type: 'string', multiple: true, usage: 'environment variable, e.g. PORT=8000' },
    FS_FLAG,
    REQUIRE,
    { name: 'loader_image', aliases: ['l'], type: 'string', usage: 'the base loader image', default: 'osv-loader' },
    JSON_FLAG,
  ],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'Usage: capstan package compose [image-name]', ctx.path);
    const name = checkRepositoryName(p.args[0]!, 'image', true);
    const size = sizeFlag(str(p, 'size'), '--size', ctx.path);
    const env = envFlags(list(p, 'env'), ctx.path);
    const fs = checkFilesystem(str(p, 'fs'), ctx.path);
    if (bool(p, 'update') && fs !== 'zfs') ctx.out.warn('--update: ROFS images are rebuilt whole; the flag changes nothing without --fs zfs');
    const out = repositoryImagePath(name, ctx.root);
    const boot = list(p, 'boot');
    const image = await composeWith(buildOptions({
      ...buildRemote(ctx),
      cwd: ctx.cwd, out, format: 'qcow2', size, loader: str(p, 'loader_image'), fs, update: fs === 'zfs' && bool(p, 'update'),
      run: str(p, 'run'), boot: boot.length ? boot : undefined, env, require: list(p, 'require').length ? list(p, 'require') : undefined,
      pullMissing: bool(p, 'pull-missing'), verbose: bool(p, 'verbose'), events: ctx.out.events,
    }));
    // As Capstan's ImportImage: the image's index.yaml, created now.
    await writeImageIndex(path.dirname(out), await composedImageIndex(image.loader));
    ctx.out.line(`Command line set to: '${image.cmdline}'`);
  },
};

const collect: Command = {
  name: 'collect',
  usage: 'collects contents of this package and all required packages',
  description: 'Materialises what the image would hold in ./mpm-pkg (replacing it) and leaves it there.\nUnlike Capstan, the ROFS skeleton (/etc/fstab, …) is there too: it is part of the image.',
  flags: [PULL_MISSING, VERBOSE, { name: 'remote', type: 'boolean', usage: 'set when previewing the compose-remote (osv.compose-remote instead of osv.bootstrap)' }, REQUIRE],
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan package collect', ctx.path);
    const require = list(p, 'require');
    const result = await collectPackage({
      ...buildRemote(ctx), events: ctx.out.events, cwd: ctx.cwd, pullMissing: bool(p, 'pull-missing'), verbose: bool(p, 'verbose'),
      require: require.length ? require : undefined, bootstrap: bool(p, 'remote') ? 'osv.compose-remote' : undefined,
    });
    ctx.out.line(`Collected ${result.files} files (${formatBytes(result.bytes)}), ${result.directories} folders and ${result.symlinks} symlinks into ${result.dir}`);
  },
};

const composeRemoteCommand: Command = {
  name: 'compose-remote',
  usage: 'composes the package and all its dependencies and uploads resulting files into remote OSv instance',
  args: '<host-or-ip>',
  description: [
    'Streams the files a compose would lay out, as cpio, to a running OSv guest whose cpiod',
    '(/tools/cpiod.so) listens on port 10000 (host:port for another port): a hot update of a live',
    "VM with a writable (ZFS) root. osv.compose-remote takes osv.bootstrap's place, as in Capstan.",
  ].join('\n'),
  flags: [VERBOSE, PULL_MISSING, REQUIRE],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan package compose-remote <host-or-ip>', ctx.path);
    const require = list(p, 'require');
    const sent = await composeRemote({
      ...buildRemote(ctx), events: ctx.out.events, cwd: ctx.cwd, host: p.args[0]!, pullMissing: bool(p, 'pull-missing'), verbose: bool(p, 'verbose'),
      require: require.length ? require : undefined,
    });
    ctx.out.line(`Uploaded ${sent.files} files (${formatBytes(sent.fileBytes)}), ${sent.directories} folders and ${sent.symlinks} symlinks to ${sent.host}:${sent.port}`);
  },
};

const pull: Command = {
  name: 'pull',
  usage: 'pulls the package from remote repository and imports it into local package storage',
  args: '[package-name]',
  json: true,
  flags: [JSON_FLAG],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan package pull [package-name]', ctx.path);
    const pkg = await pullPackage(p.args[0]!, remoteOptions(ctx));
    ctx.out.line(`Package ${pkg.name} pulled into ${pkg.mpmPath}`);
  },
};

const search: Command = {
  name: 'search',
  usage: 'searches for packages in the remote repository (partial name matches are also supported)',
  args: '[package-name]',
  async run(ctx, p) {
    if (p.args.length > 1) throw new UsageError('too many arguments; usage: capstan package search [package-name]', ctx.path);
    const found = await searchPackages(p.args[0] ?? '', remoteOptions(ctx));
    if (ctx.global.s3) {
      ctx.out.line(fileInfoHeader());
      for (const pkg of found) ctx.out.line(packageRow(pkg));
    } else {
      ctx.out.line(`${goLeft('Release', 10)}${fileInfoHeader()}`);
      for (const pkg of found) ctx.out.line(`${goLeft(pkg.release, 10)}${packageRow(pkg)}`);
    }
  },
};

const listCommand: Command = {
  name: 'list',
  usage: 'lists the available packages',
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan package list', ctx.path);
    const packages = await listPackages('', {
      root: ctx.root, onUnreadable: (error, file) => ctx.out.warn(`${(error as Error).message.split('\n')[0]} (${path.basename(file)} left out)`),
    });
    ctx.out.write(`${fileInfoHeader()}\n${packages.map((pkg) => `${packageRow(pkg)}\n`).join('')}`);
  },
};

/** Capstan's DescribePackage text. */
export function describeText(d: PackageDescription): string {
  let s = 'PACKAGE METADATA\n';
  s += `name: ${d.info.name}\ntitle: ${d.info.title}\nauthor: ${d.info.author}\n`;
  if (d.info.require.length > 0) s += `required packages:\n${d.info.require.map((r) => `   * ${r}\n`).join('')}`;
  s += '\n';
  const rule = '-----------------------------------------\n';
  if (d.run) {
    s += `PACKAGE EXECUTION\nruntime: ${d.run.runtime}\ndefault configuration: ${d.run.defaultConfig}\n`;
    s += rule + `${goLeft('CONFIGURATION NAME', 25)} | BOOT COMMAND\n` + rule;
    for (const c of d.run.configs) s += `${goLeft(c.name, 25)} | ${c.bootCommand}\n`;
    s += rule;
  } else {
    s += 'No package execution information was found.\n';
  }
  s += '\n';
  if (d.readme) s += `PACKAGE DOCUMENTATION\n${d.readme}\n`;
  if (d.content) {
    s += 'PACKAGE CONTENT\n';
    for (const m of d.content) {
      s += `${goFileMode(m.type, m.mode)}  0 0      0 ${String(m.size).padStart(11)} ${m.mtime ? rfc822(m.mtime) : ''} ${m.path}`;
      if (m.type === 'symlink') s += ` -> ${m.linkname ?? ''}`;
      s += '\n';
    }
  }
  return s;
}

const describe: Command = {
  name: 'describe',
  usage: 'describes the package from local repository',
  args: '[package-name]',
  flags: [{ name: 'content', aliases: ['c'], type: 'boolean', usage: 'show file content' }],
  async run(ctx, p) {
    expectArgs(p.args, 1, 'usage: capstan package describe [package-name]', ctx.path);
    const d = await describePackage(p.args[0]!, { root: ctx.root, content: bool(p, 'content') });
    ctx.out.write(`${describeText(d)}\n`); // Capstan: fmt.Println(s), s ending in a newline already
  },
};

const build: Command = {
  name: 'build',
  usage: 'builds the package into a compressed file',
  description: 'Writes <name>.mpm in the package folder. Unlike Capstan, .capstanignore is applied (Capstan has a TODO there).',
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan package build', ctx.path);
    ctx.out.line('Building package');
    const built = await buildPackage(ctx.cwd);
    ctx.out.line(`Package built and stored in ${built.path}`);
  },
};

const importCommand: Command = {
  name: 'import',
  usage: 'builds the package at the given path and imports it into a chosen repository',
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan package import', ctx.path);
    ctx.out.line('Building package');
    const imported = await importPackage(ctx.cwd, { root: ctx.root });
    ctx.out.line(`Package ${path.basename(imported.mpm)} successfully imported into repository ${path.dirname(imported.mpm)}`);
  },
};

const update: Command = {
  name: 'update',
  usage: 'updates local packages from remote if remote version is newer',
  args: '[package-name]',
  flags: [{ name: 'created', type: 'boolean', usage: 'update package also if created date is newer (regardless version)' }, VERBOSE],
  async run(ctx, p) {
    if (p.args.length > 1) throw new UsageError('too many arguments; usage: capstan package update [package-name]', ctx.path);
    const verbose = bool(p, 'verbose');
    const updates = await updatePackages(p.args[0] ?? '', { ...remoteOptions(ctx), created: bool(p, 'created') });
    if (updates.length === 0 && verbose) ctx.out.line('No local packages were found.');
    if (verbose) {
      updates.forEach((u, i) => {
        const head = `[${String(i + 1).padStart(2, '0')}/${String(updates.length).padStart(2, '0')}] ${goLeft(u.name, 50)}`;
        if (u.status === 'not-remote') ctx.out.line(`${head}... package does not exist in remote repository`);
        else if (u.status === 'latest') ctx.out.line(`${head}... already latest`);
        else ctx.out.line(`${head}... updating ${u.from ?? ''} -> ${u.to ?? ''}\npackage successfully updated`);
      });
    }
    // Capstan prints nothing at all when there are no local packages (only -v says so).
    if (updates.length > 0) {
      ctx.out.line(`Updated ${updates.filter((u) => u.status === 'updated').length} packages (out of ${updates.length} that were found locally)`);
    }
  },
};

const init: Command = {
  name: 'init',
  usage: 'initialise package structure',
  args: '[path]',
  flags: [
    { name: 'name', aliases: ['n'], type: 'string', usage: 'package name' },
    { name: 'title', aliases: ['t'], type: 'string', usage: 'package title' },
    { name: 'author', aliases: ['a'], type: 'string', usage: 'package author' },
    { name: 'version', aliases: ['v'], type: 'string', usage: 'package version' },
    { name: 'require', type: 'string', multiple: true, usage: 'specify package dependency' },
    { name: 'runtime', type: 'string', usage: "runtime to stub package for. Use 'capstan runtime list' to list all" },
    { name: 'platform', aliases: ['p'], type: 'string', usage: 'platform where package was built on' },
  ],
  async run(ctx, p) {
    if (p.args.length > 1) throw new UsageError('too many arguments; usage: capstan package init [path]', ctx.path);
    const dir = path.resolve(ctx.cwd, p.args[0] ?? '.');
    for (const [key, short] of [['name', 'n'], ['title', 't'], ['author', 'a']] as const) {
      if (!str(p, key)) throw new UsageError(`You must provide the ${key} of the package (--${key} or -${short})`, ctx.path);
    }
    ctx.out.line(`Initializing package in ${path.join(dir, 'meta')}`);
    const result = await initPackage(dir, {
      name: str(p, 'name')!, title: str(p, 'title')!, author: str(p, 'author')!, version: str(p, 'version'),
      require: list(p, 'require'), platform: str(p, 'platform'), runtime: str(p, 'runtime'), force: true,
    });
    if (result.runYaml) ctx.out.line('meta/run.yaml stub successfully added to your package. Please customize it in editor.');
  },
};

export const packageCommand: Command = {
  name: 'package',
  usage: 'package manipulation tools',
  subcommands: [init, build, compose, composeRemoteCommand, collect, listCommand, importCommand, search, pull, describe, update],
};
