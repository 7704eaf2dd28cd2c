// VMs: boot images under QEMU, manage instances and volumes (capstan run / stop / delete /
// instances / volume create).
export { boot, bootInstance, type BootOptions, type BootImage, type BootInstanceOptions } from './boot.js';
export { Vm, type VmExit, type ReadyMarker, type StopOptions } from './vm.js';
export {
  listInstances, stopInstance, deleteInstance, instancePaths, instanceNameFor, readInstanceConfig,
  type InstanceInfo, type InstanceConfig, type InstanceOptions, type StopInstanceOptions, type InstancePaths,
} from './instances.js';
export {
  createVolume, createVolumeFile, deleteVolume, packageVolumes, parseVolumeMetadata, volumeMetadataText, VOLUMES_DIR,
  type CreateVolumeOptions, type CreateVolumeFileOptions, type VolumeInfo, type VolumeMetadata, type PackageVolume,
} from './volumes.js';
export { parseVolume, type VolumeSpec, type AioMode, type CacheMode } from './drives.js';
export { parseForward, randomMac, type ForwardSpec, type PortForward, type NetworkMode } from './network.js';
export { findQemu, DEFAULT_QEMU_PATHS } from './qemu-binary.js';
export { chooseAccel, kvmFailureIn, type Accel, type AccelChoice } from './accel.js';
export { runtimeCmdline, type RuntimeCmdlineOptions } from './runtime-cmdline.js';
export { readDiskCmdline } from './overlay.js';
export type { ShutdownOutcome } from './shutdown.js';
export { runUploadVm, guestFailureLine, UploadVmError, CPIOD_READY, CPIOD_FINISHED, type UploadVmOptions, type UploadVmResult, type UploadSink, type UploadStage } from './zfs-builder.js';
export * from './libvirt/index.js';
