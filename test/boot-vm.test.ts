// The bootVm step: images from writeImage (built on the stand-in loader) boot under QEMU;
// other files pass through; the stream's end and errors stop the VMs.
import { mkdtempSync, rmSync } from 'node:fs';
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
