// The repository domain's public API: where Capstan keeps things, reading packages, the
// remote repositories (OSv GitHub releases, S3-style buckets) and Capstan's package commands.
export { capstanRoot, repositoryImagePath, repositoryPackagePaths, instanceDir } from './root.js';
export { readCapstanConfig, type CapstanConfig } from './config.js';
export { readMpm, isMetaMember, type MpmMember, type MpmMemberType } from './mpm.js';
export { findLocalPackage, resolveLocalPackages, readLocalPackage, type LocalPackage, type PackageContents } from './local.js';
export {
  RepositoryClient, ensureLoader, ensureZfsBuilder, pullLoader, pullPackage, pullZfsBuilder, pullImage, searchImages, ZFS_BUILDER, type PulledLoader, type RemoteImageInfo,
} from './pull.js';
export {
  listPackages, searchPackages, describePackage, updatePackages, buildPackage, importPackage, formatPackageDescriptor,
  versionNumber, needsUpdate, type ListedPackage, type RemotePackageInfo, type PackageDescription, type PackageUpdate,
} from './packages.js';
export {
  listImages, importImage, removeImage, readImageIndex, formatImageIndex, capstanTime, composedImageIndex, recordedLoader,
  type ImageIndex, type LocalImage, type ImportImageOptions,
} from './images.js';
export { remoteSettings, DEFAULT_RELEASES_URL, DEFAULT_S3_URL, type RemoteOptions, type RemoteSettings } from './remote/settings.js';
export type { HttpSettings } from './remote/http.js';
export { hostArch, checkRepositoryName, type Remote, type RemoteFile } from './remote/remote.js';
export { parseListBucket } from './remote/s3.js';
export { nextLink, pickLoaderAsset } from './remote/github.js';
