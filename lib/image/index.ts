// The image domain's public API: composing OSv disks, their formats, and reading them back.
export { ImageComposer, checkImageFormat, type ComposeImageOptions, type ComposedImage } from './compose.js';
export { describeImage, readImageFile, OsvImage, type ImageDescription, type RofsListingEntry, type RofsEntryType } from './describe.js';
export {
  createDiskWriter, createQcow2Overlay, openDiskImage, openRawDisk, RawDiskWriter, IMAGE_FORMATS,
  type DiskFormat, type ImageFormat, type DiskImageReader, type DiskWriter, type DiskWriterOptions, type OverlayOptions,
} from './disk.js';
export { probeImageFormat, probeImageBytes, capstanInfo, type ProbedFormat } from './probe.js';
export {
  VmdkSparseWriter, writeStreamOptimizedVmdk, openVmdk, isVmdkSparse, isVmdkDescriptor, VMDK_MAGIC, VMDK_SUBFORMATS,
  type VmdkSubformat, type VmdkReader, type VmdkSparseWriterOptions, type StreamOptimizedOptions,
} from './vmdk.js';
export { VdiWriter, openVdi, isVdi, decodeVdiHeader, VDI_SIGNATURE, type VdiHeader, type VdiReader, type VdiWriterOptions } from './vdi.js';
export { writeGceTarball, gceDiskSize, GCE_MEMBER, type GceTarOptions } from './gce.js';
export { StagedDiskWriter, ExtentSet, type DiskSource, type DiskEmitter } from './staged.js';
export {
  CpioWriter, cpioArchive, checkCpioEntry, encodeCpioHeader, cpioPadding, isCpioRoot, CPIO_TRAILER, CPIO_MAX_FILE_SIZE,
  type CpioEntry, type CpioEntryType, type CpioSink, type CpioSummary, type CpioArchiveEntry,
} from './cpio.js';
export { Qcow2Writer, openQcow2, isQcow2, decodeQcow2Header, QCOW2_MAGIC, type Qcow2WriterOptions, type Qcow2Header } from './qcow2.js';
export { readLoader, resolveLoaderPath, DEFAULT_LOADER, KERNEL_OFFSET as LOADER_KERNEL_OFFSET, type OsvLoader } from './loader.js';
export {
  encodeCmdlineArea, checkCmdline, decodeCmdline, CMDLINE_OFFSET, CMDLINE_AREA_END, CMDLINE_AREA_SIZE, MAX_CMDLINE_BYTES,
} from './cmdline.js';
export {
  encodePartitionEntry, decodePartitionEntry, withRootPartition, partitionStartFor, hasBootSignature as hasMbrBootSignature,
  ROOT_PARTITION_ENTRY, PARTITION_ALIGNMENT, type PartitionEntry,
} from './mbr.js';
export { RofsBuilder, splitGuestPath as splitRofsGuestPath, type RofsSink, type RofsBuilderOptions, type RofsSummary, type EntryOptions as RofsEntryOptions, type AddResult as RofsAddResult } from './rofs-builder.js';
export {
  encodeSuperBlock as encodeRofsSuperBlock, decodeSuperBlock as decodeRofsSuperBlock,
  encodeStructure as encodeRofsStructure, decodeStructure as decodeRofsStructure, ROFS_MAGIC, ROFS_VERSION, ROFS_BLOCK_SIZE,
  ROFS_MAX_NAME_BYTES, ROFS_MAX_SYMLINK_BYTES, type RofsSuperBlock, type RofsDirEntry, type RofsInode,
} from './rofs.js';
export { parseDiskSize } from './size.js';
export { ZfsImageComposer, UPDATE_NEEDS, type ZfsComposeOptions, type ComposedZfsImage, type ZfsComposeSummary } from './zfs-compose.js';
export { planZfsDisk, writeZfsDisk, checkZfsDisk, convertQcow2Disk, ZFS_DEFAULT_SIZE, ZFS_MIN_VDEV, type ZfsDiskPlan, type ZfsDiskCheck } from './zfs-disk.js';
export { readZfsLabel, decodeLabelNvlist, type ZfsLabel, type PoolState } from './zfs-label.js';
export { builderCmdline, zfsImageCmdline, decideZfsLayout, UPDATE_CMDLINE, ZFS_LAYOUTS, type ZfsLayout } from './zfs-layout.js';
export { hashCachePath, readHashCache, parseHashCache, formatHashCache, writeHashCache, planZfsUpdate, type HashCache, type CachedHash, type ZfsUpdatePlan } from './hash-cache.js';
export { kernelOfLoader, inspectKernel, findBootfs, bootfsFile, type KernelFacts, type Bootfs, type BootfsEntry, type ZfsRootDataset } from './osv-kernel.js';
export { fastlzDecompress, decompressOsvLz } from './fastlz.js';
