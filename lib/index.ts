// gulp-capstan: the five pipeline steps, and the plain APIs underneath them.
//   resolveManifest → fetchPackages → layoutFiles → writeImage → bootVm
export { resolveManifest, MANIFEST_FILE_NAME, type ResolveManifestOptions } from './steps/resolve-manifest.js';
export { fetchPackages, type FetchPackagesOptions } from './steps/fetch-packages.js';
export { layoutFiles, type LayoutFilesOptions } from './steps/layout-files.js';
export { writeImage, type WriteImageOptions } from './steps/write-image.js';
export { bootVm, type BootVmOptions } from './steps/boot-vm.js';
// A source of host programs and their shared libraries (feeds layoutFiles like gulp.src).
export { hostFiles, hostVinyl, type HostFilesOptions } from './vinyl/host-files.js';
// The fast source for those steps: gulp.src's globs, links kept, contents read by writeImage.
export { src, type SrcOptions } from './vinyl/src.js';

// One-shot builds (no gulp): the same five steps in one pipeline.
export { compose, run, composeWith, imageSteps, buildOptions, type ComposedImage } from './commands/compose.js';
export { collectPackage } from './commands/collect.js';
export { composeFolder } from './commands/compose-folder.js';
export { capstanfileBuild, type CapstanfileBuild, type CapstanfileBuildOptions } from './commands/capstanfile-build.js';
export { composeRemote, type ComposeRemoteOptions } from './commands/compose-remote.js';
export { capstanConfiguration } from './commands/config.js';
export { stepOptions, mergeOptions, packageJsonOptions, defaultImagePath, OptionsError, type UnikernelOptions, type StepOptions } from './commands/options.js';

export * from './errors.js';
export * from './carrier.js';
export type { LogOptions } from './log.js';
export { jsonLines, type CapstanEvent, type EventSink, type ForwardEvent } from './events.js';
export * from './manifest/index.js';
export * from './layout/index.js';
export * from './repository/index.js';
export * from './image/index.js';
export * from './vm/index.js';
export * from './host/index.js';
// Runtimes from the host: the options resolveManifest takes as `node`, `java`, `python`.
export type { NodeManifestOptions } from './runtimes/node-manifest.js';
export type { JavaManifestOptions } from './runtimes/java-manifest.js';
export type { PythonManifestOptions } from './runtimes/python-manifest.js';
export { readJarManifest } from './runtimes/jar.js';
export * from './cloud/index.js';
