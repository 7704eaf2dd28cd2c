// The libvirt target against the real libvirtd of .ci/libvirt-setup.sh, through its remote API
// (qemu+tcp://127.0.0.1/system): the image goes into a pool with vol-upload, the domain boots
// the stand-in boot sector (wait mode), whose console we read back over the API.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { CloudError } from '../lib/errors.js';
import type { CapstanEvent } from '../lib/events.js';
import { bootLibvirt, deleteLibvirtInstance, listLibvirtInstances, stopLibvirtInstance, type LibvirtVm } from '../lib/vm/libvirt/index.js';
import { libvirtTarget, standInImage } from './helpers/stack-targets.js';

const target = await libvirtTarget();
const uri = 'uri' in target ? target.uri : '';
const maybe = 'uri' in target ? test.serial : test.serial.skip;
if ('skip' in target) console.log(`libvirt tests skipped: ${target.skip}`);

let dir = '';
let image = '';
test.before(async () => {
  if (!uri) return;
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-libvirt-t-'));
  image = await standInImage(dir, { cmdline: '/hello image' });
});
test.after.always(async () => {
  if (!uri) return;
  for (const i of await listLibvirtInstances({ uri })) if (i.name.startsWith('capstan-t-')) await deleteLibvirtInstance(i.name, { uri }).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

async function volumes(): Promise<string[]> {
  const r = await execa('virsh', ['-q', '-c', uri, 'vol-list', 'default']);
  return String(r.stdout).split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter(Boolean);
}

async function domains(): Promise<string[]> {
  const r = await execa('virsh', ['-q', '-c', uri, 'list', '--all', '--name']);
  return String(r.stdout).split('\n').map((l) => l.trim()).filter(Boolean);
}

maybe('boots an image on libvirt with its own command line, reads the console over the API, leaves nothing behind', async (t) => {
  const events: CapstanEvent[] = [];
  const name = `capstan-t-${process.pid}-a`;
  const vm: LibvirtVm = await bootLibvirt(image, {
    uri, name, accel: 'tcg', memory: '64M', cpus: 1, network: 'none', execute: '/hello run-time', env: { X: '1' },
    ready: 'PART:', readyTimeout: 90_000, pollMs: 300, silent: true, events: (e) => events.push(e),
  });
  t.teardown(() => vm.kill().catch(() => {}));
  const lines: string[] = [];
  vm.on('line', (l) => lines.push(l));
  const started = Date.now();
  await vm.ready;
  t.log(`console line ${Date.now() - started} ms after start`);
  // The uploaded copy carries the run's command line; the stand-in read it from byte 512.
  t.true(vm.recentLines.includes('CMDLINE:--env=X=1 /hello run-time'), vm.recentLines.join('\n'));
  t.true(vm.recentLines.includes('PART:adbeadde000000000100000000000000'), vm.recentLines.join('\n'));
  const listed = (await listLibvirtInstances({ uri })).find((i) => i.name === name);
  t.truthy(listed);
  t.true(listed!.running);
  t.is(listed!.image, image);
  t.true((await volumes()).includes(`${name}.qcow2`));
  t.true((await volumes()).includes(`${name}.console.log`));
  const exit = await vm.stop({ graceMs: 1000 }); // the stand-in ignores ACPI: destroyed after the grace
  t.is(exit.endedBy, 'stop');
  t.false((await domains()).includes(name));
  t.deepEqual((await volumes()).filter((v) => v.startsWith(name)), []);
  t.deepEqual(events.filter((e) => e.event !== 'upload').map((e) => e.event), ['vm-start', 'vm-ready', 'vm-exit']);
  t.true(events.some((e) => e.event === 'upload' && e.done && e.target === 'libvirt'));
});

maybe('a persisted libvirt instance stays defined after it stops, and delete removes it and its volumes', async (t) => {
  const name = `capstan-t-${process.pid}-p`;
  const vm = await bootLibvirt(image, { uri, name, accel: 'tcg', memory: '64M', cpus: 1, network: 'none', persist: true, ready: 'PART:', pollMs: 300, silent: true });
  await vm.ready;
  t.is(vm.cmdline, '/hello image');
  t.true(vm.recentLines.includes('CMDLINE:/hello image'));
  vm.release();
  t.is(await stopLibvirtInstance(name, { uri, graceMs: 500 }), 'destroyed');
  const listed = (await listLibvirtInstances({ uri })).find((i) => i.name === name);
  t.is(listed?.state, 'shut off');
  t.false(listed!.running);
  t.true((await volumes()).includes(`${name}.qcow2`));
  await deleteLibvirtInstance(name, { uri });
  t.false((await domains()).includes(name));
  t.deepEqual((await volumes()).filter((v) => v.startsWith(name)), []);
  await t.throwsAsync(deleteLibvirtInstance(name, { uri }), { instanceOf: CloudError, message: /no gulp-capstan instance named/ });
});

maybe('a missing pool, a dead URI, a missing libvirt network and a taken name fail clearly, leaving nothing', async (t) => {
  const name = `capstan-t-${process.pid}-e`;
  const before = await volumes();
  const noPool = await t.throwsAsync(bootLibvirt(image, { uri, name, pool: 'no-such-pool', network: 'none', silent: true }), { instanceOf: CloudError });
  t.is(noPool.code, 'E_LIBVIRT_NO_POOL');
  t.regex(noPool.message, /no storage pool "no-such-pool"[\s\S]*pool-define-as/);
  const dead = await t.throwsAsync(bootLibvirt(image, { uri: 'qemu+tcp://127.0.0.1:1/system', name, network: 'none', silent: true }), { instanceOf: CloudError });
  t.is(dead.code, 'E_LIBVIRT_CONNECT');
  t.regex(dead.message, /libvirt \(qemu\+tcp:\/\/127\.0\.0\.1:1\/system\)/);
  // NAT through a libvirt network that is not there: start fails with libvirt's words, and the
  // defined domain and uploaded volumes are removed again.
  const noNet = await t.throwsAsync(bootLibvirt(image, { uri, name, accel: 'tcg', memory: '64M', network: 'nat', networkDevice: 'no-such-net', silent: true }), { instanceOf: CloudError });
  t.regex(noNet.message, /cannot start the domain capstan-t-\d+-e: .*no-such-net/);
  t.false((await domains()).includes(name));
  t.deepEqual(await volumes(), before);
  const vm = await bootLibvirt(image, { uri, name, accel: 'tcg', memory: '64M', cpus: 1, network: 'none', silent: true, pollMs: 300 });
  t.teardown(() => vm.kill().catch(() => {}));
  const taken = await t.throwsAsync(bootLibvirt(image, { uri, name, network: 'none', silent: true }), { instanceOf: CloudError });
  t.is(taken.code, 'E_VM_NAME_TAKEN');
  await vm.kill();
  t.deepEqual(await volumes(), before);
});
