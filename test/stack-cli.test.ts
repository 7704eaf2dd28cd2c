// The multi-machine commands and tasks through the real binaries in a user's project (the
// stand-in loader served as osv-loader): `capstan stack push|run` against the test OpenStack,
// `capstan run --target libvirt` with instances/stop/delete, and the gulp tasks
// `unikernel:push`, `unikernel:stack-run` and `unikernel:libvirt` (Ctrl+C ends the domain).
// The stand-in halts once it has printed its report: no isa-debug-exit under Nova or libvirt.
import { existsSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { OpenStackSession } from '../lib/cloud/openstack/keystone.js';
import { imagesNamed } from '../lib/cloud/openstack/glance.js';
import { deleteServer } from '../lib/cloud/openstack/nova.js';
import { userProject } from './helpers/project.js';
import { libvirtTarget, openStackTarget } from './helpers/stack-targets.js';

const APP = {
  'meta/package.yaml': 'name: app\ntitle: App\nauthor: tests\n',
  'meta/run.yaml': 'runtime: native\nconfig_set:\n  default:\n    bootcmd: /app.so hello\n',
  'app.so': 'not really a program',
};

const os = await openStackTarget();
const lv = await libvirtTarget();
const withOpenStack = 'settings' in os ? test.serial : test.serial.skip;
const withLibvirt = 'uri' in lv ? test.serial : test.serial.skip;
if ('skip' in os) console.log(`stack CLI tests skipped: ${os.skip}`);
if ('skip' in lv) console.log(`libvirt CLI tests skipped: ${lv.skip}`);

type Event = Record<string, unknown> & { event: string };
const events = (stdout: unknown): Event[] => String(stdout).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Event);

function osEnv(): Record<string, string> {
  const s = 'settings' in os ? os.settings : undefined;
  return {
    OS_AUTH_URL: s!.authUrl, OS_USERNAME: s!.username!, OS_PASSWORD: s!.password!, OS_PROJECT_NAME: s!.projectName!,
    OS_USER_DOMAIN_NAME: s!.userDomainName ?? 'Default', OS_PROJECT_DOMAIN_NAME: s!.projectDomainName ?? 'Default', OS_REGION_NAME: s!.region ?? 'RegionOne',
  };
}

withOpenStack('capstan stack push then stack run -c 2: flavor picked for -s, image in Glance, local copy gone, 2 servers ACTIVE with the console line', async (t) => {
  const p = await userProject(t, APP);
  const session = await OpenStackSession.connect((os as { settings: Parameters<typeof OpenStackSession.connect>[0] }).settings);
  const image = `capstan-cli-${process.pid}`;
  t.teardown(async () => { for (const i of await imagesNamed(session, image)) await session.call('image', { what: 'delete', method: 'DELETE', path: `/v2/images/${i.id}`, accept: [404] }); });
  const env = { ...p.env, ...osEnv() };
  const pushed = await p.capstan(['stack', 'push', image, '-s', '1G', '-p', '--json'], { env });
  t.is(pushed.exitCode, 0, String(pushed.stderr));
  const pe = events(pushed.stdout);
  t.like(pe.find((e) => e.event === 'flavor'), { name: 'osv.tiny', disk: 1, picked: true });
  t.truthy(pe.find((e) => e.event === 'image-pushed' && e.name === image));
  t.regex(String(pushed.stderr), /^Creating image of user-usable size 1024 MB\.\n[\s\S]*\nUploading image to OpenStack\. This may take a while\.\nImage 'capstan-cli-\d+' \[src: .*\] successfully uploaded to OpenStack\.$/);
  const local = path.join(p.env.CAPSTAN_ROOT, 'repository', image);
  t.false(existsSync(local), 'the local image is removed after the upload (no --keep-image)');
  const glance = await imagesNamed(session, image);
  t.is(glance.length, 1);
  t.is(glance[0]!.min_disk, 1);
  t.is(glance[0]!.virtual_size, 1024 ** 3);
  // A second push replaces the first: the name stays unambiguous for stack run.
  const again = await p.capstan(['stack', 'push', image, '-s', '1G', '-p', '--keep-image'], { env });
  t.is(again.exitCode, 0, String(again.stderr));
  t.true(existsSync(path.join(local, `${image}.qemu`)), '--keep-image keeps it');
  const after = await imagesNamed(session, image);
  t.is(after.length, 1);
  t.not(after[0]!.id, glance[0]!.id);

  const run = await p.capstan(['openstack', 'run', image, '-c', '2', '-n', 'cli-srv', '--networks', 'none', '--ready', 'PART:', '--json'], { env });
  const re = events(run.stdout);
  const ids = [...new Set(re.filter((e) => e.event === 'server').map((e) => String(e.id)))];
  t.teardown(async () => { for (const id of ids) await deleteServer(session, id).catch(() => {}); });
  t.is(run.exitCode, 0, String(run.stderr));
  t.is(ids.length, 2);
  t.regex(String(run.stderr), /Launching 2 instances from image 'capstan-cli-\d+'\.\.\.\nPicked flavor osv\.tiny \(disk 1GB, memory 256MB\)\n(  cli-srv-[12]: \w+ after [\d.]+ s\n)+cli-srv-1 +\S+ ACTIVE\ncli-srv-2 +\S+ ACTIVE\n--- console of cli-srv-1\n[\s\S]*CMDLINE:runscript \/run\/default;[\s\S]*Instances launched\./);
  for (const id of ids) await deleteServer(session, id);

  const bad = await p.capstan(['stack', 'run', image, '--OS_AUTH_URL', osEnv().OS_AUTH_URL!, '--OS_USERNAME', 'admin', '--OS_PASSWORD', 'wrong', '--OS_PROJECT_NAME', 'admin'], { env });
  t.is(bad.exitCode, 65);
  t.regex(String(bad.stderr), /Keystone \(identity\) refused the credentials of user "admin" \(HTTP 401\)/);
  const noFit = await p.capstan(['stack', 'run', image, '-m', '64G', '--networks', 'none'], { env });
  t.is(noFit.exitCode, 65);
  t.regex(String(noFit.stderr), /no flavor fits: the image needs 1 GB of disk and 65536 MB of memory/);
});

withOpenStack('gulp unikernel:push and unikernel:stack-run, with --json events', async (t) => {
  const p = await userProject(t, APP);
  const session = await OpenStackSession.connect((os as { settings: Parameters<typeof OpenStackSession.connect>[0] }).settings);
  const image = `capstan-gulp-${process.pid}`;
  t.teardown(async () => { for (const i of await imagesNamed(session, image)) await session.call('image', { what: 'delete', method: 'DELETE', path: `/v2/images/${i.id}`, accept: [404] }); });
  const env = { ...p.env, ...osEnv() };
  const pushed = await p.gulp(['unikernel:push', '--image', image, '--size', '64M', '--json'], { env });
  t.is(pushed.exitCode, 0, String(pushed.stderr));
  t.truthy(events(pushed.stdout).find((e) => e.event === 'image-pushed' && e.name === image));
  const run = await p.gulp(['unikernel:stack-run', '--image', image, '--networks', 'none', '--ready', 'PART:', '--json'], { env });
  const ids = [...new Set(events(run.stdout).filter((e) => e.event === 'server').map((e) => String(e.id)))];
  t.teardown(async () => { for (const id of ids) await deleteServer(session, id).catch(() => {}); });
  t.is(run.exitCode, 0, String(run.stderr));
  t.is(ids.length, 1);
  t.regex(String(run.stderr), /CMDLINE:runscript \/run\/default;/);
});

withLibvirt('capstan run --target libvirt: detached, listed by instances, stopped and deleted', async (t) => {
  const uri = (lv as { uri: string }).uri;
  const p = await userProject(t, APP);
  t.is((await p.capstan(['package', 'compose', 'app', '-p'])).exitCode, 0);
  const name = `capstan-cli-${process.pid}`;
  t.teardown(() => p.capstan(['delete', '--target', 'libvirt', '--uri', uri, name]));
  const run = await p.capstan(['run', '--target', 'libvirt', '--uri', uri, '-n', 'none', '-m', '64M', '-c', '1', '--detach', '-i', 'app', name, '--json']);
  t.is(run.exitCode, 0, String(run.stderr));
  t.deepEqual(events(run.stdout).map((e) => e.event).filter((e) => e.startsWith('vm-')), ['vm-start', 'vm-ready']);
  t.regex(String(run.stderr), /CMDLINE:runscript \/run\/default;/);
  const list = await p.capstan(['instances', '--target', 'libvirt', '--uri', uri]);
  t.regex(String(list.stdout), new RegExp(`^${name} +libvirt +Running +\\S+app\\.qemu$`, 'm'));
  const stop = await p.capstan(['stop', '--target', 'libvirt', '--uri', uri, name]);
  t.is(String(stop.stdout).trim(), `Stopped instance: ${name}`);
  t.regex(String((await p.capstan(['instances', '--target', 'libvirt', '--uri', uri])).stdout), new RegExp(`^${name} +libvirt +Stopped`, 'm'));
  const del = await p.capstan(['delete', '--target', 'libvirt', '--uri', uri, name]);
  t.is(String(del.stdout).trim(), `Deleted instance: ${name}`);
  const domains = await execa('virsh', ['-q', '-c', uri, 'list', '--all', '--name']);
  t.false(String(domains.stdout).split('\n').includes(name));
  const wrong = await p.capstan(['run', '--target', 'kvm']);
  t.is(wrong.exitCode, 64);
});

withLibvirt('gulp unikernel:libvirt boots on the host; Ctrl+C ends the domain and removes it', async (t) => {
  const uri = (lv as { uri: string }).uri;
  const p = await userProject(t, APP);
  // The stand-in ignores ACPI, so stopping takes the grace time: no SIGKILL from execa meanwhile.
  const child = p.gulp(['unikernel:libvirt', '--uri', uri, '--network', 'none', '--memory', '64M', '--cpus', '1', '--size', '64M'], { forceKillAfterDelay: 60_000 });
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no console line; got: ${seen}`)), 120_000);
    child.stdout!.on('data', (d: Buffer) => { seen += d.toString(); if (seen.includes('PART:')) { clearTimeout(timer); resolve(); } });
  });
  t.regex(seen, /CMDLINE:runscript \/run\/default;/);
  child.kill('SIGINT');
  const result = await child;
  t.regex(String(result.stdout), /libvirt: app on .* ended/, `status ${result.exitCode} ${result.signal ?? ''}: ${String(result.stderr)}`);
  const domains = await execa('virsh', ['-q', '-c', uri, 'list', '--all', '--name']);
  t.false(String(domains.stdout).split('\n').includes('app'));
});
