// Capstan's package commands as a typed API: list (local), search (remote), describe, update,
// build (`<name>.mpm` from a package folder) and import (build + copy into the local
// repository). The CLI and tasks format what these return.
import { createReadStream } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readFile, readlink, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { TempFile, writeFileAtomic } from '../atomic-file.js';
import { CapstanError, RepositoryError } from '../errors.js';
import { compileIgnore, isIgnored } from '../layout/ignore.js';
import { bootScriptOf, collectCapstanignorePatterns, parsePackageYaml, parseRunYaml } from '../manifest/index.js';
import type { PackageInfo, RunConfig } from '../manifest/types.js';
import { marshalGoFields, type GoField } from '../yaml/go-emit.js';
import { findLocalPackage } from './local.js';
import { isMetaMember, readMpm, type MpmMemberType } from './mpm.js';
import { RepositoryClient } from './pull.js';
import type { RemoteOptions } from './remote/settings.js';
import { capstanRoot, repositoryPackagePaths } from './root.js';

export interface ListedPackage extends PackageInfo {
  yamlPath: string;
  /** False when the .yaml has no .mpm beside it (such a package does not "exist" for compose). */
  complete: boolean;
}

/** Local packages (`packages/*.yaml`) whose name contains `filter`, sorted by name (Capstan's `package list`). */
export async function listPackages(
  filter = '',
  options: { root?: string | undefined; onUnreadable?: ((error: unknown, file: string) => void) | undefined } = {},
): Promise<ListedPackage[]> {
  const dir = path.join(capstanRoot(options.root), 'packages');
  let names: string[];
  try { names = await readdir(dir); } catch { return []; }
  const out: ListedPackage[] = [];
  for (const file of names.filter((n) => n.endsWith('.yaml') && !n.startsWith('.')).sort()) {
    if (filter && !file.includes(filter)) continue;
    const yamlPath = path.join(dir, file);
    let info: PackageInfo;
    try {
      info = parsePackageYaml(await readFile(yamlPath, 'utf8'), yamlPath);
    } catch (error) {
      // Capstan's list ends quietly at a descriptor it cannot read; here the others are still listed.
      if (!options.onUnreadable) throw error;
      options.onUnreadable(error, yamlPath);
      continue;
    }
    const complete = await stat(path.join(dir, `${file.slice(0, -5)}.mpm`)).then(() => true, () => false);
    out.push({ ...info, yamlPath, complete });
  }
  return out;
}

export interface RemotePackageInfo extends PackageInfo {
  /** The release it is in (GitHub), '' for S3. */
  release: string;
}

/**
 * Packages the remote offers whose name contains `filter` (Capstan's `package search`): every
 * `osv*.yaml` asset of the selected release(s), or `packages/*.yaml` of an S3 bucket. A
 * descriptor that does not parse is skipped, as Capstan does.
 */
export async function searchPackages(filter = '', options: RemoteOptions = {}): Promise<RemotePackageInfo[]> {
  const client = new RepositoryClient(options);
  const remote = client.remote('the remote package list');
  const out: RemotePackageInfo[] = [];
  for (const { file, release } of await remote.packageDescriptors()) {
    const info = await client.fetchDescriptor(file.url, file.name).catch((error: unknown) => {
      if (error instanceof RepositoryError && (error.code === 'E_REMOTE_NETWORK' || error.code === 'E_REMOTE_RATE_LIMIT')) throw error;
      return undefined;
    });
    if (info && info.name.includes(filter)) out.push({ ...info, release });
  }
  return out;
}

export interface PackageDescription {
  info: PackageInfo;
  run?: {
    runtime: string;
    /** `config_set_default`, or the only config set. */
    defaultConfig: string;
    /** Each config set and its boot command (what its /run file holds). */
    configs: { name: string; bootCommand: string }[];
  } | undefined;
  readme?: string | undefined;
  /** Members (meta/* left out), with `content: true`. */
  content?: { path: string; type: MpmMemberType; mode: number; size: number; linkname?: string | undefined; mtime?: Date | undefined }[] | undefined;
}

/** Reads a local package without extracting it (Capstan's `package describe`). */
export async function describePackage(name: string, options: { root?: string | undefined; content?: boolean | undefined } = {}): Promise<PackageDescription> {
  const root = capstanRoot(options.root);
  const pkg = await findLocalPackage(name, root);
  let info: PackageInfo | undefined;
  let run: RunConfig | undefined;
  let readme: string | undefined;
  const content: NonNullable<PackageDescription['content']> = [];
  for await (const m of readMpm(createReadStream(pkg.mpmPath), pkg.mpmPath)) {
    if (m.guestPath === '/meta/package.yaml' && m.type === 'file') info = parsePackageYaml(m.contents.toString('utf8'), `${pkg.mpmPath}:meta/package.yaml`);
    else if (m.guestPath === '/meta/run.yaml' && m.type === 'file') run = parseRunYaml(m.contents.toString('utf8'), `${pkg.mpmPath}:meta/run.yaml`);
    else if (m.guestPath === '/meta/README.md' && m.type === 'file') readme = m.contents.toString('utf8');
    else if (options.content && !isMetaMember(m.guestPath)) {
      content.push({
        path: m.guestPath, type: m.type, mode: m.mode, size: m.contents.length,
        ...(m.linkname !== undefined ? { linkname: m.linkname } : {}), ...(m.mtime ? { mtime: m.mtime } : {}),
      });
    }
  }
  if (!info) {
    throw new RepositoryError('the package is not valid: it has no meta/package.yaml', { code: 'E_MPM_NO_PACKAGE_YAML', file: pkg.mpmPath, hint: 'Rebuild it with buildPackage() / `capstan package build`.' });
  }
  const description: PackageDescription = { info };
  if (run) {
    const runs = new Map<string, RunConfig>([[info.name, run]]);
    // Inherited boot commands are followed through the local packages that are there.
    for (const set of run.configSets) {
      const base = set.inherits?.package;
      if (base && !runs.has(base)) {
        const other = await findLocalPackage(base, root).catch(() => undefined);
        const otherRun = other ? await readRunOf(other.mpmPath) : undefined;
        if (otherRun) runs.set(base, otherRun);
      }
    }
    description.run = {
      runtime: run.runtime,
      defaultConfig: run.configSetDefault.join(',') || (run.configSets.length === 1 ? run.configSets[0]!.name : ''),
      configs: run.configSets.map((set) => {
        let bootCommand: string;
        try {
          bootCommand = bootScriptOf(set, runs);
        } catch (error) {
          if (!(error instanceof CapstanError)) throw error;
          bootCommand = `(inherits ${set.inherits!.package}:${set.inherits!.configSet}, not in the local repository)`;
        }
        return { name: set.name, bootCommand };
      }),
    };
  }
  if (readme !== undefined) description.readme = readme;
  if (options.content) description.content = content;
  return description;
}

async function readRunOf(mpm: string): Promise<RunConfig | undefined> {
  for await (const m of readMpm(createReadStream(mpm), mpm)) {
    if (m.guestPath === '/meta/run.yaml' && m.type === 'file') return parseRunYaml(m.contents.toString('utf8'), `${mpm}:meta/run.yaml`);
  }
  return undefined;
}

/** Capstan's version number: `^\d{1,3}(\.\d{1,3}){0,2}$`, `1.2.3` → 1002003; undefined when not such a version. */
export function versionNumber(version: string | undefined): number | undefined {
  if (version === undefined || !/^\d{1,3}(\.\d{1,3}){0,2}$/.test(version)) return undefined;
  let weight = 1_000_000;
  let n = 0;
  for (const part of version.split('.')) { n += weight * Number(part); weight /= 1000; }
  return n;
}

/** Capstan's `created` times: RFC 3339 or `2006-01-02 15:04`. */
export function parseCreated(text: string | undefined): Date | undefined {
  if (!text) return undefined;
  const friendly = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})$/.exec(text);
  const date = friendly ? new Date(Date.UTC(+friendly[1]!, +friendly[2]! - 1, +friendly[3]!, +friendly[4]!, +friendly[5]!)) : new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Capstan's NeedsUpdate: a higher remote version; with `created`, also a newer remote `created`. */
export function needsUpdate(local: PackageInfo, remote: PackageInfo, compareCreated: boolean): boolean {
  const l = versionNumber(local.version);
  const r = versionNumber(remote.version);
  if (l === undefined || r === undefined) return true; // Capstan updates when a version cannot be read
  if (l < r || !compareCreated) return l < r;
  const lc = parseCreated(local.created);
  const rc = parseCreated(remote.created);
  return lc === undefined || rc === undefined ? true : lc < rc;
}

export interface PackageUpdate {
  name: string;
  from?: string | undefined;
  to?: string | undefined;
  status: 'updated' | 'latest' | 'not-remote';
}

/** Re-pulls local packages (name containing `filter`) the remote has newer (Capstan's `package update`). */
export async function updatePackages(filter = '', options: RemoteOptions & { created?: boolean | undefined } = {}): Promise<PackageUpdate[]> {
  const client = new RepositoryClient(options);
  const out: PackageUpdate[] = [];
  for (const local of await listPackages(filter, { root: client.root })) {
    const found = await client.remote(`updates of ${local.name}`).findPackage(local.name, client.arch);
    if (!found) { out.push({ name: local.name, from: local.version, status: 'not-remote' }); continue; }
    const remote = await client.fetchDescriptor(found.yaml.url, found.yaml.name);
    if (needsUpdate(local, remote, options.created ?? false)) {
      await client.pullPackage(local.name);
      out.push({ name: local.name, from: local.version, to: remote.version, status: 'updated' });
    } else {
      out.push({ name: local.name, from: local.version, status: 'latest' });
    }
  }
  return out;
}

/**
 * Builds `<dir>/<name>.mpm` from a package folder (Capstan's `package build`): a gzipped tar
 * whose members are the paths relative to the folder with a leading `/` (folders ending in
 * `/`), files, folders and symlinks only, in Capstan's walk order. Skipped as in Capstan: the
 * `.mpm` itself and `/mpm-pkg`. Unlike Capstan (a TODO there), `.capstanignore` is honoured,
 * with `/.git` and `/volumes` as always-ignored; `meta/` is packed, since it is the package.
 * Written to a temp file and renamed, so a failed build leaves no half package.
 */
export async function buildPackage(dir: string): Promise<{ path: string; info: PackageInfo; members: number }> {
  const root = path.resolve(dir);
  const yamlPath = path.join(root, 'meta', 'package.yaml');
  let yamlText: string;
  try { yamlText = await readFile(yamlPath, 'utf8'); } catch {
    throw new RepositoryError('a package folder needs meta/package.yaml', { code: 'E_PACKAGE_YAML_MISSING', file: yamlPath, hint: 'Create it with initPackage() / `capstan package init`.' });
  }
  const info = parsePackageYaml(yamlText, yamlPath);
  const mpmName = `${info.name}.mpm`;
  let patterns: string[] = [];
  const ignoreFile = path.join(root, '.capstanignore');
  try { patterns = collectCapstanignorePatterns(await readFile(ignoreFile, 'utf8'), ignoreFile); } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const matcher = compileIgnore([...patterns, '/mpm-pkg', '/.git', '/volumes'], { defaults: false });
  const target = path.join(root, mpmName);
  // Removed if the process ends mid-build (Ctrl+C): no half archive is left in the package folder.
  const temp = TempFile.beside(target);
  const pack = tar.pack();
  const writing = pipeline(pack, createGzip(), await temp.writeStream());
  let members = 0;
  const add = async (rel: string): Promise<void> => {
    const full = path.join(root, ...rel.split('/').filter(Boolean));
    const st = await lstat(full);
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      pack.entry({ ...base, name: rel === '' ? '/' : `${rel}/`, type: 'directory' });
      members++;
      for (const name of (await readdir(full)).sort()) {
        const child = `${rel}/${name}`;
        if (name === mpmName || (name.startsWith(`.${mpmName}.`) && name.endsWith('.tmp')) || isIgnored(matcher, child)) continue;
        await add(child);
      }
    } else if (st.isSymbolicLink()) {
      pack.entry({ ...base, name: rel, type: 'symlink', linkname: await readlink(full) });
      members++;
    } else if (st.isFile()) {
      const entry = pack.entry({ ...base, name: rel, type: 'file', size: st.size });
      await pipeline(createReadStream(full), entry);
      members++;
    } else {
      throw new RepositoryError(`${rel} is neither a file, a folder nor a symlink`, { code: 'E_PACKAGE_MEMBER', file: full, hint: 'Remove it from the package folder, or list it in .capstanignore.' });
    }
  };
  try {
    await add('');
    pack.finalize();
    await writing;
    await temp.publish(target);
  } catch (error) {
    pack.destroy();
    await writing.catch(() => {});
    await temp.discard();
    throw error;
  }
  return { path: target, info, members };
}

/**
 * The descriptor Capstan's `package import` stores as `packages/<name>.yaml`: yaml.v2's
 * marshalling of its Package struct (omitempty fields left out; `created` as RFC 3339, or
 * `N/A` when it is not a time).
 */
export function formatPackageDescriptor(info: PackageInfo): string {
  const created = parseCreated(info.created);
  // An RFC 3339 time keeps its zone, as Go's time.Format(RFC3339) would; `2006-01-02 15:04` is UTC in Go.
  const rfc3339 = info.created !== undefined && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(info.created);
  const createdText = !created ? 'N/A' : rfc3339 ? info.created!.replace(/\.\d+(?=Z|[+-])/, '') : created.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const head: GoField[] = [['name', info.name], ['title', info.title]];
  if (info.author) head.push(['author', info.author]);
  if (info.version) head.push(['version', info.version]);
  if (info.require.length > 0) head.push(['require', info.require]);
  let text = marshalGoFields(head);
  const binary = Object.entries(info.binary ?? {});
  // A map field: its entries one level in, as the emitter nests a block mapping.
  if (binary.length > 0) text += 'binary:\n' + marshalGoFields(binary).replace(/^(?=.)/gm, '  ');
  const tail: GoField[] = [['created', createdText]];
  if (info.platform) tail.push(['platform', info.platform]);
  return text + marshalGoFields(tail);
}

/** Builds the package and copies `<name>.mpm` and its descriptor into the local repository (Capstan's `package import`). */
export async function importPackage(dir: string, options: { root?: string | undefined } = {}): Promise<{ mpm: string; yaml: string; info: PackageInfo }> {
  const built = await buildPackage(dir);
  const paths = repositoryPackagePaths(built.info.name, capstanRoot(options.root));
  await mkdir(path.dirname(paths.mpm), { recursive: true });
  const temp = TempFile.beside(paths.mpm);
  try {
    await copyFile(built.path, temp.path);
    await temp.publish(paths.mpm);
    await writeFileAtomic(paths.yaml, formatPackageDescriptor(built.info));
  } finally {
    await temp.discard(); // nothing once published
    await unlink(built.path).catch(() => {}); // as Capstan: the built .mpm does not stay in the folder
  }
  return { mpm: paths.mpm, yaml: paths.yaml, info: built.info };
}
