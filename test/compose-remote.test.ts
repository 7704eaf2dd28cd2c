// compose-remote: the files a compose lays out, streamed as cpio newc to a running guest's cpiod.
// The guest end here is a receiver of the test's own on 127.0.0.1 that extracts with GNU cpio,
// as cpiod unpacks into the guest's filesystem; the tree it gets is compared file for file.
import test from 'ava';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { composeRemote } from '../lib/commands/compose-remote.js';
import { buildPackage } from '../lib/repository/packages.js';

/** A cpiod stand-in: accepts one connection, feeds it to `cpio -idmu` (-u: later members replace earlier ones, as cpiod does), closes when cpio is done. */
async function receiver(into: string): Promise<{ port: number; done: Promise<void>; close(): void }> {
  await mkdir(into, { recursive: true });
  let finish!: () => void;
  const done = new Promise<void>((r) => { finish = r; });
  const server = net.createServer((socket) => {
    const cpio = spawn('cpio', ['-idmu', '--no-absolute-filenames', '--quiet'], { cwd: into, stdio: ['pipe', 'ignore', 'inherit'] });
    cpio.stdin.on('error', () => {}); // cpio leaves at the trailer; padding after it is not an error
    socket.pipe(cpio.stdin);
    cpio.on('exit', () => { socket.end(); server.close(); finish(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, done, close: () => server.close() };
}

test('compose-remote streams the laid-out files to cpiod: osv.compose-remote first, the app over it, /run scripts', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-remote-compose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'capstan');
  // Capstan's bootstrap for compose-remote, as a package of our own build.
  const pkg = path.join(dir, 'osv.compose-remote');
  await mkdir(path.join(pkg, 'meta'), { recursive: true });
  await mkdir(path.join(pkg, 'etc'), { recursive: true });
  await writeFile(path.join(pkg, 'meta', 'package.yaml'), 'name: osv.compose-remote\ntitle: compose-remote\nauthor: tests\n');
  await writeFile(path.join(pkg, 'etc', 'hosts'), 'from the package\n');
  await writeFile(path.join(pkg, 'etc', 'motd'), 'package motd\n');
  await mkdir(path.join(root, 'packages'), { recursive: true });
  const built = await buildPackage(pkg);
  await writeFile(path.join(root, 'packages', 'osv.compose-remote.mpm'), await readFile(built.path));
  await writeFile(path.join(root, 'packages', 'osv.compose-remote.yaml'), 'name: osv.compose-remote\ntitle: compose-remote\nauthor: tests\n');

  const app = path.join(dir, 'app');
  await mkdir(path.join(app, 'meta'), { recursive: true });
  await mkdir(path.join(app, 'etc'), { recursive: true });
  await writeFile(path.join(app, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  web:\n    bootcmd: /srv/app.so --serve\n');
  await mkdir(path.join(app, 'srv'), { recursive: true });
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  await writeFile(path.join(app, 'srv', 'app.so'), big);
  await writeFile(path.join(app, 'srv', 'empty'), '');
  await writeFile(path.join(app, 'etc', 'hosts'), 'from the app\n');
  await symlink('app.so', path.join(app, 'srv', 'current'));

  const guest = path.join(dir, 'guest');
  const r = await receiver(guest);
  t.teardown(() => r.close());
  const sent = await composeRemote({ cwd: app, host: `127.0.0.1:${r.port}`, root, offline: true, silent: true });
  await r.done;
  t.is(sent.port, r.port);
  t.true((await readFile(path.join(guest, 'srv', 'app.so'))).equals(big), 'a 3 MiB file streamed whole');
  t.is((await readFile(path.join(guest, 'srv', 'empty'))).length, 0);
  t.is(await readlink(path.join(guest, 'srv', 'current')), 'app.so');
  t.is(await readFile(path.join(guest, 'etc', 'hosts'), 'utf8'), 'from the app\n', 'the app wins over the package');
  t.is(await readFile(path.join(guest, 'etc', 'motd'), 'utf8'), 'package motd\n', 'osv.compose-remote came first');
  t.is(await readFile(path.join(guest, 'run', 'web'), 'utf8'), '/srv/app.so --serve');
  t.false((await lstat(path.join(guest, 'meta')).catch(() => undefined)) !== undefined, 'no meta/ in the guest');

  // No guest listening: a clear error after the retries.
  const closed = net.createServer();
  await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
  const port = (closed.address() as net.AddressInfo).port;
  closed.close();
  await t.throwsAsync(composeRemote({ cwd: app, host: '127.0.0.1', port, root, offline: true, silent: true, attempts: 2 }), { message: /cannot connect to cpiod at 127\.0\.0\.1:\d+[\s\S]*cpiod\.so/ });
});

test('capstan package compose-remote: the CLI command, and its usage error', async (t) => {
  const { ensureBuilt, repo } = await import('./helpers/build.js');
  await ensureBuilt();
  const cli = path.join(repo, 'dist', 'lib', 'cli', 'capstan.js');
  const usage = await execa(process.execPath, [cli, 'package', 'compose-remote'], { reject: false });
  t.is(usage.exitCode, 64);
  t.regex(String(usage.stderr), /compose-remote <host-or-ip>/);
});
