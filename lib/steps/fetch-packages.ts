// fetchPackages: adds the files of every required package (recursively, in Capstan's order)
// to the stream, from the local repository. When the manifest file passes, it emits per
// package its files (kind 'package-file') and then one descriptor (kind 'package', with the
// run configuration read on the way), before the application's files, which follow the
// manifest. Members are sent on as the archive is read, each only when the next step has
// room: a package is never held whole in memory.
import path from 'node:path';
import type { Transform } from 'node:stream';
import Vinyl from 'vinyl';
import { annotate, capstanOf, type PackageRef } from '../carrier.js';
import { RepositoryError, toPluginError } from '../errors.js';
import { formatWarning, type ManifestWarning, type ParseOptions } from '../yaml/source.js';
import { formatBytes, stepLogger, type LogOptions } from '../log.js';
import type { Manifest, RunConfig } from '../manifest/types.js';
import { findLocalPackage, localPackageMembers, resolveLocalPackages, type LocalPackage } from '../repository/local.js';
import { RepositoryClient } from '../repository/pull.js';
import { remoteSettings, type RemoteOptions } from '../repository/remote/settings.js';
import type { MpmMember } from '../repository/mpm.js';
import { capstanRoot } from '../repository/root.js';
import { hostRuntimeFiles } from '../runtimes/host-runtime.js';
import { runtimeVinyls } from '../vinyl/runtime-files.js';
import { stepStream } from '../vinyl/step-stream.js';
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
  // Warnings of the packages' YAML (repeated keys…) reach the log, as the app's own do.
  const parse = { onWarning: (w: ManifestWarning) => log.warn(formatWarning(w)) };
  const find = options.pullMissing
    ? (name: string) => (client ??= new RepositoryClient({ ...options, root })).ensurePackage(name, parse)
    : (name: string) => findLocalPackage(name, root, parse);
  log.start();
  return stepStream({
    each(file, push, room) {
      const meta = capstanOf(file);
      if (meta?.kind !== 'manifest' || !meta.manifest) return void push(file);
      const manifest = meta.manifest;
      return (async () => {
        try {
          for await (const member of packageFiles(manifest, root, log, find, parse)) {
            push(member);
            const full = room();
            if (full) await full;
          }
        } catch (error) {
          throw toPluginError(error, file.path);
        }
        push(file);
      })();
    },
  });
}

async function* packageFiles(
  manifest: Manifest, root: string, log: ReturnType<typeof stepLogger>, find: (name: string) => Promise<LocalPackage>, parse: ParseOptions,
): AsyncGenerator<Vinyl> {
  const started = Date.now();
  const host = manifest.hostRuntime;
  let require = manifest.require;
  let standsIn: string | undefined;
  // Capstan's runtime package when there is one (Capstan's behaviour), the host's runtime otherwise.
  if (host?.capstanPackage && require.includes(host.capstanPackage)) {
    if (!(await available(host.capstanPackage, find))) {
      standsIn = host.capstanPackage;
      require = require.filter((name) => name !== standsIn);
    } else {
      log.note(`runtime ${manifest.run?.runtime}: Capstan's package ${host.capstanPackage}`);
    }
  }
  const packages = await resolveLocalPackages(require, root, find);
  let count = 0;
  let bytes = 0;
  for (const [layer, pkg] of packages.entries()) {
    // The files carry this ref; its run configuration is known once the archive is read, and
    // the descriptor, which layoutFiles takes it from, comes after them.
    const ref: PackageRef = { name: pkg.name, layer, info: pkg.info };
    const found: { run?: RunConfig | undefined } = {};
    for await (const member of localPackageMembers(pkg, found, parse)) {
      count += 1;
      bytes += member.contents.length;
      log.detail(`${pkg.name}: ${member.guestPath}`);
      yield memberFile(pkg, member, ref, manifest, root);
    }
    ref.run = found.run;
    yield descriptor(pkg, ref, manifest, root);
  }
  if (host && (standsIn || !host.capstanPackage)) {
    const runtime = hostRuntimeFiles(host);
    const name = standsIn ?? `host.${host.kind}`;
    const ref: PackageRef = {
      name, layer: packages.length,
      info: { name, title: runtime.title, author: 'gulp-capstan', version: runtime.version.replace(/^v/, ''), require: [] },
      run: runtime.run,
    };
    const files = runtimeVinyls(runtime, ref, manifest);
    for (const f of files) { if (f.stat?.size) bytes += f.stat.size; count += 1; log.detail(`${name}: ${capstanOf(f)?.guestPath ?? f.path}`); }
    count -= 1; // the descriptor
    yield* files;
    for (const note of runtime.notes) log.warn(`${name}: ${note}`);
    const libraries = runtime.closure.filter((e) => e.type === 'library').length;
    log.note(`${runtime.title} (${runtime.binary}${runtime.tree.length ? `, ${runtime.tree.length} files of its own` : ''}, ${libraries} libraries)` +
      (standsIn ? ` stands in for Capstan's ${standsIn}, which is not in the repository` : ''));
  }
  const names = packages.map((p) => p.name).join(', ') || 'none';
  log.summary(`${packages.length} packages (${names}), ${count} files, ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s`, { files: count, bytes });
}

/** Whether a package is there (or was pulled); missing ones are false, other errors fail. */
async function available(name: string, find: (name: string) => Promise<LocalPackage>): Promise<boolean> {
  try {
    await find(name);
    return true;
  } catch (error) {
    if (error instanceof RepositoryError && ['E_PACKAGE_MISSING', 'E_REMOTE_MISSING', 'E_OFFLINE'].includes(error.code)) return false;
    throw error;
  }
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
