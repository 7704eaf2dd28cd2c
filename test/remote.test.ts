// Remote repositories against real HTTP servers on 127.0.0.1 (no other network): OSv's GitHub
// releases (paged, old and new asset names, latest, tags) and an S3-shaped bucket, serving the
// tests' stand-in loader and packages made by our own buildPackage. Downloads are checked —
// sizes, digests, gzip, hostile archives — and nothing broken is ever stored.
import test from 'ava';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { gzipSync } from 'node:zlib';
import { RepositoryError } from '../lib/errors.js';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import {
  buildPackage, describePackage, importPackage, listImages, listPackages, pullLoader, pullPackage, pullZfsBuilder, pullImage,
  RepositoryClient, searchPackages, updatePackages, importImage, removeImage,
} from '../lib/repository/index.js';
import { fetchPackages } from '../lib/steps/fetch-packages.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { resolveManifest } from '../lib/steps/resolve-manifest.js';
import { writeImage } from '../lib/steps/write-image.js';
import { serveBucket, serveReleases, startProxy, TestServer, type ServedRelease } from './helpers/remote-server.js';
import { buildStandInLoader } from './helpers/stand-in.js';
import { standInKernel } from './helpers/stand-in-kernel.js';
import { runSteps, vinylFile } from './helpers/streams.js';

// Generous connect timeout: a loaded CI machine must not turn a slow answer into a retry the assertions would count.
const FAST = { attempts: 3, backoffMs: 20, connectTimeoutMs: 15000, idleTimeoutMs: 1500 };

async function tempDir(t: { teardown(fn: () => unknown): void }, prefix = 'capstan-remote-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A package folder, built into an .mpm by our own buildPackage. */
async function makePackage(dir: string, name: string, opts: { require?: string[]; version?: string; files?: Record<string, string>; run?: string } = {}) {
  const pkg = path.join(dir, 'src', name);
  await mkdir(path.join(pkg, 'meta'), { recursive: true });
  const yaml = `name: ${name}\ntitle: ${name} title\nauthor: tests\n` + (opts.version ? `version: ${opts.version}\n` : '') +
    (opts.require?.length ? `require:\n${opts.require.map((r) => `  - ${r}\n`).join('')}` : '');
  await writeFile(path.join(pkg, 'meta', 'package.yaml'), yaml);
  if (opts.run) await writeFile(path.join(pkg, 'meta', 'run.yaml'), opts.run);
  for (const [file, body] of Object.entries(opts.files ?? {})) {
    await mkdir(path.dirname(path.join(pkg, file)), { recursive: true });
    await writeFile(path.join(pkg, file), body);
  }
  const built = await buildPackage(pkg);
  return { yaml: Buffer.from(yaml), mpm: await readFile(built.path) };
}

interface World {
  dir: string;
  server: TestServer;
  releasesUrl: string;
  loader: Buffer;
  kernel: Buffer;
  options: { root: string; releasesUrl: string; http: typeof FAST; silent: true };
}

/** Two releases (the newer first), one per API page: new names in v0.57.0, old (≤ v0.54) names in v0.54.0. */
async function world(t: { teardown(fn: () => unknown): void }, edit?: (releases: ServedRelease[]) => void): Promise<World> {
  const dir = await tempDir(t);
  const loader = await readFile(await buildStandInLoader(path.join(dir, 'loader')));
  const kernel = standInKernel({});
  const boot = await makePackage(dir, 'osv.bootstrap', { version: '0.57.0', files: { 'etc/hosts': '127.0.0.1 pulled\n' } });
  const libC = await makePackage(dir, 'lib.c', { version: '1.0', files: { 'c.so': 'C' } });
  const libA = await makePackage(dir, 'lib.a', { version: '2.0', require: ['lib.c'], files: { 'a.so': 'A' } });
  const oldOnly = await makePackage(dir, 'osv.old', { version: '0.54.0', files: { 'old.txt': 'old' } });
  const releases: ServedRelease[] = [
    { tag: 'v0.57.0', assets: [
      { name: 'osv-loader.qemu.x86_64', data: loader },
      { name: 'osv-loader.elf.x86_64.gz', data: gzipSync(kernel) },
      { name: 'osv-loader-hidden.qemu.x86_64', data: loader },
      { name: 'osv-zfs-builder.elf.x86_64.gz', data: gzipSync(kernel) },
      { name: 'osv.bootstrap.yaml', data: boot.yaml }, { name: 'osv.bootstrap.mpm.x86_64', data: boot.mpm },
      { name: 'lib.a.yaml', data: libA.yaml }, { name: 'lib.a.mpm.x86_64', data: libA.mpm },
      { name: 'lib.c.yaml', data: libC.yaml }, { name: 'lib.c.mpm.x86_64', data: libC.mpm },
      { name: 'index.yaml', data: Buffer.from('format_version: "1"\n') },
    ] },
    { tag: 'v0.54.0', assets: [
      { name: 'osv-loader.qemu', data: loader },
      { name: 'osv.old.yaml', data: oldOnly.yaml }, { name: 'osv.old.mpm', data: oldOnly.mpm },
      { name: 'lib.c.yaml', data: libC.yaml }, { name: 'lib.c.mpm', data: libC.mpm },
    ] },
  ];
  edit?.(releases);
  const server = await TestServer.start();
  t.teardown(() => server.close());
  const releasesUrl = serveReleases(server, releases);
  const root = path.join(dir, 'capstan');
  return { dir, server, releasesUrl, loader, kernel, options: { root, releasesUrl, http: FAST, silent: true } };
}

/** Files in a folder, temp files included. */
async function listing(dir: string): Promise<string[]> {
  try { return (await readdir(dir)).sort(); } catch { return []; }
}

test('the loader and its kernel ELF are pulled from the newest release that has them, and stored where writeImage looks', async (t) => {
  const w = await world(t);
  const events: unknown[] = [];
  const pulled = await pullLoader('osv-loader', { ...w.options, events: (e) => events.push(e) });
  t.is(pulled.release, 'v0.57.0');
  t.is(pulled.path, path.join(w.options.root, 'repository', 'osv-loader', 'osv-loader.qemu'));
  t.deepEqual(await readFile(pulled.path), w.loader);
  t.deepEqual(await readFile(pulled.kernel!), w.kernel, 'the .gz kernel is stored gunzipped');
  t.deepEqual(await listing(path.dirname(pulled.path)), ['index.yaml', 'osv-loader.elf.x86_64', 'osv-loader.qemu']);
  t.regex(await readFile(path.join(path.dirname(pulled.path), 'index.yaml'), 'utf8'), /^format_version: "1"\nversion: v0\.57\.0\n/);
  t.is(w.server.count('/repos/o/r/releases'), 1, 'the first page was enough: the second is never fetched');
  t.true(events.some((e) => (e as { event: string }).event === 'pull'));
  t.true(events.some((e) => (e as { event: string; done?: boolean }).event === 'download' && (e as { done: boolean }).done));
  // A variant by name, and the old (≤ v0.54) spelling when only an old release is asked for.
  t.is((await pullLoader('osv-loader-hidden', w.options)).release, 'v0.57.0');
  const old = await pullLoader('osv-loader', { ...w.options, root: path.join(w.dir, 'old'), releaseTag: 'v0.54.0' });
  t.is(old.release, 'v0.54.0');
  t.is(old.kernel, undefined);
  t.deepEqual(await readFile(old.path), w.loader);
});

test('release tags: latest, a tag, a missing tag; pagination walks every page for any', async (t) => {
  const w = await world(t);
  t.is((await pullPackage('osv.old', w.options)).info.version, '0.54.0', 'only in the second page: Link rel="next" followed');
  t.is(w.server.count('/repos/o/r/releases'), 2);
  const latest = path.join(w.dir, 'latest');
  await t.throwsAsync(pullPackage('osv.old', { ...w.options, root: latest, releaseTag: 'latest' }), { instanceOf: RepositoryError, message: /has no package "osv\.old"/ });
  t.deepEqual(await listing(path.join(latest, 'packages')), [], 'nothing stored');
  await t.throwsAsync(pullLoader(undefined, { ...w.options, releaseTag: 'v9.9.9' }), { message: /there is no OSv release "v9\.9\.9"/ });
  // The environment variables do what the options do.
  const viaEnv = await pullLoader(undefined, { root: path.join(w.dir, 'env'), http: FAST, silent: true, env: { CAPSTAN_RELEASES_URL: w.releasesUrl, CAPSTAN_RELEASE_TAG: 'v0.54.0' } });
  t.is(viaEnv.release, 'v0.54.0');
});

test('packages: .yaml and .mpm from one release, recursive requires pulled by fetchPackages({ pullMissing }), then composed', async (t) => {
  const w = await world(t);
  const loader = path.join(w.dir, 'loader', 'stand-in-loader.raw');
  const app = path.join(w.dir, 'app');
  const out = path.join(w.dir, 'app.qcow2');
  const steps = (pullMissing: boolean) => [
    resolveManifest({ cwd: app, require: ['lib.a'], run: '/a.so' }),
    fetchPackages({ ...w.options, pullMissing }), layoutFiles(), writeImage({ out, loader, silent: true }),
  ] as const;
  // Without pullMissing: a clear error naming the package, nothing stored.
  await t.throwsAsync(runSteps([vinylFile(app, 'hello.txt', 'hi')], ...steps(false)), { any: true, message: /package "osv\.bootstrap" is not in the local repository[\s\S]*pullMissing/ });
  t.false(existsSync(out));
  const files = await runSteps([vinylFile(app, 'hello.txt', 'hi')], ...steps(true));
  t.is(files.length, 1);
  t.deepEqual(await listing(path.join(w.options.root, 'packages')), [
    'lib.a.mpm', 'lib.a.yaml', 'lib.c.mpm', 'lib.c.yaml', 'osv.bootstrap.mpm', 'osv.bootstrap.yaml',
  ]);
  const image = await describeImage(out);
  const paths = image.rofs!.entries.map((e) => e.path);
  t.deepEqual(paths.filter((p) => /\.so$|hosts$|hello/.test(p)).sort(), ['/a.so', '/c.so', '/etc/hosts', '/hello.txt']);
  t.is((await readImageFile(out, '/etc/hosts')).toString(), '127.0.0.1 pulled\n');
  // A second build pulls nothing.
  const before = w.server.requests.length;
  await runSteps([vinylFile(app, 'hello.txt', 'hi')], ...steps(true));
  t.is(w.server.requests.length, before);
});

test('offline: nothing is fetched, and the error says what is missing', async (t) => {
  const w = await world(t);
  await t.throwsAsync(pullLoader(undefined, { ...w.options, offline: true }), { instanceOf: RepositoryError, message: /the OSv loader "osv-loader" is not in the local repository[\s\S]*offline/ });
  await t.throwsAsync(pullPackage('lib.a', { ...w.options, env: { CAPSTAN_OFFLINE: '1' } }), { message: /package "lib\.a"[\s\S]*offline mode forbids/ });
  const out = path.join(w.dir, 'x.qcow2');
  await t.throwsAsync(runSteps([vinylFile(w.dir, 'a', 'a')], writeImage({ out, cmdline: '/a', ...w.options, offline: true })), { any: true, message: /offline/ });
  t.is(w.server.requests.length, 0);
  t.false(existsSync(out));
});

test('writeImage pulls a missing loader once; the second build downloads nothing', async (t) => {
  const w = await world(t);
  const out = path.join(w.dir, 'first.raw');
  const [image] = await runSteps([vinylFile(w.dir, 'a.txt', 'a')], writeImage({ out, format: 'raw', cmdline: '/a', ...w.options }));
  t.is((image as unknown as { capstan: { image: { loader: string } } }).capstan.image.loader, path.join(w.options.root, 'repository', 'osv-loader', 'osv-loader.qemu'));
  const requests = w.server.requests.length;
  t.true(requests >= 3, 'API page, loader, kernel');
  await runSteps([vinylFile(w.dir, 'a.txt', 'a')], writeImage({ out: path.join(w.dir, 'second.raw'), format: 'raw', cmdline: '/a', ...w.options }));
  t.is(w.server.requests.length, requests);
  // pull: false leaves it to the user.
  await t.throwsAsync(runSteps([vinylFile(w.dir, 'a.txt', 'a')], writeImage({ out: path.join(w.dir, 'third.raw'), cmdline: '/a', ...w.options, root: path.join(w.dir, 'empty'), pull: false })), { any: true, message: /was not found/ });
});

test('a 500 then success, and a 429 with Retry-After, are retried', async (t) => {
  const w = await world(t);
  w.server.fault('/repos/o/r/releases', { kind: 'status', status: 500, times: 1 });
  w.server.fault('/dl/v0.57.0/osv-loader.qemu.x86_64', { kind: 'status', status: 429, times: 1, headers: { 'retry-after': '1' } });
  const started = Date.now();
  const pulled = await pullLoader(undefined, w.options);
  t.true(Date.now() - started >= 900, 'Retry-After: 1 was waited for');
  t.deepEqual(await readFile(pulled.path), w.loader);
  t.is(w.server.count('/repos/o/r/releases'), 2);
  t.is(w.server.count('/dl/v0.57.0/osv-loader.qemu.x86_64'), 2);
  // A rate limit that says so gets GitHub's advice.
  const w2 = await world(t);
  w2.server.fault('/repos/o/r/releases', { kind: 'status', status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '2000000000' }, body: '{"message":"API rate limit exceeded"}' });
  await t.throwsAsync(pullLoader(undefined, w2.options), { message: /rate limit[\s\S]*60 requests an hour[\s\S]*GITHUB_TOKEN/ });
});

test('a truncated body, a wrong digest, an asset larger than announced, a download that hangs: rejected, nothing stored', async (t) => {
  const dir = (w: World) => path.join(w.options.root, 'repository', 'osv-loader');
  const w1 = await world(t);
  w1.server.fault('/dl/v0.57.0/osv-loader.qemu.x86_64', { kind: 'truncate', at: 1000, times: 5 });
  await t.throwsAsync(pullLoader(undefined, w1.options), { instanceOf: RepositoryError, message: /ended after|Premature close|cannot fetch/ });
  t.deepEqual(await listing(dir(w1)), [], 'no loader, no temp file');

  const w2 = await world(t, (r) => { r[0]!.assets[0]!.digest = `sha256:${'0'.repeat(64)}`; });
  await t.throwsAsync(pullLoader(undefined, w2.options), { message: /sha256 [0-9a-f]{64} does not match/ });
  t.deepEqual(await listing(dir(w2)), []);

  const w3 = await world(t, (r) => { r[0]!.assets[0]!.announcedSize = 4096; r[0]!.assets[0]!.digest = null; });
  await t.throwsAsync(pullLoader(undefined, w3.options), { message: /announced/ });
  t.deepEqual(await listing(dir(w3)), []);

  const w4 = await world(t);
  w4.server.fault('/dl/v0.57.0/osv-loader.qemu.x86_64', { kind: 'hang-after', at: 2000, times: 5 });
  await t.throwsAsync(pullLoader(undefined, w4.options), { message: /no data for 1500 ms/ });
  t.deepEqual(await listing(dir(w4)), []);
});

/** A pull of the loader in a child process that `signal` ends 700 ms in, while the download hangs half-way. */
async function interruptedPull(t: Parameters<typeof world>[0], signal: 'SIGKILL' | 'SIGINT' | 'SIGTERM') {
  const w = await world(t);
  w.server.fault('/dl/v0.57.0/osv-loader.qemu.x86_64', { kind: 'hang-after', at: 5000, times: 1 });
  const script = `
    import { pullLoader } from ${JSON.stringify(path.resolve('lib/repository/index.ts'))};
    setTimeout(() => process.kill(process.pid, '${signal}'), 700);
    await pullLoader(undefined, ${JSON.stringify({ ...w.options, http: { ...FAST, idleTimeoutMs: 60000 } })});
  `;
  const child = await execa(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { reject: false, timeout: 30000 });
  return { w, child };
}

test('a download killed mid-way (the process dies) leaves nothing a later build would use', async (t) => {
  const { w, child } = await interruptedPull(t, 'SIGKILL');
  t.is(child.signal, 'SIGKILL');
  const files = await listing(path.join(w.options.root, 'repository', 'osv-loader'));
  t.false(files.includes('osv-loader.qemu'), 'no loader at its final name');
  t.true(files.every((f) => f.startsWith('.') && f.endsWith('.part')), `only a hidden .part may remain: ${files.join(', ')}`);
  // The next pull succeeds.
  const pulled = await pullLoader(undefined, w.options);
  t.deepEqual(await readFile(pulled.path), w.loader);
});

test('a download interrupted by Ctrl+C or SIGTERM removes its .part as the process goes', async (t) => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const { w, child } = await interruptedPull(t, signal);
    t.is(child.signal, signal, 'the process still dies of the signal');
    t.deepEqual(await listing(path.join(w.options.root, 'repository', 'osv-loader')), [], `${signal}: nothing left in the repository`);
  }
});

test('two pulls of one asset at once both succeed and leave one whole file', async (t) => {
  const w = await world(t);
  const [a, b] = await Promise.all([
    pullLoader(undefined, w.options),
    new RepositoryClient(w.options).pullLoader(),
  ]);
  t.is(a.path, b.path);
  t.deepEqual(await readFile(a.path), w.loader);
  t.deepEqual((await listing(path.dirname(a.path))).filter((f) => f.startsWith('.')), []);
});

test('hostile answers: HTML, wrong JSON shape, .yaml without .mpm, a redirect loop, a hostile .mpm, bad names', async (t) => {
  const w = await world(t);
  w.server.fault('/repos/o/r/releases', { kind: 'body', body: '<!doctype html><html><body>Login</body></html>', times: 1 });
  await t.throwsAsync(pullLoader(undefined, w.options), { message: /expected JSON from the releases API, got an HTML page/ });
  w.server.fault('/repos/o/r/releases', { kind: 'body', body: '{"message":"hi"}', contentType: 'application/json', times: 1 });
  await t.throwsAsync(pullLoader(undefined, w.options), { message: /a JSON array of releases was expected/ });
  w.server.fault('/repos/o/r/releases', { kind: 'body', body: '[{"tag_name":"x","assets":[{"name":3}]}]', contentType: 'application/json', times: 1 });
  await t.throwsAsync(pullLoader(undefined, w.options), { message: /asset #1 of release x lacks name/ });
  w.server.fault('/dl/v0.57.0/osv-loader.qemu.x86_64', { kind: 'redirect-loop' });
  await t.throwsAsync(pullLoader(undefined, w.options), { message: /more than 10 redirects/ });
  for (const bad of ['../etc', 'a/b', '..', '']) {
    await t.throwsAsync(pullPackage(bad, w.options), { message: /is not a valid package name/ });
  }
  t.deepEqual(await listing(path.join(w.options.root, 'packages')), []);

  // A release with a .yaml but no .mpm, and a package whose archive climbs out of the root.
  const pack = tar.pack();
  pack.entry({ name: '/meta/package.yaml' }, 'name: evil\ntitle: e\nauthor: e\n');
  pack.entry({ name: '/../../escape', type: 'file' }, 'x');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const w2 = await world(t, (r) => {
    r[0]!.assets.push({ name: 'lonely.yaml', data: Buffer.from('name: lonely\ntitle: l\nauthor: l\n') });
    r[0]!.assets.push({ name: 'evil.yaml', data: Buffer.from('name: evil\ntitle: e\nauthor: e\n') }, { name: 'evil.mpm', data: gzipSync(Buffer.concat(chunks)) });
    r[0]!.assets.push({ name: 'liar.yaml', data: Buffer.from('name: somebody-else\ntitle: l\nauthor: l\n') }, { name: 'liar.mpm', data: gzipSync(Buffer.alloc(1024)) });
  });
  await t.throwsAsync(pullPackage('lonely', w2.options), { message: /has no package "lonely" \(both lonely\.yaml and lonely\.mpm are needed/ });
  await t.throwsAsync(pullPackage('evil', w2.options), { message: /refusing member[\s\S]*\.\./ });
  await t.throwsAsync(pullPackage('liar', w2.options), { message: /describes package "somebody-else"/ });
  t.deepEqual(await listing(path.join(w2.options.root, 'packages')), [], 'nothing of either was stored');
});

test('S3: a truncated ListBucket listing, packages, the loader under a namespace, images; a non-S3 answer is refused', async (t) => {
  const dir = await tempDir(t);
  const loader = await readFile(await buildStandInLoader(path.join(dir, 'loader')));
  const pkg = await makePackage(dir, 'osv.bootstrap', { files: { 'etc/hosts': 'from s3\n' } });
  const server = await TestServer.start();
  t.teardown(() => server.close());
  const repoUrl = serveBucket(server, {
    'mike/osv-loader/index.yaml': Buffer.from('format_version: "1"\nversion: v0.24\ncreated: 2016-01-01 10:00\ndescription: OSv loader from S3\n'),
    'mike/osv-loader/osv-loader.qemu.gz': gzipSync(loader),
    'mike/myapp/index.yaml': Buffer.from('format_version: "1"\ndescription: an app\n'),
    'mike/myapp/myapp.qemu.gz': gzipSync(loader),
    'packages/osv.bootstrap.yaml': pkg.yaml,
    'packages/osv.bootstrap.mpm': pkg.mpm,
    'packages/xosv.bootstrap.yaml': Buffer.from('name: x\ntitle: x\nauthor: x\n'),
  });
  const root = path.join(dir, 'capstan');
  const options = { root, remote: 's3' as const, repoUrl, http: FAST, silent: true as const };
  const pulled = await pullLoader(undefined, options);
  t.is(pulled.release, 'mike/osv-loader');
  t.deepEqual(await readFile(pulled.path), loader);
  t.regex(await readFile(path.join(path.dirname(pulled.path), 'index.yaml'), 'utf8'), /description: OSv loader from S3/);
  t.true(server.requests.filter((r) => r === '/bucket/').length >= 3, 'every page of the listing was read');
  t.is((await pullPackage('osv.bootstrap', options)).info.name, 'osv.bootstrap');
  const image = await pullImage('mike/myapp', options);
  t.is(image, path.join(root, 'repository', 'mike', 'myapp', 'myapp.qemu'));
  t.deepEqual((await listImages({ root })).map((i) => [i.name, i.index?.description]), [['mike/myapp', 'an app'], ['osv-loader', 'OSv loader from S3']]);
  await t.throwsAsync(pullZfsBuilder(options), { message: /has no ZFS builder/ });
  // config.yaml's repo_url is used when no option is given (Capstan's precedence: -u, config, env).
  await writeFile(path.join(root, 'config.yaml'), `repo_url: ${repoUrl}\n`);
  t.deepEqual((await searchPackages('', { root, remote: 's3', http: FAST, silent: true, env: { CAPSTAN_REPO_URL: 'http://127.0.0.1:9/none/' } })).map((p) => p.name).sort(), ['osv.bootstrap', 'x']);
  server.route('/html/', (_q, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<html>no</html>'); });
  await t.throwsAsync(pullLoader(undefined, { ...options, root: path.join(dir, 'r2'), repoUrl: `${server.base}/html/` }), { message: /not an S3 ListBucket document \(got an HTML page\)/ });
});

// Serial: it sets process.env, which the other tests of this file (running concurrently) must not see.
test.serial('a plain HTTP proxy from HTTP_PROXY is used, NO_PROXY bypasses it', async (t) => {
  const w = await world(t);
  const proxy = await startProxy();
  t.teardown(() => proxy.close());
  const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY };
  t.teardown(() => { for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; } });
  process.env.HTTP_PROXY = proxy.url;
  delete process.env.NO_PROXY;
  await pullLoader(undefined, w.options);
  t.true(proxy.forwarded.some((u) => u.endsWith('/repos/o/r/releases')), 'the API call went through the proxy');
  t.true(proxy.forwarded.some((u) => u.endsWith('/dl/v0.57.0/osv-loader.qemu.x86_64')), 'so did the redirected download');
  const seen = proxy.forwarded.length;
  process.env.NO_PROXY = '127.0.0.1';
  await pullPackage('lib.c', w.options);
  t.is(proxy.forwarded.length, seen, 'NO_PROXY: direct');
});

test('GITHUB_TOKEN goes to the API host only', async (t) => {
  const w = await world(t);
  const seen: Record<string, string | undefined> = {};
  const original = w.server.requests;
  void original;
  const server = w.server as unknown as { handle: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void };
  const handle = server.handle.bind(w.server);
  server.handle = (req, res) => { seen[new URL(req.url!, w.server.base).pathname] = req.headers.authorization; handle(req, res); };
  // Serve downloads from "another host": localhost instead of 127.0.0.1.
  const other = w.server.base.replace('127.0.0.1', 'localhost');
  w.server.route('/releases/download/v0.57.0/osv-loader.qemu.x86_64', (_q, res) => { res.writeHead(302, { location: `${other}/dl/v0.57.0/osv-loader.qemu.x86_64` }); res.end(); });
  await pullLoader(undefined, { ...w.options, githubToken: 'sekrit' });
  t.is(seen['/repos/o/r/releases'], 'Bearer sekrit');
  t.is(seen['/dl/v0.57.0/osv-loader.qemu.x86_64'], undefined);
});

test('package commands: build (Capstan members, .capstanignore honoured), import, list, describe, search, update', async (t) => {
  const dir = await tempDir(t);
  const pkg = path.join(dir, 'mypkg');
  await mkdir(path.join(pkg, 'meta'), { recursive: true });
  await mkdir(path.join(pkg, 'lib'), { recursive: true });
  await mkdir(path.join(pkg, '.git'), { recursive: true });
  await writeFile(path.join(pkg, 'meta', 'package.yaml'), 'name: my.pkg\ntitle: My package\nauthor: me\nversion: 1.2\ncreated: 2024-05-01T10:00:00+02:00\n');
  await writeFile(path.join(pkg, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  hello:\n    bootcmd: /lib/hello.so\n    env:\n      WHO: world\n');
  await writeFile(path.join(pkg, 'meta', 'README.md'), '# my.pkg\nSays hello.\n');
  await writeFile(path.join(pkg, 'lib', 'hello.so'), 'ELF?');
  await writeFile(path.join(pkg, 'notes.tmp'), 'scratch');
  await writeFile(path.join(pkg, '.git', 'HEAD'), 'ref');
  await writeFile(path.join(pkg, '.capstanignore'), '# scratch files\n/*.tmp\n');
  await symlink('lib/hello.so', path.join(pkg, 'hello'));
  const built = await buildPackage(pkg);
  t.is(built.path, path.join(pkg, 'my.pkg.mpm'));
  // GNU tar lists exactly Capstan's member names: leading /, folders ending in /.
  const { stdout } = await execa('tar', ['-tzf', built.path]);
  t.deepEqual(stdout.split('\n'), ['/', '/.capstanignore', '/hello', '/lib/', '/lib/hello.so', '/meta/', '/meta/README.md', '/meta/package.yaml', '/meta/run.yaml']);
  const verbose = (await execa('tar', ['-tvzf', built.path])).stdout;
  t.regex(verbose, /^l.*\/hello -> lib\/hello\.so$/m);

  const root = path.join(dir, 'capstan');
  const imported = await importPackage(pkg, { root });
  t.false(existsSync(built.path), 'the built .mpm does not stay in the folder, as in Capstan');
  t.is(await readFile(imported.yaml, 'utf8'), 'name: my.pkg\ntitle: My package\nauthor: me\nversion: "1.2"\ncreated: "2024-05-01T10:00:00+02:00"\n');
  t.deepEqual((await listPackages('', { root })).map((p) => [p.name, p.version, p.complete]), [['my.pkg', '1.2', true]]);
  const described = await describePackage('my.pkg', { root, content: true });
  t.deepEqual(described.run, { runtime: 'native', defaultConfig: 'hello', configs: [{ name: 'hello', bootCommand: '--env=WHO?=world /lib/hello.so' }] });
  t.is(described.readme, '# my.pkg\nSays hello.\n');
  t.deepEqual(described.content?.map((c) => c.path), ['/.capstanignore', '/hello', '/lib', '/lib/hello.so']);
  await t.throwsAsync(describePackage('nope', { root }), { message: /package "nope" is not in the local repository/ });

  // Remote side: a newer version of my.pkg in a release; search lists it with its release; update pulls it.
  const newer = await makePackage(dir, 'my.pkg', { version: '1.3', files: { 'lib/hello.so': 'ELF v1.3' } });
  const server = await TestServer.start();
  t.teardown(() => server.close());
  const releasesUrl = serveReleases(server, [{ tag: 'v1', assets: [{ name: 'osv.x.yaml', data: Buffer.from('name: osv.x\ntitle: X\nauthor: a\n') }, { name: 'my.pkg.yaml', data: newer.yaml }, { name: 'my.pkg.mpm', data: newer.mpm }] }]);
  const remote = { root, releasesUrl, http: FAST, silent: true as const };
  t.deepEqual((await searchPackages('osv', remote)).map((p) => [p.name, p.release]), [['osv.x', 'v1']]);
  t.deepEqual(await updatePackages('', remote), [{ name: 'my.pkg', from: '1.2', to: '1.3', status: 'updated' }]);
  t.deepEqual(await updatePackages('', remote), [{ name: 'my.pkg', from: '1.3', status: 'latest' }]);
  t.is((await describePackage('my.pkg', { root })).info.version, '1.3');
});

test('images: import probes the format, list reads index.yaml, remove deletes; an existing Capstan repository reads unchanged', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'capstan');
  // A repository laid out by Capstan: a loader without index.yaml, a namespaced image, a package.
  await mkdir(path.join(root, 'repository', 'osv-loader'), { recursive: true });
  const loaderFile = await buildStandInLoader(path.join(dir, 'loader'));
  await writeFile(path.join(root, 'repository', 'osv-loader', 'osv-loader.qemu'), await readFile(loaderFile));
  await mkdir(path.join(root, 'repository', 'cloudius', 'osv'), { recursive: true });
  await writeFile(path.join(root, 'repository', 'cloudius', 'osv', 'osv.qemu'), Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]));
  await writeFile(path.join(root, 'repository', 'cloudius', 'osv', 'index.yaml'), 'format_version: "1"\nversion: v0.24\ncreated: 2016-02-01 10:00\ndescription: OSv base\nbuild: ""\n');
  const imported = await importImage('myapp', loaderFile, { root, version: '1.0', description: 'raw app', created: '2026-12-01 10:00' });
  t.is(imported, path.join(root, 'repository', 'myapp', 'myapp.raw'));
  t.is(await readFile(path.join(root, 'repository', 'myapp', 'index.yaml'), 'utf8'),
    'format_version: "1"\nversion: "1.0"\ncreated: 2026-12-01 10:00\ndescription: raw app\nbuild: ""\n');
  const images = await listImages({ root });
  t.deepEqual(images.map((i) => [i.name, i.files, i.index?.version ?? null]), [
    ['cloudius/osv', ['osv.qemu'], 'v0.24'], ['myapp', ['myapp.raw'], '1.0'], ['osv-loader', ['osv-loader.qemu'], null],
  ]);
  // writeImage uses the existing loader as is, offline.
  const out = path.join(dir, 'out.raw');
  await runSteps([vinylFile(dir, 'x', 'x')], writeImage({ out, format: 'raw', cmdline: '/x', root, offline: true, silent: true }));
  t.true(existsSync(out));
  await removeImage('myapp', { root });
  t.false(existsSync(path.join(root, 'repository', 'myapp')));
  await t.throwsAsync(removeImage('myapp', { root }), { message: /no image "myapp"/ });
  await t.throwsAsync(removeImage('../x', { root }), { message: /not a valid image name/ });
});
