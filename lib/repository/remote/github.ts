// OSv's GitHub releases as a remote (osv-image-formats.md §5.4): the releases API — `any` walks
// every release newest first, page by page (Link: rel="next"), `latest` and a tag give one —
// and Capstan's asset-matching rules, first match wins. Pages are fetched only as far as a
// search needs them and kept for this remote's lifetime (one build), since the anonymous API
// allows 60 requests an hour.
import { RepositoryError } from '../../errors.js';
import type { HttpClient } from './http.js';
import type { Remote, RemoteFile, RemoteLoader, RemotePackage } from './remote.js';

export interface GithubAsset {
  name: string;
  size: number;
  browser_download_url: string;
  /** `sha256:<hex>` (the API gives it for assets uploaded since 2025). */
  digest?: string | null | undefined;
}

export interface GithubRelease {
  tag_name: string;
  name?: string | null | undefined;
  assets: GithubAsset[];
}

/** More pages than OSv has releases by far: a guard against a mirror whose paging never ends. */
const MAX_PAGES = 200;

export class GithubReleases implements Remote {
  readonly description: string;
  private readonly pages: GithubRelease[][] = [];
  private next: string | undefined;
  private started = false;
  private readonly seen = new Set<string>();

  constructor(private readonly http: HttpClient, private readonly url: string, private readonly tag: string) {
    this.description = `GitHub releases ${url} (release ${tag})`;
  }

  /** Releases in API order (newest first), fetching further pages only when asked for. */
  async *releases(): AsyncGenerator<GithubRelease> {
    for (let i = 0; ; i++) {
      while (i >= this.pages.length) {
        if (!(await this.fetchPage())) return;
      }
      yield* this.pages[i]!;
    }
  }

  private async fetchPage(): Promise<boolean> {
    if (this.started && this.next === undefined) return false;
    const first = !this.started;
    this.started = true;
    const url = first
      ? (this.tag === 'any' ? this.url : this.tag === 'latest' ? `${this.url}/latest` : `${this.url}/tags/${encodeURIComponent(this.tag)}`)
      : this.next!;
    this.next = undefined;
    if (this.seen.has(url) || this.seen.size >= MAX_PAGES) {
      throw new RepositoryError(`the releases API keeps paging (${this.seen.size} pages, back to ${url})`, {
        code: 'E_REMOTE_BAD_ANSWER', file: url, hint: 'The Link: rel="next" headers loop; check the mirror.',
      });
    }
    this.seen.add(url);
    const what = this.tag === 'any' ? 'the list of OSv releases' : `OSv release ${this.tag}`;
    let text: string;
    let contentType: string;
    let link: string | null;
    try {
      const got = await this.http.text(url, what);
      text = got.text;
      contentType = got.response.headers.get('content-type') ?? '';
      link = got.response.headers.get('link');
    } catch (error) {
      if (error instanceof RepositoryError && error.code === 'E_REMOTE_NOT_FOUND' && this.tag !== 'any') {
        throw new RepositoryError(`there is no OSv release "${this.tag}" at ${this.url}`, {
          code: 'E_RELEASE_NOT_FOUND', file: url, hint: 'Use "any", "latest" or an existing tag (releaseTag / CAPSTAN_RELEASE_TAG).',
        });
      }
      throw error;
    }
    const body = parseJson(text, url, what, contentType);
    const releases = this.tag === 'any' ? body : [body];
    if (!Array.isArray(releases)) throw badShape(url, what, 'a JSON array of releases was expected');
    this.pages.push(releases.map((r, i) => checkRelease(r, url, what, i)));
    if (this.tag === 'any' && link) this.next = nextLink(link, url);
    return true;
  }

  async findLoader(name: string, arch: string): Promise<RemoteLoader | undefined> {
    for await (const release of this.releases()) {
      const loader = pickLoaderAsset(release.assets, name, arch);
      if (loader) {
        return { loader: remoteFile(loader), kernel: pickKernel(release.assets, name, arch), release: release.tag_name };
      }
    }
    return undefined;
  }

  async findKernel(loaderName: string, arch: string, release: string | undefined): Promise<RemoteFile | undefined> {
    for await (const r of this.releases()) {
      if (release !== undefined && r.tag_name !== release) continue;
      const kernel = pickKernel(r.assets, loaderName, arch);
      if (kernel) return kernel;
      if (release !== undefined) return undefined;
    }
    return undefined;
  }

  async findZfsBuilder(arch: string, wanted?: string | undefined): Promise<(RemoteFile & { release: string }) | undefined> {
    for await (const release of this.releases()) {
      if (wanted !== undefined && release.tag_name !== wanted) continue;
      const asset = release.assets.find((a) => a.name.startsWith('osv-zfs-builder.') && a.name.includes(arch));
      if (asset) return { ...remoteFile(asset), release: release.tag_name };
    }
    return undefined;
  }

  async findPackage(name: string, arch: string): Promise<RemotePackage | undefined> {
    for await (const release of this.releases()) {
      // Both from one release, as Capstan requires.
      const yaml = release.assets.find((a) => a.name === `${name}.yaml`);
      const mpm = release.assets.find((a) => a.name === `${name}.mpm.${arch}`) ?? release.assets.find((a) => a.name === `${name}.mpm`);
      if (yaml && mpm) return { name, yaml: remoteFile(yaml), mpm: remoteFile(mpm), release: release.tag_name };
    }
    return undefined;
  }

  async packageDescriptors(): Promise<{ file: RemoteFile; release: string }[]> {
    const out: { file: RemoteFile; release: string }[] = [];
    for await (const release of this.releases()) {
      for (const a of release.assets) {
        if (a.name.startsWith('osv') && a.name.endsWith('.yaml') && a.name !== 'index.yaml') out.push({ file: remoteFile(a), release: release.tag_name });
      }
    }
    return out;
  }

  async findImage(): Promise<undefined> {
    return undefined; // GitHub releases carry no namespaced images (Capstan: S3 only)
  }
}

/**
 * The loader asset for `<L>`: `<L>.qemu.<arch>` (releases since v0.55), Capstan's rule "starts
 * with `<L>.` and contains `qemu.<arch>`" for other spellings, then `<L>.qemu` (≤ v0.54).
 * `osv-loader-hidden` and `osv-loader-microvm` are loaders of their own names.
 */
export function pickLoaderAsset(assets: readonly GithubAsset[], name: string, arch: string): GithubAsset | undefined {
  return assets.find((a) => a.name === `${name}.qemu.${arch}`)
    ?? assets.find((a) => a.name.startsWith(`${name}.`) && a.name.includes(`qemu.${arch}`))
    ?? assets.find((a) => a.name === `${name}.qemu` || a.name === `${name}.qemu.gz`);
}

function pickKernel(assets: readonly GithubAsset[], name: string, arch: string): RemoteFile | undefined {
  const asset = assets.find((a) => a.name === `${name}.elf.${arch}.gz`) ?? assets.find((a) => a.name === `${name}.elf.${arch}`);
  return asset ? remoteFile(asset) : undefined;
}

function remoteFile(a: GithubAsset): RemoteFile {
  const digest = typeof a.digest === 'string' ? /^sha256:([0-9a-f]{64})$/i.exec(a.digest)?.[1] : undefined;
  return { name: a.name, url: a.browser_download_url, size: a.size, sha256: digest?.toLowerCase(), gzipped: a.name.endsWith('.gz') };
}

function parseJson(text: string, url: string, what: string, contentType: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const looks = /html/i.test(contentType) || /^\s*</.test(text) ? 'an HTML page' : `"${text.trim().slice(0, 60)}…"`;
    throw new RepositoryError(`${what}: expected JSON from the releases API, got ${looks}`, {
      code: 'E_REMOTE_BAD_ANSWER', file: url,
      hint: 'releasesUrl / CAPSTAN_RELEASES_URL must point at a GitHub-style releases API (…/repos/<owner>/<repo>/releases), not a web page.',
    });
  }
}

function checkRelease(value: unknown, url: string, what: string, index: number): GithubRelease {
  const r = value as Partial<GithubRelease> | null;
  if (!r || typeof r !== 'object' || typeof r.tag_name !== 'string' || !Array.isArray(r.assets)) {
    throw badShape(url, what, `release #${index + 1} has no tag_name or assets list`);
  }
  r.assets.forEach((a, i) => {
    if (!a || typeof a !== 'object' || typeof a.name !== 'string' || typeof a.browser_download_url !== 'string' || typeof a.size !== 'number') {
      throw badShape(url, what, `asset #${i + 1} of release ${r.tag_name} lacks name, size or browser_download_url`);
    }
  });
  return r as GithubRelease;
}

function badShape(url: string, what: string, problem: string): RepositoryError {
  return new RepositoryError(`${what}: the answer is not what the GitHub releases API returns (${problem})`, {
    code: 'E_REMOTE_BAD_ANSWER', file: url, hint: 'Check releasesUrl / CAPSTAN_RELEASES_URL: it must be a GitHub-style releases API.',
  });
}

/** The rel="next" URL of a Link header, resolved against the page's URL. */
export function nextLink(header: string, base: string): string | undefined {
  for (const part of header.split(',')) {
    const m = /<([^>]*)>\s*;(.*)/.exec(part.trim());
    if (m && /\brel\s*=\s*"?next"?/i.test(m[2]!)) return new URL(m[1]!, base).href;
  }
  return undefined;
}
