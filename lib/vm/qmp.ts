// A small QMP client (QEMU Machine Protocol over the instance's unix socket `osv.monitor`):
// read the greeting, negotiate capabilities, run commands one at a time. Unlike Capstan, which
// writes three JSON objects blindly, we wait for each reply, so `stop` knows what happened.
import net from 'node:net';

/** An asynchronous QMP event (`SHUTDOWN`, `POWERDOWN`, `GUEST_PANICKED`, …). */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
}

export class QmpClient {
  private buffer = '';
  private waiting: Array<(reply: QmpReply) => void> = [];
  private greeted: Promise<void>;
  private closed = false;
  /** Called for every asynchronous event. */
  onEvent: ((event: QmpEvent) => void) | undefined;

  private constructor(private readonly socket: net.Socket) {
    let greet!: () => void;
    this.greeted = new Promise((resolve) => { greet = resolve; });
    let haveGreeting = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try { msg = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
        if ('QMP' in msg && !haveGreeting) { haveGreeting = true; greet(); continue; }
        if ('event' in msg) { this.onEvent?.(msg as unknown as QmpEvent); continue; } // events are not replies
        this.waiting.shift()?.(msg as QmpReply);
      }
    });
    const fail = () => {
      this.closed = true;
      greet();
      for (const w of this.waiting.splice(0)) w({ error: { class: 'Disconnected', desc: 'QMP connection closed' } });
    };
    socket.on('close', fail);
    socket.on('error', fail);
  }

  /** Connects and negotiates; rejects when nothing listens on `socketPath` within `timeoutMs`. */
  static async connect(socketPath: string, timeoutMs = 2000): Promise<QmpClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`QMP connect to ${socketPath} timed out`)); }, timeoutMs);
      s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve(s); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    const client = new QmpClient(socket);
    await withTimeout(client.greeted, timeoutMs, 'QMP greeting');
    if (client.closed) throw new Error('QMP connection closed before the greeting');
    const reply = await client.execute('qmp_capabilities', undefined, timeoutMs);
    if (reply.error) throw new Error(`qmp_capabilities: ${reply.error.desc}`);
    return client;
  }

  /** Runs one command and resolves with its reply (an `error` reply included). */
  execute(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<QmpReply> {
    if (this.closed) return Promise.resolve({ error: { class: 'Disconnected', desc: 'QMP connection closed' } });
    const reply = new Promise<QmpReply>((resolve) => this.waiting.push(resolve));
    this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    return withTimeout(reply, timeoutMs, `QMP ${command}`);
  }

  /** Lets the process exit while this connection is open. */
  unref(): void { this.socket.unref(); }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e); });
  });
}

/** True when something accepts QMP connections on `socketPath` (Capstan's "Running"). */
export async function qmpAlive(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const c = await QmpClient.connect(socketPath, timeoutMs);
    c.close();
    return true;
  } catch {
    return false;
  }
}
