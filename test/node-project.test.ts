// A Node.js project with no Capstan files becomes an image: the boot command from package.json,
// production dependencies only (npm-, scoped-, workspace- and pnpm-style layouts, .bin links
// left out, dangling ones too), a native addon with its library, the host's node with its
// closure, and the OSv settings node needs. Read back byte for byte with our own image reader.
import test from 'ava';
import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
// @ts-ignore -- gulp 5 ships no type declarations
import { src as gulpSrc } from 'gulp';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { captureClosure } from '../lib/host/closure.js';
import { resolveManifestFromDir } from '../lib/manifest/load.js';
import { FSTAB_WITH_PROC, FSTAB_WITHOUT_PROC, NODE_GUEST_PATH, OPENSSL_CNF_GUEST_PATH } from '../lib/runtimes/node.js';
import { nodeModulesFilter, parseNodeCommand } from '../lib/runtimes/node-project.js';
import { fetchPackages } from '../lib/steps/fetch-packages.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { resolveManifest } from '../lib/steps/resolve-manifest.js';
import { writeImage } from '../lib/steps/write-image.js';
import { buildStandInLoader } from './helpers/stand-in.js';
import { src as capstanSrc } from '../lib/vinyl/src.js';

const src = gulpSrc as (globs: string | string[], options: Record<string, unknown>) => NodeJS.ReadableStream;

async function write(file: string, text: string | Buffer) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}

const pkgJson = (name: string, extra: Record<string, unknown> = {}) => JSON.stringify({ name, version: '1.0.0', ...extra }, null, 2);

/** A project: prod deps dep-a (→ dep-c), @scope/b, ws-pkg (workspace symlink), pn (pnpm-style link); dev deps dev-x (→ dev-y). */
async function project(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-node-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'app');
  await write(path.join(root, 'package.json'), pkgJson('my-server', {
    scripts: { start: 'node --enable-source-maps server.js --port 8080', test: 'ava' },
    dependencies: { 'dep-a': '^1', '@scope/b': '^1', 'ws-pkg': '*', pn: '^1' },
    devDependencies: { 'dev-x': '^1' },
  }));
  await write(path.join(root, 'server.js'), "require('dep-a'); require('http').createServer((q, s) => s.end('hi')).listen(8080);\n");
  await write(path.join(root, 'lib', 'util.js'), 'module.exports = 1;\n');
  await write(path.join(root, 'test', 'server.test.js'), 'test\n');
  await write(path.join(root, 'coverage', 'lcov.info'), 'x\n');
  await write(path.join(root, '.git', 'HEAD'), 'ref\n');
  const nm = path.join(root, 'node_modules');
  await write(path.join(nm, 'dep-a', 'package.json'), pkgJson('dep-a', { dependencies: { 'dep-c': '^1' }, devDependencies: { 'dev-y': '^1' } }));
  await write(path.join(nm, 'dep-a', 'index.js'), "module.exports = require('dep-c');\n");
  await write(path.join(nm, 'dep-c', 'package.json'), pkgJson('dep-c'));
  await write(path.join(nm, 'dep-c', 'index.js'), "const { spawn } = require('child_process'); module.exports = spawn;\n");
  await write(path.join(nm, '@scope', 'b', 'package.json'), pkgJson('@scope/b'));
  await write(path.join(nm, '@scope', 'b', 'index.js'), 'module.exports = "b";\n');
  await write(path.join(nm, '@scope', 'devonly', 'package.json'), pkgJson('@scope/devonly'));
  await write(path.join(nm, 'dev-x', 'package.json'), pkgJson('dev-x', { dependencies: { 'dev-y': '^1' } }));
  await write(path.join(nm, 'dev-x', 'cli.js'), '#!/usr/bin/env node\n');
  await write(path.join(nm, 'dev-y', 'package.json'), pkgJson('dev-y'));
  // A workspace package, linked as npm does.
  await write(path.join(root, 'packages', 'ws-pkg', 'package.json'), pkgJson('ws-pkg'));
  await write(path.join(root, 'packages', 'ws-pkg', 'index.js'), 'module.exports = "ws";\n');
  await symlink('../packages/ws-pkg', path.join(nm, 'ws-pkg'));
  // pnpm's layout: node_modules/pn → .pnpm/pn@1.0.0/node_modules/pn, its dependency a sibling there.
  const store = path.join(nm, '.pnpm', 'pn@1.0.0', 'node_modules');
  await write(path.join(store, 'pn', 'package.json'), pkgJson('pn', { dependencies: { 'pn-dep': '^1' } }));
  await write(path.join(store, 'pn', 'index.js'), "module.exports = require('pn-dep');\n");
  await write(path.join(nm, '.pnpm', 'pn-dep@1.0.0', 'node_modules', 'pn-dep', 'package.json'), pkgJson('pn-dep'));
  await write(path.join(nm, '.pnpm', 'pn-dep@1.0.0', 'node_modules', 'pn-dep', 'index.js'), 'module.exports = 2;\n');
  await symlink('../../pn-dep@1.0.0/node_modules/pn-dep', path.join(store, 'pn-dep'));
  await symlink('.pnpm/pn@1.0.0/node_modules/pn', path.join(nm, 'pn'));
  await write(path.join(nm, '.pnpm', 'lock.yaml'), 'lockfileVersion: 9\n');
  // .bin links, one dangling.
  await mkdir(path.join(nm, '.bin'));
  await symlink('../dev-x/cli.js', path.join(nm, '.bin', 'dev-x'));
  await symlink('../gone/cli.js', path.join(nm, '.bin', 'gone'));
  // A native addon in dep-a, linked against a library of the test's own (RUNPATH $ORIGIN).
  const addonDir = path.join(nm, 'dep-a', 'build', 'Release');
  await mkdir(addonDir, { recursive: true });
  await writeFile(path.join(dir, 'helper.c'), 'int helper(void) { return 42; }\n');
  await writeFile(path.join(dir, 'addon.c'), 'int helper(void); int addon_value(void) { return helper(); }\n');
  await execa('gcc', ['-shared', '-fPIC', '-Wl,-soname,libaddonhelper.so.1', '-o', path.join(addonDir, 'libaddonhelper.so.1'), path.join(dir, 'helper.c')]);
  await execa('gcc', ['-shared', '-fPIC', '-o', path.join(addonDir, 'addon.node'), path.join(dir, 'addon.c'), `-L${addonDir}`, '-l:libaddonhelper.so.1', "-Wl,-rpath,$ORIGIN"]);
  return { dir, root };
}

test('package.json start scripts are read the way npm runs them', (t) => {
  t.deepEqual(parseNodeCommand('node server.js'), { nodeArgs: [], script: 'server.js', args: [] });
  t.deepEqual(parseNodeCommand('node --require ./tracing.js dist/main.js --port 80'), { nodeArgs: ['--require', './tracing.js'], script: 'dist/main.js', args: ['--port', '80'] });
  t.deepEqual(parseNodeCommand('exec node "my app.js"'), { nodeArgs: [], script: 'my app.js', args: [] });
  t.is(parseNodeCommand('NODE_ENV=production node x.js'), undefined);
  t.is(parseNodeCommand('tsc && node dist/x.js'), undefined);
  t.is(parseNodeCommand('nodemon x.js'), undefined);
});

test('the production filter: packages, their folders on the way, nothing else of node_modules', (t) => {
  const keep = nodeModulesFilter(['/node_modules/a', '/node_modules/@s/b', '/node_modules/.pnpm/p@1/node_modules/p', '/node_modules/a/node_modules/c']);
  for (const p of ['/server.js', '/node_modules', '/node_modules/a', '/node_modules/a/x/y.js', '/node_modules/@s', '/node_modules/@s/b/i.js',
    '/node_modules/.pnpm', '/node_modules/.pnpm/p@1', '/node_modules/.pnpm/p@1/node_modules/p/index.js', '/node_modules/a/node_modules', '/node_modules/a/node_modules/c/i.js']) {
    t.true(keep(p), p);
  }
  for (const p of ['/node_modules/dev', '/node_modules/dev/i.js', '/node_modules/@s/other', '/node_modules/.bin/x', '/node_modules/.package-lock.json',
    '/node_modules/.pnpm/lock.yaml', '/node_modules/.pnpm/q@1/node_modules/q/i.js', '/node_modules/a/node_modules/d/i.js']) {
    t.false(keep(p), p);
  }
});

test('a Node project without Capstan files: boot command, production packages, addons, child_process warning', async (t) => {
  const { root } = await project(t);
  const warnings: string[] = [];
  const manifest = await resolveManifestFromDir(root, { onWarning: (w) => warnings.push(w.message) });
  t.is(manifest.detected, 'node-project');
  t.is(manifest.bootCommand, 'runscript /run/default;');
  const set = manifest.run!.configSets[0]!;
  t.is(set.bootcmd, `${NODE_GUEST_PATH} --enable-source-maps /server.js --port 8080 !`, "OSv's ! ends the VM with the program");
  t.deepEqual(set.env, { NODE_ENV: 'production', TZ: 'UTC' });
  t.deepEqual(manifest.require, [], 'a Node project needs no osv.bootstrap (ROFS skeleton instead)');
  t.deepEqual(manifest.nodeModules!.production, [
    '/node_modules/.pnpm/pn-dep@1.0.0/node_modules/pn-dep', '/node_modules/.pnpm/pn@1.0.0/node_modules/pn', '/node_modules/.pnpm/pn@1.0.0/node_modules/pn-dep',
    '/node_modules/@scope/b', '/node_modules/dep-a', '/node_modules/dep-c', '/node_modules/pn', '/node_modules/ws-pkg', '/packages/ws-pkg',
  ]);
  t.deepEqual(manifest.hostRuntime?.kind === 'node' ? manifest.hostRuntime.addons : undefined, [path.join(root, 'node_modules/dep-a/build/Release/addon.node')]);
  t.true(warnings.some((w) => /dep-c uses child_process/.test(w)), warnings.join('\n'));
  t.false(warnings.some((w) => /dev-x|dev-y/.test(w)), 'dev dependencies are not scanned');
  // Options: another entry, no detection at all.
  t.is((await resolveManifestFromDir(root, { node: { main: 'lib/util.js' } })).run!.configSets[0]!.bootcmd, `${NODE_GUEST_PATH} /lib/util.js !`);
  const plain = (await resolveManifestFromDir(root, { node: { main: 'lib/util.js', exit: false, tz: false, args: ['a b', 'x!'] } })).run!.configSets[0]!;
  t.is(plain.bootcmd, `${NODE_GUEST_PATH} /lib/util.js "a b" "x!"`, 'words OSv would split are quoted');
  t.deepEqual(plain.env, { NODE_ENV: 'production' });
  t.is((await resolveManifestFromDir(root, { node: false })).run, undefined);
});

test('composed through capstan.src (dangling .bin links and all): exactly the production files, byte-exact, with node, its closure and the OSv settings', async (t) => {
  const { dir, root } = await project(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const out = path.join(dir, 'app.qcow2');
  await pipeline(
    capstanSrc('**', { cwd: root, dot: true }),
    resolveManifest({ cwd: root, silent: true }), fetchPackages({ root: path.join(dir, 'capstan'), silent: true }), layoutFiles({ silent: true }),
    writeImage({ out, loader, silent: true }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
  const image = await describeImage(out);
  const entries = new Map(image.rofs!.entries.map((e) => [e.path, e]));
  const paths = [...entries.keys()];
  const appFiles = paths.filter((p) => !/^\/(usr|etc|run|dev|proc|sys|tmp|data)(\/|$)/.test(p) && entries.get(p)!.type !== 'dir');
  t.deepEqual(appFiles.sort(), [
    '/lib/util.js',
    '/node_modules/.pnpm/pn-dep@1.0.0/node_modules/pn-dep/index.js', '/node_modules/.pnpm/pn-dep@1.0.0/node_modules/pn-dep/package.json',
    '/node_modules/.pnpm/pn@1.0.0/node_modules/pn-dep',
    '/node_modules/.pnpm/pn@1.0.0/node_modules/pn/index.js', '/node_modules/.pnpm/pn@1.0.0/node_modules/pn/package.json',
    '/node_modules/@scope/b/index.js', '/node_modules/@scope/b/package.json',
    '/node_modules/dep-a/build/Release/addon.node', '/node_modules/dep-a/build/Release/libaddonhelper.so.1',
    '/node_modules/dep-a/index.js', '/node_modules/dep-a/package.json',
    '/node_modules/dep-c/index.js', '/node_modules/dep-c/package.json',
    '/node_modules/pn', '/node_modules/ws-pkg',
    '/package.json', '/packages/ws-pkg/index.js', '/packages/ws-pkg/package.json', '/server.js',
  ]);
  t.is(entries.get('/node_modules/ws-pkg')?.target, '/packages/ws-pkg', 'a .. target made absolute, as Capstan does');
  t.is(entries.get('/node_modules/pn')?.target, '.pnpm/pn@1.0.0/node_modules/pn');
  for (const p of ['/server.js', '/node_modules/dep-a/build/Release/addon.node', '/packages/ws-pkg/index.js']) {
    t.deepEqual(await readImageFile(out, p), await readFile(path.join(root, p)), p);
  }
  // node and every library it needs (an independent check: ldd agrees in host-closure.test.ts).
  t.true((await readImageFile(out, NODE_GUEST_PATH)).equals(await readFile(process.execPath)), 'node, byte for byte');
  for (const e of captureClosure([{ path: process.execPath, at: NODE_GUEST_PATH }], { withGccS: true }).entries) t.true(entries.has(e.guestPath), e.guestPath);
  t.is((await readImageFile(out, '/etc/fstab')).toString(), FSTAB_WITHOUT_PROC);
  t.is((await readImageFile(out, '/run/default')).toString(),
    `--env=NODE_ENV?=production --env=TZ?=UTC ${NODE_GUEST_PATH} --enable-source-maps /server.js --port 8080 !`);
  t.is(image.cmdline, 'runscript /run/default;');
});

test("Capstan's runtime: node uses node-4.4.5 when the repository has it, the host's node otherwise", async (t) => {
  const { dir } = await project(t);
  const app = path.join(dir, 'capstan-app');
  await write(path.join(app, 'meta', 'run.yaml'), 'runtime: node\nconfig_set:\n  web:\n    main: /app.js\n    args: [--port, "9000"]\n');
  await write(path.join(app, 'app.js'), 'console.log(1)\n');
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const out = path.join(dir, 'capstan.raw');
  const build = (root: string) => pipeline(
    src('**', { cwd: app, base: app, dot: true, encoding: false, resolveSymlinks: false }),
    resolveManifest({ cwd: app, bootstrap: false, boot: 'web', silent: true }), fetchPackages({ root, silent: true }), layoutFiles({ silent: true }),
    writeImage({ out, loader, format: 'raw', silent: true }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
  await build(path.join(dir, 'empty-repo'));
  t.is((await readImageFile(out, '/run/web')).toString(),
    `--env=NODE_ARGS?=-- --env=MAIN?=/app.js --env=ARGS?=--port 9000 --env=TZ?=UTC ${NODE_GUEST_PATH} $NODE_ARGS $MAIN $ARGS !`);
  t.true((await readImageFile(out, NODE_GUEST_PATH)).equals(await readFile(process.execPath)), 'node, byte for byte');
  // With Capstan's package in the repository, it is used as Capstan would.
  const repo = path.join(dir, 'repo');
  await write(path.join(repo, 'packages', 'node-4.4.5.yaml'), 'name: node-4.4.5\ntitle: Node\nauthor: a\n');
  const { buildPackage } = await import('../lib/repository/packages.js');
  const pkgDir = path.join(dir, 'node-pkg');
  await write(path.join(pkgDir, 'meta', 'package.yaml'), 'name: node-4.4.5\ntitle: Node\nauthor: a\n');
  await write(path.join(pkgDir, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  node:\n    bootcmd: /libnode.so $NODE_ARGS $MAIN $ARGS\n');
  await write(path.join(pkgDir, 'libnode.so'), 'old node');
  const built = await buildPackage(pkgDir);
  await write(path.join(repo, 'packages', 'node-4.4.5.mpm'), await readFile(built.path));
  await build(repo);
  t.is((await readImageFile(out, '/run/web')).toString(), '--env=NODE_ARGS?=-- --env=MAIN?=/app.js --env=ARGS?=--port 9000 /libnode.so $NODE_ARGS $MAIN $ARGS');
  await t.throwsAsync(readImageFile(out, NODE_GUEST_PATH));
});

test('the OSv settings can be switched: procfs mounted with the openssl.cnf workaround, no TZ, no ! suffix', async (t) => {
  const { nodeRuntimeFiles } = await import('../lib/runtimes/node.js');
  const withProc = nodeRuntimeFiles({ kind: 'node', root: process.cwd(), addons: [], procfs: true, tz: false, exit: false });
  t.deepEqual(withProc.generated.map((g) => g.guestPath), ['/etc/fstab', OPENSSL_CNF_GUEST_PATH]);
  t.is(withProc.generated[0]!.contents.toString(), FSTAB_WITH_PROC);
  t.regex(FSTAB_WITH_PROC, /^none +\/proc +procfs /m);
  t.notRegex(FSTAB_WITHOUT_PROC, /procfs/);
  t.deepEqual(withProc.run.configSets[0]!.env, {});
  t.is(withProc.run.configSets[0]!.bootcmd, `${NODE_GUEST_PATH} $NODE_ARGS $MAIN $ARGS`);
  t.regex(withProc.version, /^v\d+\./);
});
