// The repository domain's public API: where Capstan keeps things, and reading packages.
export { capstanRoot, repositoryImagePath, repositoryPackagePaths, instanceDir } from './root.js';
export { readMpm, isMetaMember, type MpmMember, type MpmMemberType } from './mpm.js';
export { findLocalPackage, resolveLocalPackages, readLocalPackage, type LocalPackage, type PackageContents } from './local.js';
