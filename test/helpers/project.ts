// A user's project in a temp folder, with gulp-capstan installed the way npm links a local
// package (node_modules/gulp-capstan → this repository) and gulp beside it, plus a local
// releases-shaped server that serves the stand-in loader and stand-in kernel, so a fresh
// CAPSTAN_ROOT pulls them like a new user's machine pulls OSv's.
import { execa, type Options as ExecaOptions, type ResultPromise } from 'execa';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { buildPackage } from '../../lib/repository/packages.js';
import { ensureBuilt, repo } from './build.js';
import { serveReleases, TestServer } from './remote-server.js';
import { buildStandInLoader } from './stand-in.js';
import { standInKernel, type StandInKernelOptions } from './stand-in-kernel.js';

export interface Project {
  dir: string;
  root: string;
  server: TestServer;
  env: { CAPSTAN_ROOT: string; CAPSTAN_RELEASES_URL: string; CAPSTAN_DISABLE_KVM: string; CI: string };
  gulp(args: string[], options?: ExecaOptions): ResultPromise;
  capstan(args: string[], options?: ExecaOptions): ResultPromise;
}

export const TWO_LINE_GULPFILE = `import gulp from 'gulp'; import { CapstanRegistry } from 'gulp-capstan/tasks';
gulp.registry(new CapstanRegistry());
`;

/**
 * A releases-shaped server on 127.0.0.1 serving the stand-in loader, the stand-in kernel (as
 * the loader's `.elf.x86_64.gz`) and an osv.bootstrap made by buildPackage; `env` points a
 * fresh CAPSTAN_ROOT (inside `dir`) at it.
 */
export async function standInRemote(t: { teardown(fn: () => unknown): void }, dir: string, kernel: StandInKernelOptions = { mode: 'wait' }) {
  const loader = await readFile(await buildStandInLoader(path.join(dir, 'loader')));
  // osv.bootstrap as OSv releases carry it (Capstan requires it first), made by our buildPackage.
  const bootstrap = path.join(dir, 'osv.bootstrap');
  await mkdir(path.join(bootstrap, 'meta'), { recursive: true });
  const bootstrapYaml = 'name: osv.bootstrap\ntitle: OSv Bootstrap\nauthor: tests\nversion: 0.57.0\n';
  await writeFile(path.join(bootstrap, 'meta', 'package.yaml'), bootstrapYaml);
  await mkdir(path.join(bootstrap, 'etc'), { recursive: true });
  await writeFile(path.join(bootstrap, 'etc', 'hosts'), '127.0.0.1 localhost osv.local\n');
  const bootstrapMpm = await readFile((await buildPackage(bootstrap)).path);
  const server = await TestServer.start();
  t.teardown(() => server.close());
  const releasesUrl = serveReleases(server, [{ tag: 'v0.57.0', assets: [
    { name: 'osv-loader.qemu.x86_64', data: loader },
    { name: 'osv-loader.elf.x86_64.gz', data: gzipSync(standInKernel(kernel)) },
    { name: 'osv.bootstrap.yaml', data: Buffer.from(bootstrapYaml) },
    { name: 'osv.bootstrap.mpm.x86_64', data: bootstrapMpm },
  ] }]);
  const env: Project['env'] = { CAPSTAN_ROOT: path.join(dir, 'capstan-root'), CAPSTAN_RELEASES_URL: releasesUrl, CAPSTAN_DISABLE_KVM: '1', CI: 'true' };
  return { server, env };
}

export async function userProject(
  t: { teardown(fn: () => unknown): void },
  files: Record<string, string>,
  kernel: StandInKernelOptions = { mode: 'wait' },
): Promise<Project> {
  await ensureBuilt();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-project-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'app');
  for (const [name, text] of Object.entries({ 'gulpfile.mjs': TWO_LINE_GULPFILE, ...files })) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), text);
  }
  await mkdir(path.join(root, 'node_modules'), { recursive: true });
  await symlink(repo, path.join(root, 'node_modules', 'gulp-capstan'));
  await symlink(path.join(repo, 'node_modules', 'gulp'), path.join(root, 'node_modules', 'gulp'));
  const { server, env } = await standInRemote(t, dir, kernel);
  const gulpBin = path.join(repo, 'node_modules', 'gulp', 'bin', 'gulp.js');
  return {
    dir, root, server, env,
    gulp: (args, options = {}) => execa(process.execPath, [gulpBin, ...args], { cwd: root, env, reject: false, ...options }),
    capstan: (args, options = {}) => execa(process.execPath, [path.join(repo, 'dist', 'lib', 'cli', 'capstan.js'), ...args], { cwd: root, env, reject: false, ...options }),
  };
}
