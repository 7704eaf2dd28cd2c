// Every example in examples/ is built (and booted) by the suite, through the real gulp binary,
// from a fresh CAPSTAN_ROOT that pulls the stand-in loader and kernel from a local
// releases-shaped server — the way a new user's first `npx gulp unikernel` pulls OSv's.
import test from 'ava';
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { NODE_GUEST_PATH } from '../lib/runtimes/node.js';
import { ensureBuilt, repo } from './helpers/build.js';
import { standInRemote } from './helpers/project.js';

const gulpBin = path.join(repo, 'node_modules', 'gulp', 'bin', 'gulp.js');

async function inExample(t: { teardown(fn: () => unknown): void }, name: string, kernel: Parameters<typeof standInRemote>[2]) {
  await ensureBuilt();
  const dir = await mkdtemp(path.join(os.tmpdir(), `capstan-example-${name}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cwd = path.join(repo, 'examples', name);
  t.teardown(() => rm(path.join(cwd, 'build'), { recursive: true, force: true }));
  const { env, server } = await standInRemote(t, dir, kernel);
  return { cwd, env, server, gulp: (args: string[]) => execa(process.execPath, [gulpBin, ...args], { cwd, env, reject: false, timeout: 120_000 }) };
}

test('examples/hello: gcc, then the image, then the VM (the stand-in kernel prints the command line and ends)', async (t) => {
  const ex = await inExample(t, 'hello', { mode: 'crash' });
  const run = await ex.gulp(['unikernel']);
  t.is(run.exitCode, 0, String(run.stdout) + String(run.stderr));
  t.regex(String(run.stdout), /CMDLINE:\S+ runscript \/run\/default;/);
  const image = path.join(ex.cwd, 'build', 'hello.qcow2');
  t.is((await readImageFile(image, '/run/default')).toString(), '--env=GREETING?=hello /hello /greeting.txt');
  t.deepEqual(await readImageFile(image, '/greeting.txt'), await readFile(path.join(ex.cwd, 'app', 'greeting.txt')));
  // The "done when": the loader came once from the mirror; the second run downloads nothing.
  const requests = ex.server.requests.length;
  t.true(ex.server.requests.some((r) => r.endsWith('/osv-loader.qemu.x86_64')));
  const again = await ex.gulp(['unikernel']);
  t.is(again.exitCode, 0);
  t.is(ex.server.requests.length, requests, 'nothing downloaded the second time');
});

test('examples/node-server: the two-line gulpfile makes an image of an existing Node project and boots it', async (t) => {
  const ex = await inExample(t, 'node-server', { mode: 'crash' });
  const run = await ex.gulp(['unikernel:run']);
  t.is(run.exitCode, 0, String(run.stdout) + String(run.stderr));
  t.regex(String(run.stdout), /Node\.js project \(package\.json\): \/usr\/bin\/node \/server\.js !, 1 production packages/);
  t.regex(String(run.stdout), /127\.0\.0\.1:8080→8080\/tcp/, 'the forward from the gulpfile');
  const image = path.join(ex.cwd, 'build', 'node-server.qcow2');
  const entries = new Map((await describeImage(image)).rofs!.entries.map((e) => [e.path, e]));
  for (const p of ['/server.js', '/package.json', '/vendor/greeting/index.js', NODE_GUEST_PATH, '/etc/fstab']) t.true(entries.has(p), p);
  t.is(entries.get('/node_modules/greeting')?.target, '/vendor/greeting');
  t.false(entries.has('/gulpfile.js'), 'the gulpfile stays out');
  t.regex((await readImageFile(image, '/run/default')).toString(), /NODE_ENV\?=production .*\/usr\/bin\/node \/server\.js !$/);
});

test('examples/typescript: esbuild compiles inside the pipeline, the JavaScript streams into the image', async (t) => {
  const ex = await inExample(t, 'typescript', { mode: 'crash' });
  const run = await ex.gulp(['unikernel']);
  t.is(run.exitCode, 0, String(run.stdout) + String(run.stderr));
  const image = path.join(ex.cwd, 'build', 'typescript.qcow2');
  const js = (await readImageFile(image, '/server.js')).toString();
  t.regex(js, /import http from "node:http"/);
  t.notRegex(js, /: number/, 'types are gone');
  t.regex((await readImageFile(image, '/greeting.js')).toString(), /hello from TypeScript on OSv/);
  t.regex((await readImageFile(image, '/run/default')).toString(), /\/usr\/bin\/node \/server\.js !$/);
  const paths = (await describeImage(image)).rofs!.entries.map((e) => e.path);
  t.false(paths.some((p) => p.endsWith('.ts')), 'no TypeScript in the image');
});
