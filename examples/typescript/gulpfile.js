// A TypeScript app compiled by esbuild inside the pipeline: src/*.ts → .js vinyls → the
// image, with no temp folder. The steps are gulp-capstan's; the compile step is ten lines.
//   npx gulp unikernel        compose build/typescript.qcow2
//   npx gulp dev              compose, boot, recompile and reboot on every change
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import { mkdir } from 'node:fs/promises';
import gulp from 'gulp';
import { transform } from 'esbuild';
import { resolveManifest, fetchPackages, layoutFiles, writeImage, boot } from 'gulp-capstan';

// TypeScript in, JavaScript out, file by file (esbuild's transform: no bundling, no disk).
function compileTs() {
  return new Transform({
    objectMode: true,
    async transform(file, _encoding, done) {
      if (!file.path.endsWith('.ts')) return done(null, file);
      try {
        const { code } = await transform(file.contents.toString(), { loader: 'ts', format: 'esm', target: 'node20', sourcefile: file.relative });
        file.contents = Buffer.from(code);
        file.extname = '.js';
        done(null, file);
      } catch (error) {
        done(error);
      }
    },
  });
}

const out = 'build/typescript.qcow2';
const image = () => pipeline(
  gulp.src('src/**/*.ts', { base: 'src' }), compileTs(),               // /server.js, /greeting.js
  gulp.src('package.json'),                                            // "type": "module", for node
  resolveManifest({ cwd: '.', node: { main: 'server.js' } }),          // package.json; no meta/ needed
  fetchPackages({ pullMissing: true }), layoutFiles(), writeImage({ out }),
  new Writable({ objectMode: true, write(_file, _e, done) { done(); } }),
);

export async function unikernel() {
  await mkdir('build', { recursive: true });
  await image();
}
unikernel.description = 'Compile src/*.ts with esbuild and compose build/typescript.qcow2';

let vm;
async function reboot() {
  await vm?.stop();
  vm = await boot(out, { name: 'typescript-dev', forward: ['8080:8080'], echo: true });
  await vm.ready;
}
export function dev() {
  gulp.watch(['src/**/*.ts'], { ignoreInitial: false }, gulp.series(unikernel, reboot));
}
dev.description = 'Compose, boot, recompile and reboot on every change under src/';
