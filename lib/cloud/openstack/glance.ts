// Glance v2: image records, the upload of an image file (streamed, its checksum checked once
// Glance has it), lookup by name or id, and delete. An upload that fails leaves no image
// behind: the record is deleted, and if even that fails, the error says which one remains.
import { CloudError } from '../../errors.js';
import type { UploadSource } from '../image-upload.js';
import type { OpenStackSession } from './keystone.js';

export const GLANCE = 'Glance (image)';

export interface GlanceImage {
  id: string;
  name: string | null;
  status: string;
  disk_format?: string | null;
  container_format?: string | null;
  size?: number | null;
  virtual_size?: number | null;
  checksum?: string | null;
  os_hash_algo?: string | null;
  os_hash_value?: string | null;
  min_disk?: number;
  min_ram?: number;
  visibility?: string;
  tags?: string[];
  owner?: string;
  created_at?: string;
  [property: string]: unknown;
}

/** Tags Capstan puts on the images it pushes (provider/openstack/openstack.go). */
export const CAPSTAN_TAGS = ['tagOSv', 'tagCapstan'];

export interface CreateImageOptions {
  name: string;
  diskFormat: 'qcow2' | 'raw';
  /** GB of disk the image needs (Glance `min_disk`). */
  minDisk?: number | undefined;
  /** MB of memory the image needs (Glance `min_ram`). */
  minRam?: number | undefined;
  visibility?: 'private' | 'shared' | 'community' | 'public' | undefined;
  tags?: string[] | undefined;
  /** Extra image properties (`os_type`, `hw_disk_bus`, …), strings as Glance stores them. */
  properties?: Record<string, string> | undefined;
}

/** Properties Glance keeps for itself: a user property may not be one of these. */
const RESERVED = new Set(['id', 'name', 'status', 'disk_format', 'container_format', 'size', 'virtual_size', 'checksum', 'min_disk', 'min_ram', 'visibility', 'tags', 'owner', 'protected', 'created_at', 'updated_at', 'file', 'schema', 'self', 'locations', 'direct_url', 'os_hash_algo', 'os_hash_value', 'os_hidden']);

export async function createImageRecord(session: OpenStackSession, o: CreateImageOptions): Promise<GlanceImage> {
  for (const key of Object.keys(o.properties ?? {})) {
    if (RESERVED.has(key)) {
      throw new CloudError(`the image property "${key}" is one Glance sets itself`, { code: 'E_CLOUD_PROPERTY', service: GLANCE, hint: 'Use another name, or the matching option (minDisk, minRam, visibility, tags).' });
    }
  }
  const answer = await session.call('image', {
    what: `create the image record "${o.name}"`, method: 'POST', path: '/v2/images',
    json: {
      name: o.name, disk_format: o.diskFormat, container_format: 'bare', visibility: o.visibility ?? 'private',
      min_disk: o.minDisk ?? 0, min_ram: o.minRam ?? 0, tags: o.tags ?? CAPSTAN_TAGS, ...o.properties,
    },
  });
  return answer.json as GlanceImage;
}

export async function getImage(session: OpenStackSession, id: string): Promise<GlanceImage | undefined> {
  const answer = await session.call('image', { what: `read image ${id}`, method: 'GET', path: `/v2/images/${encodeURIComponent(id)}`, accept: [404] });
  return answer.status === 404 ? undefined : answer.json as GlanceImage;
}

/** Every image with this name the project sees (Glance allows several). */
export async function imagesNamed(session: OpenStackSession, name: string): Promise<GlanceImage[]> {
  const found: GlanceImage[] = [];
  let path: string | undefined = `/v2/images?name=${encodeURIComponent(name)}&limit=100`;
  while (path) {
    const answer = await session.call('image', { what: `list the images named "${name}"`, method: 'GET', path });
    const page = answer.json as { images?: GlanceImage[]; next?: string };
    found.push(...(page.images ?? []));
    path = page.next;
  }
  return found;
}

/** An image by id, or by name when exactly one has it. */
export async function findImage(session: OpenStackSession, nameOrId: string): Promise<GlanceImage> {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(nameOrId)) {
    const byId = await getImage(session, nameOrId);
    if (byId) return byId;
  }
  const named = (await imagesNamed(session, nameOrId)).filter((i) => i.status !== 'deleted');
  if (named.length === 1) return named[0]!;
  if (named.length === 0) {
    throw new CloudError(`${GLANCE} has no image named "${nameOrId}"`, {
      code: 'E_CLOUD_NO_IMAGE', service: GLANCE, hint: 'Push it first (capstan stack push / pushImage), or give the image id.',
    });
  }
  throw new CloudError(`${GLANCE} has ${named.length} images named "${nameOrId}" (${named.map((i) => `${i.id} ${i.status}`).join(', ')})`, {
    code: 'E_CLOUD_IMAGE_AMBIGUOUS', service: GLANCE, hint: 'Give the image id instead, or delete the ones you do not want.',
  });
}

export async function deleteImage(session: OpenStackSession, id: string): Promise<void> {
  await session.call('image', { what: `delete image ${id}`, method: 'DELETE', path: `/v2/images/${encodeURIComponent(id)}`, accept: [404] });
}

export interface UploadProgress { bytes: number; total: number }

/**
 * Sends the file's bytes into an image record (`PUT /v2/images/{id}/file`, one stream, with
 * Content-Length), then reads the record back: it must be `active`, of the size sent, with
 * Glance's MD5 `checksum` and (for sha512) `os_hash_value` equal to what we computed.
 */
export async function uploadImageData(session: OpenStackSession, image: GlanceImage, source: UploadSource, onProgress?: (p: UploadProgress) => void): Promise<GlanceImage> {
  await session.call('image', {
    what: `upload the image data of "${image.name}" (${image.id})`, method: 'PUT', path: `/v2/images/${image.id}/file`,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(source.size) },
    body: () => source.open((bytes) => onProgress?.({ bytes, total: source.size })),
    // Glance may take a while to write out the last bytes: the answer timer starts after them.
    timeoutMs: 300_000,
    // A PUT of the data may not be repeated once Glance took part of it (the record is then
    // "saving" or "killed"): the caller starts again with a new record.
    retry: false,
  });
  const stored = await getImage(session, image.id);
  const sent = source.digests();
  if (!stored) throw new CloudError(`image ${image.id} vanished right after its upload`, { code: 'E_CLOUD_UPLOAD', service: GLANCE, hint: 'Someone deleted it meanwhile; push again.' });
  const problems: string[] = [];
  if (stored.status !== 'active') problems.push(`its status is "${stored.status}", not "active"`);
  if (sent && stored.size != null && stored.size !== sent.bytes) problems.push(`Glance stored ${stored.size} bytes, ${sent.bytes} were sent`);
  if (sent && stored.checksum && stored.checksum !== sent.md5) problems.push(`Glance's MD5 is ${stored.checksum}, the bytes sent have ${sent.md5}`);
  if (sent && stored.os_hash_algo === 'sha512' && stored.os_hash_value && stored.os_hash_value !== sent.sha512) problems.push('Glance\'s SHA-512 differs from the bytes sent');
  if (sent && !stored.checksum && !stored.os_hash_value) problems.push('Glance reports no checksum to compare with');
  if (problems.length) {
    throw new CloudError(`the upload of "${image.name}" (${image.id}) did not arrive whole: ${problems.join('; ')}`, {
      code: 'E_CLOUD_CHECKSUM', service: GLANCE, hint: 'Push again; if it repeats, the image store of the cloud is failing (see glance-api\'s log).',
    });
  }
  return stored;
}
