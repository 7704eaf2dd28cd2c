// Example: compile a C program, lay it out with its data file into an OSv image, boot it.
//   cd examples/hello && npx gulp unikernel
// The loader is OSv's osv-loader, pulled from OSv's GitHub releases into ~/.capstan on the first
// run (with its kernel ELF, so the VM boots with -kernel). OSV_LOADER=/path/to/loader.img and
// OSV_KERNEL=/path/to/loader-stripped.elf use an OSv you built instead.
import { mkdir } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import gulp from 'gulp';
import { execa } from 'execa';
import { resolveManifest, fetchPackages, layoutFiles, writeImage, bootVm, boot } from 'gulp-capstan';

const { src, series, watch } = gulp;

// encoding:false keeps binaries byte-exact (gulp 5 decodes files as UTF-8 otherwise); dot:true
// lets .capstanignore through; resolveSymlinks:false keeps symlinks as symlinks.
const read = { encoding: false, dot: true, resolveSymlinks: false };

// The app is compiled on the host: a position-independent executable runs on OSv as it is.
export async function compile() {
  await mkdir('build/app', { recursive: true });
  await execa('gcc', ['-O2', '-fPIE', '-pie', '-o', 'build/app/hello', 'app/hello.c']);
}

const steps = () => [
  src('app/**', { ...read, base: 'app' }),            // meta/, data files, .capstanignore
  src('build/app/**', { ...read, base: 'build/app' }), // the compiled binary, at /hello
  resolveManifest({ cwd: 'app', bootstrap: false }),   // no osv.bootstrap package needed here
  fetchPackages(),
  layoutFiles(),
  writeImage({ out: 'build/hello.qcow2', loader: process.env.OSV_LOADER }),
];
const vmOptions = { memory: '512M', kernel: process.env.OSV_KERNEL };

// Like `capstan run`: the task lasts as long as the VM; Ctrl+C stops it.
export const unikernel = series(compile, function imageAndBoot() {
  return pipeline(...steps(), bootVm(vmOptions));
});
unikernel.description = 'Compile app/hello.c, write build/hello.qcow2 and boot it under QEMU';

// Rebuild and reboot on every change. The VM outlives each run (the task ends once the guest
// is up, so watch can run again) but not the process: Ctrl+C stops it.
let vm;
async function reboot() {
  await vm?.stop();
  vm = await boot('build/hello.qcow2', { ...vmOptions, name: 'hello-dev', echo: true });
  await vm.ready;
}
export function dev() {
  watch(['app/**'], { ignoreInitial: false }, series(compile, function image() { return pipeline(...steps()); }, reboot));
}
dev.description = 'Rebuild and reboot whenever app/ changes';
