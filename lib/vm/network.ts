// Guest networking (osv-image-formats.md §6, capstan-behaviour.md §2.7): user-mode NAT with
// port forwards, or a bridge / tap device with a MAC address. Host ports are never fixed by us:
// a forward whose host port is 0 or omitted gets a free port, reported back to the caller.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { VmError } from '../errors.js';
import { findBridgeHelper } from './qemu-binary.js';

export type NetworkMode = 'nat' | 'bridge' | 'tap' | 'none';

/** A port forward as given: `"8080:80"`, `"0:80"`, `":80"`, `"80"`, `"127.0.0.1:8080:80"`, suffix `/udp`. */
export type ForwardSpec = string | {
  /** Host port; 0 or absent: pick a free one. */
  host?: number | undefined;
  guest: number;
  protocol?: 'tcp' | 'udp' | undefined;
  /** Host address to listen on; default 127.0.0.1. */
  address?: string | undefined;
};

/** A forward with its host port decided. */
export interface PortForward {
  protocol: 'tcp' | 'udp';
  address: string;
  host: number;
  guest: number;
}

export interface NetworkOptions {
  /** Default `nat`. */
  mode?: NetworkMode | undefined;
  /** NAT only: forwards host → guest (repeatable). */
  forward?: ForwardSpec[] | undefined;
  /** bridge: bridge name (default virbr0); tap: interface name (required). */
  device?: string | undefined;
  /** bridge / tap: the NIC's MAC; default random, locally administered, unicast. */
  mac?: string | undefined;
}

/** What a network plan resolved to (free ports picked, MAC chosen). */
export interface NetworkPlan {
  mode: NetworkMode;
  forwards: PortForward[];
  device?: string | undefined;
  mac?: string | undefined;
}

const DEFAULT_FORWARD_ADDRESS = '127.0.0.1';

export function parseForward(spec: ForwardSpec): Omit<PortForward, 'host'> & { host: number } {
  if (typeof spec !== 'string') {
    const protocol = spec.protocol ?? 'tcp';
    checkPort(spec.guest, 'guest', JSON.stringify(spec), false);
    if (spec.host !== undefined) checkPort(spec.host, 'host', JSON.stringify(spec), true);
    if (protocol !== 'tcp' && protocol !== 'udp') throw forwardError(JSON.stringify(spec), `protocol must be tcp or udp`);
    return { protocol, address: spec.address ?? DEFAULT_FORWARD_ADDRESS, host: spec.host ?? 0, guest: spec.guest };
  }
  let text = spec.trim();
  let protocol: 'tcp' | 'udp' = 'tcp';
  const proto = /\/(tcp|udp)$/i.exec(text);
  if (proto) {
    protocol = proto[1]!.toLowerCase() as 'tcp' | 'udp';
    text = text.slice(0, proto.index);
  }
  // address may be an IPv4 address; the last two fields are host and guest ports.
  const parts = text.split(':');
  if (parts.length > 3 || parts.length === 0) throw forwardError(spec, 'expected [address:]host:guest[/udp]');
  const guestText = parts.pop()!;
  const hostText = parts.pop() ?? '';
  const address = parts.pop() || DEFAULT_FORWARD_ADDRESS;
  const guest = Number(guestText);
  const host = hostText === '' ? 0 : Number(hostText);
  if (!/^\d+$/.test(guestText)) throw forwardError(spec, `guest port "${guestText}" is not a number`);
  if (hostText !== '' && !/^\d+$/.test(hostText)) throw forwardError(spec, `host port "${hostText}" is not a number`);
  checkPort(guest, 'guest', spec, false);
  checkPort(host, 'host', spec, true);
  return { protocol, address, host, guest };
}

function checkPort(port: number, which: string, spec: string, zeroOk: boolean): void {
  if (!Number.isInteger(port) || port < (zeroOk ? 0 : 1) || port > 65535) {
    throw forwardError(spec, `${which} port ${port} is out of range (${zeroOk ? 0 : 1}..65535)`);
  }
}

function forwardError(spec: string, problem: string): VmError {
  return new VmError(`bad port forward "${spec}": ${problem}`, {
    code: 'E_VM_FORWARD',
    hint: 'Write forwards as "host:guest" (e.g. "8080:80", "0:80" for a free host port), optionally "address:host:guest" and "/udp".',
  });
}

/** A free port on `address` for `protocol`, as the OS hands it out right now. */
export function freePort(address: string, protocol: 'tcp' | 'udp'): Promise<number> {
  if (protocol === 'udp') {
    return import('node:dgram').then(({ createSocket }) => new Promise<number>((resolve, reject) => {
      const sock = createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
      sock.once('error', reject);
      sock.bind(0, address, () => {
        const { port } = sock.address();
        sock.close(() => resolve(port));
      });
    }));
  }
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, address, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A random unicast, locally administered MAC (`b0 = (b0 & 0xFE) | 0x02`, like Capstan). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Resolves free host ports and the MAC. */
export async function planNetwork(options: NetworkOptions = {}): Promise<NetworkPlan> {
  const mode = options.mode ?? 'nat';
  if (!['nat', 'bridge', 'tap', 'none'].includes(mode)) {
    throw new VmError(`unknown network mode "${mode}"`, { code: 'E_VM_NETWORK', hint: 'Use nat, bridge, tap or none.' });
  }
  const forwards: PortForward[] = [];
  if ((options.forward?.length ?? 0) > 0 && mode !== 'nat') {
    throw new VmError(`port forwards need network mode nat, not ${mode}`, {
      code: 'E_VM_NETWORK', hint: 'Drop `forward` or use `network: "nat"`; on a bridge or tap the guest has its own address.',
    });
  }
  for (const spec of options.forward ?? []) {
    const f = parseForward(spec);
    forwards.push({ ...f, host: f.host === 0 ? await freePort(f.address, f.protocol) : f.host });
  }
  if (mode === 'nat' || mode === 'none') return { mode, forwards };
  const mac = options.mac ?? randomMac();
  if (!MAC_RE.test(mac)) {
    throw new VmError(`bad MAC address "${mac}"`, { code: 'E_VM_NETWORK', hint: 'Write it as six hex pairs, e.g. 52:54:00:12:34:56.' });
  }
  if (mode === 'tap' && !options.device) {
    throw new VmError('tap networking needs the tap interface name', { code: 'E_VM_NETWORK', hint: 'Set `networkDevice` (e.g. "tap0").' });
  }
  return { mode, forwards, device: options.device ?? (mode === 'bridge' ? 'virbr0' : undefined), mac };
}

/**
 * QEMU arguments for a resolved plan. The NIC gets `romfile=` (no iPXE option ROM): we never
 * network-boot, it saves firmware time, and QEMU then starts on hosts without ipxe-qemu.
 */
export function networkArgs(plan: NetworkPlan, env: NodeJS.ProcessEnv = process.env): string[] {
  switch (plan.mode) {
    case 'none':
      return [];
    case 'nat': {
      const fwd = plan.forwards.map((f) => `,hostfwd=${f.protocol}:${f.address}:${f.host}-:${f.guest}`).join('');
      return ['-netdev', `user,id=un0,net=192.168.122.0/24,host=192.168.122.1${fwd}`, '-device', 'virtio-net-pci,netdev=un0,romfile='];
    }
    case 'bridge': {
      const helper = findBridgeHelper(env);
      if (!helper) {
        throw new VmError('bridge networking needs qemu-bridge-helper, which was not found', {
          code: 'E_VM_NETWORK', hint: 'Install it (qemu-system-common) or set $CAPSTAN_QEMU_BRIDGE_HELPER.',
        });
      }
      return ['-netdev', `bridge,id=hn0,br=${plan.device},helper=${helper}`, '-device', `virtio-net-pci,netdev=hn0,id=nic1,mac=${plan.mac},romfile=`];
    }
    case 'tap':
      return ['-netdev', `tap,id=hn0,ifname=${plan.device},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=hn0,id=nic1,mac=${plan.mac},romfile=`];
  }
}
