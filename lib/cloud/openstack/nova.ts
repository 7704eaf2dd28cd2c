// Nova (compute API v2.1 with microversion 2.37 when the cloud has it): flavors and the choice
// of one, N servers in one request (min_count = max_count = N), their state, console output
// and deletion; Neutron only to turn network names into ids.
import { CloudError } from '../../errors.js';
import type { OpenStackSession } from './keystone.js';

export const NOVA = 'Nova (compute)';
export const NEUTRON = 'Neutron (network)';

/** 2.37 is the first microversion with `"networks": "none" | "auto"`. */
export const NETWORKS_MICROVERSION = '2.37';

export interface Flavor {
  id: string;
  name: string;
  /** MB. */
  ram: number;
  /** GB; 0 = the image's size (a policy may forbid it). */
  disk: number;
  vcpus: number;
  'os-flavor-access:is_public'?: boolean;
  'OS-FLV-DISABLED:disabled'?: boolean;
}

export interface Server {
  id: string;
  name: string;
  status: string;
  'OS-EXT-STS:task_state'?: string | null;
  'OS-EXT-STS:vm_state'?: string;
  'OS-EXT-SRV-ATTR:instance_name'?: string;
  'OS-EXT-SRV-ATTR:host'?: string;
  progress?: number;
  fault?: { code?: number; message?: string; details?: string };
  metadata?: Record<string, string>;
  addresses?: Record<string, Array<{ addr: string; version: number }>>;
  created?: string;
}

export async function listFlavors(session: OpenStackSession): Promise<Flavor[]> {
  const answer = await session.call('compute', { what: 'list the flavors', method: 'GET', path: '/flavors/detail' });
  return ((answer.json as { flavors?: Flavor[] }).flavors ?? []).filter((f) => !f['OS-FLV-DISABLED:disabled']);
}

export interface FlavorNeeds {
  /** GB of disk the image needs (its virtual size rounded up, or Glance's min_disk). */
  diskGB: number;
  /** MB of memory; undefined = any. */
  ramMB?: number | undefined;
}

/** Whether a flavor fits; the reason when it does not. */
export function flavorMisfit(f: Flavor, needs: FlavorNeeds): string | undefined {
  const why: string[] = [];
  if (f.disk !== 0 && f.disk < needs.diskGB) why.push(`its disk is ${f.disk} GB, the image needs ${needs.diskGB} GB`);
  if (needs.ramMB !== undefined && f.ram < needs.ramMB) why.push(`its memory is ${f.ram} MB, ${needs.ramMB} MB are needed`);
  return why.length ? why.join(' and ') : undefined;
}

/**
 * Capstan's choice (selectBestFlavor): among the flavors with enough disk and memory, the
 * smallest disk, then the least memory. Flavors with disk 0 are left out, as Nova's min_disk
 * filter leaves them out (many clouds refuse them for image boots).
 */
export function pickFlavor(flavors: readonly Flavor[], needs: FlavorNeeds): Flavor {
  const fitting = flavors.filter((f) => f.disk > 0 && !flavorMisfit(f, needs));
  let best: Flavor | undefined;
  for (const f of fitting) {
    if (!best || f.disk < best.disk || (f.disk === best.disk && f.ram < best.ram)) best = f;
  }
  if (best) return best;
  const list = [...flavors].sort((a, b) => a.disk - b.disk || a.ram - b.ram).map((f) => `${f.name} (${f.disk} GB, ${f.ram} MB)`);
  throw new CloudError(`no flavor fits: the image needs ${needs.diskGB} GB of disk${needs.ramMB !== undefined ? ` and ${needs.ramMB} MB of memory` : ''}`, {
    code: 'E_CLOUD_NO_FLAVOR', service: NOVA,
    hint: `The flavors are: ${list.join(', ') || 'none'}. Build a smaller image (size), ask for less memory, or ask the operator for a flavor.`,
  });
}

/** A flavor by name or id, checked against the needs. */
export function namedFlavor(flavors: readonly Flavor[], nameOrId: string, needs: FlavorNeeds): Flavor {
  const f = flavors.find((x) => x.name === nameOrId) ?? flavors.find((x) => x.id === nameOrId);
  if (!f) {
    throw new CloudError(`${NOVA} has no flavor "${nameOrId}"`, {
      code: 'E_CLOUD_NO_FLAVOR', service: NOVA, hint: `The flavors are: ${flavors.map((x) => x.name).join(', ') || 'none'}.`,
    });
  }
  const misfit = flavorMisfit(f, needs);
  if (misfit) {
    throw new CloudError(`the flavor "${f.name}" does not fit: ${misfit}`, {
      code: 'E_CLOUD_FLAVOR_TOO_SMALL', service: NOVA,
      hint: 'Choose a larger flavor, or leave the flavor out to have the smallest that fits picked.',
    });
  }
  return f;
}

/** The highest microversion the compute endpoint serves ("2.1" for a plain v2.1 API). */
export async function computeMaxVersion(session: OpenStackSession): Promise<string> {
  const answer = await session.call('compute', { what: 'read the API version', method: 'GET', path: '/', accept: [300] });
  const v = (answer.json as { version?: { version?: string } } | undefined)?.version?.version;
  return v || '2.1';
}

export function versionAtLeast(have: string, want: string): boolean {
  const [a1 = 0, a2 = 0] = have.split('.').map(Number);
  const [b1 = 0, b2 = 0] = want.split('.').map(Number);
  return a1 > b1 || (a1 === b1 && a2 >= b2);
}

/** Microversion headers, old and new spelling. */
export function microversionHeaders(version: string): Record<string, string> {
  return { 'openstack-api-version': `compute ${version}`, 'x-openstack-nova-api-version': version };
}

/** `none`, `auto`, or networks by name or id. */
export type NetworksOption = 'none' | 'auto' | string[];

/** Neutron network ids for names (ids pass through). */
export async function networkIds(session: OpenStackSession, names: readonly string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const name of names) {
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(name)) { ids.push(name); continue; }
    const answer = await session.call('network', { what: `find the network "${name}"`, method: 'GET', path: `/v2.0/networks?name=${encodeURIComponent(name)}` });
    const found = (answer.json as { networks?: Array<{ id: string }> }).networks ?? [];
    if (found.length !== 1) {
      throw new CloudError(found.length ? `${NEUTRON} has ${found.length} networks named "${name}"` : `${NEUTRON} has no network named "${name}"`, {
        code: 'E_CLOUD_NO_NETWORK', service: NEUTRON, hint: found.length ? 'Give its id instead.' : 'Check the name (openstack network list), or use "auto" or "none".',
      });
    }
    ids.push(found[0]!.id);
  }
  return ids;
}

export interface CreateServersOptions {
  name: string;
  imageId: string;
  flavorId: string;
  count: number;
  /** Already resolved: `none`, `auto`, or network ids. */
  networks: 'none' | 'auto' | string[];
  metadata?: Record<string, string> | undefined;
  microversion: string;
}

/** POST /servers for `count` servers in one request; resolves with the reservation id. */
export async function createServers(session: OpenStackSession, o: CreateServersOptions): Promise<string> {
  const server: Record<string, unknown> = {
    name: o.name, imageRef: o.imageId, flavorRef: o.flavorId, min_count: o.count, max_count: o.count,
    return_reservation_id: true,
  };
  if (versionAtLeast(o.microversion, NETWORKS_MICROVERSION)) {
    server['networks'] = Array.isArray(o.networks) ? o.networks.map((uuid) => ({ uuid })) : o.networks;
  } else if (Array.isArray(o.networks)) {
    server['networks'] = o.networks.map((uuid) => ({ uuid }));
  } else if (o.networks === 'none') {
    throw new CloudError(`this Nova serves microversions up to ${o.microversion}; servers without a network need ${NETWORKS_MICROVERSION}`, {
      code: 'E_CLOUD_MICROVERSION', service: NOVA, hint: 'Use networks "auto" or named networks on this cloud.',
    });
  }
  if (o.metadata) server['metadata'] = o.metadata;
  const answer = await session.call('compute', {
    what: `create ${o.count} server${o.count > 1 ? 's' : ''} "${o.name}"`, method: 'POST', path: '/servers',
    headers: microversionHeaders(o.microversion), json: { server },
  });
  const reservation = (answer.json as { reservation_id?: string } | undefined)?.reservation_id;
  if (!reservation) {
    throw new CloudError(`${NOVA} created the servers but gave no reservation id`, { code: 'E_CLOUD_BAD_ANSWER', service: NOVA, hint: 'List them with `openstack server list --name …`.' });
  }
  return reservation;
}

export async function serversOfReservation(session: OpenStackSession, reservation: string, microversion: string): Promise<Server[]> {
  const answer = await session.call('compute', {
    what: `list the servers of reservation ${reservation}`, method: 'GET',
    path: `/servers/detail?reservation_id=${encodeURIComponent(reservation)}`, headers: microversionHeaders(microversion),
  });
  return ((answer.json as { servers?: Server[] }).servers ?? []).sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
}

/** Servers whose metadata has `key` = `value` (to find a run again). */
export async function serversWithMetadata(session: OpenStackSession, name: string, key: string, value: string, microversion: string): Promise<Server[]> {
  const answer = await session.call('compute', {
    what: `list the servers named "${name}"`, method: 'GET', path: `/servers/detail?name=${encodeURIComponent(`^${escapeRegex(name)}`)}`,
    headers: microversionHeaders(microversion),
  });
  return ((answer.json as { servers?: Server[] }).servers ?? []).filter((s) => s.metadata?.[key] === value);
}

export async function getServer(session: OpenStackSession, id: string, microversion: string): Promise<Server | undefined> {
  const answer = await session.call('compute', { what: `read server ${id}`, method: 'GET', path: `/servers/${id}`, headers: microversionHeaders(microversion), accept: [404] });
  return answer.status === 404 ? undefined : (answer.json as { server: Server }).server;
}

/**
 * The console log (`os-getConsoleOutput`): the last `length` lines, or all of it. Undefined
 * while the server has no console yet (building) or no more (shut off: Nova then answers 404
 * or 409 "Guest does not have a console available").
 */
export async function consoleOutput(session: OpenStackSession, id: string, length?: number): Promise<string | undefined> {
  const answer = await session.call('compute', {
    what: `read the console of server ${id}`, method: 'POST', path: `/servers/${id}/action`,
    json: { 'os-getConsoleOutput': length === undefined ? {} : { length } }, retry: true, accept: [404, 409],
  });
  if (answer.status === 404 || answer.status === 409) return undefined;
  return (answer.json as { output?: string }).output ?? '';
}

export async function deleteServer(session: OpenStackSession, id: string): Promise<void> {
  await session.call('compute', { what: `delete server ${id}`, method: 'DELETE', path: `/servers/${id}`, accept: [404] });
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
