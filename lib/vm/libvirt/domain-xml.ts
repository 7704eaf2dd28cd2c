// The libvirt domain of an OSv instance, from the same settings a local QEMU boot takes:
// memory, CPUs, the disk (a volume of a storage pool), the serial console into a file, the
// network. ACPI is not optional: without <acpi/> libvirt starts QEMU with ACPI off, OSv finds no
// HPET under TCG and halts ("Neither paravirtual clock nor HPET is available").

export const METADATA_NS = 'urn:gulp-capstan:instance:1';
/** Every domain we define has a title starting with this (how our instances are told apart). */
export const TITLE_PREFIX = 'gulp-capstan';

export type LibvirtNetwork =
  | { mode: 'none' }
  | { mode: 'nat'; network: string; mac?: string | undefined }
  | { mode: 'bridge'; bridge: string; mac?: string | undefined };

export interface DomainSpec {
  name: string;
  /** `kvm` or `qemu` (TCG). */
  virtType: 'kvm' | 'qemu';
  memoryMiB: number;
  cpus: number;
  pool: string;
  diskVolume: string;
  diskFormat: 'qcow2' | 'raw';
  /** Where QEMU writes the serial console on the host. */
  consolePath: string;
  /** The console file's volume, when it is one (to read it back over the API). */
  consoleVolume?: string | undefined;
  network: LibvirtNetwork;
  /** The image the instance was made from (for listings). */
  image: string;
  cmdline: string;
}

export function domainXml(d: DomainSpec): string {
  const nic = d.network.mode === 'none' ? ''
    : d.network.mode === 'nat'
      ? `    <interface type='network'>\n      <source network='${attr(d.network.network)}'/>\n${mac(d.network.mac)}      <model type='virtio'/>\n    </interface>\n`
      : `    <interface type='bridge'>\n      <source bridge='${attr(d.network.bridge)}'/>\n${mac(d.network.mac)}      <model type='virtio'/>\n    </interface>\n`;
  return `<domain type='${d.virtType}'>
  <name>${text(d.name)}</name>
  <title>${text(`${TITLE_PREFIX}: ${d.image}`)}</title>
  <metadata>
    <capstan:instance xmlns:capstan='${METADATA_NS}'>
      <capstan:image>${text(d.image)}</capstan:image>
      <capstan:cmdline>${text(d.cmdline)}</capstan:cmdline>
      <capstan:disk pool='${attr(d.pool)}' volume='${attr(d.diskVolume)}'/>
${d.consoleVolume ? `      <capstan:console pool='${attr(d.pool)}' volume='${attr(d.consoleVolume)}'/>\n` : ''}    </capstan:instance>
  </metadata>
  <memory unit='MiB'>${d.memoryMiB}</memory>
  <vcpu>${d.cpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
${d.virtType === 'kvm' ? "  <cpu mode='host-passthrough'/>\n" : ''}  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='${d.diskFormat}' cache='writeback'/>
      <source pool='${attr(d.pool)}' volume='${attr(d.diskVolume)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
${nic}    <serial type='file'>
      <source path='${attr(d.consolePath)}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='${attr(d.consolePath)}' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
  </devices>
</domain>
`;
}

/** What our metadata element says about a domain (from `virsh metadata`). */
export interface DomainMetadata {
  image?: string | undefined;
  cmdline?: string | undefined;
  disk?: { pool: string; volume: string } | undefined;
  console?: { pool: string; volume: string } | undefined;
}

export function parseDomainMetadata(xml: string): DomainMetadata {
  const el = (tag: string) => new RegExp(`<(?:\\w+:)?${tag}>([\\s\\S]*?)</(?:\\w+:)?${tag}>`).exec(xml)?.[1];
  const ref = (tag: string) => {
    const m = new RegExp(`<(?:\\w+:)?${tag}\\s+([^>]*)/?>`).exec(xml)?.[1];
    if (!m) return undefined;
    const pool = /pool=['"]([^'"]*)['"]/.exec(m)?.[1];
    const volume = /volume=['"]([^'"]*)['"]/.exec(m)?.[1];
    return pool !== undefined && volume !== undefined ? { pool: unescape(pool), volume: unescape(volume) } : undefined;
  };
  const image = el('image');
  const cmdline = el('cmdline');
  return { image: image && unescape(image), cmdline: cmdline && unescape(cmdline), disk: ref('disk'), console: ref('console') };
}

function mac(address: string | undefined): string {
  return address ? `      <mac address='${attr(address)}'/>\n` : '';
}

function text(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function attr(s: string): string {
  return text(s).replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

function unescape(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&apos;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');
}
