// Where the OpenStack credentials come from, as the `openstack` client reads them: the OS_*
// environment variables (an openrc file), or a cloud of clouds.yaml (OS_CLOUD, or by name),
// with secrets possibly in secure.yaml beside it. Both become one AuthSettings.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { CloudError } from '../../errors.js';

export type AuthType = 'password' | 'application-credential' | 'token';

/** Everything needed to get a Keystone v3 token and choose endpoints. */
export interface AuthSettings {
  /** Keystone's URL (`https://keystone.example:5000/v3`; `/v3` is added when missing). */
  authUrl: string;
  type: AuthType;
  username?: string | undefined;
  userId?: string | undefined;
  password?: string | undefined;
  userDomainName?: string | undefined;
  userDomainId?: string | undefined;
  /** Project scope (by id, or by name with its domain). */
  projectId?: string | undefined;
  projectName?: string | undefined;
  projectDomainName?: string | undefined;
  projectDomainId?: string | undefined;
  /** Domain scope instead of a project (rarely useful for servers). */
  domainId?: string | undefined;
  domainName?: string | undefined;
  applicationCredentialId?: string | undefined;
  applicationCredentialName?: string | undefined;
  applicationCredentialSecret?: string | undefined;
  token?: string | undefined;
  /** The region whose endpoints are used; default: the only one in the catalog. */
  region?: string | undefined;
  /** Endpoint interface: public (default), internal or admin. */
  interface?: 'public' | 'internal' | 'admin' | undefined;
  /** Endpoint overrides by service type (`image`, `compute`, `network`). */
  endpointOverrides?: Record<string, string> | undefined;
  caFile?: string | undefined;
  insecure?: boolean | undefined;
  /** Where these settings came from, for messages (`OS_* variables`, `clouds.yaml cloud "x"`). */
  source: string;
}

/** True when the environment names an OpenStack (OS_CLOUD or OS_AUTH_URL). */
export function hasOpenStackEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env['OS_CLOUD'] || env['OS_AUTH_URL']);
}

export interface AuthSourceOptions {
  /** A cloud of clouds.yaml; default $OS_CLOUD. When neither is set, the OS_* variables are used. */
  cloud?: string | undefined;
  /** clouds.yaml to read; default $OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/, /etc/openstack/. */
  cloudsFile?: string | undefined;
  /** Values that win over the cloud's or the environment's (Capstan's --OS_* flags). */
  overrides?: Partial<AuthSettings> | undefined;
  /** The environment OS_* are read from; default process.env. */
  hostEnv?: NodeJS.ProcessEnv | undefined;
  /** Folder for ./clouds.yaml; default process.cwd(). */
  cwd?: string | undefined;
}

/** The credentials to use: a clouds.yaml cloud when one is named, else the OS_* variables. */
export function resolveAuthSettings(options: AuthSourceOptions = {}): AuthSettings {
  const env = options.hostEnv ?? process.env;
  const cloud = options.cloud ?? env['OS_CLOUD'];
  const base = cloud ? cloudSettings(cloud, options) : authSettingsFromEnv(env);
  const merged: AuthSettings = { ...base };
  for (const [k, v] of Object.entries(options.overrides ?? {})) {
    if (v !== undefined && v !== '') (merged as unknown as Record<string, unknown>)[k] = v;
  }
  return checkSettings(merged);
}

/** AuthSettings from OS_* variables (as an openrc file sets them; OS_TENANT_* as aliases). */
export function authSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): AuthSettings {
  const v = (...names: string[]) => names.map((n) => env[n]).find((x) => x !== undefined && x !== '');
  const authType = v('OS_AUTH_TYPE');
  return {
    authUrl: v('OS_AUTH_URL') ?? '',
    type: authTypeOf(authType, Boolean(v('OS_APPLICATION_CREDENTIAL_ID', 'OS_APPLICATION_CREDENTIAL_NAME')), Boolean(v('OS_TOKEN')) && !v('OS_PASSWORD'), 'OS_AUTH_TYPE'),
    username: v('OS_USERNAME'),
    userId: v('OS_USER_ID', 'OS_USERID'),
    password: v('OS_PASSWORD'),
    userDomainName: v('OS_USER_DOMAIN_NAME', 'OS_DOMAIN_NAME'),
    userDomainId: v('OS_USER_DOMAIN_ID', 'OS_DOMAIN_ID'),
    projectId: v('OS_PROJECT_ID', 'OS_TENANT_ID'),
    projectName: v('OS_PROJECT_NAME', 'OS_TENANT_NAME'),
    projectDomainName: v('OS_PROJECT_DOMAIN_NAME', 'OS_DOMAIN_NAME'),
    projectDomainId: v('OS_PROJECT_DOMAIN_ID', 'OS_DOMAIN_ID'),
    domainId: v('OS_DOMAIN_ID'),
    domainName: v('OS_DOMAIN_NAME'),
    applicationCredentialId: v('OS_APPLICATION_CREDENTIAL_ID'),
    applicationCredentialName: v('OS_APPLICATION_CREDENTIAL_NAME'),
    applicationCredentialSecret: v('OS_APPLICATION_CREDENTIAL_SECRET'),
    token: v('OS_TOKEN'),
    region: v('OS_REGION_NAME'),
    interface: interfaceOf(v('OS_INTERFACE', 'OS_ENDPOINT_TYPE'), 'OS_INTERFACE'),
    caFile: v('OS_CACERT'),
    insecure: /^(1|true|yes)$/i.test(v('OS_INSECURE') ?? ''),
    source: 'the OS_* environment variables',
  };
}

/** The clouds.yaml files looked at, in order (the first that has the cloud wins). */
export function cloudsYamlCandidates(options: AuthSourceOptions = {}): string[] {
  const env = options.hostEnv ?? process.env;
  if (options.cloudsFile) return [options.cloudsFile];
  const home = env['HOME'] ?? os.homedir();
  return [
    env['OS_CLIENT_CONFIG_FILE'],
    path.join(options.cwd ?? process.cwd(), 'clouds.yaml'),
    path.join(home, '.config', 'openstack', 'clouds.yaml'),
    '/etc/openstack/clouds.yaml',
  ].filter((f): f is string => Boolean(f));
}

/** AuthSettings of one cloud of clouds.yaml (merged with secure.yaml beside it). */
export function cloudSettings(name: string, options: AuthSourceOptions = {}): AuthSettings {
  const candidates = cloudsYamlCandidates(options);
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    const clouds = readClouds(file);
    const cloud = clouds[name];
    if (cloud === undefined) continue;
    const secureFile = (options.hostEnv ?? process.env)['OS_CLIENT_SECURE_FILE'] ?? path.join(path.dirname(file), 'secure.yaml');
    const secure = existsSync(secureFile) ? readClouds(secureFile)[name] : undefined;
    return settingsOfCloud(name, deepMerge(cloud, secure ?? {}) as CloudEntry, file);
  }
  throw new CloudError(`no cloud named "${name}" in clouds.yaml`, {
    code: 'E_CLOUD_CONFIG', file: candidates.find((f) => existsSync(f)) ?? candidates[candidates.length - 1],
    hint: `Looked in ${candidates.join(', ')}. Add the cloud there, set OS_CLIENT_CONFIG_FILE, or unset OS_CLOUD to use the OS_* variables.`,
  });
}

type CloudEntry = Record<string, unknown> & { auth?: Record<string, unknown> };

function readClouds(file: string): Record<string, CloudEntry> {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const e = error as Error & { linePos?: Array<{ line: number; col: number }> };
    throw new CloudError(`clouds.yaml is not valid YAML: ${e.message.split('\n')[0]}`, {
      code: 'E_CLOUD_CONFIG', file, line: e.linePos?.[0]?.line, column: e.linePos?.[0]?.col, cause: error,
      hint: 'Fix the YAML; see the openstack client\'s clouds.yaml documentation for its shape.',
    });
  }
  const clouds = (doc as { clouds?: unknown } | null)?.clouds;
  if (!clouds || typeof clouds !== 'object') {
    throw new CloudError('clouds.yaml has no `clouds:` map', { code: 'E_CLOUD_CONFIG', file, hint: 'Write `clouds:` with one entry per cloud.' });
  }
  return clouds as Record<string, CloudEntry>;
}

function settingsOfCloud(name: string, c: CloudEntry, file: string): AuthSettings {
  const a = (c.auth ?? {}) as Record<string, unknown>;
  const s = (value: unknown): string | undefined => (value === undefined || value === null || value === '' ? undefined : String(value));
  const overrides: Record<string, string> = {};
  for (const [k, v] of Object.entries(c)) {
    const m = /^(.+)_endpoint_override$/.exec(k);
    if (m && typeof v === 'string') overrides[m[1]!] = v;
  }
  const verify = c['verify'];
  return {
    authUrl: s(a['auth_url']) ?? '',
    type: authTypeOf(s(c['auth_type']), Boolean(s(a['application_credential_id']) ?? s(a['application_credential_name'])), Boolean(s(a['token'])) && !s(a['password']), `auth_type of cloud "${name}"`, file),
    username: s(a['username']),
    userId: s(a['user_id']),
    password: s(a['password']),
    userDomainName: s(a['user_domain_name']) ?? s(a['domain_name']),
    userDomainId: s(a['user_domain_id']) ?? s(a['domain_id']),
    projectId: s(a['project_id']) ?? s(a['tenant_id']),
    projectName: s(a['project_name']) ?? s(a['tenant_name']),
    projectDomainName: s(a['project_domain_name']) ?? s(a['domain_name']),
    projectDomainId: s(a['project_domain_id']) ?? s(a['domain_id']),
    domainId: s(a['domain_id']),
    domainName: s(a['domain_name']),
    applicationCredentialId: s(a['application_credential_id']),
    applicationCredentialName: s(a['application_credential_name']),
    applicationCredentialSecret: s(a['application_credential_secret']),
    token: s(a['token']),
    region: s(c['region_name']),
    interface: interfaceOf(s(c['interface']), `interface of cloud "${name}"`, file),
    endpointOverrides: Object.keys(overrides).length ? overrides : undefined,
    caFile: s(c['cacert']),
    insecure: verify === false || verify === 'false',
    source: `cloud "${name}" of ${file}`,
  };
}

function authTypeOf(value: string | undefined, hasAppCred: boolean, hasToken: boolean, what: string, file?: string): AuthType {
  if (value === undefined) return hasAppCred ? 'application-credential' : hasToken ? 'token' : 'password';
  const v = value.toLowerCase();
  if (v === 'password' || v === 'v3password') return 'password';
  if (v === 'v3applicationcredential' || v === 'applicationcredential' || v === 'application_credential') return 'application-credential';
  if (v === 'token' || v === 'v3token') return 'token';
  throw new CloudError(`${what} "${value}" is not supported`, {
    code: 'E_CLOUD_CONFIG', file, hint: 'Use password (v3password), v3applicationcredential or token (v3token).',
  });
}

function interfaceOf(value: string | undefined, what: string, file?: string): AuthSettings['interface'] {
  if (value === undefined) return undefined;
  const v = value.toLowerCase().replace(/url$/, '');
  if (v === 'public' || v === 'internal' || v === 'admin') return v;
  throw new CloudError(`${what} "${value}" is not an endpoint interface`, { code: 'E_CLOUD_CONFIG', file, hint: 'Use public, internal or admin.' });
}

/** Missing pieces said before any request is sent. */
function checkSettings(s: AuthSettings): AuthSettings {
  const missing = (what: string, hint: string) => new CloudError(`the OpenStack credentials (${s.source}) have no ${what}`, { code: 'E_CLOUD_CONFIG', hint });
  if (!s.authUrl) throw missing('auth URL', 'Set OS_AUTH_URL (source your openrc file), or name a clouds.yaml cloud with OS_CLOUD / --os-cloud.');
  if (s.type === 'password') {
    if (!s.username && !s.userId) throw missing('user', 'Set OS_USERNAME (or OS_USER_ID).');
    if (!s.password) throw missing('password', 'Set OS_PASSWORD.');
  } else if (s.type === 'application-credential') {
    if (!s.applicationCredentialSecret) throw missing('application credential secret', 'Set OS_APPLICATION_CREDENTIAL_SECRET.');
    if (!s.applicationCredentialId && !((s.username || s.userId) && s.applicationCredentialName)) {
      throw missing('application credential id', 'Set OS_APPLICATION_CREDENTIAL_ID (or its name with OS_USERNAME / OS_USER_ID).');
    }
  } else if (!s.token) {
    throw missing('token', 'Set OS_TOKEN.');
  }
  return s;
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (!a || typeof a !== 'object' || Array.isArray(a) || !b || typeof b !== 'object' || Array.isArray(b)) return b ?? a;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out;
}
