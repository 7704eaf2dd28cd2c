// Machine-readable events: what a build does, as plain objects, for CI and editors (`--json`
// writes one per line). Steps and APIs take an `events` sink in their options; nothing is
// global, so two builds in one process report to their own sinks.

export interface ForwardEvent {
  protocol: 'tcp' | 'udp';
  /** The host port actually bound. */
  host: number;
  guest: number;
}

export type CapstanEvent =
  | { event: 'step-start'; step: string }
  | { event: 'step-end'; step: string; files?: number | undefined; bytes?: number | undefined; ms: number }
  | { event: 'download'; url: string; bytes: number; total?: number | undefined; done: boolean }
  | { event: 'pull'; kind: 'loader' | 'kernel' | 'zfs-builder' | 'package' | 'image'; name: string; path: string; release?: string | undefined; url: string }
  | { event: 'image'; path: string; format: string; size: number }
  | { event: 'vm-start'; pid: number | undefined; instance: string; forwards: ForwardEvent[] }
  | { event: 'vm-ready'; instance: string; ms: number }
  | { event: 'vm-exit'; instance: string; status: number | null; signal?: string | null | undefined; reason?: string | undefined }
  /** unikernel:watch: the first VM is up and the watcher sees changes from now on (once per session). */
  | { event: 'watching'; instance: string }
  | { event: 'upload'; target: 'glance' | 'libvirt'; image: string; bytes: number; total: number; done: boolean }
  | { event: 'image-pushed'; target: 'glance' | 'libvirt'; id: string; name: string; size: number; checksum?: string | undefined; ms: number }
  | { event: 'flavor'; id: string; name: string; disk: number; ram: number; vcpus: number; picked: boolean }
  | { event: 'server'; id: string; name: string; status: string; reservation?: string | undefined; ms: number; fault?: string | undefined }
  | { event: 'warning'; message: string; code?: string | undefined; file?: string | undefined; line?: number | undefined }
  | { event: 'error'; code?: string | undefined; message: string; file?: string | undefined; line?: number | undefined };

export type EventSink = (event: CapstanEvent) => void;

/** A sink that writes one JSON object per line, each with an ISO-8601 `time`. */
export function jsonLines(out: NodeJS.WritableStream = process.stdout, now: () => Date = () => new Date()): EventSink {
  return (event) => {
    const { event: name, ...rest } = event;
    out.write(JSON.stringify({ event: name, time: now().toISOString(), ...rest }) + '\n');
  };
}
