// Capstan's `package compose-remote <host>`: hot update of a running guest. The files a
// compose would lay out (with `osv.compose-remote` as the bootstrap package, as in Capstan) are
// streamed as cpio newc to the guest's cpiod (`/tools/cpiod.so`, port 10000), which unpacks
// them into its filesystem — a ZFS root, writable. File data streams from the host files, never
// whole in memory; a file of 4 GiB or more cannot go through cpio and fails before anything is
// sent. Connects with retries (as Capstan: 20 tries, 500 ms apart), half-closes after the
// trailer and waits for the guest to close (cpiod has then written and synced everything).
import net from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type Vinyl from 'vinyl';
import { capstanOf } from '../carrier.js';
import { CapstanError, VmError } from '../errors.js';
import { CpioWriter, checkCpioEntry, type CpioSummary } from '../image/cpio.js';
import { fetchPackages } from '../steps/fetch-packages.js';
import { layoutFiles } from '../steps/layout-files.js';
import { resolveManifest } from '../steps/resolve-manifest.js';
import { readAhead } from '../vinyl/read-ahead.js';
import { src } from '../vinyl/src.js';
import { buildOptions } from './compose.js';
import type { UnikernelOptions } from './options.js';

export const CPIOD_PORT = 10000;
export const COMPOSE_REMOTE_BOOTSTRAP = 'osv.compose-remote';

export interface ComposeRemoteOptions extends UnikernelOptions {
  /** The guest running cpiod: a host name or address, optionally with `:port`. */
  host: string;
  /** Default 10000 (cpiod's default), unless `host` has a port. */
  port?: number | undefined;
  /** Connection attempts, 500 ms apart. Default 20 (Capstan's). */
  attempts?: number | undefined;
  /** ms to wait for the guest to close after the trailer. Default 120000. */
  closeTimeoutMs?: number | undefined;
}

export async function composeRemote(options: ComposeRemoteOptions): Promise<CpioSummary & { host: string; port: number }> {
  const { host, port } = hostAndPort(options.host, options.port);
  const s = buildOptions({ ...options, bootstrap: options.bootstrap ?? COMPOSE_REMOTE_BOOTSTRAP });
  const session: Session = { host, port, attempts: options.attempts ?? 20 };
  try {
    await pipeline(
      src(s.files, { cwd: s.cwd, dot: true, ignore: s.exclude }) as unknown as Readable,
      resolveManifest(s.manifest), fetchPackages(s.packages), layoutFiles(s.layout),
      (entries: AsyncIterable<Vinyl>) => send(entries, session),
    );
    await closeAndWait(session.socket!, options.closeTimeoutMs ?? 120_000, host, port);
  } catch (caught) {
    session.socket?.destroy();
    // The sending side's own failure first: pipeline() may report the upstream abort it caused.
    const error = session.failure ?? caught;
    if (error instanceof CapstanError) throw error;
    throw new VmError(`compose-remote to ${host}:${port} failed: ${(error as Error).message}`, {
      code: 'E_COMPOSE_REMOTE', cause: error, hint: 'Is the guest still running cpiod? Files sent so far may be in its filesystem already; run it again.',
    });
  }
  return { ...session.summary!, host, port };
}

interface Session {
  host: string;
  port: number;
  attempts: number;
  socket?: net.Socket | undefined;
  summary?: CpioSummary | undefined;
  failure?: unknown;
}

/** Streams the laid-out entries as cpio members, then the trailer; the guest is contacted at the first good entry. */
async function send(entries: AsyncIterable<Vinyl>, session: Session): Promise<void> {
  try {
    let cpio: CpioWriter | undefined;
    for await (const { file, content, release } of readAhead(entries, () => {})) {
      const meta = capstanOf(file);
      const guestPath = meta?.guestPath;
      if (!guestPath || guestPath === '/' || meta.kind === 'manifest' || meta.kind === 'package' || meta.kind === 'image') { await release(); continue; }
      const mode = (meta.mode ?? (file.stat ? file.stat.mode : 0o644)) & 0o7777;
      const type = file.isSymbolic() ? 'symlink' : file.isDirectory() ? 'dir' : 'file';
      const size = type === 'file' ? (file.isBuffer() ? file.contents.length : file.stat?.size ?? 0) : 0;
      checkCpioEntry({ path: guestPath, type, mode, size, source: file.path, ...(type === 'symlink' ? { target: file.symlink! } : {}) });
      if (!cpio) {
        const socket = session.socket = await connect(session.host, session.port, session.attempts);
        cpio = new CpioWriter((chunk) => (socket.write(chunk) ? undefined : new Promise<void>((r) => socket.once('drain', () => r()))));
      }
      if (type === 'dir') await cpio.directory(guestPath, mode);
      else if (type === 'symlink') await cpio.symlink(guestPath, file.symlink!, mode);
      else await cpio.file(guestPath, size, content ?? (file.isBuffer() ? file.contents : Buffer.alloc(0)), mode, file.path);
    }
    if (!cpio) throw new VmError('nothing to send: the package lays out no files', { code: 'E_COMPOSE_REMOTE_EMPTY' });
    session.summary = await cpio.end();
  } catch (error) {
    session.failure = error;
    throw error;
  }
}

function hostAndPort(host: string, port: number | undefined): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(host.trim());
  if (!m || !m[1]) throw new VmError(`"${host}" is not a host name or address`, { code: 'E_USAGE', hint: 'e.g. 192.168.122.15 or localhost:10000' });
  const p = port ?? (m[2] ? Number(m[2]) : CPIOD_PORT);
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new VmError(`bad port ${p}`, { code: 'E_USAGE' });
  return { host: m[1], port: p };
}

async function connect(host: string, port: number, attempts: number): Promise<net.Socket> {
  let last: Error | undefined;
  for (let i = 0; i < attempts; i++) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host, port }, () => { s.off('error', reject); resolve(s); });
        s.once('error', reject);
      });
    } catch (error) {
      last = error as Error;
      await delay(500);
    }
  }
  throw new VmError(`cannot connect to cpiod at ${host}:${port}: ${last?.message}`, {
    code: 'E_COMPOSE_REMOTE_CONNECT', hint: 'Run the guest with /tools/cpiod.so (e.g. its command line "/tools/cpiod.so --prefix /") and forward or open port 10000.',
  });
}

/** Half-close, then wait for cpiod to close its end (it has unpacked and synced everything by then). */
async function closeAndWait(socket: net.Socket, timeoutMs: number, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new VmError(`cpiod at ${host}:${port} did not close the connection within ${timeoutMs} ms`, { code: 'E_COMPOSE_REMOTE_TIMEOUT' })); }, timeoutMs);
    socket.once('close', () => { clearTimeout(timer); resolve(); });
    socket.once('error', () => { /* the close follows */ });
    socket.resume(); // cpiod sends nothing, but its FIN must be read
    socket.end();
  });
}
