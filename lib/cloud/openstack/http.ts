// HTTP for the OpenStack APIs (node-fetch): every call with a timeout until the answer's
// headers and an idle timeout while a body streams, retries with exponential backoff on
// network errors, 429 and 5xx (Retry-After honoured) for the calls that may be repeated, and
// errors that name the service, the HTTP status and what OpenStack itself said.
//
// Connections are never reused: Debian's uwsgi (Keystone, Nova, Placement, Neutron) closes the
// socket after each answer while stripping Content-Length, and a keep-alive client then meets
// ECONNRESET on its next request (shared/infra/README.md, problem 4). So every request goes on
// a fresh socket (`Connection: close`, an agent without keep-alive).
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import fetch, { type Response } from 'node-fetch';
import { getProxyForUrl } from 'proxy-from-env';
import { CloudError } from '../../errors.js';

export interface OpenStackHttpSettings {
  /** ms until an answer's headers arrive (after the request body is sent). Default 30000. */
  timeoutMs?: number | undefined;
  /** ms without a byte moving (request body going out, answer body coming in). Default 60000. */
  idleTimeoutMs?: number | undefined;
  /** Attempts per call that may be repeated, the first included. Default 5. */
  attempts?: number | undefined;
  /** First backoff in ms, doubled each retry (with jitter). Default 500. */
  backoffMs?: number | undefined;
  /** Longest Retry-After we wait for, in ms. Default 60000. */
  maxRetryAfterMs?: number | undefined;
  /** A CA bundle (PEM file) for https endpoints (OS_CACERT, clouds.yaml `cacert`). */
  caFile?: string | undefined;
  /** Do not verify TLS certificates (OS_INSECURE, clouds.yaml `verify: false`). */
  insecure?: boolean | undefined;
  /** Told before each retry (a log line). */
  onRetry?: ((info: { service: string; what: string; attempt: number; waitMs: number; why: string }) => void) | undefined;
}

export interface OpenStackRequest {
  /** The service as users know it, for messages: `Keystone (identity)`, `Glance (image)`. */
  service: string;
  /** What the call does, for messages: `create the image record`. */
  what: string;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string> | undefined;
  /** A JSON body. */
  json?: unknown;
  /** A streamed body: called once per attempt, so a retry sends the bytes again from the start. */
  body?: (() => Readable) | undefined;
  /** Whether the call may be sent again after a failure. Default: every method but POST. */
  retry?: boolean | undefined;
  /** Statuses that are answers rather than failures (besides 2xx), e.g. 404 for "is it gone". */
  accept?: readonly number[] | undefined;
  /** Overrides the settings' timeoutMs for this call. */
  timeoutMs?: number | undefined;
  /** Read the answer body (default true; false for a HEAD or when only the status matters). */
  readBody?: boolean | undefined;
}

export interface OpenStackResponse {
  status: number;
  headers: Response['headers'];
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

/** Largest answer we read (a console log, a catalog): more is a broken server. */
const MAX_ANSWER = 32 * 1024 * 1024;

export class OpenStackHttp {
  private readonly s: Required<Omit<OpenStackHttpSettings, 'caFile' | 'onRetry'>> & Pick<OpenStackHttpSettings, 'onRetry'>;
  private readonly ca: Buffer | undefined;

  constructor(settings: OpenStackHttpSettings = {}) {
    this.s = {
      timeoutMs: settings.timeoutMs ?? 30_000,
      idleTimeoutMs: settings.idleTimeoutMs ?? 60_000,
      attempts: Math.max(1, settings.attempts ?? 5),
      backoffMs: settings.backoffMs ?? 500,
      maxRetryAfterMs: settings.maxRetryAfterMs ?? 60_000,
      insecure: settings.insecure ?? false,
      onRetry: settings.onRetry,
    };
    this.ca = settings.caFile ? readCa(settings.caFile) : undefined;
  }

  /** Sends the request, retrying what may be retried; resolves with a 2xx (or accepted) answer. */
  async request(r: OpenStackRequest): Promise<OpenStackResponse> {
    const mayRetry = r.retry ?? r.method !== 'POST';
    for (let attempt = 1; ; attempt++) {
      let wait: { ms: number; why: string } | undefined;
      try {
        const answer = await this.once(r);
        if ((answer.status >= 200 && answer.status < 300) || r.accept?.includes(answer.status)) return answer;
        const failure = httpFailure(r, answer);
        wait = retryWait(answer, attempt, this.s);
        if (!mayRetry || !wait || attempt >= this.s.attempts) throw failure;
      } catch (error) {
        if (error instanceof CloudError && error.code !== 'E_CLOUD_NETWORK') throw error;
        // A POST that failed on the network may or may not have been carried out: only a
        // refused connection (nothing was sent) is safe to repeat.
        const refused = (error as CloudError).cause && /ECONNREFUSED/.test(String(((error as CloudError).cause as Error).message ?? ''));
        if ((!mayRetry && !refused) || attempt >= this.s.attempts) throw error;
        wait ??= { ms: backoff(attempt, this.s.backoffMs), why: (error as Error).message.split('\n')[0] ?? 'network error' };
      }
      this.s.onRetry?.({ service: r.service, what: r.what, attempt, waitMs: wait.ms, why: wait.why });
      await delay(wait.ms);
    }
  }

  /** One attempt, no retries. */
  private async once(r: OpenStackRequest): Promise<OpenStackResponse> {
    const controller = new AbortController();
    let timedOut: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, why: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => { timedOut = why; controller.abort(); }, ms);
    };
    const timeoutMs = r.timeoutMs ?? this.s.timeoutMs;
    const headers: Record<string, string> = {
      'user-agent': 'gulp-capstan', accept: 'application/json', connection: 'close', ...r.headers,
    };
    let body: string | Readable | undefined;
    if (r.json !== undefined) {
      body = JSON.stringify(r.json);
      headers['content-type'] ??= 'application/json';
    } else if (r.body) {
      // The answer comes only after the whole body is sent: while it streams, the idle timer
      // watches the bytes; the answer timer starts when the last byte is handed over.
      const source = r.body();
      const idle = this.s.idleTimeoutMs;
      body = Readable.from((async function* () {
        arm(idle, `no byte of the upload could be sent for ${idle} ms`);
        for await (const chunk of source) {
          arm(idle, `no byte of the upload could be sent for ${idle} ms`);
          yield chunk as Buffer;
        }
        arm(timeoutMs, `no answer within ${timeoutMs} ms after the upload`);
      })(), { objectMode: false });
    }
    if (!r.body) arm(timeoutMs, `no answer within ${timeoutMs} ms`);
    let response: Response;
    try {
      response = await fetch(r.url, {
        method: r.method, headers, body, signal: controller.signal, compress: true, redirect: 'follow', follow: 5,
        agent: (url: URL) => this.agentFor(url),
      });
    } catch (error) {
      clearTimeout(timer);
      throw networkError(r, error, timedOut);
    }
    if (r.readBody === false || r.method === 'HEAD') {
      clearTimeout(timer);
      response.body?.resume?.();
      return { status: response.status, headers: response.headers, text: '', json: undefined };
    }
    const chunks: Buffer[] = [];
    let length = 0;
    try {
      arm(this.s.idleTimeoutMs, `no data for ${this.s.idleTimeoutMs} ms`);
      for await (const chunk of response.body ?? []) {
        arm(this.s.idleTimeoutMs, `no data for ${this.s.idleTimeoutMs} ms`);
        length += (chunk as Buffer).length;
        if (length > MAX_ANSWER) { controller.abort(); throw new Error(`the answer is larger than ${MAX_ANSWER} bytes`); }
        chunks.push(chunk as Buffer);
      }
    } catch (error) {
      throw networkError(r, error, timedOut);
    } finally {
      clearTimeout(timer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    if (text && /json/i.test(response.headers.get('content-type') ?? '') || /^\s*[{[]/.test(text)) {
      try { json = JSON.parse(text); } catch { json = undefined; }
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  /** A fresh socket per request (no keep-alive), through the proxy HTTPS_PROXY / NO_PROXY name. */
  private agentFor(url: URL): http.Agent {
    const proxy = getProxyForUrl(url.href);
    const tls = { ...(this.ca ? { ca: this.ca } : {}), rejectUnauthorized: !this.s.insecure };
    if (proxy) return url.protocol === 'https:' ? new HttpsProxyAgent(proxy, { keepAlive: false, ...tls }) : new HttpProxyAgent(proxy, { keepAlive: false });
    return url.protocol === 'https:' ? new https.Agent({ keepAlive: false, ...tls }) : new http.Agent({ keepAlive: false });
  }
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new CloudError(`cannot read the CA bundle: ${(error as Error).message}`, {
      code: 'E_CLOUD_CONFIG', file, hint: 'Fix OS_CACERT (or `cacert` in clouds.yaml) to name a PEM file.',
    });
  }
}

function networkError(r: OpenStackRequest, error: unknown, timedOut?: string): CloudError {
  const e = error as Error & { code?: string };
  const reason = timedOut ?? (e.code ? `${e.code}: ${e.message}` : e.message);
  return new CloudError(`${r.service}: cannot ${r.what}: ${reason}`, {
    code: 'E_CLOUD_NETWORK', file: `${r.method} ${r.url}`, service: r.service, cause: error,
    hint: /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(reason)
      ? `Nothing answers there: check that ${r.service} runs and that the catalog's endpoint (or OS_AUTH_URL) is right.`
      : 'The service did not answer in time or dropped the connection; try again, or raise the timeouts.',
  });
}

/**
 * OpenStack's own words from an error body: Keystone's {"error":{"message"}}, Nova's
 * {"badRequest":{"message"}}, Neutron's {"NeutronError":{"message"}}, Placement's
 * {"errors":[{"detail"}]}, Glance's HTML page, or plain text.
 */
export function openstackMessage(text: string, json: unknown): string {
  const fromJson = (value: unknown): string | undefined => {
    if (!value || typeof value !== 'object') return undefined;
    const o = value as Record<string, unknown>;
    if (typeof o['message'] === 'string') return o['message'];
    if (Array.isArray(o['errors'])) {
      const first = o['errors'][0] as Record<string, unknown> | undefined;
      return typeof first?.['detail'] === 'string' ? first['detail'] : typeof first?.['title'] === 'string' ? first['title'] : undefined;
    }
    for (const key of Object.keys(o)) {
      const inner = o[key];
      if (inner && typeof inner === 'object' && typeof (inner as Record<string, unknown>)['message'] === 'string') {
        return (inner as Record<string, string>)['message'];
      }
    }
    return undefined;
  };
  const said = fromJson(json) ?? text
    .replace(/<head>[\s\S]*?<\/head>/i, '')
    .replace(/<title>[\s\S]*?<\/title>/gi, '')
    .replace(/<h1>[\s\S]*?<\/h1>/gi, '')
    .replace(/<[^>]+>/g, ' ');
  return said.replace(/\s+/g, ' ').trim().slice(0, 500);
}

function httpFailure(r: OpenStackRequest, answer: OpenStackResponse): CloudError {
  const said = openstackMessage(answer.text, answer.json);
  const code = answer.status === 401 ? 'E_CLOUD_AUTH' : answer.status === 403 ? 'E_CLOUD_FORBIDDEN'
    : answer.status === 404 ? 'E_CLOUD_NOT_FOUND' : answer.status === 409 ? 'E_CLOUD_CONFLICT'
      : answer.status === 413 ? 'E_CLOUD_QUOTA' : answer.status >= 500 || answer.status === 429 ? 'E_CLOUD_UNAVAILABLE' : 'E_CLOUD_HTTP';
  const hint = answer.status === 401 ? 'The credentials were refused, or the token expired: check OS_USERNAME / OS_PASSWORD (or the application credential) and the domains.'
    : answer.status === 403 ? 'The project or user may not do this: ask the cloud\'s operator for the role, or use another project.'
      : answer.status === 413 || /quota/i.test(said) ? 'A quota is used up: delete servers or images, or ask for a larger quota.'
        : answer.status >= 500 || answer.status === 429 ? 'The service failed or is overloaded; try again later. Its log says more.'
          : undefined;
  return new CloudError(`${r.service} answered HTTP ${answer.status} when asked to ${r.what}${said ? `: ${said}` : ''}`, {
    code, file: `${r.method} ${r.url}`, service: r.service, status: answer.status, hint,
  });
}

function retryWait(answer: OpenStackResponse, attempt: number, s: { backoffMs: number; maxRetryAfterMs: number }): { ms: number; why: string } | undefined {
  if (answer.status !== 429 && answer.status < 500) return undefined;
  // 501 Not Implemented will not change with time.
  if (answer.status === 501) return undefined;
  const header = answer.headers.get('retry-after');
  let ms = backoff(attempt, s.backoffMs);
  if (header) {
    const seconds = Number(header);
    const at = Number.isFinite(seconds) ? Date.now() + seconds * 1000 : Date.parse(header);
    if (Number.isFinite(at)) ms = Math.max(0, at - Date.now());
  }
  if (ms > s.maxRetryAfterMs) return undefined;
  return { ms, why: `HTTP ${answer.status}${header ? ` (Retry-After: ${header})` : ''}` };
}

function backoff(attempt: number, base: number): number {
  return Math.round(base * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5));
}
