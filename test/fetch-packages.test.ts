// fetchPackages from a local repository, through layoutFiles and writeImage: the packages'
// files land in the image in Capstan's precedence (later packages over earlier, the app over
// all), their config sets become /run scripts, and bad repositories fail clearly.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import zlib from 'node:zlib';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Vinyl from 'vinyl';
import { capstanOf } from '../lib/carrier.js';
import { describeImage, readImageFile } from '../lib/image/index.js';
import { fetchPackages } from '../lib/steps/fetch-packages.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { resolveManifest } from '../lib/steps/resolve-manifest.js';
import { writeImage } from '../lib/steps/write-image.js';
import { buildStandInLoader } from './helpers/stand-in.js';
import { runSteps, vinylFile } from './helpers/streams.js';

type Member = { name: string; body?: string; type?: 'directory' | 'symlink'; linkname?: string; mode?: number };

async function addPackage(root: string, name: string, require: string[], members: Member[], runYaml?: string, runYamlLast = false): Promise<void> {
  const dir = path.join(root, 'packages');
  await fs.mkdir(dir, { recursive: true });
  const packageYaml = `name: ${name}\ntitle: ${name}\nauthor: test\n` + (require.length ? `require:\n${require.map((r) => `  - ${r}\n`).join('')}` : '');
  await fs.writeFile(path.join(dir, `${name}.yaml`), packageYaml);
  const pack = tar.pack();
  pack.entry({ name: '/', type: 'directory', mode: 0o755 });
  pack.entry({ name: '/meta/package.yaml', mode: 0o644 }, packageYaml);
  if (runYaml && !runYamlLast) pack.entry({ name: '/meta/run.yaml', mode: 0o644 }, runYaml);
  for (const m of members) {
    pack.entry({ name: m.name, type: m.type ?? 'file', mode: m.mode ?? (m.type === 'directory' ? 0o755 : 0o644), ...(m.linkname ? { linkname: m.linkname } : {}) }, m.body ?? '');
  }
  if (runYaml && runYamlLast) pack.entry({ name: '/meta/run.yaml', mode: 0o644 }, runYaml);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  await fs.writeFile(path.join(dir, `${name}.mpm`), zlib.gzipSync(Buffer.concat(chunks)));
}

async function tempDir(t: { teardown(fn: () => unknown): void }, prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function repository(root: string): Promise<void> {
  await addPackage(root, 'osv.bootstrap', [], [
    { name: '/etc/', type: 'directory' },
    { name: '/etc/hosts', body: '127.0.0.1 bootstrap\n' },
    { name: '/etc/fstab', body: '/dev/vblk0.1 / zfs defaults 0 0\n' },
    { name: '/etc/mnttab', type: 'symlink', linkname: '../proc/mounts' },
    { name: '/libenviron.so', body: 'ENV', mode: 0o755 },
  ]);
  await addPackage(root, 'lib.c', [], [{ name: '/etc/conf', body: 'from c' }, { name: '/c.so', body: 'C' }]);
  await addPackage(root, 'lib.a', ['lib.c'], [{ name: '/etc/conf', body: 'from a' }, { name: '/a.so', body: 'A' }],
    'runtime: native\nconfig_set:\n  serve:\n    bootcmd: /a.so --serve\n    env:\n      PORT: "8000"\n');
  await addPackage(root, 'lib.b', ['lib.c'], [{ name: '/b.so', body: 'B' }]);
}

test('packages resolve depth-first, later ones and the app win, config sets become /run scripts', async (t) => {
  const root = await tempDir(t, 'capstan-root-');
  const app = await tempDir(t, 'capstan-app-');
  await repository(root);
  const files = [
    vinylFile(app, 'meta/package.yaml', 'name: my.app\ntitle: My app\nauthor: me\nrequire:\n  - lib.a\n  - lib.b\n'),
    vinylFile(app, 'etc/hosts', '127.0.0.1 app\n'),
    vinylFile(app, 'hello.so', 'HELLO', 0o755),
  ];
  const out = await runSteps(files, resolveManifest({ cwd: app, boot: ['serve'] }), fetchPackages({ root }));
  const descriptors = out.filter((f) => capstanOf(f)?.kind === 'package').map((f) => capstanOf(f)!.package!);
  // Capstan extracts bootstrap, c, a, c, b; keeping each package's last place gives the same files.
  t.deepEqual(descriptors.map((p) => [p.name, p.layer]), [['osv.bootstrap', 0], ['lib.a', 1], ['lib.c', 2], ['lib.b', 3]]);
  // Package files come before the application's files; each package's descriptor comes after
  // its files (its run configuration is known once the archive has been read).
  const kinds = out.map((f) => capstanOf(f)?.kind);
  t.is(kinds[0], 'package-file');
  t.true(kinds.lastIndexOf('package-file') < kinds.indexOf('app'));
  const order = out.filter((f) => capstanOf(f)?.package).map((f) => `${capstanOf(f)!.kind} ${capstanOf(f)!.package!.name}`);
  const descriptorAt = (name: string) => order.indexOf(`package ${name}`);
  for (const name of ['osv.bootstrap', 'lib.a', 'lib.c', 'lib.b']) {
    t.true(order.lastIndexOf(`package-file ${name}`) < descriptorAt(name), `${name}: files, then descriptor`);
  }
  t.true(descriptorAt('lib.a') < order.indexOf('package-file lib.c'), 'one package after another');

  const loader = await buildStandInLoader(path.join(app, '.loader'));
  const image = path.join(root, 'app.raw');
  const written = await runSteps(files.map((f) => f.clone()),
    resolveManifest({ cwd: app, boot: ['serve'] }), fetchPackages({ root }), layoutFiles(), writeImage({ out: image, loader, format: 'raw' }));
  t.is(written.length, 1);
  const description = await describeImage(image);
  t.is(description.cmdline, 'runscript /run/serve;');
  const read = async (p: string) => (await readImageFile(image, p)).toString();
  t.is(await read('/etc/conf'), 'from c', 'lib.c comes after lib.a, so its /etc/conf wins');
  t.is(await read('/etc/hosts'), '127.0.0.1 app\n', 'the application wins over every package');
  t.is(await read('/libenviron.so'), 'ENV');
  t.is(await read('/run/serve'), '--env=PORT?=8000 /a.so --serve');
  const mnttab = description.rofs!.entries.find((e) => e.path === '/etc/mnttab');
  // Capstan's ROFS writer makes `..` targets absolute (osv-image-formats.md §3.9); so does layoutFiles.
  t.is(mnttab?.target, '/proc/mounts');
  t.false(description.rofs!.entries.some((e) => e.path.startsWith('/meta')), 'package metadata is not extracted');
});

test('meta/run.yaml anywhere in the archive (here its last member) still gives the package\'s config sets', async (t) => {
  const root = await tempDir(t, 'capstan-root-');
  const app = await tempDir(t, 'capstan-app-');
  await addPackage(root, 'lib.late', [], [{ name: '/late.so', body: 'L' }],
    'runtime: native\nconfig_set:\n  late:\n    bootcmd: /late.so --late\n', true);
  const files = [vinylFile(app, 'meta/package.yaml', 'name: my.app\ntitle: My app\nauthor: me\nrequire:\n  - lib.late\n')];
  const loader = await buildStandInLoader(path.join(app, '.loader'));
  const image = path.join(root, 'app.raw');
  await runSteps(files, resolveManifest({ cwd: app, boot: ['late'], bootstrap: false }), fetchPackages({ root }), layoutFiles(), writeImage({ out: image, loader, format: 'raw' }));
  t.is((await readImageFile(image, '/run/late')).toString(), '/late.so --late');
});

test('a package\'s files go on only as the next step takes them: a stalled consumer holds back the archive', async (t) => {
  const root = await tempDir(t, 'capstan-root-');
  const app = await tempDir(t, 'capstan-app-');
  const count = 400;
  await addPackage(root, 'lib.many', [], Array.from({ length: count }, (_, i) => ({ name: `/lib/f${i}`, body: `file ${i}` })));
  const manifest = resolveManifest({ cwd: app, run: '/lib/f0', bootstrap: false });
  const fetch = fetchPackages({ root });
  const taken: Vinyl[] = [];
  let resume: (() => void) | undefined;
  const sink = new Writable({
    objectMode: true, highWaterMark: 1,
    write(f: Vinyl, _e, cb) {
      taken.push(f);
      if (taken.length === 5) resume = cb; // stall after five files
      else cb();
    },
  });
  const done = pipeline(Readable.from([vinylFile(app, 'meta/package.yaml', 'name: my.app\ntitle: My app\nauthor: me\nrequire:\n  - lib.many\n')]), manifest, fetch, sink);
  while (!resume) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 100)); // time for the archive to be read on, were it not held back
  const sent = taken.length + sink.writableLength + fetch.readableLength;
  t.true(sent < 60, `${sent} vinyls (of ${count} package files) sent while the consumer stalled`);
  resume();
  await done;
  const files = taken.filter((f) => capstanOf(f)?.kind === 'package-file');
  t.is(files.length, count);
  t.deepEqual(files.slice(0, 3).map((f) => f.relative), ['lib/f0', 'lib/f1', 'lib/f2']);
  t.is(capstanOf(taken.find((f) => capstanOf(f)?.kind === 'package')!)?.package?.name, 'lib.many');
});

test('an archive that breaks off after some members were sent on fails the build naming it, with nothing at out', async (t) => {
  const root = await tempDir(t, 'capstan-root-');
  const app = await tempDir(t, 'capstan-app-');
  // Incompressible members, so the cut lands well inside the archive.
  await addPackage(root, 'lib.cut', [], Array.from({ length: 40 }, (_, i) => ({ name: `/lib/f${i}`, body: randomBytes(32 * 1024).toString('base64') })));
  const mpm = path.join(root, 'packages', 'lib.cut.mpm');
  const whole = await fs.readFile(mpm);
  await fs.writeFile(mpm, whole.subarray(0, Math.floor(whole.length / 2)));
  const loader = await buildStandInLoader(path.join(app, '.loader'));
  const out = path.join(root, 'app.qcow2');
  const files = [vinylFile(app, 'meta/package.yaml', 'name: my.app\ntitle: My app\nauthor: me\nrequire:\n  - lib.cut\n')];
  const error = await t.throwsAsync(runSteps(files, resolveManifest({ cwd: app, run: '/lib/f0', bootstrap: false }), fetchPackages({ root }), layoutFiles(), writeImage({ out, loader })),
    { any: true, message: /cannot read the package archive/ }) as Error;
  t.regex(error.message, /lib\.cut\.mpm/);
  t.deepEqual((await fs.readdir(root)).sort(), ['packages'], 'no image and no temp file beside it');
});

test('a package missing from the repository is a PluginError naming the file and what to do', async (t) => {
  const root = await tempDir(t, 'capstan-root-');
  await repository(root);
  const stream = runSteps([new Vinyl({ cwd: root, base: root, path: path.join(root, 'x'), contents: Buffer.from('x') })],
    resolveManifest({ cwd: root, package: { name: 'x', title: 'x', author: 'x', require: ['osv.nope'] } }), fetchPackages({ root }));
  const error = await t.throwsAsync(stream, { any: true, message: /package "osv\.nope" is not in the local repository/ }) as Error;
  t.regex(error.message, /osv\.nope\.mpm/);
  t.regex(error.message, /capstan package pull osv\.nope/);
});

test('packages requiring each other in a cycle fail instead of looping', async (t) => {
  const root = await tempDir(t, 'capstan-root-');
  await addPackage(root, 'p.one', ['p.two'], []);
  await addPackage(root, 'p.two', ['p.one'], []);
  const stream = runSteps([], resolveManifest({ cwd: root, bootstrap: false, require: ['p.one'] }), fetchPackages({ root }));
  await t.throwsAsync(stream, { any: true, message: /cycle: p\.one → p\.two → p\.one/ });
});
