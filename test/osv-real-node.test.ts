// Node.js on a real OSv kernel — runs only when you point to one (CI has none):
//   OSV_LOADER=/path/to/loader.img OSV_KERNEL=/path/to/loader-stripped.elf [OSV_NODE22=/path/to/node22/bin/node]
// An existing Node project (no Capstan files) is composed with the host's node and booted with
// -kernel under TCG: its HTTP server answers through a forwarded port; a script that ends by
// itself powers the VM off. With OSV_NODE22, the same with an official Node 22 build.
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compose } from '../lib/commands/compose.js';
import { boot } from '../lib/vm/boot.js';

const loader = process.env.OSV_LOADER;
const kernel = process.env.OSV_KERNEL;
const real = loader && kernel ? test.serial : test.skip;
const node22 = process.env.OSV_NODE22;

async function project(t: { teardown(fn: () => unknown): void }, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'osv-real-node-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

const SERVER = {
  'package.json': JSON.stringify({ name: 'srv', version: '1.0.0', type: 'module', scripts: { start: 'node server.js' }, dependencies: { dep: '1.0.0' } }),
  'server.js': "import http from 'node:http'; import { hi } from 'dep';\n" +
    "http.createServer((q, s) => s.end(hi() + ' ' + process.version + ' ' + new Date().getTimezoneOffset())).listen(8080, () => console.log('LISTENING'));\n",
  'node_modules/dep/package.json': JSON.stringify({ name: 'dep', version: '1.0.0', type: 'module', exports: './index.js' }),
  'node_modules/dep/index.js': "export const hi = () => 'hello from a production dependency';\n",
};

async function serveAndFetch(t: import('ava').ExecutionContext, binary?: string): Promise<void> {
  const dir = await project(t, SERVER);
  const image = await compose({ cwd: dir, loader, silent: true, ...(binary ? { node: { binary } } : {}) });
  const started = Date.now();
  const vm = await boot({ path: image.path, info: image }, {
    kernel, accel: 'tcg', forward: ['0:8080'], ready: /LISTENING/, readyTimeout: 120_000, silent: true, memory: '1G',
  });
  t.teardown(() => vm.stop({ graceMs: 500 }));
  await vm.ready;
  const port = vm.forwards[0]!.host;
  let body = '';
  for (let i = 0; i < 50 && !body; i++) {
    // Short attempts: QEMU's user network retries its SYN to a guest not up yet with backoff.
    try { body = await (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(250) })).text(); } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  t.log(`first response ${(Date.now() - started) / 1000} s after boot(), node ${body.split(' ').at(-2)}`);
  t.regex(body, /^hello from a production dependency v\d+\.\d+\.\d+ 0$/, 'the dependency, node and a TZ of UTC');
}

real('the host node: an HTTP server answers through a forwarded port', (t) => serveAndFetch(t));

real('a script that ends by itself powers the VM off', async (t) => {
  const dir = await project(t, {
    'package.json': JSON.stringify({ name: 'ends', version: '1.0.0', main: 'ends.js' }),
    'ends.js': "setTimeout(() => console.log('DONE', new Date(0).toString()), 100);\n",
  });
  const image = await compose({ cwd: dir, loader, silent: true });
  const lines: string[] = [];
  const vm = await boot({ path: image.path, info: image }, { kernel, accel: 'tcg', readyTimeout: 120_000, silent: true });
  vm.on('line', (l: string) => lines.push(l));
  t.teardown(() => vm.stop({ graceMs: 200 }));
  const exit = await Promise.race([vm.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 90_000))]);
  t.truthy(exit, 'the VM powered off by itself');
  t.is(exit?.endedBy, 'guest');
  t.true(lines.some((l) => /^DONE Thu Jan 01 1970 00:00:00 GMT\+0000/.test(l)), lines.join('\n'));
});

(loader && kernel && node22 ? test.serial : test.skip)('Node 22 from an official build: the same server answers', (t) => serveAndFetch(t, node22));
