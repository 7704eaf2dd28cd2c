// virsh as a child process: every libvirt call of the libvirt target, against a URI that may
// name another host (qemu+ssh://host/system, qemu+tcp://…). No well-kept Node client for
// libvirt exists (the native bindings on npm are forks with a few hundred downloads), and virsh
// speaks every transport libvirt has; each call costs a process (~20-40 ms). node's spawn
// rather than execa, as lib/vm does: the library's import graph stays free of execa.
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { CloudError } from '../../errors.js';

export interface VirshOptions {
  /** libvirt URI; default $LIBVIRT_DEFAULT_URI, else qemu:///system. */
  uri?: string | undefined;
  /** virsh executable; default `virsh` on PATH. */
  virsh?: string | undefined;
  /** ms a call may take (uploads excepted). Default 60000. */
  timeoutMs?: number | undefined;
  hostEnv?: NodeJS.ProcessEnv | undefined;
}

export function libvirtUri(options: VirshOptions = {}): string {
  return options.uri ?? (options.hostEnv ?? process.env)['LIBVIRT_DEFAULT_URI'] ?? 'qemu:///system';
}

export function libvirtService(uri: string): string {
  return `libvirt (${uri})`;
}

export class Virsh {
  readonly uri: string;
  private readonly bin: string;
  private readonly timeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;

  constructor(options: VirshOptions = {}) {
    this.uri = libvirtUri(options);
    this.bin = options.virsh ?? 'virsh';
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.env = options.hostEnv ?? process.env;
  }

  /** Runs `virsh -c URI args…`; resolves with stdout; a failure says what virsh said. */
  async run(args: readonly string[], what: string, o: { input?: Readable | string | undefined; timeoutMs?: number | undefined; accept?: RegExp | undefined } = {}): Promise<string> {
    const r = await runChild(this.bin, ['-q', '-c', this.uri, ...args], { env: this.env, timeoutMs: o.timeoutMs ?? this.timeoutMs, input: o.input });
    if (r.exitCode === 0) return r.stdout;
    const said = String(r.stderr).split('\n').map((l) => l.replace(/^error:\s*/, '').trim()).filter(Boolean).join(': ');
    if (o.accept?.test(said)) return '';
    if (r.spawnError === 'ENOENT') {
      throw new CloudError(`cannot ${what}: ${this.bin} is not installed`, {
        code: 'E_LIBVIRT_NO_VIRSH', service: libvirtService(this.uri), hint: 'Install libvirt\'s client (Debian: apt-get install libvirt-clients).',
      });
    }
    const timedOut = r.timedOut ? `no answer within ${(o.timeoutMs ?? this.timeoutMs) / 1000} s` : undefined;
    throw new CloudError(`${libvirtService(this.uri)}: cannot ${what}: ${timedOut ?? (said || `virsh ended with status ${r.exitCode}`)}`, {
      code: /failed to connect|Cannot recv data|Connection refused|No such file or directory.*sock/i.test(said) ? 'E_LIBVIRT_CONNECT'
        : /not found|failed to get (domain|pool|vol)|no (domain|storage (pool|vol))/i.test(said) ? 'E_LIBVIRT_NOT_FOUND' : 'E_LIBVIRT',
      service: libvirtService(this.uri),
      hint: /failed to connect|Connection refused|sock/i.test(said)
        ? `Check that libvirtd runs on that host and that the URI is right (virsh -c ${this.uri} version).`
        : /storage pool/i.test(said)
          ? 'Create the pool first, e.g. virsh pool-define-as default dir --target /var/lib/libvirt/images && virsh pool-start default.'
          : undefined,
    });
  }
}

interface ChildResult { exitCode: number | null; stdout: string; stderr: string; timedOut: boolean; spawnError?: string | undefined }

function runChild(bin: string, args: string[], o: { env: NodeJS.ProcessEnv; timeoutMs: number; input?: Readable | string | undefined }): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env: o.env, stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let spawnError: string | undefined;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutMs);
    child.once('error', (error: NodeJS.ErrnoException) => { spawnError = error.code ?? error.message; });
    child.once('close', (code) => { clearTimeout(timer); resolve({ exitCode: spawnError ? null : code, stdout, stderr, timedOut, spawnError }); });
    if (typeof o.input === 'string') child.stdin!.end(o.input);
    else if (o.input) {
      o.input.on('error', () => child.kill('SIGKILL'));
      o.input.pipe(child.stdin!);
    }
    child.stdin?.on('error', () => { /* virsh ended early: its status says why */ });
  });
}
