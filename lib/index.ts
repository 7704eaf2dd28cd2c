// gulp-capstan: the five pipeline steps, and the plain APIs underneath them.
//   resolveManifest → fetchPackages → layoutFiles → writeImage → bootVm
export { resolveManifest } from './steps/resolve-manifest.js';
export { layoutFiles } from './steps/layout-files.js';
export { writeImage } from './steps/write-image.js';
export { bootVm } from './steps/boot-vm.js';

export * from './errors.js';
export * from './carrier.js';
export * from './manifest/index.js';
export * from './layout/index.js';
export * from './image/index.js';
export * from './vm/index.js';
