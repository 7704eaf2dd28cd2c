// Pulling from a remote repository into the local one (Capstan's layout, §5.3): the loader
// (with its kernel ELF beside it, so the fast -kernel boot is the default), the ZFS builder,
// packages, and S3 images. Everything is checked before it is stored — a loader must have a
// boot sector, a kernel be an ELF, a package's .yaml parse and name itself, its .mpm pass the
// same refusals as a local one — so nothing a later build would trip over is ever left behind.
//
// A RepositoryClient belongs to one build (or one command): it holds the remote (and so the
// release pages it fetched), nothing else.
import { createReadStream } from 'node:fs';
import { access, open } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { RepositoryError } from '../errors.js';
import { loaderReference, readLoader } from '../image/loader.js';
import { formatBytes, stepLogger, type StepLogger } from '../log.js';
import { parsePackageYaml } from '../manifest/index.js';
import type { PackageInfo } from '../manifest/types.js';
import type { ParseOptions } from '../yaml/source.js';
import { capstanTime, parseImageIndex, readImageIndex, writeImageIndex, type ImageIndex } from './images.js';
import { findLocalPackage, type LocalPackage } from './local.js';
import { readMpm } from './mpm.js';
import { download } from './remote/download.js';
import { GithubReleases } from './remote/github.js';
import { HttpClient } from './remote/http.js';
import { checkRepositoryName, hostArch, type Remote, type RemoteFile } from './remote/remote.js';
import { S3Bucket } from './remote/s3.js';
import { remoteSettings, type RemoteOptions, type RemoteSettings } from './remote/settings.js';
import { repositoryImagePath, repositoryPackagePaths } from './root.js';

export const ZFS_BUILDER = 'osv-zfs-builder';

export interface PulledLoader {
  /** The stored loader (`repository/<L>/<L>.qemu`). */
  path: string;
  /** The stored kernel ELF beside it, when the release had one. */
  kernel?: string | undefined;
  release: string;
  url: string;
}

/** An image an S3 remote offers (`capstan search`): its name and what its index.yaml says. */
export interface RemoteImageInfo extends ImageIndex {
  /** `<namespace>/<name>`. */
  name: string;
  /** Where its index.yaml is. */
  url: string;
}

export class RepositoryClient {
  readonly settings: RemoteSettings;
  readonly arch: string;
  private remoteInstance: Remote | undefined;
  private http: HttpClient | undefined;
  private readonly log: StepLogger;

  constructor(options: RemoteOptions = {}) {
    this.settings = remoteSettings(options);
    this.arch = hostArch();
    this.log = stepLogger('pull', { silent: this.settings.silent, events: this.settings.events });
  }

  get root(): string { return this.settings.root; }

  /** The remote, created on first use; refuses in offline mode, naming what was wanted. */
  remote(wanted: string, missingAt?: string): Remote {
    if (this.settings.offline) {
      throw new RepositoryError(`${wanted} is not in the local repository${missingAt ? ` (${missingAt})` : ''}, and offline mode forbids downloading it`, {
        code: 'E_OFFLINE', file: missingAt,
        hint: 'Run once without offline (unset CAPSTAN_OFFLINE, or drop --offline / offline: true) to pull it, or put the file there yourself.',
      });
    }
    if (!this.remoteInstance) {
      const s = this.settings;
      const http = new HttpClient({
        ...s.http,
        headersFor: (url) => {
          const own = s.http.headersFor?.(url) ?? {};
          // The token goes to the API host only, never to the download hosts it redirects to.
          return s.githubToken && url.origin === new URL(s.releasesUrl).origin ? { ...own, authorization: `Bearer ${s.githubToken}` } : own;
        },
        onRetry: (r) => { s.http.onRetry?.(r); this.log.warn(`${r.why} from ${r.url}; retrying in ${(r.waitMs / 1000).toFixed(1)} s (attempt ${r.attempt + 1})`); },
      });
      this.http = http;
      this.remoteInstance = s.kind === 's3' ? new S3Bucket(http, s.repoUrl) : new GithubReleases(http, s.releasesUrl, s.releaseTag);
    }
    return this.remoteInstance;
  }

  private async fetchFile(file: RemoteFile, dest: string, what: string, verify?: (temp: string) => Promise<void>): Promise<{ bytes: number; ms: number }> {
    const s = this.settings;
    const result = await download(
      { url: file.url, dest, what, size: file.size, sha256: file.sha256, gunzip: file.gzipped, verify },
      { http: this.http!, events: s.events, silent: s.silent },
    );
    return result;
  }

  /** Pulls loader `<L>` (default `osv-loader`) and, when the release has it, its kernel ELF. */
  async pullLoader(name = 'osv-loader'): Promise<PulledLoader> {
    checkRepositoryName(name, 'loader', this.settings.kind === 's3');
    const dest = repositoryImagePath(name, this.root);
    const remote = this.remote(`the OSv loader "${name}"`, dest);
    const found = await remote.findLoader(name, this.arch);
    if (!found) {
      throw new RepositoryError(`${remote.description} has no loader "${name}" for ${this.arch}`, {
        code: 'E_REMOTE_MISSING',
        hint: this.settings.kind === 'github'
          ? `Releases carry ${name}.qemu.${this.arch}; check the release tag (releaseTag / CAPSTAN_RELEASE_TAG) and the loader name (e.g. osv-loader, osv-loader-hidden).`
          : `Put ${name}/${name}.qemu.gz (optionally under a namespace) into the bucket, or use the GitHub releases remote.`,
      });
    }
    const started = Date.now();
    const what = `the OSv loader ${found.loader.name}`;
    const { bytes } = await this.fetchFile(found.loader, dest, what, async (temp) => { await readLoader(temp, `${found.loader.url} (downloaded)`); });
    let kernel: string | undefined;
    if (found.kernel) kernel = await this.storeKernel(found.kernel, name).catch((error: unknown) => {
      this.log.warn(`could not pull the kernel ELF ${found.kernel!.name} (${(error as Error).message.split('\n')[0]}); VMs will boot from the disk`);
      return undefined;
    });
    const dir = path.dirname(dest);
    const index = found.index ? await this.remoteIndex(found.index) : undefined;
    await writeImageIndex(dir, {
      formatVersion: '1', version: index?.version || found.release, created: index?.created || capstanTime(),
      description: index?.description || `OSv kernel - ${name}`, build: '', platform: index?.platform,
      release: found.release, source: found.loader.url,
    });
    this.log.summary(`${name} (${found.release}): ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s → ${dest}${kernel ? ', with its kernel ELF' : ''}`);
    this.settings.events?.({ event: 'pull', kind: 'loader', name, path: dest, release: found.release, url: found.loader.url });
    return { path: dest, kernel, release: found.release, url: found.loader.url };
  }

  /**
   * `index.yaml` an S3 remote keeps beside an image; a missing or broken one is ignored (it is
   * only metadata). With `networkErrors: 'throw'`, failing to reach the remote still is an error.
   */
  private async remoteIndex(file: RemoteFile, options: { networkErrors?: 'throw' } = {}): Promise<ImageIndex | undefined> {
    let text: string;
    try {
      ({ text } = await this.http!.text(file.url, 'the image index'));
    } catch (error) {
      const network = error instanceof RepositoryError && (error.code === 'E_REMOTE_NETWORK' || error.code === 'E_REMOTE_RATE_LIMIT');
      if (network && options.networkErrors === 'throw') throw error;
      return undefined;
    }
    try {
      return parseImageIndex(text, file.url);
    } catch {
      return undefined;
    }
  }

  private async storeKernel(file: RemoteFile, loaderName: string): Promise<string> {
    const dest = path.join(path.dirname(repositoryImagePath(loaderName, this.root)), `${path.posix.basename(loaderName)}.elf.${this.arch}`);
    await this.fetchFile(file, dest, `the kernel ELF ${file.name}`, checkKernel);
    this.settings.events?.({ event: 'pull', kind: 'kernel', name: loaderName, path: dest, url: file.url });
    return dest;
  }

  /**
   * The kernel ELF beside a loader this client's remote provided (its index.yaml names the
   * release), pulled when missing; undefined when there is none to be had. Never fails a boot:
   * the disk boot is the fallback.
   */
  async pullKernelFor(loaderPath: string): Promise<string | undefined> {
    const dir = path.dirname(loaderPath);
    const index = await readImageIndex(dir).catch(() => undefined);
    if (!index?.release || this.settings.offline) return undefined;
    const loaderName = path.basename(loaderPath).replace(/\.qemu$/, '');
    try {
      const file = await this.remote(`the kernel ELF of ${loaderName}`).findKernel(loaderName, this.arch, index.release);
      return file ? await this.storeKernel(file, loaderName) : undefined;
    } catch (error) {
      this.log.warn(`could not pull the kernel ELF for ${loaderName} (${(error as Error).message.split('\n')[0]}); booting from the disk`);
      return undefined;
    }
  }

  /**
   * Pulls the OSv ZFS builder (a kernel ELF) into `repository/osv-zfs-builder/osv-zfs-builder.qemu`;
   * from `release` only when given (the release the loader came from: builder and loader must match).
   */
  async pullZfsBuilder(release?: string | undefined): Promise<string> {
    const dest = repositoryImagePath(ZFS_BUILDER, this.root);
    const remote = this.remote('the OSv ZFS builder', dest);
    const found = await remote.findZfsBuilder(this.arch, release);
    if (!found) {
      throw new RepositoryError(`${remote.description} has no ZFS builder for ${this.arch}${release ? ` in release ${release} (the loader's)` : ''}`, {
        code: 'E_REMOTE_MISSING', hint: `Releases carry osv-zfs-builder.elf.${this.arch}.gz; check the release tag, or build it from OSv's sources (zfs_builder-stripped.elf) and give its path as zfsBuilder.`,
      });
    }
    await this.fetchFile(found, dest, `the ZFS builder ${found.name}`, checkKernel);
    await writeImageIndex(path.dirname(dest), {
      formatVersion: '1', version: found.release, created: capstanTime(), description: 'OSv ZFS builder', build: '', release: found.release, source: found.url,
    });
    this.log.summary(`${ZFS_BUILDER} (${found.release}) → ${dest}`);
    this.settings.events?.({ event: 'pull', kind: 'zfs-builder', name: ZFS_BUILDER, path: dest, release: found.release, url: found.url });
    return dest;
  }

  /** Pulls package `<name>` (its .yaml and .mpm, from one release) into `packages/`. */
  async pullPackage(name: string): Promise<LocalPackage> {
    checkRepositoryName(name, 'package');
    const paths = repositoryPackagePaths(name, this.root);
    const remote = this.remote(`package "${name}"`, paths.mpm);
    const found = await remote.findPackage(name, this.arch);
    if (!found) {
      throw new RepositoryError(`${remote.description} has no package "${name}" (both ${name}.yaml and ${name}.mpm are needed, from one release)`, {
        code: 'E_REMOTE_MISSING',
        hint: `Check the name (searchPackages() / \`capstan package search\`), the release tag, or import it yourself (importPackage).`,
      });
    }
    const started = Date.now();
    // The descriptor first, in memory: it must parse and name this package before anything is stored.
    const { text, info } = await this.descriptor(found.yaml.url, found.yaml.name);
    if (info.name !== name) {
      throw new RepositoryError(`${found.yaml.name} describes package "${info.name}", not "${name}"`, {
        code: 'E_REMOTE_BAD_ANSWER', file: found.yaml.url, hint: 'The remote\'s descriptor does not match its file name; nothing was stored. Report it to the mirror.',
      });
    }
    const { bytes } = await this.fetchFile(found.mpm, paths.mpm, `package ${found.mpm.name}`, async (temp) => {
      for await (const _ of readMpm(createReadStream(temp), `${found.mpm.url} (downloaded)`)) { /* every member passes the refusals */ }
    });
    await writeFileAtomic(paths.yaml, text);
    this.log.summary(`${name} (${found.release || 'packages'}): ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    this.settings.events?.({ event: 'pull', kind: 'package', name, path: paths.mpm, release: found.release, url: found.mpm.url });
    return { name, mpmPath: paths.mpm, yamlPath: paths.yaml, info };
  }

  /** A remote package descriptor (`<p>.yaml`), parsed. */
  async fetchDescriptor(url: string, name: string): Promise<PackageInfo> {
    return (await this.descriptor(url, name)).info;
  }

  private async descriptor(url: string, name: string): Promise<{ text: string; info: PackageInfo }> {
    this.remote(`the descriptor ${name}`);
    const { text } = await this.http!.text(url, `the descriptor ${name}`);
    return { text, info: parsePackageYaml(text, url) };
  }

  /** The local package, pulled first when it is missing. */
  async ensurePackage(name: string, parse: ParseOptions = {}): Promise<LocalPackage> {
    try {
      return await findLocalPackage(name, this.root, parse);
    } catch (error) {
      if (!(error instanceof RepositoryError) || error.code !== 'E_PACKAGE_MISSING') throw error;
      return this.pullPackage(name);
    }
  }

  /** Pulls an S3 image (`<ns>/<name>`) for a hypervisor into `repository/<ns>/<name>/`. */
  async pullImage(name: string, hypervisor = 'qemu'): Promise<string> {
    checkRepositoryName(name, 'image', true);
    if (!name.includes('/')) {
      throw new RepositoryError(`image names on a remote are namespaced ("<namespace>/${name}")`, {
        code: 'E_NAME_INVALID', hint: 'e.g. "mike/osv-loader"; the loader itself is pulled with pullLoader().',
      });
    }
    const dest = repositoryImagePath(name, this.root, hypervisor);
    const remote = this.remote(`image "${name}"`, dest);
    const found = await remote.findImage(name, hypervisor);
    if (!found) {
      throw new RepositoryError(`${remote.description} has no image "${name}" for ${hypervisor}`, {
        code: 'E_REMOTE_MISSING', hint: this.settings.kind === 'github' ? 'Images are pulled from S3-style remotes (remote: "s3").' : 'Check the name and the hypervisor.',
      });
    }
    await this.fetchFile(found.image, dest, `image ${name}`);
    const index = found.index ? await this.remoteIndex(found.index) : undefined;
    await writeImageIndex(path.dirname(dest), index ?? { formatVersion: '1', version: '', created: capstanTime(), description: '', build: '', source: found.image.url });
    this.settings.events?.({ event: 'pull', kind: 'image', name, path: dest, url: found.image.url });
    return dest;
  }

  /**
   * Images the S3 remote offers whose name (without its namespace, as Capstan matches)
   * contains `filter`: every `<ns>/<name>/index.yaml` of the bucket, read 8 at a time, in key
   * order. An index that is missing or does not parse is skipped, as Capstan does; a network
   * failure is an error.
   */
  async searchImages(filter = ''): Promise<RemoteImageInfo[]> {
    const remote = this.remote('the remote image list');
    if (!(remote instanceof S3Bucket)) {
      throw new RepositoryError('images are listed by S3-style remotes only', {
        code: 'E_REMOTE_KIND', hint: 'Search with remote: "s3" (the command does so); OSv\'s GitHub releases carry loaders and packages, not images.',
      });
    }
    const indexes = (await remote.imageIndexes()).filter((i) => path.posix.basename(i.name).includes(filter));
    const found: Array<RemoteImageInfo | undefined> = new Array(indexes.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < indexes.length; i = next++) {
        const { name, index } = indexes[i]!;
        const parsed = await this.remoteIndex(index, { networkErrors: 'throw' });
        if (parsed) found[i] = { name, url: index.url, ...parsed };
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, indexes.length) }, worker));
    return found.filter((f): f is RemoteImageInfo => f !== undefined);
  }
}

/**
 * The ZFS builder file: `spec` is a path, or a name in the local repository (default
 * `osv-zfs-builder`). The default name is pulled when missing, from the release the loader
 * came from when its index.yaml says (a builder must match its loader). A builder stored
 * earlier from another release than the loader's is used, with a warning.
 */
export async function ensureZfsBuilder(spec: string | undefined, options: { root?: string | undefined; client?: RepositoryClient | undefined; loaderPath: string; warn?: ((m: string) => void) | undefined }): Promise<string> {
  const ref = loaderReference(spec ?? ZFS_BUILDER, options.root);
  const loaderRelease = (await readImageIndex(path.dirname(options.loaderPath)).catch(() => undefined))?.release;
  if (await exists(ref.path)) {
    if (ref.name === ZFS_BUILDER && loaderRelease) {
      const stored = (await readImageIndex(path.dirname(ref.path)).catch(() => undefined))?.release;
      if (stored && stored !== loaderRelease) options.warn?.(`the stored ZFS builder comes from ${stored} but the loader from ${loaderRelease}; remove ${path.dirname(ref.path)} to pull the matching one`);
    }
    return ref.path;
  }
  if (ref.name === undefined) {
    throw new RepositoryError('the ZFS builder was not found', { code: 'E_ZFS_BUILDER_MISSING', file: ref.path, hint: 'Give the path of zfs_builder-stripped.elf (from an OSv build) or of the gunzipped release asset osv-zfs-builder.elf.x86_64.gz.' });
  }
  if (ref.name !== ZFS_BUILDER || !options.client) {
    throw new RepositoryError(`the ZFS builder "${ref.name}" is not in the local repository`, {
      code: 'E_ZFS_BUILDER_MISSING', file: ref.path,
      hint: ref.name !== ZFS_BUILDER ? `Only "${ZFS_BUILDER}" can be pulled; put the builder at ${ref.path} or give its path.` : 'Pulling is off (pull: false); give the builder\'s path as zfsBuilder, or allow pulling.',
    });
  }
  return options.client.pullZfsBuilder(loaderRelease);
}

/** The loader file for `loader` (a path or a repository name), pulled when it is a name and missing. */
export async function ensureLoader(loaderPath: string, loaderName: string | undefined, client: RepositoryClient | undefined): Promise<string> {
  if (await exists(loaderPath)) return loaderPath;
  if (!client || loaderName === undefined) return loaderPath; // a path: readLoader says it is missing
  const pulled = await client.pullLoader(loaderName);
  return pulled.path;
}

async function exists(file: string): Promise<boolean> {
  try { await access(file); return true; } catch { return false; }
}

/**
 * A kernel QEMU can start with -kernel: an ELF (OSv's loader.elf, the ZFS builder), a
 * multiboot image (magic 0x1BADB002 in the first 8 KiB, 4-aligned) or a Linux bzImage ("HdrS").
 */
async function checkKernel(temp: string): Promise<void> {
  const fh = await open(temp, 'r');
  const head = Buffer.alloc(8192);
  let length: number;
  try { length = (await fh.read(head, 0, head.length, 0)).bytesRead; } finally { await fh.close(); }
  const elf = length >= 4 && head.toString('latin1', 0, 4) === '\x7fELF';
  let multiboot = false;
  for (let off = 0; off + 4 <= length && !multiboot; off += 4) multiboot = head.readUInt32LE(off) === 0x1badb002;
  const bzImage = length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS';
  if (!elf && !multiboot && !bzImage) {
    throw new RepositoryError('the downloaded kernel is neither an ELF nor a multiboot or Linux kernel', {
      code: 'E_DOWNLOAD_CORRUPT', hint: 'The remote serves something else under this name; nothing was stored.',
    });
  }
}

// The functions behind Capstan's commands, one client each.
export const pullLoader = (name?: string, options?: RemoteOptions) => new RepositoryClient(options).pullLoader(name);
export const pullPackage = (name: string, options?: RemoteOptions) => new RepositoryClient(options).pullPackage(name);
export const pullZfsBuilder = (options?: RemoteOptions) => new RepositoryClient(options).pullZfsBuilder();
export const pullImage = (name: string, options?: RemoteOptions & { hypervisor?: string | undefined }) =>
  new RepositoryClient(options).pullImage(name, options?.hypervisor);
/** Capstan's `search`: images of the S3 remote (whatever `remote` says, as Capstan searches S3). */
export const searchImages = (filter?: string, options?: RemoteOptions) => new RepositoryClient({ ...options, remote: 's3' }).searchImages(filter);
