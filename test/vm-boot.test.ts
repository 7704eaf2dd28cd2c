// boot() under real QEMU with the stand-in boot sector (test/helpers/stand-in.ts) and the
// stand-in multiboot kernel (test/helpers/stand-in-kernel.ts). No network beyond 127.0.0.1.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import {
  boot, bootInstance, createVolume, deleteInstance, listInstances, readDiskCmdline, stopInstance, type BootImage, type BootOptions, type Vm,
} from '../lib/vm/index.js';
import { kvmDeviceUsable } from '../lib/vm/accel.js';
import { pidAlive } from '../lib/vm/shutdown.js';
import { buildStandInLoader, STAND_IN_EXIT_OK } from './helpers/stand-in.js';
import { appendFromLine, writeStandInDisk, writeStandInKernel } from './helpers/stand-in-kernel.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let shared: string;
let loader: string;

test.before(async () => {
  shared = mkdtempSync(path.join(os.tmpdir(), 'capstan-vm-'));
  loader = await buildStandInLoader(shared);
});
test.after.always(() => { rmSync(shared, { recursive: true, force: true }); });

/** A temp CAPSTAN_ROOT and image for one test, and VMs killed at its end. */
async function setup(t: ExecutionContext, cmdline = '/image.so') {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capstan-vmt-'));
  const vms: Vm[] = [];
  t.teardown(async () => {
    await Promise.all(vms.map((vm) => vm.kill()));
    rmSync(dir, { recursive: true, force: true });
  });
  const image = await writeStandInDisk(loader, path.join(dir, 'app.raw'), cmdline);
  const start = async (img: BootImage, options: BootOptions = {}) => {
    const vm = await boot(img, { root: dir, accel: 'tcg', debugExit: true, silent: true, ...options });
    vms.push(vm);
    return vm;
  };
  return { dir, image, start };
}

test('boots an image and reads its console through the API', async (t) => {
  const { image, start } = await setup(t);
  const vm = await start(image);
  const lines: string[] = [];
  vm.on('line', (l) => lines.push(l));
  let serial = '';
  vm.serial.setEncoding('utf8').on('data', (d: string) => { serial += d; });
  await vm.ready; // default marker: the first console line
  const exit = await vm.exited;
  t.deepEqual(lines.slice(0, 1), ['CMDLINE:/image.so']);
  t.regex(lines[1] ?? '', /^PART:[0-9a-f]{32}$/);
  t.true(serial.startsWith('CMDLINE:/image.so\r\n'));
  t.is(exit.exitCode, STAND_IN_EXIT_OK);
  t.is(exit.debugExitCode, 0x10);
  t.is(exit.endedBy, 'guest');
  t.is(exit.reason, undefined, 'isa-debug-exit ends QEMU without a shutdown event');
  t.false(existsSync(vm.dir), 'a non-persisted instance folder goes with its VM');
});

test('a guest that crashes ends QEMU, and the reset is reported', async (t) => {
  const { dir, image, start } = await setup(t);
  const kernel = await writeStandInKernel(dir, { mode: 'crash' });
  const vm = await start(image, { kernel, debugExit: false });
  const exit = await vm.exited;
  t.is(vm.recentLines[0]?.startsWith('CMDLINE:'), true);
  t.is(exit.exitCode, 0);
  t.is(exit.endedBy, 'guest');
  t.is(exit.reason, 'guest-reset');
});

test('two instances of one image at once do not collide', async (t) => {
  const { image, start } = await setup(t);
  const kernel = await writeStandInKernel(path.dirname(image), { mode: 'wait' });
  const [a, b] = await Promise.all([start(image, { kernel }), start(image, { kernel })]);
  t.not(a!.name, b!.name);
  t.not(a!.monitor, b!.monitor);
  await Promise.all([a!.ready, b!.ready]);
  t.not(a!.pid, b!.pid);
  const running = (await listInstances({ root: path.dirname(image) })).filter((i) => i.running).map((i) => i.name).sort();
  t.deepEqual(running, [a!.name, b!.name].sort());
  const [ea, eb] = await Promise.all([a!.stop({ graceMs: 200 }), b!.stop({ graceMs: 200 })]);
  t.is(ea.endedBy, 'stop');
  t.is(eb.endedBy, 'stop');
});

test('a port forward with host port 0 gets a free port that is listening', async (t) => {
  const { image, start } = await setup(t);
  const kernel = await writeStandInKernel(path.dirname(image), { mode: 'wait' });
  const vm = await start(image, { kernel, forward: ['0:8000', { guest: 22, host: 0 }] });
  await vm.ready;
  t.is(vm.forwards.length, 2);
  const [web, ssh] = vm.forwards;
  t.true(web!.host > 0 && web!.host !== ssh!.host);
  t.is(web!.guest, 8000);
  // QEMU's user network accepts on the host side even though the guest has no TCP stack.
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(web!.host, '127.0.0.1', () => { s.destroy(); resolve(); });
    s.on('error', reject);
  });
  t.pass();
  await vm.stop({ graceMs: 100 });
});

test('a forward to a host port in use fails with a hint, and is not blamed on KVM', async (t) => {
  const { image, start } = await setup(t);
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { server.close(); });
  const busy = (server.address() as net.AddressInfo).port;
  const accel = kvmDeviceUsable() ? 'kvm' : 'tcg';
  const vm = await start(image, { accel, forward: [`${busy}:80`] });
  const error = await t.throwsAsync(vm.ready);
  t.regex(error.message, /Could not set up host forwarding rule/);
  t.regex(error.message, /A forwarded host port is in use\. Pick another one, or give 0/);
  t.is(vm.accel, accel, 'no TCG retry for an option error');
});

test('the run-time command line lands in the overlay, not in the image', async (t) => {
  const { dir, image, start } = await setup(t);
  const before = readFileSync(image);
  const vm = await start(image, { name: 'keep', persist: true, execute: '/hello.so a b', env: { K: 'V' } });
  const lines: string[] = [];
  vm.on('line', (l) => lines.push(l));
  const exit = await vm.exited;
  t.is(exit.exitCode, STAND_IN_EXIT_OK);
  t.is(lines[0], 'CMDLINE:--env=K=V /hello.so a b');
  t.true(readFileSync(image).equals(before), 'image bytes unchanged');
  t.is(await readDiskCmdline(image), '/image.so');
  t.is(await readDiskCmdline(vm.disk, 'qcow2'), '--env=K=V /hello.so a b');
  // An independent checker agrees: consistent qcow2, backed by the image.
  await execa('qemu-img', ['check', vm.disk]);
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', vm.disk])).stdout) as Record<string, unknown>;
  t.is(info['backing-filename'], image);
  t.is(info['backing-filename-format'], 'raw');
  const listed = await listInstances({ root: dir });
  t.deepEqual(listed.map((i) => [i.name, i.running, i.persisted]), [['keep', false, true]]);
  t.is(listed[0]!.config?.cmdline, '--env=K=V /hello.so a b');
  // A persisted instance boots again from its overlay; a new command line is patched in place.
  const again = await start(image, { name: 'keep', persist: true, execute: '/second.so' });
  const first: string[] = [];
  again.on('line', (l) => first.push(l));
  await again.exited;
  t.is(first[0], 'CMDLINE:/second.so');
  await execa('qemu-img', ['check', again.disk]);
  // Booted by name with its stored configuration (capstan run <instance>).
  const byName = await bootInstance('keep', { root: dir, accel: 'tcg', debugExit: true, silent: true, env: ['X=1'] });
  const third: string[] = [];
  byName.on('line', (l) => third.push(l));
  t.is((await byName.exited).exitCode, STAND_IN_EXIT_OK);
  t.is(third[0], 'CMDLINE:--env=X=1 /second.so', 'env goes in front of the command line the overlay has');
  await t.throwsAsync(bootInstance('nope', { root: dir }), { message: /no persisted instance named "nope"/ });
  await deleteInstance('keep', { root: dir });
  t.deepEqual(await listInstances({ root: dir }), []);
});

test('the -kernel fast path passes the command line in -append', async (t) => {
  const { image, start } = await setup(t);
  const kernel = await writeStandInKernel(path.dirname(image), { exitCode: 3 });
  const vm = await start(image, { kernel, boot: ['app'] });
  const lines: string[] = [];
  vm.on('line', (l) => lines.push(l));
  const exit = await vm.exited;
  t.is(appendFromLine(lines[0] ?? ''), 'runscript /run/app;');
  t.is(exit.debugExitCode, 3);
  t.is(vm.kernel, kernel);
  t.regex(vm.command, /-kernel \S+ -append 'runscript \/run\/app;'/);
  // The image's own command line when nothing is given at run time.
  const plain = await start(image, { kernel });
  const got: string[] = [];
  plain.on('line', (l) => got.push(l));
  await plain.exited;
  t.is(appendFromLine(got[0] ?? ''), '/image.so');
});

test('the kernel is found beside the loader the image was built from, gzipped or not', async (t) => {
  const { dir, image, start } = await setup(t);
  const kernel = await writeStandInKernel(dir, {}, 'osv-loader.elf');
  execFileSync('gzip', [kernel]);
  const vm = await start({ path: image, info: { format: 'raw' as const, virtualSize: 0, partition: { start: 0, size: 0 }, cmdline: '/from-info.so', loader: path.join(dir, 'osv-loader.qemu'), inodes: 0 } });
  const lines: string[] = [];
  vm.on('line', (l) => lines.push(l));
  await vm.exited;
  t.is(path.basename(vm.kernel ?? ''), 'osv-loader.elf');
  t.is(appendFromLine(lines[0] ?? ''), '/from-info.so');
});

test('a kernel QEMU cannot load falls back to booting the disk', async (t) => {
  const { dir, image, start } = await setup(t);
  const bogus = path.join(dir, 'osv-loader.elf');
  writeFileSync(bogus, Buffer.alloc(4096, 0x5a)); // neither ELF nor multiboot
  const vm = await start(image, { kernel: bogus });
  const fallbacks: string[] = [];
  vm.on('fallback', (r) => fallbacks.push(r));
  await vm.ready;
  const exit = await vm.exited;
  t.is(exit.exitCode, STAND_IN_EXIT_OK);
  t.is(vm.kernel, undefined);
  t.is(vm.recentLines[0], 'CMDLINE:/image.so');
  t.is(fallbacks.length, 1);
  t.regex(fallbacks[0]!, /did not load .*; booting from the disk/);
  t.notRegex(vm.command, /-kernel/);
});

test('stop: QMP powerdown, then quit; the instance is gone', async (t) => {
  const { dir, image, start } = await setup(t);
  const kernel = await writeStandInKernel(dir, { mode: 'wait' });
  const vm = await start(image, { kernel, name: 'waiter', ready: 'CMDLINE:' });
  await vm.ready;
  t.deepEqual((await listInstances({ root: dir })).map((i) => [i.name, i.running]), [['waiter', true]]);
  const exit = await vm.stop({ graceMs: 300 }); // the stand-in ignores ACPI: QMP quit ends it
  t.is(exit.endedBy, 'stop');
  t.is(exit.exitCode, 0);
  t.is(exit.reason, 'host-qmp-quit');
  t.false(pidAlive(vm.pid));
  t.deepEqual(await listInstances({ root: dir }), []);
});

test('a detached VM is managed by name: list, stop, delete', async (t) => {
  const { dir, image, start } = await setup(t);
  const kernel = await writeStandInKernel(dir, { mode: 'wait' });
  const vm = await start(image, { kernel, name: 'bg', detached: true, persist: true });
  await vm.ready;
  t.is(vm.recentLines[0]?.startsWith('CMDLINE:'), true);
  const [info] = await listInstances({ root: dir });
  t.is(info?.running, true);
  t.is(info?.pid, vm.pid);
  await t.throwsAsync(start(image, { kernel, name: 'bg' }), { message: /instance "bg" is already running[\s\S]*replace: true/ });
  t.not(await stopInstance('bg', { root: dir, graceMs: 200 }), 'gone');
  t.false(pidAlive(vm.pid));
  t.is(await stopInstance('bg', { root: dir }), 'gone');
  await deleteInstance('bg', { root: dir });
  t.false(existsSync(vm.dir));
});

test('a detached VM outlives the process that booted it, and is stopped by name from another', async (t) => {
  const { dir, image } = await setup(t);
  const kernel = await writeStandInKernel(dir, { mode: 'wait' });
  const script = `
    import { boot } from ${JSON.stringify(path.join(repo, 'lib/vm/index.ts'))};
    const vm = await boot(${JSON.stringify(image)}, { root: ${JSON.stringify(dir)}, accel: 'tcg', kernel: ${JSON.stringify(kernel)}, name: 'bg', detached: true, silent: true });
    await vm.ready;
    console.log(JSON.stringify({ pid: vm.pid }));
  `;
  // The child must end by itself once the VM is ready (nothing of the VM keeps it alive).
  const { stdout } = await execa(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { cwd: repo, timeout: 30000 });
  const { pid } = JSON.parse(stdout) as { pid: number };
  t.teardown(() => { if (pidAlive(pid)) process.kill(pid, 'SIGKILL'); });
  t.true(pidAlive(pid), 'QEMU still runs');
  const [info] = await listInstances({ root: dir });
  t.deepEqual([info?.name, info?.running, info?.pid], ['bg', true, pid]);
  t.regex(readFileSync(path.join(info!.dir, 'console.log'), 'utf8'), /^CMDLINE:/);
  t.is(await stopInstance('bg', { root: dir, graceMs: 200 }), 'quit');
  t.false(pidAlive(pid));
  await deleteInstance('bg', { root: dir });
});

test('volumes: created by our code in the package, attached from its volumes folder, accepted by QEMU and qemu-img', async (t) => {
  const { dir, image, start } = await setup(t);
  mkdirSync(path.join(dir, 'meta'));
  writeFileSync(path.join(dir, 'meta', 'package.yaml'), 'name: app\ntitle: App\nauthor: me\n');
  const raw = await createVolume(dir, 'vol1', { size: '64M' });
  const q = await createVolume(dir, 'vol2', { size: '1G', format: 'qcow2', aio: 'threads', cache: 'writeback' });
  t.is(raw.size, 64 * 1048576);
  t.is(raw.path, path.join(dir, 'volumes', 'vol1'));
  const rawInfo = JSON.parse((await execa('qemu-img', ['info', '--output=json', raw.path])).stdout) as Record<string, number | string>;
  t.is(rawInfo['format'], 'raw');
  t.is(rawInfo['virtual-size'], 64 * 1048576);
  t.true((rawInfo['actual-size'] as number) < 1048576, 'sparse');
  await execa('qemu-img', ['check', q.path]);
  const qInfo = JSON.parse((await execa('qemu-img', ['info', '--output=json', q.path])).stdout) as Record<string, number | string>;
  t.is(qInfo['virtual-size'], 1024 * 1048576);
  await t.throwsAsync(createVolume(dir, 'vol1'), { message: /already exists/ });
  const vm = await start(image, { volumes: { package: dir } });
  const exit = await vm.exited;
  t.is(exit.exitCode, STAND_IN_EXIT_OK);
  t.regex(vm.command, /file=[^ ]*\/volumes\/vol1,if=none,id=hd1,format=raw/);
  t.regex(vm.command, /file=[^ ]*\/volumes\/vol2,if=none,id=hd2,format=qcow2,aio=threads,cache=writeback/);
});

test('KVM failing at start: retried once under TCG, and said so', async (t) => {
  const { image, start } = await setup(t);
  // An unknown CPU model makes QEMU exit at once under KVM (as "failed to set MSR" does);
  // without a usable /dev/kvm, forcing KVM fails the same way.
  const vm = await start(image, { accel: 'kvm', kvmCpu: 'no-such-cpu-model' });
  const fallbacks: string[] = [];
  vm.on('fallback', (r) => fallbacks.push(r));
  await vm.ready;
  const exit = await vm.exited;
  t.is(vm.accel, 'tcg');
  t.is(fallbacks.length, 1);
  t.truthy(vm.fallbackReason);
  t.is(exit.exitCode, STAND_IN_EXIT_OK);
  t.regex(vm.command, /-accel tcg/);
});

test('KVM emulation failure with QEMU still running: stderr is watched, QEMU killed, TCG takes over', async (t) => {
  const { dir, image, start } = await setup(t);
  // A QEMU stand-in that, under KVM, reports an emulation failure and hangs like QEMU does.
  const fake = path.join(dir, 'qemu-kvm-broken');
  const pidFile = path.join(dir, 'hung.pid');
  writeFileSync(fake, `#!/bin/sh
case "$*" in *"-accel kvm"*)
  echo $$ > ${pidFile}
  echo "KVM internal error. Suberror: 1" >&2
  echo "emulation failure" >&2
  exec sleep 60;;
esac
exec /usr/bin/qemu-system-x86_64 "$@"
`);
  chmodSync(fake, 0o755);
  const vm = await start(image, { qemu: fake, accel: 'kvm' });
  await vm.ready;
  await vm.exited;
  t.is(vm.accel, 'tcg');
  t.is(vm.fallbackReason, 'KVM internal error. Suberror: 1');
  t.false(pidAlive(Number(readFileSync(pidFile, 'utf8'))), 'the hung QEMU was killed');
  t.is(vm.recentLines[0], 'CMDLINE:/image.so');
});

test('KVM on this host, when /dev/kvm is usable', async (t) => {
  if (!kvmDeviceUsable()) { t.pass('no usable /dev/kvm here'); return; }
  const { image, start } = await setup(t);
  const vm = await start(image, { accel: 'auto' });
  await vm.ready;
  const exit = await vm.exited;
  t.is(exit.exitCode, STAND_IN_EXIT_OK);
  t.log(`accelerator: ${vm.accel}${vm.fallbackReason ? ` (fell back: ${vm.fallbackReason})` : ''}`);
  t.true(vm.accel === 'kvm' || vm.fallbackReason !== undefined);
});

test('errors: missing image, QEMU exiting before ready', async (t) => {
  const { dir, image, start } = await setup(t);
  await t.throwsAsync(start(path.join(dir, 'nope.qemu')), { message: /nope\.qemu: the image to boot does not exist/ });
  const vm = await start(image, { ready: 'NEVER-PRINTED' });
  const error = await t.throwsAsync(vm.ready);
  t.regex(error.message, /QEMU exited with status 33 before the VM was ready/);
  t.regex(error.message, /last console lines:\n\s+CMDLINE:\/image\.so/);
  t.regex(error.message, /command: \/usr\/bin\/qemu-system-x86_64 /);
});

const killedProcess = test.macro({
  title: (_p, signal: NodeJS.Signals) => `kill -${signal.slice(3)} of the process that booted a VM leaves no QEMU behind`,
  async exec(t, signal: NodeJS.Signals) {
    const { dir, image } = await setup(t);
    const kernel = await writeStandInKernel(dir, { mode: 'wait' });
    const script = `
      import { boot } from ${JSON.stringify(path.join(repo, 'lib/vm/index.ts'))};
      const vm = await boot(${JSON.stringify(image)}, { root: ${JSON.stringify(dir)}, accel: 'tcg', kernel: ${JSON.stringify(kernel)}, silent: true });
      await vm.ready;
      console.log(JSON.stringify({ pid: vm.pid, dir: vm.dir }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => { child.kill('SIGKILL'); });
    const first = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; if (out.includes('\n')) resolve(out.split('\n')[0]!); });
      child.once('exit', (code) => reject(new Error(`child exited (${code}) before booting: ${out}`)));
    });
    const { pid, dir: instance } = JSON.parse(first) as { pid: number; dir: string };
    t.teardown(() => { if (pidAlive(pid)) process.kill(pid, 'SIGKILL'); });
    t.true(pidAlive(pid));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, s) => resolve(s)));
    child.kill(signal);
    t.is(await exited, signal, 'the process still dies of the signal');
    for (let i = 0; i < 100 && pidAlive(pid); i++) await delay(50);
    t.false(pidAlive(pid), 'QEMU is gone');
    t.false(existsSync(instance), 'and so is its instance folder');
  },
});

test(killedProcess, 'SIGINT');
test(killedProcess, 'SIGTERM');
