// HTTP for the remote repositories (node-fetch): a connect timeout (until the response
// headers arrive) and an idle timeout (no byte for too long), retries of GETs on network
// errors, 429 and 5xx with exponential backoff that honours Retry-After, proxies from the
// environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), a redirect limit, and errors that name the
// URL and say what to do. One client per build: its only state is its settings.
import { setTimeout as delay } from 'node:timers/promises';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import fetch, { type Response } from 'node-fetch';
import { getProxyForUrl } from 'proxy-from-env';
import { RepositoryError } from '../../errors.js';

export interface HttpSettings {
  /** ms until the response headers arrive (connect + server think time). Default 10000 (Capstan's API timeout). */
  connectTimeoutMs?: number | undefined;
  /** ms without a byte of the body before a transfer is given up. Default 30000. */
  idleTimeoutMs?: number | undefined;
  /** Attempts per GET, the first included. Default 4. */
  attempts?: number | undefined;
  /** First backoff in ms (doubled each retry, with jitter). Default 500. */
  backoffMs?: number | undefined;
  /** Longest Retry-After we wait for, in ms; a longer one fails at once with the time to wait. Default 60000. */
  maxRetryAfterMs?: number | undefined;
  /** Redirects followed before giving up. Default 10. */
  maxRedirects?: number | undefined;
  /** Extra request headers per URL (e.g. the GitHub token for the API host). */
  headersFor?: ((url: URL) => Record<string, string>) | undefined;
  /** Called before each retry (for a log line). */
  onRetry?: ((info: { url: string; attempt: number; waitMs: number; why: string }) => void) | undefined;
}

/** A response whose body is still to be read, with the idle timer armed on it. */
export interface OpenResponse {
  url: string;
  /** The URL after redirects. */
  finalUrl: string;
  status: number;
  headers: Response['headers'];
  /** The body, chunk by chunk; each chunk re-arms the idle timeout. */
  body: AsyncIterable<Buffer>;
  /** Aborts the transfer (the body then ends with an error). */
  abort(): void;
}

export class HttpClient {
  private readonly settings: Required<Omit<HttpSettings, 'headersFor' | 'onRetry'>> & Pick<HttpSettings, 'headersFor' | 'onRetry'>;

  constructor(settings: HttpSettings = {}) {
    this.settings = {
      connectTimeoutMs: settings.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: settings.idleTimeoutMs ?? 30_000,
      attempts: Math.max(1, settings.attempts ?? 4),
      backoffMs: settings.backoffMs ?? 500,
      maxRetryAfterMs: settings.maxRetryAfterMs ?? 60_000,
      maxRedirects: settings.maxRedirects ?? 10,
      headersFor: settings.headersFor,
      onRetry: settings.onRetry,
    };
  }

  /**
   * GETs `url` and returns the open response once it is a 2xx; retries what is worth retrying.
   * `what` names the thing in errors ("the GitHub releases list"). A 404 is a RepositoryError
   * with code E_REMOTE_NOT_FOUND, so callers can tell "not there" from "broken".
   */
  async open(url: string, what: string): Promise<OpenResponse> {
    const s = this.settings;
    for (let attempt = 1; ; attempt++) {
      let retry: { waitMs: number; why: string } | undefined;
      try {
        const response = await this.once(url, what);
        if (response.status >= 200 && response.status < 300) return response;
        const text = await readSome(response.body);
        const failure = httpFailure(url, what, response.status, response.headers, text);
        retry = retryAfter(response.status, response.headers, attempt, s);
        if (!retry || attempt >= s.attempts) throw failure;
      } catch (error) {
        if (error instanceof RepositoryError && error.code !== 'E_REMOTE_NETWORK') throw error;
        if (attempt >= s.attempts) throw error;
        retry ??= { waitMs: backoff(attempt, s.backoffMs), why: (error as Error).message.split('\n')[0] ?? 'network error' };
      }
      s.onRetry?.({ url, attempt, waitMs: retry.waitMs, why: retry.why });
      await delay(retry.waitMs);
    }
  }

  /** GETs a small document whole (API answers, listings, package descriptors). */
  async text(url: string, what: string, maxBytes = 16 * 1024 * 1024): Promise<{ text: string; response: OpenResponse }> {
    const response = await this.open(url, what);
    const chunks: Buffer[] = [];
    let length = 0;
    try {
      for await (const chunk of response.body) {
        length += chunk.length;
        if (length > maxBytes) {
          response.abort();
          throw new RepositoryError(`${what} is larger than ${maxBytes} bytes`, {
            code: 'E_REMOTE_BAD_ANSWER', file: url, hint: 'This URL does not serve what a Capstan repository serves; check the repository URL.',
          });
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof RepositoryError) throw error;
      throw networkError(url, what, error);
    }
    return { text: Buffer.concat(chunks).toString('utf8'), response };
  }

  /** One GET, no retries: the response with its body still open. */
  private async once(url: string, what: string): Promise<OpenResponse> {
    const s = this.settings;
    const controller = new AbortController();
    let timedOut: string | undefined;
    let timer = setTimeout(() => { timedOut = `no answer within ${s.connectTimeoutMs} ms`; controller.abort(); }, s.connectTimeoutMs);
    let response: Response;
    try {
      response = await fetch(url, {
        signal: controller.signal,
        compress: false, // as Capstan: the bytes are stored as served (a .gz is gunzipped by us)
        follow: s.maxRedirects,
        agent: proxyAgentFor,
        headers: { 'user-agent': 'gulp-capstan', accept: '*/*', ...s.headersFor?.(new URL(url)) },
      });
    } catch (error) {
      clearTimeout(timer);
      if ((error as { type?: string }).type === 'max-redirect') {
        throw new RepositoryError(`${what}: more than ${s.maxRedirects} redirects (a redirect loop?)`, {
          code: 'E_REMOTE_REDIRECTS', file: url, cause: error,
          hint: 'The server keeps redirecting; check the URL, or the mirror\'s configuration.',
        });
      }
      throw networkError(url, what, error, timedOut);
    }
    clearTimeout(timer);
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { timedOut = `no data for ${s.idleTimeoutMs} ms`; controller.abort(); }, s.idleTimeoutMs);
    };
    const source = response.body;
    async function* body(): AsyncGenerator<Buffer> {
      arm();
      try {
        if (source) {
          for await (const chunk of source) {
            arm();
            yield chunk as Buffer;
          }
        }
      } catch (error) {
        throw networkError(url, what, error, timedOut);
      } finally {
        clearTimeout(timer);
      }
    }
    return {
      url, finalUrl: response.url || url, status: response.status, headers: response.headers,
      body: body(), abort: () => controller.abort(),
    };
  }
}

/** node-fetch calls this for every request, redirects included, so each host gets its own proxy decision. */
function proxyAgentFor(target: URL): HttpProxyAgent<string> | HttpsProxyAgent<string> | undefined {
  const proxy = getProxyForUrl(target.href);
  if (!proxy) return undefined;
  return target.protocol === 'https:' ? new HttpsProxyAgent(proxy) : new HttpProxyAgent(proxy);
}

function networkError(url: string, what: string, error: unknown, timedOut?: string): RepositoryError {
  const message = timedOut ?? (error as Error).message;
  return new RepositoryError(`cannot fetch ${what}: ${message}`, {
    code: 'E_REMOTE_NETWORK', file: url, cause: error,
    hint: 'Check the network (and HTTPS_PROXY / NO_PROXY if you are behind a proxy), or work offline with what is in the local repository.',
  });
}

function httpFailure(url: string, what: string, status: number, headers: Response['headers'], body: string): RepositoryError {
  const said = body.trim().replace(/\s+/g, ' ').slice(0, 200);
  if (status === 404) {
    return new RepositoryError(`${what} does not exist (HTTP 404)`, {
      code: 'E_REMOTE_NOT_FOUND', file: url, hint: 'Check the name, the release tag and the repository URL.',
    });
  }
  if ((status === 403 || status === 429) && isGithubRateLimit(headers, said)) {
    const reset = Number(headers.get('x-ratelimit-reset'));
    const when = Number.isFinite(reset) && reset > 0 ? ` It resets at ${new Date(reset * 1000).toISOString()}.` : '';
    return new RepositoryError(`GitHub's API rate limit is used up (HTTP ${status})`, {
      code: 'E_REMOTE_RATE_LIMIT', file: url,
      hint: `The anonymous API allows 60 requests an hour.${when} Set GITHUB_TOKEN to a token (any, no scopes needed) for 5000 an hour, or use a mirror (CAPSTAN_RELEASES_URL).`,
    });
  }
  const wait = headers.get('retry-after');
  return new RepositoryError(`${what}: the server answered HTTP ${status}${said ? `: ${said}` : ''}`, {
    code: status === 401 || status === 403 ? 'E_REMOTE_DENIED' : 'E_REMOTE_HTTP', file: url,
    hint: status === 401 || status === 403
      ? 'Access was refused: check GITHUB_TOKEN (if set) and that the URL is public.'
      : `Try again ${wait ? `after the ${wait} the server asks for (Retry-After)` : 'later'}, or use another mirror.`,
  });
}

function isGithubRateLimit(headers: Response['headers'], body: string): boolean {
  return headers.get('x-ratelimit-remaining') === '0' || /rate limit/i.test(body);
}

/** Whether and how long to wait before retrying an HTTP status; undefined = do not retry. */
function retryAfter(status: number, headers: Response['headers'], attempt: number, s: { backoffMs: number; maxRetryAfterMs: number }): { waitMs: number; why: string } | undefined {
  if (status !== 429 && status < 500) return undefined;
  const header = headers.get('retry-after');
  let waitMs = backoff(attempt, s.backoffMs);
  if (header) {
    const seconds = Number(header);
    const at = Number.isFinite(seconds) ? Date.now() + seconds * 1000 : Date.parse(header);
    if (Number.isFinite(at)) waitMs = Math.max(0, at - Date.now());
  }
  if (waitMs > s.maxRetryAfterMs) return undefined;
  return { waitMs, why: `HTTP ${status}${header ? ` (Retry-After: ${header})` : ''}` };
}

function backoff(attempt: number, base: number): number {
  return Math.round(base * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5));
}

async function readSome(body: AsyncIterable<Buffer>, max = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= max) break;
    }
  } catch { /* the status says enough */ }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}
