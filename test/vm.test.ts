// Pure parts of the VM domain: argument building, parsing of user input, error messages.
import test from 'ava';
import { kvmFailureIn, chooseAccel } from '../lib/vm/accel.js';
import { parseVolume } from '../lib/vm/drives.js';
import { instanceNameFor, instancePaths } from '../lib/vm/instances.js';
import { parseMemory } from '../lib/vm/memory.js';
import { networkArgs, parseForward, planNetwork, randomMac } from '../lib/vm/network.js';
import { qemuArgs, formatCommand } from '../lib/vm/qemu-args.js';
import { runtimeCmdline } from '../lib/vm/runtime-cmdline.js';
import { findQemu } from '../lib/vm/qemu-binary.js';
import { VmError } from '../lib/errors.js';
import { ConsoleLines, type ReadyMarker } from '../lib/vm/console-lines.js';

test('port forwards: Capstan host:guest, free host port, address, udp', (t) => {
  t.deepEqual(parseForward('8080:80'), { protocol: 'tcp', address: '127.0.0.1', host: 8080, guest: 80 });
  t.deepEqual(parseForward('0:80'), { protocol: 'tcp', address: '127.0.0.1', host: 0, guest: 80 });
  t.deepEqual(parseForward(':80'), { protocol: 'tcp', address: '127.0.0.1', host: 0, guest: 80 });
  t.deepEqual(parseForward('80'), { protocol: 'tcp', address: '127.0.0.1', host: 0, guest: 80 });
  t.deepEqual(parseForward('0.0.0.0:5353:53/udp'), { protocol: 'udp', address: '0.0.0.0', host: 5353, guest: 53 });
  t.deepEqual(parseForward({ guest: 22 }), { protocol: 'tcp', address: '127.0.0.1', host: 0, guest: 22 });
  const bad = t.throws(() => parseForward('80:x'), { instanceOf: VmError });
  t.regex(bad.message, /bad port forward "80:x": guest port "x" is not a number/);
  t.regex(bad.message, /host:guest/);
  t.throws(() => parseForward('70000:80'), { message: /host port 70000 is out of range/ });
  t.throws(() => parseForward('8080:0'), { message: /guest port 0 is out of range/ });
});

test('NAT with free host ports: picked, distinct, and in the hostfwd arguments', async (t) => {
  const plan = await planNetwork({ forward: ['0:80', ':443', '0:53/udp'] });
  t.is(plan.forwards.length, 3);
  for (const f of plan.forwards) t.true(f.host > 0 && f.host < 65536);
  const args = networkArgs(plan).join(' ');
  t.regex(args, new RegExp(`hostfwd=tcp:127\\.0\\.0\\.1:${plan.forwards[0]!.host}-:80`));
  t.regex(args, new RegExp(`hostfwd=udp:127\\.0\\.0\\.1:${plan.forwards[2]!.host}-:53`));
  t.regex(args, /-device virtio-net-pci,netdev=un0,romfile=/);
});

test('bridge and tap: MAC given or random locally administered unicast', async (t) => {
  for (let i = 0; i < 20; i++) {
    const mac = randomMac();
    t.regex(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const b0 = parseInt(mac.slice(0, 2), 16);
    t.is(b0 & 0x01, 0, 'unicast');
    t.is(b0 & 0x02, 0x02, 'locally administered');
  }
  const tap = await planNetwork({ mode: 'tap', device: 'tap7', mac: '52:54:00:12:34:56' });
  t.deepEqual(networkArgs(tap), ['-netdev', 'tap,id=hn0,ifname=tap7,script=no,downscript=no', '-device', 'virtio-net-pci,netdev=hn0,id=nic1,mac=52:54:00:12:34:56,romfile=']);
  const bridge = await planNetwork({ mode: 'bridge' });
  t.is(bridge.device, 'virbr0');
  t.truthy(bridge.mac);
  const args = networkArgs(bridge, { CAPSTAN_QEMU_BRIDGE_HELPER: '/x/qemu-bridge-helper' });
  t.is(args[1], 'bridge,id=hn0,br=virbr0,helper=/x/qemu-bridge-helper');
  await t.throwsAsync(planNetwork({ mode: 'tap' }), { message: /tap networking needs the tap interface name/ });
  await t.throwsAsync(planNetwork({ mode: 'bridge', forward: ['80'] }), { message: /port forwards need network mode nat/ });
  await t.throwsAsync(planNetwork({ mode: 'tap', device: 't', mac: 'zz' }), { message: /bad MAC address "zz"/ });
});

test('run-time command line: execute > boot > image, env prefixes like Capstan', (t) => {
  t.is(runtimeCmdline({}, '/img'), undefined);
  t.is(runtimeCmdline({ execute: '/hello.so a' }, '/img'), '/hello.so a');
  t.is(runtimeCmdline({ boot: ['a', ' b '] }, '/img'), 'runscript /run/a;runscript /run/b;');
  t.is(runtimeCmdline({ execute: '/x', boot: ['a'] }, '/img'), '/x');
  t.is(runtimeCmdline({ boot: ['a'], env: { K: 'V', PORT: '80' } }, '/img'), '--env=K=V --env=PORT=80 runscript /run/a;');
  t.is(runtimeCmdline({ env: ['K=V=W'] }, '/img'), '--env=K=V=W /img');
  t.throws(() => runtimeCmdline({ env: { K: 'a b' } }), { message: /contains a space/ });
  t.throws(() => runtimeCmdline({ env: ['nokey'] }), { message: /bad env entry "nokey"/ });
});

test('KVM failures are recognised in QEMU stderr', (t) => {
  t.is(kvmFailureIn('qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000\nqemu: kvm_buf_set_msrs: Assertion'), 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000');
  t.is(kvmFailureIn('KVM internal error. Suberror: 1\nemulation failure\nEAX=00000000'), 'KVM internal error. Suberror: 1');
  t.is(kvmFailureIn('qemu-system-x86_64: warning: TCG doesn\'t support requested feature'), undefined);
  t.is(chooseAccel('tcg'), 'tcg');
  t.is(chooseAccel('auto', { CAPSTAN_DISABLE_KVM: '1' }), 'tcg');
  t.is(chooseAccel('auto', {}, '/nonexistent/kvm'), 'tcg');
});

test('volumes: Capstan syntax and defaults', (t) => {
  const v = parseVolume('/tmp/v1:format=qcow2:aio=threads:cache=writeback');
  t.deepEqual(v, { path: '/tmp/v1', format: 'qcow2', aio: 'threads', cache: 'writeback' });
  t.is(parseVolume('/nonexistent/v2').format, 'raw');
  t.is(parseVolume('/tmp/v:format=vmdk').format, 'vmdk', 'QEMU attaches vmdk and vdi volumes too');
  t.throws(() => parseVolume('/tmp/v:format=qcow3'), { message: /bad volume "\/tmp\/v:format=qcow3": format "qcow3"/ });
  t.throws(() => parseVolume('/tmp/v:size=1G'), { message: /unknown volume setting "size"/ });
});

test('memory sizes, instance names and socket paths', (t) => {
  t.is(parseMemory('1G'), 1024);
  t.is(parseMemory('512mb'), 512);
  t.is(parseMemory(256), 256);
  t.throws(() => parseMemory('1T'), { message: /bad memory size "1T"/ });
  t.is(instanceNameFor('/repo/mike/app.qemu'), 'app');
  t.is(instanceNameFor('/x/My App!.qcow2'), 'My-App-');
  t.throws(() => instancePaths('../evil', '/tmp'), { message: /bad instance name/ });
  t.throws(() => instancePaths('a', '/tmp/' + 'x'.repeat(120)), { message: /longer than the 107 bytes/ });
});

test('QEMU arguments: virtio-blk boot disk, serial on stdio, QMP socket, accel, kernel mode', (t) => {
  const base = {
    memoryMiB: 1024, cpus: 2, accel: 'kvm' as const, kvmCpu: 'host',
    disk: { path: '/i/disk.qcow2', format: 'qcow2' as const, aio: 'threads' as const, cache: 'none' as const },
    volumes: [{ path: '/v,1', format: 'raw' as const, aio: 'native' as const, cache: 'none' as const }],
    network: { mode: 'none' as const, forwards: [] }, monitor: '/i/osv.monitor', pidFile: '/i/qemu.pid',
    console: { kind: 'stdio' as const }, debugExit: false, rebootOnReset: false, extra: [],
  };
  const a = qemuArgs(base).join(' ');
  t.regex(a, /-m 1024 -smp 2 -accel kvm -cpu host/);
  t.regex(a, /-drive file=\/i\/disk\.qcow2,if=none,id=hd0,format=qcow2,aio=threads,cache=none -device virtio-blk-pci,id=blk0,bootindex=0,drive=hd0/);
  t.regex(a, /-drive file=\/v,,1,if=none,id=hd1,format=raw,aio=native,cache=none -device virtio-blk-pci,id=blk1,bootindex=1,drive=hd1/);
  t.regex(a, /-chardev stdio,id=console,signal=off -serial chardev:console/);
  t.regex(a, /-chardev socket,id=charmonitor,path=\/i\/osv\.monitor,server=on,wait=off -mon chardev=charmonitor,id=monitor,mode=control/);
  t.regex(a, /-no-reboot/);
  t.notRegex(a, /-kernel|isa-debug-exit/);
  const k = qemuArgs({ ...base, accel: 'tcg', kernel: { path: '/k.elf', append: '--env=A=B /x' }, debugExit: true });
  t.true(k.includes('-kernel') && k[k.indexOf('-append') + 1] === '--env=A=B /x');
  t.true(k.includes('tcg') && !k.includes('-cpu'));
  t.regex(k.join(' '), /virtio-blk-pci,id=blk0,drive=hd0/, 'no bootindex in kernel mode');
  t.is(formatCommand('q', ['-append', "a b'c"]), `q -append 'a b'\\''c'`);
});

test('QEMU discovery: $CAPSTAN_QEMU_PATH must exist', (t) => {
  t.throws(() => findQemu(undefined, { CAPSTAN_QEMU_PATH: '/nonexistent/qemu' }), { message: /\/nonexistent\/qemu does not exist.*\n.*CAPSTAN_QEMU_PATH/ });
  t.is(findQemu(undefined, { CAPSTAN_QEMU_PATH: '/usr/bin/qemu-system-x86_64' }), '/usr/bin/qemu-system-x86_64');
});

test("Capstan's config.yaml: disable_kvm and qemu_aio_type, the environment wins", async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { readCapstanVmConfig, withCapstanConfig } = await import('../lib/vm/capstan-config.js');
  const root = mkdtempSync(`${tmpdir()}/capstan-cfg-`);
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.deepEqual(readCapstanVmConfig(root), {});
  writeFileSync(`${root}/config.yaml`, 'repo_url: https://example.invalid\ndisable_kvm: true\nqemu_aio_type: native\n');
  const config = readCapstanVmConfig(root);
  t.deepEqual(config, { disableKvm: true, qemuAioType: 'native' });
  const env = withCapstanConfig({}, config);
  t.is(chooseAccel('auto', env), 'tcg');
  t.is(env.CAPSTAN_QEMU_AIO_TYPE, 'native');
  t.is(withCapstanConfig({ CAPSTAN_DISABLE_KVM: '0', CAPSTAN_QEMU_AIO_TYPE: 'threads' }, config).CAPSTAN_QEMU_AIO_TYPE, 'threads');
  writeFileSync(`${root}/config.yaml`, 'disable_kvm: [\n');
  t.throws(() => readCapstanVmConfig(root), { message: /config\.yaml:\d+:\d+: cannot read Capstan's configuration: invalid YAML/ });
});

test("Capstan's config.yaml read as go-yaml reads it: yes is true, a wrong-typed value is ignored with a warning, repeats warn", async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { readCapstanVmConfig } = await import('../lib/vm/capstan-config.js');
  const root = mkdtempSync(`${tmpdir()}/capstan-cfg-`);
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(`${root}/config.yaml`, 'disable_kvm: yes\nqemu_aio_type: threads\nqemu_aio_type: native\n');
  const warnings: Array<{ code: string; line?: number | undefined }> = [];
  t.deepEqual(readCapstanVmConfig(root, (w) => warnings.push(w)), { disableKvm: true, qemuAioType: 'native' });
  t.like(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', line: 3 }]);
  writeFileSync(`${root}/config.yaml`, 'disable_kvm: maybe\nqemu_aio_type: native\n');
  warnings.length = 0;
  t.deepEqual(readCapstanVmConfig(root, (w) => warnings.push(w)), { qemuAioType: 'native' }, 'the ignored key is absent');
  t.like(warnings, [{ code: 'W_CAPSTAN_CONFIG_TYPE', line: 1 }]);
});

test('console lines (QEMU and libvirt): whole lines in any pieces, CR dropped, a prompt without newline can be the marker, a predicate sees only whole lines', (t) => {
  const run = (ready: ReadyMarker | undefined, pieces: string[], end = false) => {
    const lines: string[] = [];
    let readyAt = -1;
    const c = new ConsoleLines({ ready, keep: 3, onLine: (l) => lines.push(l), onReady: () => { t.is(readyAt, -1, 'ready once'); readyAt = lines.length; } });
    for (const p of pieces) c.write(p);
    if (end) c.end();
    return { lines, readyAt, recent: c.recent };
  };
  const boot = ['OSv v0.57\r\n', 'eth0: 192.168', '.122.15\r\nBooted up in 12', '0.5 ms\r\n', 'login: '];
  t.deepEqual(run('Booted', boot).lines, ['OSv v0.57', 'eth0: 192.168.122.15', 'Booted up in 120.5 ms']);
  t.is(run(/Booted up in [\d.]+ ms/g, boot).readyAt, 3); // a /g pattern is not thrown off by lastIndex
  t.is(run('login:', boot).readyAt, 3, 'the prompt matched before its newline');
  t.is(run((l) => l.startsWith('login'), boot).readyAt, -1, 'a predicate waits for whole lines');
  t.is(run((l) => l.startsWith('login'), boot, true).readyAt, 4, '… and gets the last one at the end');
  t.is(run(undefined, boot).readyAt, 1, 'no marker: the first line');
  t.deepEqual(run(undefined, boot, true).recent, ['eth0: 192.168.122.15', 'Booted up in 120.5 ms', 'login: '], 'the last `keep` lines');
});
