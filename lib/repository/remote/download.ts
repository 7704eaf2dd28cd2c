// Downloading one file into the local repository, safely: the bytes go to a temp file beside
// the destination and are renamed over it only once complete and verified (byte count against
// Content-Length and the announced size, sha256 digest when the remote gives one, and the
// caller's own check of what the file is). A truncated, corrupt or interrupted download is never
// left where a later build would use it. Two builds pulling the same file at once each write
// their own temp file; the renames are atomic and the content the same.
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { createGunzip } from 'node:zlib';
import { TempFile } from '../../atomic-file.js';
import { CapstanError, RepositoryError } from '../../errors.js';
import type { EventSink } from '../../events.js';
import { startProgress } from '../../progress.js';
import type { HttpClient } from './http.js';

export interface DownloadRequest {
  url: string;
  /** Final path of the file. Its folder is created. */
  dest: string;
  /** Names the thing in messages ("the OSv loader osv-loader"). */
  what: string;
  /** Size the remote announced (e.g. the GitHub asset's `size`): of the bytes served, before gunzip. */
  size?: number | undefined;
  /** Lowercase hex sha256 of the bytes served, when the remote gives one. */
  sha256?: string | undefined;
  /** Gunzip while downloading (Capstan does so for URLs ending in .gz). */
  gunzip?: boolean | undefined;
  /** Checks the complete temp file before it is renamed into place; throws to refuse it. */
  verify?: ((tempFile: string) => Promise<void>) | undefined;
}

export interface DownloadContext {
  http: HttpClient;
  events?: EventSink | undefined;
  silent?: boolean | undefined;
  /** Attempts for a transfer broken mid-way (the connection itself is retried by HttpClient). Default 3. */
  attempts?: number | undefined;
}

export interface DownloadResult {
  path: string;
  /** Bytes served (before gunzip). */
  bytes: number;
  ms: number;
}

const EVENT_EVERY_MS = 500;

export async function download(request: DownloadRequest, context: DownloadContext): Promise<DownloadResult> {
  const dir = path.dirname(request.dest);
  await mkdir(dir, { recursive: true });
  const attempts = Math.max(1, context.attempts ?? 3);
  for (let attempt = 1; ; attempt++) {
    const temp = TempFile.beside(request.dest, 'part'); // never a partial download left in the repository
    try {
      const result = await transfer(request, context, temp);
      await request.verify?.(temp.path);
      await temp.publish(request.dest);
      return result;
    } catch (error) {
      await temp.discard();
      const transient = error instanceof RepositoryError && (error.code === 'E_REMOTE_NETWORK' || error.code === 'E_DOWNLOAD_TRUNCATED');
      if (!transient || attempt >= attempts) throw error;
      await delay(250 * attempt);
    }
  }
}

async function transfer(request: DownloadRequest, context: DownloadContext, temp: TempFile): Promise<DownloadResult> {
  const started = Date.now();
  const response = await context.http.open(request.url, request.what);
  const declared = Number(response.headers.get('content-length') ?? NaN);
  const contentLength = Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
  if (request.size !== undefined && contentLength !== undefined && contentLength !== request.size) {
    response.abort();
    throw sizeError(request, `the server sends ${contentLength} bytes but ${request.size} were announced`);
  }
  const total = request.size ?? contentLength;
  const hash = createHash('sha256');
  const progress = startProgress(path.basename(request.dest), total, { silent: context.silent });
  let bytes = 0;
  let lastEvent = 0;
  const counted = async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of response.body) {
      bytes += chunk.length;
      if (total !== undefined && bytes > total) {
        response.abort();
        throw sizeError(request, `more than the ${total} bytes announced arrived`);
      }
      hash.update(chunk);
      progress.update(bytes);
      const now = Date.now();
      if (context.events && now - lastEvent >= EVENT_EVERY_MS) {
        lastEvent = now;
        context.events({ event: 'download', url: request.url, bytes, total, done: false });
      }
      yield chunk;
    }
  };
  try {
    const out = await temp.writeStream();
    const stages: [Readable, ...Writable[]] = [Readable.from(counted())];
    if (request.gunzip) stages.push(createGunzip());
    stages.push(out);
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages);
  } catch (error) {
    if (error instanceof CapstanError) throw error;
    if ((error as { code?: string }).code?.startsWith('Z_')) {
      if (total !== undefined && bytes < total) throw truncated(request, bytes, total);
      throw new RepositoryError(`${request.what} is not valid gzip data: ${(error as Error).message}`, {
        code: 'E_DOWNLOAD_CORRUPT', file: request.url, cause: error, hint: 'The mirror serves a damaged file; nothing was stored. Try again later or use another mirror.',
      });
    }
    throw error;
  } finally {
    progress.stop();
  }
  if (total !== undefined && bytes < total) throw truncated(request, bytes, total);
  const digest = hash.digest('hex');
  if (request.sha256 !== undefined && digest !== request.sha256.toLowerCase()) {
    throw new RepositoryError(`${request.what}: sha256 ${digest} does not match the ${request.sha256} the remote announced`, {
      code: 'E_DOWNLOAD_DIGEST', file: request.url, hint: 'The file was damaged or replaced on the way; nothing was stored. Try again, or use another mirror.',
    });
  }
  const ms = Date.now() - started;
  context.events?.({ event: 'download', url: request.url, bytes, total, done: true });
  return { path: request.dest, bytes, ms };
}

function truncated(request: DownloadRequest, bytes: number, total: number): RepositoryError {
  return new RepositoryError(`${request.what}: the download ended after ${bytes} of ${total} bytes`, {
    code: 'E_DOWNLOAD_TRUNCATED', file: request.url, hint: 'The connection broke off; nothing was stored. Run the build again to retry.',
  });
}

function sizeError(request: DownloadRequest, problem: string): RepositoryError {
  return new RepositoryError(`${request.what}: ${problem}`, {
    code: 'E_DOWNLOAD_SIZE', file: request.url, hint: 'The remote does not serve what it lists; nothing was stored. Try another mirror.',
  });
}
