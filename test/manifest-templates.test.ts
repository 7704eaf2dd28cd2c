// Runtime templates and package scaffolding (capstan runtime list|preview|init, package init).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ManifestError } from '../lib/errors.js';
import {
  initPackage, initRuntime, listRuntimes, parsePackageYaml, parseRunYaml, previewRuntime, resolveManifestFromDir,
} from '../lib/manifest/index.js';

async function tempDir(t: import('ava').ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-manifest-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

test('listRuntimes: Capstan\'s runtimes, descriptions and implicit dependencies', (t) => {
  t.deepEqual(listRuntimes(), [
    { runtime: 'native', description: 'Run arbitrary command inside OSv', dependencies: [] },
    { runtime: 'node', description: 'Run JavaScript NodeJS 4.4.5 application', dependencies: ['node-4.4.5'] },
    { runtime: 'java', description: 'Run Java application', dependencies: ['openjdk8-zulu-compact1'] },
    { runtime: 'python', description: 'Run Python 2.7 application', dependencies: ['python-2.7'] },
  ]);
});

for (const { runtime } of listRuntimes()) {
  test(`previewRuntime(${runtime}): the commented and the plain template parse with our run.yaml parser`, (t) => {
    const commented = previewRuntime(runtime);
    const plain = previewRuntime(runtime, { plain: true });
    t.regex(commented, /^ +# REQUIRED$/m);
    t.notRegex(plain, /#/);
    t.notRegex(plain, /^\s*$\n/m); // no blank lines
    for (const text of [commented, plain]) {
      const warnings: unknown[] = [];
      const run = parseRunYaml(text, `${runtime} template`, { strict: true, onWarning: (w) => warnings.push(w) });
      t.is(run.runtime, runtime);
      t.deepEqual(run.configSets.map((c) => c.name), ['myconfig1']);
      t.deepEqual(run.configSetDefault, ['myconfig1']);
      t.deepEqual(run.configSets[0]!.env?.['<key>'], '<value>');
      t.deepEqual(warnings, []);
    }
  });
}

test('previewRuntime(native, plain) is Capstan\'s composeConf output without comments', (t) => {
  t.is(previewRuntime('native', { plain: true }), [
    'runtime: native',
    'config_set: ',
    '   myconfig1:',
    '      bootcmd: <command>',
    '      env:',
    '         <key>: <value>',
    'config_set_default: myconfig1',
    '',
  ].join('\n'));
});

test('previewRuntime: unknown runtime is a typed error', (t) => {
  const e = t.throws(() => previewRuntime('rust'), { instanceOf: ManifestError });
  t.is(e!.code, 'E_RUN_YAML_RUNTIME_UNKNOWN');
  t.regex(e!.message, /unknown runtime 'rust'\n {2}Use one of: native, node, java, python/);
});

test('initRuntime: needs meta/package.yaml, refuses to overwrite unless forced', async (t) => {
  const dir = await tempDir(t);
  const notPackage = await t.throwsAsync(initRuntime(dir, 'node'), { instanceOf: ManifestError });
  t.is(notPackage!.code, 'E_PACKAGE_YAML_NOT_FOUND');
  await initPackage(dir, { name: 'app', title: 'App', author: 'me' });
  const written = await initRuntime(dir, 'node', { plain: true });
  t.is(written, path.join(dir, 'meta', 'run.yaml'));
  t.is(await fs.readFile(written, 'utf8'), previewRuntime('node', { plain: true }));
  const exists = await t.throwsAsync(initRuntime(dir, 'java'), { instanceOf: ManifestError });
  t.is(exists!.code, 'E_RUN_YAML_EXISTS');
  t.regex(exists!.message, /run\.yaml already exists\n {2}Pass \{force: true\}/);
  await initRuntime(dir, 'java', { force: true });
  t.is(parseRunYaml(await fs.readFile(written, 'utf8'), written).runtime, 'java');
});

test('initPackage: writes package.yaml in Capstan\'s key order with an RFC3339 created stamp', async (t) => {
  const dir = await tempDir(t);
  const created = new Date();
  const result = await initPackage(dir, {
    name: 'com.example.app', title: 'Example', author: 'Jane', version: '0.1', require: ['osv.cli'], platform: 'Ubuntu 24.04', created,
  });
  const text = await fs.readFile(result.packageYaml, 'utf8');
  t.deepEqual(text.split('\n').filter((l) => /^\w/.test(l)).map((l) => l.split(':')[0]), ['name', 'title', 'author', 'version', 'require', 'created', 'platform']);
  const info = parsePackageYaml(text, result.packageYaml);
  t.like(info, { name: 'com.example.app', title: 'Example', author: 'Jane', version: '0.1', require: ['osv.cli'], platform: 'Ubuntu 24.04' });
  t.regex(info.created!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
  t.is(Math.floor(Date.parse(info.created!) / 1000), Math.floor(created.getTime() / 1000));
  t.is(result.runYaml, undefined);
  const again = await t.throwsAsync(initPackage(dir, { name: 'x', title: 'x', author: 'x' }), { instanceOf: ManifestError });
  t.is(again!.code, 'E_PACKAGE_YAML_EXISTS');
});

test('initPackage with a runtime adds a run.yaml stub, and the folder resolves as a manifest', async (t) => {
  const dir = await tempDir(t);
  const result = await initPackage(dir, { name: 'app', title: 'App', author: 'me', runtime: 'java' });
  t.is(result.runYaml, path.join(dir, 'meta', 'run.yaml'));
  const manifest = await resolveManifestFromDir(dir);
  t.is(manifest.run?.runtime, 'java');
  t.deepEqual(manifest.require, ['osv.bootstrap', 'openjdk8-zulu-compact1']);
  t.is(manifest.bootCommand, 'runscript /run/myconfig1;');
});

test('initPackage: name, title and author are required; runtime must exist', async (t) => {
  const dir = await tempDir(t);
  t.is((await t.throwsAsync(initPackage(dir, { name: 'a', title: '', author: 'c' }), { instanceOf: ManifestError }))!.code, 'E_PACKAGE_YAML_TITLE_MISSING');
  t.is((await t.throwsAsync(initPackage(dir, { name: 'a', title: 'b', author: 'c', runtime: 'go' }), { instanceOf: ManifestError }))!.code, 'E_RUN_YAML_RUNTIME_UNKNOWN');
  await t.throwsAsync(fs.access(path.join(dir, 'meta', 'package.yaml'))); // nothing written
});
