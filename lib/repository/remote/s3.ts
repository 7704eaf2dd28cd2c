// An S3-style bucket (or any static HTTP server with a ListBucket listing) as a remote
// (osv-image-formats.md §5.5): packages at `packages/<p>.{yaml,mpm}`, images at
// `<ns>/<name>/{index.yaml,<name>.<hyp>.gz}`. The listing is read once per remote, following
// truncation (ListObjectsV2 continuation tokens, or V1 markers).
//
// Better than Capstan on purpose: packages match their exact key (Capstan's suffix match takes
// `packages/xfoo.yaml` for `foo`), and the loader is found under any namespace
// (`mike/osv-loader/osv-loader.qemu.gz`, the documented layout) or none, where Capstan asks
// for `osv-loader` without a namespace and refuses it. The ZFS builder is found the same way.
import { RepositoryError } from '../../errors.js';
import type { HttpClient } from './http.js';
import type { Remote, RemoteFile, RemoteLoader, RemotePackage } from './remote.js';

export interface BucketEntry {
  key: string;
  size?: number | undefined;
}

const MAX_LIST_PAGES = 1000;

export class S3Bucket implements Remote {
  readonly description: string;
  private listing: Promise<BucketEntry[]> | undefined;

  constructor(private readonly http: HttpClient, private readonly base: string) {
    this.description = `S3 repository ${base}`;
  }

  /** Every key of the bucket (all pages). */
  entries(): Promise<BucketEntry[]> {
    this.listing ??= this.list();
    return this.listing;
  }

  private async list(): Promise<BucketEntry[]> {
    const out: BucketEntry[] = [];
    let url = this.base;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const { text } = await this.http.text(url, 'the repository listing');
      const parsed = parseListBucket(text, url);
      out.push(...parsed.entries);
      if (!parsed.truncated) return out;
      const next = new URL(this.base);
      if (parsed.continuationToken !== undefined) {
        next.searchParams.set('list-type', '2');
        next.searchParams.set('continuation-token', parsed.continuationToken);
      } else {
        const marker = parsed.nextMarker ?? parsed.entries.at(-1)?.key;
        if (marker === undefined) return out;
        next.searchParams.set('marker', marker);
      }
      url = next.href;
    }
    throw new RepositoryError('the repository listing keeps going (more than 1000 pages)', { code: 'E_REMOTE_BAD_ANSWER', file: this.base });
  }

  private file(entry: BucketEntry): RemoteFile {
    return { name: entry.key.split('/').pop()!, url: this.base + entry.key.split('/').map(encodeURIComponent).join('/'), size: entry.size, gzipped: entry.key.endsWith('.gz') };
  }

  /** `<prefix>/<name>/<name>.<hyp>[.gz]` under no namespace first, else the first namespace in key order. */
  private async findNamed(name: string, hypervisor: string): Promise<{ entry: BucketEntry; dir: string } | undefined> {
    const entries = await this.entries();
    const wanted = [`${name}.${hypervisor}.gz`, `${name}.${hypervisor}`];
    const candidates = entries.filter((e) => {
      const parts = e.key.split('/');
      return parts.length >= 2 && parts.at(-2) === name && wanted.includes(parts.at(-1)!);
    }).sort((a, b) => a.key.split('/').length - b.key.split('/').length || (a.key < b.key ? -1 : 1));
    const entry = candidates[0];
    return entry ? { entry, dir: entry.key.slice(0, entry.key.lastIndexOf('/')) } : undefined;
  }

  async findLoader(name: string): Promise<RemoteLoader | undefined> {
    const found = await this.findNamed(name, 'qemu');
    if (!found) return undefined;
    const entries = await this.entries();
    const index = entries.find((e) => e.key === `${found.dir}/index.yaml`);
    return { loader: this.file(found.entry), release: found.dir, index: index ? this.file(index) : undefined };
  }

  async findKernel(): Promise<undefined> {
    return undefined; // the S3 layout has no kernel ELFs
  }

  async findZfsBuilder(): Promise<(RemoteFile & { release: string }) | undefined> {
    const found = await this.findNamed('osv-zfs-builder', 'qemu');
    return found ? { ...this.file(found.entry), release: found.dir } : undefined;
  }

  async findPackage(name: string): Promise<RemotePackage | undefined> {
    const entries = await this.entries();
    const yaml = entries.find((e) => e.key === `packages/${name}.yaml`);
    const mpm = entries.find((e) => e.key === `packages/${name}.mpm`);
    return yaml && mpm ? { name, yaml: this.file(yaml), mpm: this.file(mpm), release: 'packages' } : undefined;
  }

  async packageDescriptors(): Promise<{ file: RemoteFile; release: string }[]> {
    const entries = await this.entries();
    return entries.filter((e) => /^packages\/[^/]+\.yaml$/.test(e.key)).map((e) => ({ file: this.file(e), release: '' }));
  }

  async findImage(name: string, hypervisor: string): Promise<{ image: RemoteFile; index?: RemoteFile | undefined } | undefined> {
    const entries = await this.entries();
    const base = name.split('/').pop()!;
    const image = entries.find((e) => e.key === `${name}/${base}.${hypervisor}.gz`) ?? entries.find((e) => e.key === `${name}/${base}.${hypervisor}`);
    if (!image) return undefined;
    const index = entries.find((e) => e.key === `${name}/index.yaml`);
    return { image: this.file(image), index: index ? this.file(index) : undefined };
  }

  /** Names of the images in the bucket (every `<ns>/<name>/index.yaml`), for search. */
  async imageIndexes(): Promise<{ name: string; index: RemoteFile }[]> {
    const entries = await this.entries();
    return entries.filter((e) => e.key.endsWith('/index.yaml')).map((e) => ({ name: e.key.slice(0, -'/index.yaml'.length), index: this.file(e) }));
  }
}

export interface ListBucketPage {
  entries: BucketEntry[];
  truncated: boolean;
  continuationToken?: string | undefined;
  nextMarker?: string | undefined;
}

/**
 * Reads a ListBucketResult document: `<Contents><Key>…</Key><Size>…</Size></Contents>`,
 * `<IsTruncated>`, `<NextContinuationToken>`, `<NextMarker>`. Anything else is a clear error.
 */
export function parseListBucket(xml: string, url: string): ListBucketPage {
  if (!/<ListBucketResult[\s>]/.test(xml)) {
    const looks = /<html/i.test(xml) ? 'an HTML page' : /^\s*[[{]/.test(xml) ? 'JSON' : `"${xml.trim().slice(0, 60)}…"`;
    throw new RepositoryError(`the repository listing is not an S3 ListBucket document (got ${looks})`, {
      code: 'E_REMOTE_BAD_ANSWER', file: url,
      hint: 'repoUrl / repo_url / CAPSTAN_REPO_URL must be the bucket\'s base URL (ending in /), which answers GET with a ListBucketResult.',
    });
  }
  const entries: BucketEntry[] = [];
  for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
    const key = tag(m[1]!, 'Key');
    if (key === undefined) continue;
    const size = Number(tag(m[1]!, 'Size'));
    entries.push({ key, size: Number.isSafeInteger(size) ? size : undefined });
  }
  return {
    entries,
    truncated: tag(xml, 'IsTruncated') === 'true',
    continuationToken: tag(xml, 'NextContinuationToken'),
    nextMarker: tag(xml, 'NextMarker'),
  };
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? decodeXml(m[1]!) : undefined;
}

function decodeXml(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) => {
    switch (e.toLowerCase()) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'amp': return '&';
      case 'quot': return '"';
      case 'apos': return "'";
      default: return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}
