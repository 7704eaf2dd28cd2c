// The resolveManifest step: inputs from the stream, else from disk; one manifest vinyl first,
// then every file annotated; every bad input surfaces as a PluginError naming file:line:column.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import gulp from 'gulp';
import Vinyl from 'vinyl';
import { capstanOf } from '../lib/carrier.js';
import { resolveBootScripts, resolveManifestFromDir, type Manifest } from '../lib/manifest/index.js';
import { resolveManifest, type ResolveManifestOptions } from '../lib/steps/resolve-manifest.js';
import { runSteps, vinylDir, vinylFile } from './helpers/streams.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'manifest');
const silent = { silent: true } as const;

async function tempDir(t: ExecutionContext, files: Record<string, string> = {}): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-resolve-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  for (const [rel, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), text);
  }
  return dir;
}

function manifestOf(files: Vinyl[]): Manifest {
  const meta = capstanOf(files[0]!);
  if (meta?.kind !== 'manifest' || !meta.manifest) throw new Error('first file is not the manifest');
  return meta.manifest;
}

const runYaml = (bootcmd: string) => `runtime: native\nconfig_set:\n  app:\n    bootcmd: ${bootcmd}\nconfig_set_default: app\n`;
const packageYaml = (name: string) => `name: ${name}\ntitle: T\nauthor: A\n`;

test('emits the manifest first, then every held file annotated with the same manifest', async (t) => {
  const base = '/virtual/app';
  const files = [
    vinylFile(base, 'hello.so', 'ELF'),
    vinylDir(base, 'meta'),
    vinylFile(base, 'meta/package.yaml', packageYaml('com.example.stream')),
    vinylFile(base, 'meta/run.yaml', runYaml('/hello.so')),
    vinylFile(base, '.capstanignore', '/test\n'),
  ];
  const out = await runSteps(files, resolveManifest(silent));
  t.is(out.length, files.length + 1);
  const manifest = manifestOf(out);
  t.is(out[0]!.path, path.join(base, 'capstan-manifest.json'));
  t.true(out[0]!.isBuffer());
  t.is(JSON.parse(out[0]!.contents!.toString()).bootCommand, 'runscript /run/app;');
  t.deepEqual(out.slice(1).map((f) => f.relative), files.map((f) => f.relative));
  for (const f of out.slice(1)) {
    t.is(capstanOf(f)?.kind, 'app');
    t.is(capstanOf(f)?.manifest, manifest); // shared by reference
  }
  t.like(manifest, {
    root: base, package: { name: 'com.example.stream' }, bootCommand: 'runscript /run/app;', bootSource: 'config_set_default',
    require: ['osv.bootstrap'], ignore: ['/test'],
    sources: { packageYaml: path.join(base, 'meta/package.yaml'), runYaml: path.join(base, 'meta/run.yaml'), capstanignore: path.join(base, '.capstanignore') },
  });
  t.is(manifest.run?.configSets[0]?.script, '/hello.so');
});

test('stream inputs win over disk; what the stream lacks is read from cwd', async (t) => {
  const dir = await tempDir(t, {
    'meta/package.yaml': packageYaml('from.disk'),
    'meta/run.yaml': runYaml('/disk.so'),
    '.capstanignore': '/disk-only\n',
  });
  const out = await runSteps([vinylFile(dir, 'meta/run.yaml', runYaml('/stream.so'))], resolveManifest(silent));
  const m = manifestOf(out);
  t.is(m.run?.configSets[0]?.script, '/stream.so');
  t.is(m.package.name, 'from.disk');
  t.deepEqual(m.ignore, ['/disk-only']);
  t.is(m.sources?.packageYaml, path.join(dir, 'meta', 'package.yaml'));
});

test('options.cwd names the package root for files missing from the stream', async (t) => {
  const dir = await tempDir(t, { 'meta/package.yaml': packageYaml('cwd.package') });
  const out = await runSteps([vinylFile('/elsewhere', 'app.so', 'x')], resolveManifest({ ...silent, cwd: dir }));
  t.is(manifestOf(out).package.name, 'cwd.package');
  t.is(manifestOf(out).root, dir);
});

test('an empty stream still emits a manifest, read from cwd', async (t) => {
  const dir = await tempDir(t, { Capstanfile: 'cmdline: /tools/hello.so\n' });
  const out = await runSteps([], resolveManifest({ ...silent, cwd: dir }));
  t.is(out.length, 1);
  t.like(manifestOf(out), { bootCommand: '/tools/hello.so', bootSource: 'capstanfile', package: { name: 'App' } });
});

test('inline options describe an app without any file', async (t) => {
  const dir = await tempDir(t);
  const options: ResolveManifestOptions = {
    ...silent,
    cwd: dir,
    package: { name: 'inline.app', title: 'Inline', author: 'gulpfile', require: ['osv.cli'] },
    run: { runtime: 'node', config_set: { web: { main: '/server.js', env: { PORT: 8080 } } }, config_set_default: 'web' },
    env: { DEBUG: '1' },
    require: ['osv.httpserver-api'],
    ignore: ['/tests'],
  };
  const m = manifestOf(await runSteps([], resolveManifest(options)));
  t.deepEqual(m.require, ['osv.bootstrap', 'node-4.4.5', 'osv.cli', 'osv.httpserver-api']);
  t.is(m.bootCommand, '--env=DEBUG=1 runscript /run/web;');
  t.deepEqual(m.run?.configSets[0]?.env, { PORT: '8080', NODE_ARGS: '--', MAIN: '/server.js' });
  t.deepEqual(m.run?.configSets[0]?.inherits, { package: 'node-4.4.5', configSet: 'node' });
  t.deepEqual(m.ignore, ['/tests']);
  t.deepEqual(m.sources, { packageYaml: 'options', runYaml: 'options' });
});

test('inline options win over stream files; run string, boot and bootstrap', async (t) => {
  const base = '/virtual/app';
  const files = [vinylFile(base, 'meta/package.yaml', packageYaml('stream.name')), vinylFile(base, 'meta/run.yaml', runYaml('/x.so'))];
  const a = manifestOf(await runSteps(files.map((f) => f.clone()), resolveManifest({ ...silent, package: { name: 'opt', title: 'O', author: 'me' }, boot: ['one', 'two'] })));
  t.is(a.package.name, 'opt');
  t.is(a.bootCommand, 'runscript /run/one;runscript /run/two;');
  const b = manifestOf(await runSteps(files.map((f) => f.clone()), resolveManifest({ ...silent, run: '/bin/other.so --x', boot: 'ignored', bootstrap: false })));
  t.is(b.bootCommand, '/bin/other.so --x');
  t.is(b.bootSource, 'run');
  t.deepEqual(b.require, []);
  t.is(b.run?.configSets[0]?.script, '/x.so'); // the run.yaml file still applies
});

test('Windows-style separators in file.relative are recognised', async (t) => {
  const base = '/virtual/win';
  const file = new Vinyl({ cwd: base, base, path: `${base}/meta\\run.yaml`, contents: Buffer.from(runYaml('/win.so')) });
  t.is(file.relative, 'meta\\run.yaml');
  const m = manifestOf(await runSteps([file], resolveManifest(silent)));
  t.is(m.run?.configSets[0]?.script, '/win.so');
});

test('stream contents (src buffer:false) are read and still flow on intact', async (t) => {
  const base = '/virtual/streamed';
  const text = runYaml('/streamed.so');
  const file = new Vinyl({ cwd: base, base, path: `${base}/meta/run.yaml`, contents: Readable.from([Buffer.from(text.slice(0, 10)), Buffer.from(text.slice(10))]) });
  const out = await runSteps([file], resolveManifest(silent));
  t.is(manifestOf(out).run?.configSets[0]?.script, '/streamed.so');
  const passed = out[1]!;
  t.true(passed.isStream());
  const chunks: Buffer[] = [];
  for await (const chunk of passed.contents as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
  t.is(Buffer.concat(chunks).toString(), text);
});

test('with gulp.src (encoding:false, dot files): a real package folder', async (t) => {
  const root = path.join(fixtures, 'native-app');
  const out = await runSteps([], gulp.src('**/*', { cwd: root, base: root, dot: true, encoding: false }) as never, resolveManifest(silent));
  const m = manifestOf(out);
  t.like(m, {
    root, package: { name: 'com.example.hello', version: '1.0.0', require: ['osv.cli'] },
    bootCommand: 'runscript /run/hello;', require: ['osv.bootstrap', 'osv.cli'], ignore: ['/data/*.tmp', '/**/*.md'],
  });
  t.deepEqual(m.run?.configSets.map((c) => [c.name, c.script, c.inherits]), [
    ['hello', '--env=GREETING?=hi /hello.so', undefined],
    ['quiet', '', { package: 'com.example.hello', configSet: 'hello' }],
  ]);
  t.true(out.some((f) => f.relative === path.join('data', 'hello.txt')));
  // The application's own config sets may inherit each other (by its package name).
  t.deepEqual(resolveBootScripts([{ package: m.package.name, run: m.run }]).map((s) => [s.name, s.script]), [
    ['hello', '--env=GREETING?=hi /hello.so'],
    ['quiet', '--env=GREETING?=shh /hello.so'],
  ]);
});

for (const encoding of [undefined, false] as const) {
  // encoding:false matters: vinyl-fs 4 then hands out streamx contents whose async iterator
  // never ends, which once hung this step.
  test(`with gulp.src buffer:false, encoding ${String(encoding ?? 'utf8')}: the same manifest, contents intact`, async (t) => {
    const root = path.join(fixtures, 'native-app');
    const out = await runSteps([], gulp.src('**/*', { cwd: root, base: root, dot: true, buffer: false, encoding }) as never, resolveManifest(silent));
    t.is(manifestOf(out).bootCommand, 'runscript /run/hello;');
    const runYaml = out.find((f) => f.relative === path.join('meta', 'run.yaml'))!;
    const passed: Buffer[] = [];
    for await (const chunk of runYaml.contents as AsyncIterable<Buffer>) passed.push(chunk);
    t.is(Buffer.concat(passed).toString(), await fs.readFile(path.join(root, 'meta', 'run.yaml'), 'utf8'));
  });
}

test('Capstanfile app: files and rootfs resolved against the package root', async (t) => {
  const root = path.join(fixtures, 'capstanfile-app');
  const m = await resolveManifestFromDir(root, { env: { JAVA_OPTS: '-Xmx1g' } });
  t.deepEqual(m.capstanfile, {
    base: 'cloudius/osv-openjdk', cmdline: '/java.so -jar /usr/app/app.jar',
    files: { '/usr/app/app.jar': path.join(root, 'build', 'app.jar') }, rootfs: path.join(root, 'ROOTFS'),
  });
  t.is(m.bootCommand, '--env=JAVA_OPTS=-Xmx1g /java.so -jar /usr/app/app.jar');
});

test('two builds in one process do not share state', async (t) => {
  const [a, b] = await Promise.all([
    runSteps([vinylFile('/a', 'meta/package.yaml', packageYaml('app.a'))], resolveManifest(silent)),
    runSteps([vinylFile('/b', 'meta/package.yaml', packageYaml('app.b'))], resolveManifest(silent)),
  ]);
  t.is(manifestOf(a).package.name, 'app.a');
  t.is(manifestOf(b).package.name, 'app.b');
  t.is(a.length, 2);
  t.is(b.length, 2);
});

// ---- errors through the stream, as PluginError -----------------------------------------------

const streamErrors: Array<[string, string, string, RegExp]> = [
  ['YAML syntax', 'meta/package.yaml', 'name: a\ntitle: [b\nauthor: c\n', /meta\/package\.yaml:\d+:\d+: invalid YAML/],
  ['wrong type', 'meta/package.yaml', 'name: a\ntitle: b\nauthor: c\nrequire: osv.cli\n', /meta\/package\.yaml:4:10: `require` must be a list/],
  ['unknown runtime', 'meta/run.yaml', 'runtime: golang\nconfig_set:\n  a:\n    bootcmd: x\n', /meta\/run\.yaml:1:10: unknown runtime 'golang'/],
  ['missing main', 'meta/run.yaml', 'runtime: java\nconfig_set:\n  a:\n    classpath: [/src]\n', /meta\/run\.yaml:3:3: config set 'a': 'main' must be provided/],
  ['missing bootcmd', 'meta/run.yaml', 'runtime: native\nconfig_set:\n  a:\n    env: {A: b}\n', /meta\/run\.yaml:3:3: config set 'a': 'bootcmd' must be provided/],
  ['base without a colon', 'meta/run.yaml', 'runtime: native\nconfig_set:\n  a:\n    base: osv.cli\n', /meta\/run\.yaml:4:11: 'base' must be in format <pkg_name>:<config_set>/],
  ['spaces in env', 'meta/run.yaml', 'runtime: native\nconfig_set:\n  a:\n    bootcmd: x\n    env:\n      A: b c\n', /meta\/run\.yaml:6:10: spaces not allowed in env key\/value: 'A':'b c'/],
  ['/meta ignore pattern', '.capstanignore', '/build\n/meta\n', /\.capstanignore:2:1: '\/meta' cannot be ignored/],
  ['Capstanfile without cmdline', 'Capstanfile', 'base: cloudius/osv-base\n', /Capstanfile:1:1: "cmdline" not found/],
];
for (const [name, rel, text, message] of streamErrors) {
  test(`stream error: ${name}`, async (t) => {
    const base = '/virtual/bad';
    const error = (await t.throwsAsync(runSteps([vinylFile(base, 'app.so', 'x'), vinylFile(base, rel, text)], resolveManifest(silent)), { any: true, message })) as Error;
    t.is((error as { plugin?: string }).plugin, 'gulp-capstan');
    t.true(error.message.startsWith(path.join(base, rel)), error.message);
    t.is((error as { fileName?: string }).fileName, path.join(base, rel));
    t.truthy((error as { lineNumber?: number }).lineNumber);
    t.notRegex(error.message, /\n\s+at .*:\d+:\d+\)?$/m); // no stack trace in the message
  });
}

test('stream error: a /meta pattern in options.ignore, and bad option types, fail at creation', (t) => {
  t.throws(() => resolveManifest({ ignore: ['/meta'] }), { any: true, message: /'\/meta' cannot be ignored/ });
  t.throws(() => resolveManifest({ env: { A: 'b c' } }), { any: true, message: /resolveManifest options\.env: env value of A must not contain spaces/ });
  t.throws(() => resolveManifest({ require: 'osv.cli' as never }), { any: true, message: /`require` must be a list/ });
  t.throws(() => resolveManifest({ boot: ['a;reboot'] }), { any: true, message: /`boot` name 'a;reboot' is not a config set name/ });
  t.throws(() => resolveManifest({ run: 42 as never }), { any: true, message: /`run` must be a command line string or a run\.yaml object/ });
});

test('stream error: inline run option is validated like the file', async (t) => {
  await t.throwsAsync(runSteps([], resolveManifest({ ...silent, cwd: '/nonexistent', run: { runtime: 'native', config_set: { a: { base: 'x' } } } })),
    { any: true, message: /^resolveManifest options\.run: 'base' must be in format/ });
});

test('a stream error from disk input names the host file', async (t) => {
  const dir = await tempDir(t, { 'meta/run.yaml': 'runtime: native\nconfig_set:\n  a:\n    bootcmd: x\n    env: {K: "a b"}\n' });
  await t.throwsAsync(runSteps([], resolveManifest({ ...silent, cwd: dir })), { any: true, message: new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/meta/run\\.yaml:5:14: spaces not allowed`) });
});

// Bounded holding: past `hold`, the manifest is resolved from the stream so far and the disk,
// and files stream on; a later input must agree with what was used.
test('past the hold limit files stream on; a late input equal to the disk copy is accepted', async (t) => {
  const dir = await tempDir(t, { 'meta/run.yaml': runYaml('/late.so') });
  const files = [1, 2, 3, 4, 5].map((i) => vinylFile(dir, `f${i}.txt`, `${i}`));
  files.push(vinylFile(dir, 'meta/run.yaml', runYaml('/late.so')));
  const out = await runSteps(files, resolveManifest({ ...silent, hold: { files: 2 } }));
  t.is(manifestOf(out).bootCommand, 'runscript /run/app;');
  t.deepEqual(out.slice(1).map((f) => f.relative), ['f1.txt', 'f2.txt', 'f3.txt', 'f4.txt', 'f5.txt', path.join('meta', 'run.yaml')]);
  t.true(out.slice(1).every((f) => capstanOf(f)?.manifest === manifestOf(out)));
});

test('an input that arrives after the manifest was resolved, and differs, fails the build', async (t) => {
  const dir = await tempDir(t); // nothing on disk: the stream's run.yaml comes too late
  const files = [vinylFile(dir, 'a.txt', 'a'), vinylFile(dir, 'b.txt', 'b'), vinylFile(dir, 'c.txt', 'c'), vinylFile(dir, 'meta/run.yaml', runYaml('/x.so'))];
  const error = await t.throwsAsync(runSteps(files, resolveManifest({ ...silent, hold: { files: 1 } })), { any: true, message: /meta\/run\.yaml came down the stream after \d+ files/ }) as Error;
  t.regex(error.message, /hold: \{files: Infinity/);
});

test('the byte limit counts buffered contents; Infinity holds everything', async (t) => {
  const dir = await tempDir(t);
  const big = vinylFile(dir, 'big.bin', Buffer.alloc(4096));
  const late = () => vinylFile(dir, 'meta/run.yaml', runYaml('/x.so'));
  await t.throwsAsync(runSteps([big.clone(), late()], resolveManifest({ ...silent, hold: { bytes: 1024 } })), { any: true, message: /came down the stream after/ });
  const out = await runSteps([big.clone(), late()], resolveManifest({ ...silent, hold: { files: Infinity, bytes: Infinity } }));
  t.is(manifestOf(out).bootCommand, 'runscript /run/app;');
});

test('by default a stream of a few hundred files still waits for an input at its end', async (t) => {
  const dir = await tempDir(t);
  const files = Array.from({ length: 300 }, (_, i) => vinylFile(dir, `d/f${i}`, 'x'));
  files.push(vinylFile(dir, 'meta/run.yaml', runYaml('/x.so')));
  const out = await runSteps(files, resolveManifest(silent));
  t.is(manifestOf(out).bootCommand, 'runscript /run/app;');
});

test('hold must be numbers', (t) => {
  t.throws(() => resolveManifest({ hold: { files: -1 } }), { any: true, message: /`hold` must be/ });
});
