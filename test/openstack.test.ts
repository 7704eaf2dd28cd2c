// stack push / stack run against the real OpenStack of .ci/openstack-setup.sh (Keystone,
// Glance, Nova with libvirt under TCG, an API-only Neutron; all on 127.0.0.1): an image built
// with the stand-in boot sector (wait mode) is pushed, booted as 2 servers without networks,
// each console read for the stand-in's line, then everything deleted and checked gone.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import test from 'ava';
import { execa } from 'execa';
import { authSettingsFromEnv } from '../lib/cloud/openstack/clouds-yaml.js';
import { getImage, imagesNamed } from '../lib/cloud/openstack/glance.js';
import { OpenStackSession } from '../lib/cloud/openstack/keystone.js';
import { listFlavors, pickFlavor, serversOfReservation } from '../lib/cloud/openstack/nova.js';
import { pushImage, runInstances } from '../lib/cloud/openstack/stack.js';
import { CloudError } from '../lib/errors.js';
import type { CapstanEvent } from '../lib/events.js';
import { readDiskCmdline } from '../lib/vm/overlay.js';
import { openStackTarget, standInImage } from './helpers/stack-targets.js';

const target = await openStackTarget();
const settings = 'settings' in target ? target.settings : undefined;
const maybe = settings ? test.serial : test.serial.skip;
if ('skip' in target) console.log(`OpenStack tests skipped: ${target.skip}`);

const prefix = `capstan-t${process.pid}`;
let dir = '';
let image = '';
let session: OpenStackSession;

test.before(async () => {
  if (!settings) return;
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-os-t-'));
  image = await standInImage(dir, { cmdline: '/hello image' });
  session = await OpenStackSession.connect(settings);
});

test.after.always(async () => {
  if (!settings) return;
  // Whatever a failed test left: images of ours by name prefix.
  const answer = await session.call('image', { what: 'list images', method: 'GET', path: '/v2/images?limit=200' });
  for (const i of (answer.json as { images: Array<{ id: string; name: string }> }).images) {
    if (i.name?.startsWith(prefix)) await session.call('image', { what: 'delete', method: 'DELETE', path: `/v2/images/${i.id}`, accept: [404] }).catch(() => {});
  }
  await rm(dir, { recursive: true, force: true });
});

/** The Nova domains libvirt still has on this host (the compute host is this machine). */
async function novaDomains(): Promise<string[]> {
  const r = await execa('virsh', ['-q', '-c', 'qemu:///system', 'list', '--all', '--name'], { reject: false });
  return String(r.stdout).split('\n').map((l) => l.trim()).filter((n) => n.startsWith('instance-'));
}

maybe('Keystone: a token from clouds.yaml and from OS_* variables; a wrong password is a clear 401', async (t) => {
  t.truthy(session.projectId);
  t.regex(session.endpoint('image'), /^http:\/\/127\.0\.0\.1:9292$/);
  t.regex(session.endpoint('compute'), /8774\/v2\.1$/);
  const env = {
    OS_AUTH_URL: settings!.authUrl, OS_USERNAME: settings!.username, OS_PASSWORD: settings!.password, OS_PROJECT_NAME: settings!.projectName,
    OS_USER_DOMAIN_NAME: settings!.userDomainName, OS_PROJECT_DOMAIN_NAME: settings!.projectDomainName, OS_REGION_NAME: settings!.region,
  };
  const fromEnv = await OpenStackSession.connect(authSettingsFromEnv(env));
  t.is(fromEnv.projectId, session.projectId);
  const wrong = await t.throwsAsync(OpenStackSession.connect({ ...settings!, password: 'not-the-password' }), { instanceOf: CloudError });
  t.is(wrong.code, 'E_CLOUD_AUTH');
  t.is(wrong.status, 401);
  t.regex(wrong.message, /^http:\/\/127\.0\.0\.1:5000\/v3\/auth\/tokens: Keystone \(identity\) refused the credentials of user "admin" \(HTTP 401\): The request you have made requires authentication\./);
  t.regex(wrong.message, /Check the password/);
  // The wrong region: the catalog says which there are.
  const elsewhere = await OpenStackSession.connect({ ...settings!, region: 'Mars' });
  t.throws(() => elsewhere.endpoint('image'), { message: /no public Glance \(image\) endpoint in region Mars[\s\S]*RegionOne/ });
});

maybe('Keystone: an application credential authenticates (and is scoped to its project)', async (t) => {
  const created = await session.call('identity', {
    what: 'create an application credential', method: 'POST', path: `/users/${session.userId}/application_credentials`,
    json: { application_credential: { name: `${prefix}-appcred` } },
  });
  const cred = (created.json as { application_credential: { id: string; secret: string } }).application_credential;
  t.teardown(() => session.call('identity', { what: 'delete it', method: 'DELETE', path: `/users/${session.userId}/application_credentials/${cred.id}`, accept: [404] }));
  const viaCred = await OpenStackSession.connect({ authUrl: settings!.authUrl, type: 'application-credential', applicationCredentialId: cred.id, applicationCredentialSecret: cred.secret, source: 'test' });
  t.is(viaCred.projectId, session.projectId);
  const env = authSettingsFromEnv({ OS_AUTH_URL: settings!.authUrl, OS_AUTH_TYPE: 'v3applicationcredential', OS_APPLICATION_CREDENTIAL_ID: cred.id, OS_APPLICATION_CREDENTIAL_SECRET: cred.secret });
  t.is((await OpenStackSession.connect(env)).projectId, session.projectId);
  const bad = await t.throwsAsync(OpenStackSession.connect({ ...env, applicationCredentialSecret: 'wrong' }), { instanceOf: CloudError });
  t.is(bad.code, 'E_CLOUD_AUTH');
  t.regex(bad.message, /refused the credentials of application credential/);
});

maybe('stack push then stack run: 2 servers without networks, each console shows the stand-in, nothing left after delete', async (t) => {
  const events: CapstanEvent[] = [];
  const name = `${prefix}-push`;
  const t0 = Date.now();
  const pushed = await pushImage(image, { auth: settings, name, execute: '/hello openstack', silent: true, events: (e) => events.push(e) });
  const pushMs = Date.now() - t0;
  t.is(pushed.cmdline, '/hello openstack');
  t.is(pushed.diskFormat, 'qcow2');
  t.is(pushed.minDisk, 1);
  // What Glance stores is the image with the run's command line, byte for byte.
  const glanceImage = await getImage(session, pushed.id);
  t.is(glanceImage?.status, 'active');
  t.deepEqual(glanceImage?.tags?.sort(), ['tagCapstan', 'tagOSv']);
  const raw = await fetchBytes(`${session.endpoint('image')}/v2/images/${pushed.id}/file`, session.tokenValue);
  t.is(createHash('md5').update(raw).digest('hex'), pushed.checksum);
  await writeFile(path.join(dir, 'downloaded.qcow2'), raw);
  t.is(await readDiskCmdline(path.join(dir, 'downloaded.qcow2'), 'qcow2'), '/hello openstack');
  t.is(await readDiskCmdline(image, 'qcow2'), '/hello image', 'the local image is unchanged');

  const t1 = Date.now();
  const run = await runInstances(name, { auth: settings, count: 2, networks: 'none', silent: true, events: (e) => events.push(e) });
  const activeMs = Date.now() - t1;
  t.is(run.flavor.name, 'osv.tiny');
  t.deepEqual(run.servers.map((s) => s.name), [`instance-of-${name}-1`, `instance-of-${name}-2`]);
  t.true(run.servers.every((s) => s.status === 'ACTIVE'));
  const domainNames = run.servers.map((s) => s['OS-EXT-SRV-ATTR:instance_name']).filter((n): n is string => Boolean(n));
  const t2 = Date.now();
  const consoles = await run.waitForConsole('PART:', 120_000);
  const consoleMs = Date.now() - t2;
  for (const s of run.servers) {
    const text = consoles.get(s.id) ?? '';
    t.regex(text, /^CMDLINE:\/hello openstack\r?$/m, `${s.name}: ${text}`);
    t.regex(text, /^PART:adbeadde000000000100000000000000\r?$/m);
  }
  t.log(`push ${pushMs} ms, 2 servers ACTIVE ${activeMs} ms, both console lines ${consoleMs} ms later`);
  const t3 = Date.now();
  await run.delete();
  t.log(`delete ${Date.now() - t3} ms`);
  t.deepEqual(await serversOfReservation(session, run.reservation, '2.37'), []);
  const left = await novaDomains();
  for (const d of domainNames) t.false(left.includes(d), `libvirt still has ${d}`);
  for (const s of run.servers) t.false(existsSync(`/var/lib/nova/instances/${s.id}`), `the instance folder of ${s.name} is left`);
  // The pushed image is kept (it was pushed to be run again) until it is deleted.
  t.is((await imagesNamed(session, name)).length, 1);
  await session.call('image', { what: 'delete', method: 'DELETE', path: `/v2/images/${pushed.id}` });
  t.deepEqual(await imagesNamed(session, name), []);
  const kinds = new Set(events.map((e) => e.event));
  for (const k of ['upload', 'image-pushed', 'flavor', 'server']) t.true(kinds.has(k as CapstanEvent['event']), k);
  t.true(events.some((e) => e.event === 'server' && e.status === 'ACTIVE'));
  t.true(events.some((e) => e.event === 'server' && e.status === 'DELETED'));
});

maybe('stack run of an image file: a per-run image with its own command line, deleted with the server', async (t) => {
  const name = `${prefix}-file`;
  const run = await runInstances({ file: image }, { auth: settings, name, networks: 'none', execute: '/hello per-run', env: { N: '1' }, silent: true });
  t.truthy(run.perRunImage);
  t.is(run.perRunImage!.cmdline, '--env=N=1 /hello per-run');
  const consoles = await run.waitForConsole('PART:');
  t.regex([...consoles.values()][0]!, /^CMDLINE:--env=N=1 \/hello per-run\r?$/m);
  await run.delete();
  t.is(await getImage(session, run.perRunImage!.id), undefined);
});

maybe('flavors: the smallest that fits is picked as Capstan does; one that does not fit is refused before anything is made', async (t) => {
  const flavors = await listFlavors(session);
  t.is(pickFlavor(flavors, { diskGB: 1 }).name, 'osv.tiny');
  t.is(pickFlavor(flavors, { diskGB: 1, ramMB: 300 }).name, 'osv.small');
  t.is(pickFlavor(flavors, { diskGB: 2 }).name, 'osv.small');
  // An image of 3 GiB virtual size does not fit osv.tiny's 1 GB disk.
  const big = await standInImage(path.join(dir, 'big'), { size: '3G', name: `${prefix}-big` });
  const before = (await imagesNamed(session, `${prefix}-big`)).length;
  const tooSmall = await t.throwsAsync(pushImage(big, { auth: settings, name: `${prefix}-big`, flavor: 'osv.tiny', silent: true }), { instanceOf: CloudError });
  t.is(tooSmall.code, 'E_CLOUD_FLAVOR_TOO_SMALL');
  t.regex(tooSmall.message, /the flavor "osv\.tiny" does not fit: its disk is 1 GB, the image needs 3 GB/);
  t.is((await imagesNamed(session, `${prefix}-big`)).length, before);
  const noFlavor = await t.throwsAsync(runInstances({ file: image }, { auth: settings, name: `${prefix}-mem`, memory: '64G', networks: 'none', silent: true }), { instanceOf: CloudError });
  t.is(noFlavor.code, 'E_CLOUD_NO_FLAVOR');
  t.regex(noFlavor.message, /no flavor fits: the image needs 1 GB of disk and 65536 MB of memory[\s\S]*osv\.tiny \(1 GB, 256 MB\), osv\.small \(2 GB, 512 MB\)/);
  // The per-run image of that failed run is gone again.
  const all = await session.call('image', { what: 'list', method: 'GET', path: '/v2/images?limit=200' });
  t.false((all.json as { images: Array<{ name: string }> }).images.some((i) => i.name?.startsWith(`${prefix}-mem`)));
});

maybe('a Glance that dies mid-upload leaves no active image; one that drops a single upload gets it again, whole', async (t) => {
  const upstream = new URL(session.endpoint('image'));
  // A proxy in front of the real Glance that cuts the connection of a PUT after 64 KiB of it.
  const proxy = async (cutUploads: number, dieAfterCut: boolean) => {
    let cuts = 0;
    const server = net.createServer((client) => {
      const up = net.connect(Number(upstream.port), upstream.hostname);
      let seen = 0;
      let isPut: boolean | undefined;
      client.on('data', (chunk: Buffer) => {
        isPut ??= chunk.subarray(0, 4).toString() === 'PUT ';
        seen += chunk.length;
        if (isPut && cuts < cutUploads && seen > 64 * 1024) {
          cuts++;
          client.destroy();
          up.destroy();
          if (dieAfterCut) server.close();
          return;
        }
        up.write(chunk);
      });
      up.on('data', (chunk) => client.write(chunk));
      up.on('end', () => client.end());
      client.on('error', () => up.destroy());
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` };
  };
  const fast = { attempts: 2, backoffMs: 50 };

  const dying = await proxy(1, true);
  // It closes itself once it has cut an upload; if the push fails before that, the test still ends.
  t.teardown(() => { dying.server.close(); });
  const deadName = `${prefix}-dies`;
  const died = await t.throwsAsync(pushImage(image, { auth: { ...settings!, endpointOverrides: { image: dying.url } }, http: fast, name: deadName, silent: true }), { instanceOf: CloudError });
  t.is(died.code, 'E_CLOUD_NETWORK');
  t.regex(died.message, /Glance \(image\): cannot upload the image data/);
  t.regex(died.message, /could not be deleted/);
  const left = await imagesNamed(session, deadName);
  t.is(left.length, 1);
  t.not(left[0]!.status, 'active');
  t.log(`the cut upload left its record "${left[0]!.status}"`);
  await session.call('image', { what: 'delete', method: 'DELETE', path: `/v2/images/${left[0]!.id}` });

  const flaky = await proxy(1, false);
  t.teardown(() => { flaky.server.close(); });
  const flakyName = `${prefix}-flaky`;
  const pushed = await pushImage(image, { auth: { ...settings!, endpointOverrides: { image: flaky.url } }, http: fast, name: flakyName, silent: true });
  const named = await imagesNamed(session, flakyName);
  t.deepEqual(named.map((i) => [i.id, i.status]), [[pushed.id, 'active']]);
  t.is(named[0]!.checksum, createHash('md5').update(await readFile(image)).digest('hex'));
});

async function fetchBytes(url: string, token: string): Promise<Buffer> {
  const r = await fetch(url, { headers: { 'x-auth-token': token, connection: 'close' } });
  return Buffer.from(await r.arrayBuffer());
}

