// The parts of the stack and libvirt code that need no service: where credentials come from,
// what Keystone is sent, how OpenStack's errors are read, the flavor choice, the domain XML and
// the command line patched into uploaded bytes (checked by reading the result back).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import test from 'ava';
import { prepareUpload } from '../lib/cloud/image-upload.js';
import { authSettingsFromEnv, resolveAuthSettings } from '../lib/cloud/openstack/clouds-yaml.js';
import { openstackMessage } from '../lib/cloud/openstack/http.js';
import { authRequestBody, catalogEndpoint, keystoneV3Url } from '../lib/cloud/openstack/keystone.js';
import { pickFlavor, type Flavor } from '../lib/cloud/openstack/nova.js';
import { CloudError } from '../lib/errors.js';
import { readDiskCmdline } from '../lib/vm/overlay.js';
import { domainXml, parseDomainMetadata } from '../lib/vm/libvirt/domain-xml.js';
import { standInImage } from './helpers/stack-targets.js';

test('OS_* variables, with the tenant aliases and the shared domain', (t) => {
  const s = authSettingsFromEnv({
    OS_AUTH_URL: 'https://k.example:5000', OS_USERNAME: 'u', OS_PASSWORD: 'p', OS_TENANT_NAME: 'proj', OS_DOMAIN_NAME: 'Corp', OS_REGION_NAME: 'R2', OS_INTERFACE: 'internalURL',
  });
  t.like(s, { authUrl: 'https://k.example:5000', type: 'password', username: 'u', projectName: 'proj', userDomainName: 'Corp', projectDomainName: 'Corp', region: 'R2', interface: 'internal' });
  t.deepEqual(authRequestBody(s), {
    auth: {
      identity: { methods: ['password'], password: { user: { name: 'u', domain: { name: 'Corp' }, password: 'p' } } },
      scope: { project: { name: 'proj', domain: { name: 'Corp' } } },
    },
  });
  t.is(keystoneV3Url(s.authUrl), 'https://k.example:5000/v3');
  t.is(keystoneV3Url('http://k/identity/v3/'), 'http://k/identity/v3');
  t.throws(() => keystoneV3Url('http://k:5000/v2.0'), { instanceOf: CloudError, message: /v2\.0 API, which Keystone no longer has/ });
  t.throws(() => resolveAuthSettings({ hostEnv: { OS_AUTH_URL: 'http://k', OS_USERNAME: 'u' } }), { message: /have no password[\s\S]*OS_PASSWORD/ });
  t.throws(() => resolveAuthSettings({ hostEnv: {} }), { message: /no auth URL[\s\S]*OS_AUTH_URL/ });
});

test('an application credential: its own scope, no project in the request', (t) => {
  const s = authSettingsFromEnv({ OS_AUTH_URL: 'http://k/v3', OS_APPLICATION_CREDENTIAL_ID: 'abc', OS_APPLICATION_CREDENTIAL_SECRET: 's', OS_PROJECT_NAME: 'ignored' });
  t.is(s.type, 'application-credential');
  t.deepEqual(authRequestBody(s), { auth: { identity: { methods: ['application_credential'], application_credential: { id: 'abc', secret: 's' } } } });
});

test('clouds.yaml: OS_CLOUD picks the cloud, secure.yaml beside it adds the secret, endpoint overrides and verify are read', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-clouds-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'clouds.yaml'), [
    'clouds:', '  lab:', '    auth:', '      auth_url: http://k:5000/v3', '      username: demo', '      project_id: p123', '      user_domain_id: default',
    '    region_name: RegionTwo', '    image_endpoint_override: http://glance.lab:9292', '    verify: false',
    '  other:', '    auth_type: v3applicationcredential', '    auth:', '      auth_url: http://k2/v3', '      application_credential_id: id1', '      application_credential_secret: sec',
  ].join('\n'));
  await writeFile(path.join(dir, 'secure.yaml'), 'clouds:\n  lab:\n    auth:\n      password: hunter2\n');
  const lab = resolveAuthSettings({ hostEnv: { OS_CLOUD: 'lab', OS_CLIENT_CONFIG_FILE: path.join(dir, 'clouds.yaml'), HOME: dir } });
  t.like(lab, { authUrl: 'http://k:5000/v3', username: 'demo', password: 'hunter2', projectId: 'p123', userDomainId: 'default', region: 'RegionTwo', insecure: true, type: 'password' });
  t.deepEqual(lab.endpointOverrides, { image: 'http://glance.lab:9292' });
  t.regex(lab.source, /cloud "lab" of .*clouds\.yaml/);
  const other = resolveAuthSettings({ cloud: 'other', cloudsFile: path.join(dir, 'clouds.yaml') });
  t.is(other.type, 'application-credential');
  // Explicit values win (Capstan's --OS_* flags).
  t.is(resolveAuthSettings({ cloud: 'lab', cloudsFile: path.join(dir, 'clouds.yaml'), overrides: { region: 'R9' } }).region, 'R9');
  t.throws(() => resolveAuthSettings({ cloud: 'nope', cloudsFile: path.join(dir, 'clouds.yaml') }), { instanceOf: CloudError, message: /no cloud named "nope"/ });
  await writeFile(path.join(dir, 'bad.yaml'), 'clouds:\n  x: [\n');
  const bad = t.throws(() => resolveAuthSettings({ cloud: 'x', cloudsFile: path.join(dir, 'bad.yaml') }), { instanceOf: CloudError });
  t.regex(bad.message, /bad\.yaml:\d+:\d+: clouds\.yaml is not valid YAML/);
});

test('OpenStack\'s own words out of each service\'s error body', (t) => {
  t.is(openstackMessage('', { error: { code: 401, message: 'The request you have made requires authentication.', title: 'Unauthorized' } }), 'The request you have made requires authentication.');
  t.is(openstackMessage('', { badRequest: { code: 400, message: 'Invalid flavorRef provided.' } }), 'Invalid flavorRef provided.');
  t.is(openstackMessage('', { NeutronError: { type: 'NetworkNotFound', message: 'Network x could not be found.', detail: '' } }), 'Network x could not be found.');
  t.is(openstackMessage('', { errors: [{ status: 409, title: 'Conflict', detail: 'There was a conflict.' }] }), 'There was a conflict.');
  t.is(openstackMessage('<html>\n <head>\n  <title>413 Request Entity Too Large</title>\n </head>\n <body>\n  <h1>413 Request Entity Too Large</h1>\n  Image storage media is full<br /><br />\n </body>\n</html>', undefined), 'Image storage media is full');
});

test('the catalog: endpoint by type, interface and region, with errors that list what there is', (t) => {
  const catalog = [
    { type: 'image', endpoints: [{ interface: 'public', region_id: 'A', url: 'http://a:9292/' }, { interface: 'public', region_id: 'B', url: 'http://b:9292' }] },
  ];
  t.is(catalogEndpoint(catalog, 'image', 'A'), 'http://a:9292');
  t.throws(() => catalogEndpoint(catalog, 'image', undefined), { message: /several regions \(A, B\)/ });
  t.throws(() => catalogEndpoint(catalog, 'compute', 'A'), { message: /no Nova \(compute\) service[\s\S]*lists: image/ });
  t.throws(() => catalogEndpoint(catalog, 'image', 'C'), { message: /no public Glance \(image\) endpoint in region C[\s\S]*A, B/ });
});

test('flavor choice: smallest disk first, then least memory; disk-0 flavors left out', (t) => {
  const f = (name: string, disk: number, ram: number): Flavor => ({ id: name, name, disk, ram, vcpus: 1 });
  const flavors = [f('zero', 0, 64), f('m1.large', 80, 8192), f('m1.small', 20, 2048), f('m1.tiny', 1, 512), f('m1.tiny-more', 1, 1024)];
  t.is(pickFlavor(flavors, { diskGB: 1 }).name, 'm1.tiny');
  t.is(pickFlavor(flavors, { diskGB: 1, ramMB: 600 }).name, 'm1.tiny-more');
  t.is(pickFlavor(flavors, { diskGB: 10 }).name, 'm1.small');
  t.throws(() => pickFlavor(flavors, { diskGB: 100 }), { code: 'E_CLOUD_NO_FLAVOR', message: /no flavor fits: the image needs 100 GB/ } as never);
});

test('the libvirt domain has ACPI, the pool volume, the console file and our metadata', (t) => {
  const xml = domainXml({
    name: 'app', virtType: 'qemu', memoryMiB: 256, cpus: 1, pool: 'p', diskVolume: 'app.qcow2', diskFormat: 'qcow2',
    consolePath: '/pool/app.console.log', consoleVolume: 'app.console.log', network: { mode: 'nat', network: 'default', mac: '52:54:00:00:00:01' },
    image: '/x/<app>.qcow2', cmdline: '/hello "a" & b',
  });
  t.regex(xml, /<features><acpi\/><apic\/><\/features>/);
  t.regex(xml, /<source pool='p' volume='app\.qcow2'\/>/);
  t.regex(xml, /<serial type='file'>\s*<source path='\/pool\/app\.console\.log' append='on'\/>/);
  t.regex(xml, /<interface type='network'>\s*<source network='default'\/>\s*<mac address='52:54:00:00:00:01'\/>/);
  t.deepEqual(parseDomainMetadata(xml), { image: '/x/<app>.qcow2', cmdline: '/hello "a" & b', disk: { pool: 'p', volume: 'app.qcow2' }, console: { pool: 'p', volume: 'app.console.log' } });
});

for (const format of ['qcow2', 'raw'] as const) {
  test(`an upload of a ${format} image carries the run's command line; the file stays as it is`, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-upload-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const image = await standInImage(dir, { cmdline: '/hello', format });
    const plain = await prepareUpload(image);
    t.is(plain.cmdline, '/hello');
    t.deepEqual(plain.patches, []);
    const source = await prepareUpload(image, '--env=A=1 /hello other');
    const bytes = await buffer(source.open());
    t.is(bytes.length, source.size);
    t.is(source.digests()?.md5, createHash('md5').update(bytes).digest('hex'));
    t.is(source.digests()?.sha512, createHash('sha512').update(bytes).digest('hex'));
    const out = path.join(dir, `sent.${format}`);
    await writeFile(out, bytes);
    t.is(await readDiskCmdline(out, format), '--env=A=1 /hello other');
    t.is(await readDiskCmdline(image, format), '/hello');
  });
}

test('only standalone qcow2 and raw images are uploaded', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-upload-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.throwsAsync(prepareUpload(path.join(dir, 'none.qcow2')), { instanceOf: CloudError, message: /does not exist/ });
  const { createQcow2Overlay } = await import('../lib/image/disk.js');
  const image = await standInImage(dir);
  await createQcow2Overlay(path.join(dir, 'overlay.qcow2'), image);
  await t.throwsAsync(prepareUpload(path.join(dir, 'overlay.qcow2')), { instanceOf: CloudError, message: /an overlay over/ });
});
