// Real HTTP servers on 127.0.0.1 for the remote-repository tests: a GitHub-releases-shaped API
// (paged release lists with Link headers, /latest, /tags/<tag>, asset downloads behind a
// redirect, sha256 digests), an S3-shaped bucket (ListBucket XML, truncated pages), and a
// plain forwarding HTTP proxy. Faults can be planted per path; every request is counted.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export type Fault =
  | { kind: 'status'; status: number; times?: number; headers?: Record<string, string>; body?: string }
  | { kind: 'truncate'; at: number; times?: number }
  | { kind: 'hang-after'; at: number; times?: number }
  | { kind: 'body'; body: string | Buffer; contentType?: string; times?: number }
  | { kind: 'redirect-loop' };

export interface ServedFile {
  name: string;
  data: Buffer;
  /** Announce this size in the API instead of the real one. */
  announcedSize?: number;
  /** Announce this digest instead of the real one (`null`: none). */
  digest?: string | null;
}

export interface ServedRelease {
  tag: string;
  assets: ServedFile[];
}

export class TestServer {
  readonly requests: string[] = [];
  private readonly faults = new Map<string, Fault[]>();
  private readonly routes = new Map<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>();
  private server: http.Server | undefined;
  private sockets = new Set<import('node:net').Socket>();
  base = '';

  static async start(): Promise<TestServer> {
    const s = new TestServer();
    s.server = http.createServer((req, res) => s.handle(req, res));
    s.server.on('connection', (socket) => { s.sockets.add(socket); socket.on('close', () => s.sockets.delete(socket)); });
    await new Promise<void>((resolve) => s.server!.listen(0, '127.0.0.1', resolve));
    s.base = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  route(path: string, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): void {
    this.routes.set(path, handler);
  }

  /** Serves `data` at `path` (exactly; the query is ignored). */
  file(path: string, data: Buffer | string, contentType = 'application/octet-stream'): void {
    const body = Buffer.from(data);
    this.route(path, (_req, res) => { res.writeHead(200, { 'content-type': contentType, 'content-length': body.length }); res.end(body); });
  }

  fault(path: string, fault: Fault): void {
    const list = this.faults.get(path) ?? [];
    list.push(fault);
    this.faults.set(path, list);
  }

  count(path: string): number {
    return this.requests.filter((r) => r === path).length;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.base);
    const key = url.pathname;
    this.requests.push(key);
    const list = this.faults.get(key);
    const fault = list?.[0];
    if (fault) {
      if ('times' in fault && fault.times !== undefined) {
        fault.times -= 1;
        if (fault.times <= 0) list!.shift();
      }
      if (this.applyFault(fault, key, req, res)) return;
    }
    const route = this.routes.get(key);
    if (!route) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found'); return; }
    route(req, res);
  }

  private applyFault(fault: Fault, key: string, req: http.IncomingMessage, res: http.ServerResponse): boolean {
    switch (fault.kind) {
      case 'status':
        res.writeHead(fault.status, { 'content-type': 'text/plain', ...fault.headers });
        res.end(fault.body ?? `status ${fault.status}`);
        return true;
      case 'body':
        res.writeHead(200, { 'content-type': fault.contentType ?? 'text/html' });
        res.end(fault.body);
        return true;
      case 'redirect-loop':
        res.writeHead(302, { location: key });
        res.end();
        return true;
      case 'truncate':
      case 'hang-after': {
        // Serve the real route into a buffer, then send only the first `at` bytes.
        const route = this.routes.get(key);
        if (!route) return false;
        const chunks: Buffer[] = [];
        let headers: http.OutgoingHttpHeaders = {};
        const fake = {
          writeHead: (_s: number, h: http.OutgoingHttpHeaders) => { headers = h; return fake; },
          end: (b?: Buffer | string) => {
            if (b) chunks.push(Buffer.from(b));
            const all = Buffer.concat(chunks);
            res.writeHead(200, { ...headers, 'content-length': all.length });
            res.write(all.subarray(0, fault.at));
            if (fault.kind === 'truncate') setTimeout(() => res.socket?.destroy(), 20);
            // hang-after: keep the connection open, sending nothing more.
          },
        } as unknown as http.ServerResponse;
        route(req, fake);
        return true;
      }
    }
  }
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A GitHub-releases-shaped API at `<base>/repos/o/r/releases`, pages of `perPage` releases
 * (newest first), the first release as /latest, each as /tags/<tag>; assets at
 * `<base>/dl/<tag>/<name>` reached through a redirect from `<base>/releases/download/…`, as
 * GitHub's browser_download_url redirects to its object store.
 */
export function serveReleases(server: TestServer, releases: ServedRelease[], perPage = 1): string {
  const api = '/repos/o/r/releases';
  const json = (r: ServedRelease) => ({
    tag_name: r.tag, name: r.tag,
    assets: r.assets.map((a) => ({
      name: a.name, size: a.announcedSize ?? a.data.length,
      browser_download_url: `${server.base}/releases/download/${r.tag}/${a.name}`,
      digest: a.digest === null ? null : a.digest ?? `sha256:${sha256(a.data)}`,
    })),
  });
  server.route(api, (req, res) => {
    const page = Number(new URL(req.url!, server.base).searchParams.get('page') ?? '1');
    const slice = releases.slice((page - 1) * perPage, page * perPage);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (page * perPage < releases.length) headers.link = `<${server.base}${api}?page=${page + 1}>; rel="next", <${server.base}${api}?page=${Math.ceil(releases.length / perPage)}>; rel="last"`;
    res.writeHead(200, headers);
    res.end(JSON.stringify(slice.map(json)));
  });
  if (releases[0]) server.route(`${api}/latest`, (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(json(releases[0]!))); });
  for (const r of releases) {
    server.route(`${api}/tags/${r.tag}`, (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(json(r))); });
    for (const a of r.assets) {
      server.route(`/releases/download/${r.tag}/${a.name}`, (_req, res) => { res.writeHead(302, { location: `/dl/${r.tag}/${a.name}` }); res.end(); });
      server.file(`/dl/${r.tag}/${a.name}`, a.data);
    }
  }
  return `${server.base}${api}`;
}

/** An S3-shaped bucket at `<base>/bucket/`: ListBucket XML (V2 continuation, `maxKeys` per page) and the objects. */
export function serveBucket(server: TestServer, objects: Record<string, Buffer>, maxKeys = 2): string {
  const keys = Object.keys(objects).sort();
  server.route('/bucket/', (req, res) => {
    const q = new URL(req.url!, server.base).searchParams;
    const token = q.get('continuation-token');
    const start = token ? Number(Buffer.from(token, 'base64').toString()) : 0;
    const page = keys.slice(start, start + maxKeys);
    const truncated = start + maxKeys < keys.length;
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name>` +
      `<IsTruncated>${truncated}</IsTruncated>` +
      (truncated ? `<NextContinuationToken>${Buffer.from(String(start + maxKeys)).toString('base64')}</NextContinuationToken>` : '') +
      page.map((k) => `<Contents><Key>${k.replace(/&/g, '&amp;')}</Key><Size>${objects[k]!.length}</Size></Contents>`).join('') +
      '</ListBucketResult>';
    res.writeHead(200, { 'content-type': 'application/xml' });
    res.end(xml);
  });
  for (const k of keys) server.file(`/bucket/${k}`, objects[k]!);
  return `${server.base}/bucket/`;
}

/** A plain HTTP forward proxy (absolute-URI requests), counting what it forwarded. */
export async function startProxy(): Promise<{ url: string; forwarded: string[]; close(): Promise<void> }> {
  const forwarded: string[] = [];
  const server = http.createServer((req, res) => {
    forwarded.push(req.url ?? '');
    const target = new URL(req.url ?? '');
    const upstream = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(upstream);
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    forwarded,
    close: () => { for (const s of sockets) s.destroy(); return new Promise<void>((r) => server.close(() => r())); },
  };
}

export { gzipSync };
