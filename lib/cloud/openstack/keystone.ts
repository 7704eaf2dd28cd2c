// Keystone v3: a scoped token (password, application credential or token), the service
// catalog that comes with it, and a session that calls the other services with the token,
// getting a new one once when a call meets 401 (a token that expired during a long wait).
import { CloudError } from '../../errors.js';
import type { AuthSettings } from './clouds-yaml.js';
import { OpenStackHttp, type OpenStackHttpSettings, type OpenStackRequest, type OpenStackResponse } from './http.js';

export const KEYSTONE = 'Keystone (identity)';

/** Display names of the services we call, for messages. */
export const SERVICE_NAMES: Record<string, string> = {
  identity: KEYSTONE, image: 'Glance (image)', compute: 'Nova (compute)', network: 'Neutron (network)', placement: 'Placement',
};

export interface CatalogEndpoint {
  id?: string;
  interface: string;
  region?: string | null;
  region_id?: string | null;
  url: string;
}

export interface CatalogService {
  type: string;
  name?: string;
  endpoints: CatalogEndpoint[];
}

export interface Token {
  value: string;
  expiresAt: number | undefined;
  catalog: CatalogService[];
  projectId: string | undefined;
  projectName: string | undefined;
  userId: string | undefined;
  userName: string | undefined;
  roles: string[];
}

/** Keystone's base URL (…/v3) from an auth URL as users write it (with or without /v3). */
export function keystoneV3Url(authUrl: string): string {
  let url: URL;
  try {
    url = new URL(authUrl);
  } catch {
    throw new CloudError(`the auth URL "${authUrl}" is not a URL`, { code: 'E_CLOUD_CONFIG', hint: 'Set OS_AUTH_URL to Keystone\'s URL, e.g. https://keystone.example.com:5000/v3.' });
  }
  const p = url.pathname.replace(/\/+$/, '');
  if (/\/v2\.0$/.test(p)) {
    throw new CloudError(`the auth URL ${authUrl} is Keystone's v2.0 API, which Keystone no longer has`, {
      code: 'E_CLOUD_CONFIG', hint: 'Use the v3 URL (usually the same with /v3 instead of /v2.0) and set OS_USER_DOMAIN_NAME / OS_PROJECT_DOMAIN_NAME.',
    });
  }
  url.pathname = /\/v3$/.test(p) ? p : `${p}/v3`;
  return url.href.replace(/\/+$/, '');
}

/** The JSON body of POST /v3/auth/tokens for these settings. */
export function authRequestBody(s: AuthSettings): unknown {
  const domain = (id: string | undefined, name: string | undefined) => (id ? { id } : name ? { name } : { id: 'default' });
  let identity: unknown;
  if (s.type === 'application-credential') {
    const credential = s.applicationCredentialId
      ? { id: s.applicationCredentialId, secret: s.applicationCredentialSecret }
      : {
        name: s.applicationCredentialName, secret: s.applicationCredentialSecret,
        user: s.userId ? { id: s.userId } : { name: s.username, domain: domain(s.userDomainId, s.userDomainName) },
      };
    identity = { methods: ['application_credential'], application_credential: credential };
  } else if (s.type === 'token') {
    identity = { methods: ['token'], token: { id: s.token } };
  } else {
    const user = s.userId ? { id: s.userId, password: s.password } : { name: s.username, domain: domain(s.userDomainId, s.userDomainName), password: s.password };
    identity = { methods: ['password'], password: { user } };
  }
  // An application credential carries its own project scope and refuses another.
  if (s.type === 'application-credential') return { auth: { identity } };
  let scope: unknown;
  if (s.projectId) scope = { project: { id: s.projectId } };
  else if (s.projectName) scope = { project: { name: s.projectName, domain: domain(s.projectDomainId, s.projectDomainName) } };
  else if (s.domainId || s.domainName) scope = { domain: s.domainId ? { id: s.domainId } : { name: s.domainName } };
  return { auth: { identity, ...(scope ? { scope } : {}) } };
}

/** Gets a token from Keystone. */
export async function issueToken(s: AuthSettings, client: OpenStackHttp): Promise<Token> {
  const base = keystoneV3Url(s.authUrl);
  let answer: OpenStackResponse;
  try {
    answer = await client.request({
      service: KEYSTONE, what: 'issue a token', method: 'POST', url: `${base}/auth/tokens`,
      json: authRequestBody(s), retry: true, // asking for a token twice does no harm
    });
  } catch (error) {
    if (error instanceof CloudError && error.status === 401) {
      const who = s.type === 'application-credential' ? `application credential ${s.applicationCredentialId ?? s.applicationCredentialName}`
        : s.type === 'token' ? 'the token' : `user "${s.username ?? s.userId}"`;
      throw new CloudError(`${KEYSTONE} refused the credentials of ${who} (HTTP 401): ${error.shortMessage.replace(/^.*?HTTP 401 when asked to issue a token:?\s*/, '') || 'unauthorized'}`, {
        code: 'E_CLOUD_AUTH', file: `${base}/auth/tokens`, service: KEYSTONE, status: 401, cause: error,
        hint: s.type === 'password'
          ? `Check the password and the user's domain (${s.userDomainName ?? s.userDomainId ?? 'default'}) from ${s.source}; the project (${s.projectName ?? s.projectId ?? 'none'}) must be one the user has a role in.`
          : `Check the credentials from ${s.source}: the secret, and that the credential is not expired or deleted.`,
      });
    }
    throw error;
  }
  const value = answer.headers.get('x-subject-token');
  const body = (answer.json as { token?: Record<string, unknown> } | undefined)?.token;
  if (!value || !body) {
    throw new CloudError(`${KEYSTONE} answered without a token`, { code: 'E_CLOUD_BAD_ANSWER', file: `${base}/auth/tokens`, service: KEYSTONE, hint: 'Check that OS_AUTH_URL is Keystone\'s v3 URL.' });
  }
  const project = body['project'] as { id?: string; name?: string } | undefined;
  const user = body['user'] as { id?: string; name?: string } | undefined;
  const expires = typeof body['expires_at'] === 'string' ? Date.parse(body['expires_at']) : NaN;
  return {
    value,
    expiresAt: Number.isFinite(expires) ? expires : undefined,
    catalog: Array.isArray(body['catalog']) ? body['catalog'] as CatalogService[] : [],
    projectId: project?.id, projectName: project?.name, userId: user?.id, userName: user?.name,
    roles: Array.isArray(body['roles']) ? (body['roles'] as Array<{ name?: string }>).map((r) => r.name ?? '') : [],
  };
}

/** The endpoint of a service type from the catalog, for a region and an interface. */
export function catalogEndpoint(catalog: readonly CatalogService[], type: string, region: string | undefined, iface: string = 'public'): string {
  const service = catalog.find((c) => c.type === type);
  const name = SERVICE_NAMES[type] ?? type;
  if (!service) {
    throw new CloudError(`the service catalog has no ${name} service`, {
      code: 'E_CLOUD_NO_ENDPOINT', service: name,
      hint: `The catalog lists: ${catalog.map((c) => c.type).join(', ') || 'nothing (is the token scoped to a project?)'}. Ask the cloud's operator, or set an endpoint override.`,
    });
  }
  const matching = service.endpoints.filter((e) => e.interface === iface && (!region || e.region_id === region || e.region === region));
  if (matching.length === 0) {
    const regions = [...new Set(service.endpoints.map((e) => e.region_id ?? e.region ?? '?'))];
    throw new CloudError(`the service catalog has no ${iface} ${name} endpoint${region ? ` in region ${region}` : ''}`, {
      code: 'E_CLOUD_NO_ENDPOINT', service: name,
      hint: `It has ${service.endpoints.map((e) => `${e.interface}@${e.region_id ?? e.region ?? '?'}`).join(', ')}. Set OS_REGION_NAME to one of ${regions.join(', ')} (or OS_INTERFACE).`,
    });
  }
  const regions = new Set(matching.map((e) => e.region_id ?? e.region));
  if (!region && regions.size > 1) {
    throw new CloudError(`the ${name} service has endpoints in several regions (${[...regions].join(', ')})`, {
      code: 'E_CLOUD_REGION', service: name, hint: 'Choose one with OS_REGION_NAME (or region_name in clouds.yaml).',
    });
  }
  return matching[0]!.url.replace(/\/+$/, '');
}

export interface SessionOptions extends OpenStackHttpSettings {
  /** Told before a call is retried (a log line). */
  onRetry?: OpenStackHttpSettings['onRetry'];
}

/** A request to a service of the catalog: a path under its endpoint, or a full URL. */
export interface ServiceRequest extends Omit<OpenStackRequest, 'service' | 'url'> {
  path: string;
}

/** A Keystone token and the catalog, and calls to the services with it. */
export class OpenStackSession {
  private token: Token;

  private constructor(readonly settings: AuthSettings, readonly http: OpenStackHttp, token: Token) {
    this.token = token;
  }

  /** Authenticates; the session is then ready to call the catalog's services. */
  static async connect(settings: AuthSettings, options: SessionOptions = {}): Promise<OpenStackSession> {
    const http = new OpenStackHttp({ ...options, caFile: options.caFile ?? settings.caFile, insecure: options.insecure ?? settings.insecure });
    return new OpenStackSession(settings, http, await issueToken(settings, http));
  }

  get projectId(): string | undefined { return this.token.projectId; }
  get userId(): string | undefined { return this.token.userId; }
  get catalog(): readonly CatalogService[] { return this.token.catalog; }
  get tokenValue(): string { return this.token.value; }

  /** The base URL of a service type (an override from the settings wins over the catalog). */
  endpoint(type: string): string {
    const override = this.settings.endpointOverrides?.[type];
    if (override) return override.replace(/\/+$/, '');
    return catalogEndpoint(this.token.catalog, type, this.settings.region, this.settings.interface ?? 'public');
  }

  /** Calls a service with the token; a 401 gets a new token and one more try. */
  async call(type: string, r: ServiceRequest): Promise<OpenStackResponse> {
    const service = SERVICE_NAMES[type] ?? type;
    const url = /^https?:/.test(r.path) ? r.path : `${this.endpoint(type)}${r.path}`;
    const send = () => this.http.request({ ...r, service, url, headers: { ...r.headers, 'x-auth-token': this.token.value } });
    // A token about to expire is renewed first: a long wait must not fail on it.
    if (this.token.expiresAt !== undefined && this.token.expiresAt - Date.now() < 60_000 && this.settings.type !== 'token') {
      this.token = await issueToken(this.settings, this.http);
    }
    try {
      return await send();
    } catch (error) {
      if (error instanceof CloudError && error.status === 401 && this.settings.type !== 'token') {
        this.token = await issueToken(this.settings, this.http);
        return send();
      }
      throw error;
    }
  }
}
