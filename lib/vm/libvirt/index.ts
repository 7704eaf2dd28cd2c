// The libvirt run target: boot on any libvirt host (local or remote URI) through virsh.
export {
  bootLibvirt, listLibvirtInstances, stopLibvirtInstance, deleteLibvirtInstance, LibvirtVm,
  type LibvirtBootOptions, type LibvirtOptions, type LibvirtExit, type LibvirtImage, type LibvirtInstanceInfo,
} from './libvirt.js';
export { domainXml, parseDomainMetadata, type DomainSpec, type LibvirtNetwork } from './domain-xml.js';
export { Virsh, libvirtUri, type VirshOptions } from './virsh.js';
