// A VM's life as machine-readable events: vm-start (pid, instance, the host ports actually
// bound), vm-ready, vm-exit (status, reason). One place, so bootVm, run() and watch report
// the same way.
import type { EventSink } from '../events.js';
import type { Vm } from './vm.js';

export function reportVm(vm: Vm, events: EventSink | undefined, started = Date.now()): void {
  if (!events) return;
  events({ event: 'vm-start', pid: vm.pid, instance: vm.name, forwards: vm.forwards.map((f) => ({ protocol: f.protocol, host: f.host, guest: f.guest })) });
  vm.ready.then(() => events({ event: 'vm-ready', instance: vm.name, ms: Date.now() - started }), () => {});
  vm.exited.then((exit) => events({ event: 'vm-exit', instance: vm.name, status: exit.exitCode, signal: exit.signal, reason: exit.reason ?? exit.endedBy }), () => {});
}
