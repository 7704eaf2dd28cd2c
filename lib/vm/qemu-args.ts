// The QEMU command line (osv-image-formats.md §6), adapted for today's QEMU:
//  - `-nodefaults -display none`: no VGA, no default NIC or monitor; the console is COM1 only.
//  - COM1 is our pipe (`-chardev stdio,signal=off`), or a file for a detached VM.
//  - `-no-reboot`: a guest that crashes into a reset ends QEMU instead of rebooting for ever.
//  - virtio-rng is always added (Capstan meant to, its version check skips it on QEMU ≥ 2).
//  - `-accel kvm -cpu host` or `-accel tcg`; `-pidfile` so a detached instance can be killed.
import type { Accel } from './accel.js';
import { driveArgs, type Drive } from './drives.js';
import { networkArgs, type NetworkPlan } from './network.js';

export interface QemuPlan {
  memoryMiB: number;
  cpus: number;
  accel: Accel;
  /** CPU model under KVM (default `host`). */
  kvmCpu: string;
  disk: Drive;
  volumes: Drive[];
  /** Direct kernel boot (`-kernel`/`-append`). */
  kernel?: { path: string; append: string } | undefined;
  network: NetworkPlan;
  /** QMP unix socket (for stop, list, and anyone else). */
  monitor: string;
  /** A second QMP socket that only we use, to learn why the guest ended (SHUTDOWN reason). */
  events?: string | undefined;
  pidFile: string;
  /** Where COM1 goes: our stdio pipe, or a file (detached). */
  console: { kind: 'stdio' } | { kind: 'file'; path: string };
  /** The isa-debug-exit device at port 0xf4 (test guests leave QEMU through it). */
  debugExit: boolean;
  /** VNC on a unix socket (with a VGA card); off by default. */
  vnc?: string | undefined;
  rebootOnReset: boolean;
  extra: string[];
}

export function qemuArgs(plan: QemuPlan, env: NodeJS.ProcessEnv = process.env): string[] {
  const args: string[] = ['-nodefaults', '-no-user-config', '-name', 'osv'];
  args.push('-display', 'none');
  if (plan.vnc) args.push('-vga', 'std', '-vnc', `unix:${plan.vnc}`);
  args.push('-m', String(plan.memoryMiB), '-smp', String(plan.cpus));
  if (plan.accel === 'kvm') args.push('-accel', 'kvm', '-cpu', plan.kvmCpu);
  else args.push('-accel', 'tcg');
  args.push(...driveArgs(plan.disk, plan.volumes, plan.kernel !== undefined));
  args.push('-device', 'virtio-rng-pci');
  if (plan.console.kind === 'stdio') args.push('-chardev', 'stdio,id=console,signal=off');
  else args.push('-chardev', `file,id=console,path=${plan.console.path.replaceAll(',', ',,')}`);
  args.push('-serial', 'chardev:console');
  if (plan.kernel) args.push('-kernel', plan.kernel.path, '-append', plan.kernel.append);
  args.push(...networkArgs(plan.network, env));
  args.push(
    '-chardev', `socket,id=charmonitor,path=${plan.monitor.replaceAll(',', ',,')},server=on,wait=off`,
    '-mon', 'chardev=charmonitor,id=monitor,mode=control',
  );
  if (plan.events) {
    // wait=on: QEMU starts the guest only once we listen, so a guest that ends within
    // milliseconds still has its shutdown reason seen (we always connect; see Vm.watchEvents).
    args.push(
      '-chardev', `socket,id=charevents,path=${plan.events.replaceAll(',', ',,')},server=on,wait=on`,
      '-mon', 'chardev=charevents,id=events,mode=control',
    );
  }
  args.push('-pidfile', plan.pidFile);
  if (plan.debugExit) args.push('-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04');
  if (!plan.rebootOnReset) args.push('-no-reboot');
  args.push(...plan.extra);
  return args;
}

/** The QEMU command line as one shell-quoted string, for error messages and logs. */
export function formatCommand(qemu: string, args: string[]): string {
  return [qemu, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}
