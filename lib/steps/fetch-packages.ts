// fetchPackages: adds the files of every required package (recursively, in Capstan's order)
// to the stream, from the local repository. When the manifest file passes, it emits per
// package one descriptor (kind 'package') and then its files (kind 'package-file'), before
// the application's files, which follow the manifest.
import path from 'node:path';
import type { Transform } from 'node:stream';
import { objectTransform } from 'through2';
import Vinyl from 'vinyl';
import { annotate, capstanOf, type PackageRef } from '../carrier.js';
import { toPluginError } from '../errors.js';
import { formatBytes, stepLogger, type LogOptions } from '../log.js';
import type { Manifest } from '../manifest/types.js';
import { findLocalPackage, readLocalPackage, resolveLocalPackages, type LocalPackage } from '../repository/local.js';
import { RepositoryClient } from '../repository/pull.js';
import { remoteSettings, type RemoteOptions } from '../repository/remote/settings.js';
import type { MpmMember } from '../repository/mpm.js';
import { capstanRoot } from '../repository/root.js';
import { syntheticStat, typeBits } from '../vinyl/synthetic-stat.js';

export interface FetchPackagesOptions extends LogOptions, Omit<RemoteOptions, 'events' | 'silent'> {
  /** Capstan root holding `packages/` (default $CAPSTAN_ROOT, else ~/.capstan). */
  root?: string | undefined;
  /** Pull packages missing from the local repository (Capstan's --pull-missing). Default false. */
  pullMissing?: boolean | undefined;
}

export function fetchPackages(options: FetchPackagesOptions = {}): Transform {
  const root = capstanRoot(options.root);
  const log = stepLogger('fetchPackages', options);
  try {
    remoteSettings(options); // bad remote options fail when the stream is created
  } catch (error) {
    throw toPluginError(error);
  }
  // One client per stream (one build): the release pages it reads serve every package.
  let client: RepositoryClient | undefined;
  const find = options.pullMissing
    ? (name: string) => (client ??= new RepositoryClient({ ...options, root })).ensurePackage(name)
    : (name: string) => findLocalPackage(name, root);
  return objectTransform(async function* (files: AsyncIterable<Vinyl>) {
    for await (const file of files) {
      const meta = capstanOf(file);
      if (meta?.kind === 'manifest' && meta.manifest) {
        try {
          yield* packageFiles(meta.manifest, root, log, find);
        } catch (error) {
          throw toPluginError(error, file.path);
        }
      }
      yield file;
    }
  }) as unknown as Transform;
}

async function* packageFiles(
  manifest: Manifest, root: string, log: ReturnType<typeof stepLogger>, find: (name: string) => Promise<LocalPackage>,
): AsyncGenerator<Vinyl> {
  const started = Date.now();
  const packages = await resolveLocalPackages(manifest.require, root, find);
  let count = 0;
  let bytes = 0;
  for (const [layer, pkg] of packages.entries()) {
    const contents = await readLocalPackage(pkg);
    const ref: PackageRef = { name: pkg.name, layer, info: pkg.info, run: contents.run };
    yield descriptor(pkg, ref, manifest, root);
    for (const member of contents.members) {
      count += 1;
      bytes += member.contents.length;
      log.detail(`${pkg.name}: ${member.guestPath}`);
      yield memberFile(pkg, member, ref, manifest, root);
    }
  }
  const names = packages.map((p) => p.name).join(', ') || 'none';
  log.summary(`${packages.length} packages (${names}), ${count} files, ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function descriptor(pkg: LocalPackage, ref: PackageRef, manifest: Manifest, root: string): Vinyl {
  const file = new Vinyl({ cwd: root, base: path.dirname(pkg.mpmPath), path: pkg.mpmPath, contents: null });
  annotate(file, { kind: 'package', package: ref, manifest, layer: ref.layer });
  return file;
}

function memberFile(pkg: LocalPackage, member: MpmMember, ref: PackageRef, manifest: Manifest, root: string): Vinyl {
  const base = path.join(root, 'packages', pkg.name);
  const file = new Vinyl({
    cwd: root,
    base,
    path: path.join(base, ...member.guestPath.split('/').filter(Boolean)),
    contents: member.type === 'file' ? member.contents : null,
    stat: syntheticStat(typeBits(member.type) | member.mode, member.contents.length),
  });
  if (member.type === 'symlink') file.symlink = member.linkname!;
  annotate(file, { kind: 'package-file', package: ref, manifest, layer: ref.layer });
  return file;
}
