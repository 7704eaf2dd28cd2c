// Images in the local repository: `repository/<name>/<basename>.<hyp>` with an `index.yaml`
// (osv-image-formats.md §5.3) — list, import, remove, as Capstan's `images`, `import`, `rmi`.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { TempFile, writeFileAtomic } from '../atomic-file.js';
import { RepositoryError } from '../errors.js';
import { marshalGoFields, type GoField } from '../yaml/go-emit.js';
import { probeImageFormat } from '../image/probe.js';
import { checkRepositoryName } from './remote/remote.js';
import { capstanRoot, repositoryImagePath } from './root.js';

export interface ImageIndex {
  formatVersion: string;
  version: string;
  created: string;
  description: string;
  build: string;
  platform?: string | undefined;
  /** Where we pulled it from (our addition; Capstan's reader ignores unknown keys). */
  release?: string | undefined;
  source?: string | undefined;
  /**
   * For an image we composed: the loader it was built from, and that file's sha256 then (our
   * addition). `capstan run <image>` boots such an image through the loader's kernel ELF
   * (-kernel) while the loader is still the same file; otherwise from the disk.
   */
  loader?: string | undefined;
  loaderSha256?: string | undefined;
}

export interface LocalImage {
  /** `osv-loader`, or namespaced `mike/osv-loader`. */
  name: string;
  /** Image files in its folder (`<basename>.<hyp>`). */
  files: string[];
  index?: ImageIndex | undefined;
}

/** Capstan's `created` format: `2006-01-02 15:04` in local time. */
export function capstanTime(date: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ${p(date.getHours())}:${p(date.getMinutes())}`;
}

/** index.yaml as Capstan's ImportImage writes it (yaml.Marshal of its ImageInfo struct), plus our keys. */
export function formatImageIndex(index: ImageIndex): string {
  const fields: GoField[] = [
    ['format_version', index.formatVersion], ['version', index.version], ['created', index.created],
    ['description', index.description], ['build', index.build],
  ];
  if (index.platform !== undefined) fields.push(['platform', index.platform]);
  if (index.release !== undefined) fields.push(['release', index.release]);
  if (index.source !== undefined) fields.push(['source', index.source]);
  if (index.loader !== undefined) fields.push(['loader', index.loader]);
  if (index.loaderSha256 !== undefined) fields.push(['loader_sha256', index.loaderSha256]);
  return marshalGoFields(fields);
}

export function parseImageIndex(text: string, file: string): ImageIndex {
  let doc: unknown;
  try {
    doc = parse(text, { version: '1.1' });
  } catch (error) {
    throw new RepositoryError(`cannot read the image index: ${(error as Error).message.split('\n')[0]}`, { code: 'E_IMAGE_INDEX', file });
  }
  const o = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const s = (v: unknown) => (v === undefined || v === null ? '' : String(v));
  return {
    formatVersion: s(o.format_version), version: s(o.version), created: s(o.created), description: s(o.description), build: s(o.build),
    platform: o.platform === undefined ? undefined : s(o.platform),
    release: o.release === undefined ? undefined : s(o.release),
    source: o.source === undefined ? undefined : s(o.source),
    loader: o.loader === undefined ? undefined : s(o.loader),
    loaderSha256: o.loader_sha256 === undefined ? undefined : s(o.loader_sha256),
  };
}

/** index.yaml for an image we just composed from `loader` (Capstan's fields, created now, and the loader's record). */
export async function composedImageIndex(loader: string): Promise<ImageIndex> {
  const file = path.resolve(loader);
  return { formatVersion: '1', version: '', created: capstanTime(), description: '', build: '', loader: file, loaderSha256: await sha256Of(file) };
}

/**
 * The loader a repository image was composed from, when its index.yaml records one and that
 * file still has the recorded sha256 (a loader pulled again since may be another release,
 * whose kernel would not match what the image was built for); else undefined.
 */
export async function recordedLoader(imagePath: string): Promise<string | undefined> {
  const index = await readImageIndex(path.dirname(imagePath)).catch(() => undefined);
  if (!index?.loader || !index.loaderSha256) return undefined;
  const now = await sha256Of(index.loader).catch(() => undefined);
  return now === index.loaderSha256 ? index.loader : undefined;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function readImageIndex(dir: string): Promise<ImageIndex | undefined> {
  const file = path.join(dir, 'index.yaml');
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch { return undefined; }
  return parseImageIndex(text, file);
}

/** Writes index.yaml atomically (temp + rename). */
export async function writeImageIndex(dir: string, index: ImageIndex): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, 'index.yaml'), formatImageIndex(index));
}

/** Every image in the repository (Capstan's `images`), namespaced ones included, sorted by name. */
export async function listImages(options: { root?: string | undefined } = {}): Promise<LocalImage[]> {
  const repo = path.join(capstanRoot(options.root), 'repository');
  const out: LocalImage[] = [];
  const visit = async (dir: string, name: string, depth: number): Promise<void> => {
    let entries;
    try { entries = await readdir(dir, { withFileTypes: true }); } catch { return; }
    const base = name.split('/').pop()!;
    const files = entries.filter((e) => e.isFile() && e.name.startsWith(`${base}.`) && !e.name.endsWith('.cache') && !e.name.startsWith('.')).map((e) => e.name);
    if (name && (files.length > 0 || entries.some((e) => e.name === 'index.yaml'))) {
      out.push({ name, files: files.filter((f) => f !== 'index.yaml').sort(), index: await readImageIndex(dir).catch(() => undefined) });
    }
    if (depth < 2) {
      for (const e of entries) if (e.isDirectory()) await visit(path.join(dir, e.name), name ? `${name}/${e.name}` : e.name, depth + 1);
    }
  };
  await visit(repo, '', 0);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export interface ImportImageOptions {
  root?: string | undefined;
  version?: string | undefined;
  created?: string | undefined;
  description?: string | undefined;
  build?: string | undefined;
}

/**
 * Copies an image file into the repository (Capstan's `import`), the hypervisor suffix from
 * its probed format (qcow2 → qemu, vdi → vbox, vmdk → vmware, raw → raw), with an index.yaml.
 */
export async function importImage(name: string, file: string, options: ImportImageOptions = {}): Promise<string> {
  checkRepositoryName(name, 'image', true);
  try { await stat(file); } catch {
    throw new RepositoryError('the image file to import does not exist', { code: 'E_IMAGE_MISSING', file });
  }
  const kind = await probeImageFormat(file);
  if (kind === 'gce') {
    throw new RepositoryError('a GCE tarball is not a disk image Capstan imports', { code: 'E_IMAGE_FORMAT', file, hint: 'Import the qcow2, raw, vmdk or vdi image instead.' });
  }
  const hypervisor = ({ qcow2: 'qemu', vdi: 'vbox', vmdk: 'vmware', raw: 'raw' } as const)[kind];
  const root = capstanRoot(options.root);
  const dest = repositoryImagePath(name, root, hypervisor);
  await mkdir(path.dirname(dest), { recursive: true });
  const temp = TempFile.beside(dest);
  try {
    await copyFile(file, temp.path);
    await temp.publish(dest);
  } catch (error) {
    await temp.discard();
    throw error;
  }
  await writeImageIndex(path.dirname(dest), {
    formatVersion: '1', version: options.version ?? '', created: options.created ?? capstanTime(),
    description: options.description ?? '', build: options.build ?? '',
  });
  return dest;
}

/** Removes an image and its folder (Capstan's `rmi`). */
export async function removeImage(name: string, options: { root?: string | undefined } = {}): Promise<void> {
  checkRepositoryName(name, 'image', true);
  const dir = path.join(capstanRoot(options.root), 'repository', ...name.split('/'));
  try { await stat(dir); } catch {
    throw new RepositoryError(`no image "${name}" in the local repository`, { code: 'E_IMAGE_MISSING', file: dir, hint: 'See listImages() / `capstan images`.' });
  }
  await rm(dir, { recursive: true, force: true });
}
