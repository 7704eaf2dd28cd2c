// Packages written as public Capstan apps are (test/fixtures/capstan-apps), with the YAML that
// Capstan's reader accepts: every one resolves to what Capstan would compose, warnings name
// file:line, and strict mode stops at the first of them.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import gulp from 'gulp';
import { capstanOf } from '../lib/carrier.js';
import { ManifestError } from '../lib/errors.js';
import { resolveManifestFromDir, type ManifestWarning } from '../lib/manifest/index.js';
import { resolveManifest } from '../lib/steps/resolve-manifest.js';
import { runSteps } from './helpers/streams.js';

const apps = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'capstan-apps');

async function resolve(app: string) {
  const warnings: ManifestWarning[] = [];
  const manifest = await resolveManifestFromDir(path.join(apps, app), { onWarning: (w) => warnings.push(w) });
  return { manifest, warnings: warnings.map((w) => ({ code: w.code, file: path.relative(apps, w.file), line: w.line })) };
}

test('a config set named twice: the last one is used, with a warning at its line; package.yaml keeps 1.10 as written', async (t) => {
  const { manifest, warnings } = await resolve('spark-cluster');
  t.deepEqual(warnings, [
    { code: 'W_YAML_DUPLICATE_KEY', file: 'spark-cluster/meta/package.yaml', line: 8 },
    { code: 'W_YAML_DUPLICATE_KEY', file: 'spark-cluster/meta/run.yaml', line: 20 },
  ]);
  t.like(manifest.package, { name: 'example.spark-cluster', version: '1.10', require: ['openjdk8-zulu-full'], created: '2019-09-16 07:52' });
  const sets = Object.fromEntries(manifest.run!.configSets.map((c) => [c.name, c.script]));
  t.deepEqual(Object.keys(sets), ['master', 'worker']);
  // The folded bootcmd keeps its final line break, as in Capstan's /run/master.
  t.is(sets.master, '--env=XMS?=512m --env=XMX?=512m --env=PORT?=7077 /java.so -Xms$XMS -Xmx$XMX -cp /conf:/jars/* org.example.Master --port $PORT\n');
  t.is(sets.worker, '--env=XMX?=1g --env=MASTER?=master:7077 /java.so -Xmx$XMX -cp /conf:/jars/* org.example.Worker $MASTER');
  t.is(manifest.bootCommand, 'runscript /run/worker;');
  t.deepEqual(manifest.require, ['osv.bootstrap', 'openjdk8-zulu-full']);
});

test('YAML 1.1 words and numbers in a config set come out as Capstan\'s interface{} round trip makes them; merge keys work', async (t) => {
  const { manifest, warnings } = await resolve('node-service');
  t.deepEqual(warnings, []);
  // Top-level strings keep their spelling: `title: yes` is "yes", `version: 0.1` is "0.1".
  t.like(manifest.package, { title: 'yes', version: '0.1' });
  const service = manifest.run!.configSets.find((c) => c.name === 'service')!;
  t.deepEqual(service.env, {
    NODE_ENV: 'production', DEBUG: 'true', PORT: '8080', UMASK: '493', RATE: '1.5', LIMIT: '1000', NODE_ARGS: '--', MAIN: '/server.js',
  });
  t.deepEqual(service.inherits, { package: 'node-4.4.5', configSet: 'node' });
  const shell = manifest.run!.configSets.find((c) => c.name === 'shell')!;
  t.deepEqual(shell.env, { NODE_ARGS: '--', MAIN: '', ARGS: '' }); // shell: On is true
  t.deepEqual(manifest.require, ['osv.bootstrap', 'node-4.4.5']);
});

test('config_set given twice at the top: the sets add up, as go-yaml fills the same map; an empty env value is kept', async (t) => {
  const { manifest, warnings } = await resolve('db-server');
  t.deepEqual(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', file: 'db-server/meta/run.yaml', line: 12 }]);
  t.deepEqual(manifest.run!.configSets.map((c) => [c.name, c.script]), [
    ['db', '--env=INIT_FILE?=/etc/db-init.sql --env=ARGS?= /usr/bin/dbd --datadir=/data --init-file=$INIT_FILE $ARGS'],
    ['format_volume', '--env=VOLUME_MOUNT?=/data /zpool.so create -m $VOLUME_MOUNT volume /dev/vblk1'],
  ]);
  t.is(manifest.bootCommand, 'runscript /run/db;');
});

test('Capstanfile with files: given twice: both blocks count', async (t) => {
  const { manifest, warnings } = await resolve('legacy-redis');
  t.deepEqual(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', file: 'legacy-redis/Capstanfile', line: 5 }]);
  t.deepEqual(manifest.capstanfile!.files, {
    '/redis-server': path.join(apps, 'legacy-redis', 'build', 'redis-server'),
    '/redis.conf': path.join(apps, 'legacy-redis', 'redis.conf'),
  });
  t.is(manifest.bootCommand, '/redis-server redis.conf');
});

test('strict: the first repeated key stops resolution with file:line:column', async (t) => {
  const e = await t.throwsAsync(resolveManifestFromDir(path.join(apps, 'spark-cluster'), { strict: true }), { instanceOf: ManifestError });
  t.is(e!.code, 'E_YAML_DUPLICATE_KEY');
  t.is(e!.file, path.join(apps, 'spark-cluster', 'meta', 'package.yaml'));
  t.deepEqual([e!.line, e!.column], [8, 1]);
  t.regex(e!.message, /package\.yaml:8:1: `require` is given again \(first at line 6\)/);
});

test('the resolveManifest step hands the same warnings to onWarning, and strict fails the stream', async (t) => {
  const root = path.join(apps, 'db-server');
  const warnings: ManifestWarning[] = [];
  const src = () => gulp.src('**/*', { cwd: root, base: root, dot: true, encoding: false }) as never;
  const out = await runSteps([], src(), resolveManifest({ silent: true, onWarning: (w) => warnings.push(w) }));
  t.is(capstanOf(out[0]!)?.manifest?.run?.configSets.length, 2);
  t.like(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', file: path.join(root, 'meta', 'run.yaml'), line: 12, column: 1 }]);
  const failed = await t.throwsAsync(runSteps([], src(), resolveManifest({ silent: true, strict: true })), { any: true });
  t.regex((failed as Error).message, /run\.yaml:12:1: `config_set` is given again \(first at line 3\)[^\n]*\n {2}Merge the two into one mapping\./);
});
