// The bootVm step: images from writeImage (built on the stand-in loader) boot under QEMU;
// other files pass through; the stream's end and errors stop the VMs.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import Vinyl from 'vinyl';
import { annotate } from '../lib/carrier.js';
import { ROFS_MAGIC } from '../lib/image/rofs.js';
import { writeImage } from '../lib/steps/write-image.js';
import { bootVm } from '../lib/steps/boot-vm.js';
import { pidAlive } from '../lib/vm/shutdown.js';
import type { Vm } from '../lib/vm/index.js';
import { buildStandInLoader } from './helpers/stand-in.js';
import { writeStandInDisk, writeStandInKernel } from './helpers/stand-in-kernel.js';
import { runSteps, vinylFile } from './helpers/streams.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capstan-bootvm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('writeImage → bootVm: the composed image boots; files pass through', async (t) => {
  const dir = tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const vms: Vm[] = [];
  const lines: string[] = [];
  const out = await runSteps(
    [vinylFile(dir, 'hello', '#!hello\n', 0o755)],
    writeImage({ out: path.join(dir, 'app.qemu'), loader, cmdline: '/hello', silent: true }),
    bootVm({
      root: dir, accel: 'tcg', debugExit: true, silent: true,
      onVm: (vm) => { vms.push(vm); vm.on('line', (l) => lines.push(l)); },
    }),
  );
  t.is(out.length, 1);
  t.is(out[0]!.path, path.join(dir, 'app.qemu'));
  t.is(vms.length, 1);
  const exit = await vms[0]!.exited;
  t.is(exit.exitCode, 33);
  t.is(lines[0], 'CMDLINE:/hello');
  // The partition the MBR names starts with the ROFS superblock (magic, little-endian u64).
  const magic = Buffer.alloc(8);
  magic.writeBigUInt64LE(BigInt(ROFS_MAGIC));
  t.true(lines[1]?.startsWith(`PART:${magic.toString('hex')}`), lines[1]);
});

test("until: 'ready' ends the stream once the VM is up, and stops it; other files pass", async (t) => {
  const dir = tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const image = await writeStandInDisk(loader, path.join(dir, 'app.raw'), '/x');
  const kernel = await writeStandInKernel(dir, { mode: 'wait' });
  const file = new Vinyl({ cwd: dir, base: dir, path: image, contents: null });
  annotate(file, { kind: 'image' });
  const other = vinylFile(dir, 'notes.txt', 'hi');
  const vms: Vm[] = [];
  const out = await runSteps([other, file], bootVm({
    root: dir, accel: 'tcg', kernel, until: 'ready', stopGraceMs: 100, silent: true, onVm: (vm) => vms.push(vm),
  }));
  t.deepEqual(out.map((f) => path.basename(f.path)), ['notes.txt', 'app.raw']);
  const exit = await vms[0]!.exited;
  t.is(exit.endedBy, 'stop');
  t.false(pidAlive(vms[0]!.pid));
});

test('an error further down the pipeline stops the VMs bootVm started', async (t) => {
  const dir = tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const image = await writeStandInDisk(loader, path.join(dir, 'app.raw'), '/x');
  const kernel = await writeStandInKernel(dir, { mode: 'wait' });
  const vms: Vm[] = [];
  const failing = new Transform({ objectMode: true, transform(_f, _e, cb) { cb(new Error('downstream broke')); } });
  const sink = new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } });
  await t.throwsAsync(pipeline(
    Readable.from([new Vinyl({ cwd: dir, base: dir, path: image, contents: null })]),
    bootVm({ root: dir, accel: 'tcg', kernel, stopGraceMs: 100, silent: true, onVm: (vm) => vms.push(vm) }),
    failing, sink,
  ), { message: 'downstream broke' });
  const exit = await vms[0]!.exited;
  t.is(exit.endedBy, 'stop');
  t.false(pidAlive(vms[0]!.pid));
});

test('a missing image is a PluginError naming it', async (t) => {
  const dir = tempDir(t);
  const file = new Vinyl({ cwd: dir, base: dir, path: path.join(dir, 'gone.qemu'), contents: null });
  await t.throwsAsync(runSteps([file], bootVm({ root: dir, silent: true })), { any: true, message: /gone\.qemu: the image to boot does not exist/ });
  t.throws(() => bootVm({ until: 'never' as 'exit' }), { any: true, message: /unknown `until` value "never"/ });
});

test('kill -INT of a gulp process running bootVm leaves no QEMU behind', async (t) => {
  const dir = tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const image = await writeStandInDisk(loader, path.join(dir, 'app.qemu'), '/x');
  const kernel = await writeStandInKernel(dir, { mode: 'wait' });
  symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules')); // gulp-cli wants a local gulp
  writeFileSync(path.join(dir, 'gulpfile.mjs'), `
    import gulp from 'gulp';
    import { bootVm } from ${JSON.stringify(path.join(repo, 'lib/index.ts'))};
    export const run = () => gulp.src(${JSON.stringify(image)}, { read: false })
      .pipe(bootVm({ root: ${JSON.stringify(dir)}, accel: 'tcg', kernel: ${JSON.stringify(kernel)},
        onVm: (vm) => console.log('QEMU-PID', vm.pid, vm.dir) }));
  `);
  const gulp = spawn(process.execPath, ['--import=tsx', path.join(repo, 'node_modules/gulp/bin/gulp.js'), 'run'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { gulp.kill('SIGKILL'); });
  let out = '';
  gulp.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const ready = await new Promise<{ pid: number; instance: string }>((resolve, reject) => {
    gulp.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /QEMU-PID (\d+) (\S+)/.exec(out);
      if (m && out.includes(' ready in ')) resolve({ pid: Number(m[1]), instance: m[2]! });
    });
    gulp.once('exit', (code) => reject(new Error(`gulp exited (${code}) before the VM was ready:\n${out}`)));
  });
  t.teardown(() => { if (pidAlive(ready.pid)) process.kill(ready.pid, 'SIGKILL'); });
  t.true(pidAlive(ready.pid));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => gulp.once('exit', (_c, s) => resolve(s)));
  gulp.kill('SIGINT');
  t.is(await exited, 'SIGINT');
  for (let i = 0; i < 100 && pidAlive(ready.pid); i++) await delay(50);
  t.false(pidAlive(ready.pid), 'QEMU is gone');
  t.false(existsSync(ready.instance), 'and so is its instance folder');
});
