// Boot commands and /run scripts, case by case against Capstan's own expectations
// (cmd/package_test.go TestGetCmd and the inheritance tests, runtime/{java,node,python}_test.go).
// Capstan prints env prefixes in Go map order (random); like its BootCmdEquals checker, `bootEquals`
// compares the prefixes as a set. Our own order is fixed (see the `order` test).
import test, { type ExecutionContext } from 'ava';
import { ManifestError } from '../lib/errors.js';
import {
  assembleManifest, composeBootCommand, parseRunYaml, resolveBootScripts, withResolvedBootScripts, type BootScriptSource, type RunConfig,
} from '../lib/manifest/index.js';

function bootEquals(t: ExecutionContext, actual: string, command: string, env: string[]): void {
  const expectedLength = env.reduce((n, e) => n + e.length + 1, 0) + command.length;
  t.true(actual.endsWith(command), `${actual} should end with ${command}`);
  for (const e of env) t.true(actual.startsWith(`${e} `) || actual.includes(` ${e} `), `${actual} should contain ${e}`);
  t.is(actual.length, expectedLength, `${actual} should be exactly ${env.join(' ')} ${command}`);
}

const run = (text: string, label = 'meta/run.yaml'): RunConfig => parseRunYaml(text.replace(/^\n/, ''), label);

// The runtime packages as Capstan's tests simulate them.
const openjdk8 = run(`
runtime: native
config_set:
  java:
    bootcmd: /java.so
    env: {XMS: 512m, XMX: 512m, CLASSPATH: /, JVM_ARGS: -Duser.dir=/, MAIN: main.Hello, ARGS: ""}
`, 'openjdk8-zulu-compact1:meta/run.yaml');
const openjdk7 = run(`
runtime: native
config_set:
  java:
    bootcmd: /java7.so
    env: {XMS: 512m, XMX: 512m, CLASSPATH: /, JVM_ARGS: -Duser.dir=/, MAIN: main.Hello, ARGS: ""}
`);
const mypackage = run('runtime: native\nconfig_set:\n  run:\n    bootcmd: /mypackage.so\n');
const node445 = run('runtime: native\nconfig_set:\n  node:\n    bootcmd: /node.so\n    env: {NODE_ARGS: "--", MAIN: /mymain.js, ARGS: ""}\n');
const python27 = run('runtime: native\nconfig_set:\n  python:\n    bootcmd: /python.so\n    env: {PYTHON_ARGS: -O, MAIN: "-", ARGS: ""}\n');

const packages: BootScriptSource[] = [
  { package: 'openjdk8-zulu-compact1', run: openjdk8 },
  { package: 'openjdk7', run: openjdk7 },
  { package: 'mypackage', run: mypackage },
  { package: 'node-4.4.5', run: node445 },
  { package: 'python-2.7', run: python27 },
];

/** The /run/default script of an app run.yaml, composed with the runtime packages. */
function defaultScript(text: string): string {
  const scripts = resolveBootScripts([...packages, { package: 'App', run: run(text) }]);
  return scripts.find((s) => s.name === 'default' && s.package === 'App')!.script;
}

// ---- Image command line (BootOptions.GetCmd) -------------------------------------------------

const getCmdCases: Array<[string, Parameters<typeof composeBootCommand>[0], string]> = [
  ['empty command line', {}, 'runscript /run/default;'],
  ['--run (execute)', { run: 'direct cmd' }, 'direct cmd'],
  ['--boot', { boot: ['boot1'] }, 'runscript /run/boot1;'],
  ['multiple --boot', { boot: ['boot1', 'boot2', 'boot3'] }, 'runscript /run/boot1;runscript /run/boot2;runscript /run/boot3;'],
  ['config_set_default', { configSetDefault: ['default1'] }, 'runscript /run/default1;'],
  ['multiple config_set_default', { configSetDefault: ['default1', 'default2'] }, 'runscript /run/default1;runscript /run/default2;'],
  ['--run beats --boot and config_set_default', { run: 'direct cmd', boot: ['boot1'], configSetDefault: ['x'] }, 'direct cmd'],
  ['--boot beats config_set_default', { boot: ['boot1'], configSetDefault: ['x'] }, 'runscript /run/boot1;'],
  ['--env is a hard prefix, even with --run', { run: '/hello.so', env: { PORT: '8000' } }, '--env=PORT=8000 /hello.so'],
  ['--env before runscript', { boot: ['web'], env: { A: '1', B: '2' } }, '--env=A=1 --env=B=2 runscript /run/web;'],
  ['Capstanfile cmdline', { capstanfileCmdline: '/java.so -jar /app.jar' }, '/java.so -jar /app.jar'],
  ['--run beats a Capstanfile cmdline', { run: '/other.so', capstanfileCmdline: '/java.so' }, '/other.so'],
  ['boot names are trimmed', { boot: [' a ', 'b'] }, 'runscript /run/a;runscript /run/b;'],
];
for (const [name, inputs, expected] of getCmdCases) {
  test(`command line: ${name}`, (t) => {
    t.is(composeBootCommand(inputs).command, expected);
  });
}

test('command line: --env alone still boots the default config set (Capstan would boot nothing)', (t) => {
  t.deepEqual(composeBootCommand({ env: { DEBUG: '1' } }), { command: '--env=DEBUG=1 runscript /run/default;', source: 'default' });
});

test('command line: spaces in --env are rejected', (t) => {
  const e = t.throws(() => composeBootCommand({ env: { GREETING: 'hello world' }, envLabel: 'resolveManifest options.env' }), { instanceOf: ManifestError });
  t.regex(e!.message, /^resolveManifest options\.env: env value of GREETING must not contain spaces/);
  t.throws(() => composeBootCommand({ env: { 'MY KEY': 'x' } }), { instanceOf: ManifestError });
});

// ---- /run scripts: native, env soft prefixes, inheritance ------------------------------------

test('native: bootcmd with soft env', (t) => {
  t.is(defaultScript('runtime: native\nconfig_set:\n  default:\n    bootcmd: /hello.so\n    env:\n      PORT: 8000\n'), '--env=PORT?=8000 /hello.so');
});

test('native: base inherits another package\'s boot command', (t) => {
  t.is(defaultScript('runtime: native\nconfig_set:\n  default:\n    base: "mypackage:run"\n'), '/mypackage.so');
});

// ---- java ------------------------------------------------------------------------------------

const javaCases: Array<[string, string, string, string[]]> = [
  ['simple', 'main: demo.Main\n    classpath:\n      - /src', '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/src', '--env=JVM_ARGS?=-Dx=y', '--env=MAIN?=demo.Main', '--env=ARGS?=']],
  ['multiple classpath', 'main: demo.Main\n    classpath:\n      - /src\n      - /src/package1', '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/src:/src/package1', '--env=JVM_ARGS?=-Dx=y', '--env=MAIN?=demo.Main', '--env=ARGS?=']],
  ['xms and xmx', 'main: demo.Main\n    classpath: [/src]\n    xms: 128m\n    xmx: 1024m', '/java.so',
    ['--env=XMS?=128m', '--env=XMX?=1024m', '--env=CLASSPATH?=/src', '--env=JVM_ARGS?=-Dx=y', '--env=MAIN?=demo.Main', '--env=ARGS?=']],
  ['jvm args', 'main: demo.Main\n    classpath: [/src]\n    jvm_args:\n      - -Darg1=val1\n      - -Darg2=val2', '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/src', '--env=JVM_ARGS?=-Darg1=val1 -Darg2=val2', '--env=MAIN?=demo.Main', '--env=ARGS?=']],
  ['args', 'main: demo.Main\n    classpath: [/src]\n    args:\n      - localhost\n      - 8000', '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/src', '--env=JVM_ARGS?=-Dx=y', '--env=MAIN?=demo.Main', '--env=ARGS?=localhost 8000']],
  ['jar as main adds -jar', 'main: app.jar', '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/', '--env=JVM_ARGS?=-jar', '--env=MAIN?=app.jar', '--env=ARGS?=']],
  ['jar as main, -jar already given', 'main: app.jar\n    jvm_args: ["-jar"]', '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/', '--env=JVM_ARGS?=-jar', '--env=MAIN?=app.jar', '--env=ARGS?=']],
  ['jar as main, -jar among other args', 'main: app.jar\n    jvm_args: ["-jar", "-xyz"]', '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/', '--env=JVM_ARGS?=-jar -xyz', '--env=MAIN?=app.jar', '--env=ARGS?=']],
  ['different openjdk package', 'base: "openjdk7:java"\n    main: demo.Main\n    classpath: [/src]', '/java7.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/src', '--env=JVM_ARGS?=-Dx=y', '--env=MAIN?=demo.Main', '--env=ARGS?=']],
  ['different base package', 'base: "mypackage:run"', '/mypackage.so', []],
];
for (const [name, fields, command, env] of javaCases) {
  test(`java: ${name}`, (t) => {
    bootEquals(t, defaultScript(`runtime: java\nconfig_set:\n  default:\n    ${fields}\n`), command, env);
  });
}

// ---- node and python -------------------------------------------------------------------------

const nodeCases: Array<[string, string, string[]]> = [
  ['simple', 'main: /server.js', ['--env=NODE_ARGS?=--', '--env=MAIN?=/server.js', '--env=ARGS?=']],
  ['node args', 'main: /server.js\n    node_args:\n      - --version', ['--env=NODE_ARGS?=--version', '--env=MAIN?=/server.js', '--env=ARGS?=']],
  ['args', 'main: /server.js\n    args: [localhost, 8000]', ['--env=NODE_ARGS?=--', '--env=MAIN?=/server.js', '--env=ARGS?=localhost 8000']],
  ['shell', 'shell: true', ['--env=NODE_ARGS?=--', '--env=MAIN?=', '--env=ARGS?=']],
];
for (const [name, fields, env] of nodeCases) {
  test(`node: ${name}`, (t) => {
    bootEquals(t, defaultScript(`runtime: node\nconfig_set:\n  default:\n    ${fields}\n`), '/node.so', env);
  });
}

const pythonCases: Array<[string, string, string[]]> = [
  ['simple', 'main: /script.py', ['--env=PYTHON_ARGS?=-O', '--env=MAIN?=/script.py', '--env=ARGS?=']],
  ['python args', 'main: /script.py\n    python_args: [--version]', ['--env=PYTHON_ARGS?=--version', '--env=MAIN?=/script.py', '--env=ARGS?=']],
  ['args', 'main: /script.py\n    args: [localhost, 8000]', ['--env=PYTHON_ARGS?=-O', '--env=MAIN?=/script.py', '--env=ARGS?=localhost 8000']],
  ['shell runs the interpreter on stdin', 'shell: true', ['--env=PYTHON_ARGS?=-O', '--env=MAIN?=-', '--env=ARGS?=']],
];
for (const [name, fields, env] of pythonCases) {
  test(`python: ${name}`, (t) => {
    bootEquals(t, defaultScript(`runtime: python\nconfig_set:\n  default:\n    ${fields}\n`), '/python.so', env);
  });
}

// ---- two-level inheritance (cmd/package_test.go TestRuntimeInheritanceTwoLevels) ------------

const deepest = run('runtime: native\nconfig_set:\n  deepest:\n    bootcmd: echo Deepest\n    env:\n      PORT: 1111\n');
function twoLevels(own: string, intermediate: string): Record<string, string> {
  const scripts = resolveBootScripts([
    { package: 'fake.demo2', run: deepest },
    { package: 'fake.demo', run: run(intermediate) },
    { package: 'app', run: run(own) },
  ]);
  return Object.fromEntries(scripts.map((s) => [s.name, s.script]));
}

test('inheritance: two levels, env of the deepest', (t) => {
  t.deepEqual(twoLevels(
    'runtime: native\nconfig_set:\n  ownBoot:\n    base: "fake.demo:intermediate"\n',
    'runtime: native\nconfig_set:\n  intermediate:\n    base: "fake.demo2:deepest"\n',
  ), { deepest: '--env=PORT?=1111 echo Deepest', intermediate: '--env=PORT?=1111 echo Deepest', ownBoot: '--env=PORT?=1111 echo Deepest' });
});

test('inheritance: my env wins over both levels', (t) => {
  t.deepEqual(twoLevels(
    'runtime: native\nconfig_set:\n  ownBoot:\n    base: "fake.demo:intermediate"\n    env:\n      PORT: 8000\n',
    'runtime: native\nconfig_set:\n  intermediate:\n    base: "fake.demo2:deepest"\n    env:\n      PORT: 1234\n',
  ), { deepest: '--env=PORT?=1111 echo Deepest', intermediate: '--env=PORT?=1234 echo Deepest', ownBoot: '--env=PORT?=8000 echo Deepest' });
});

test('inheritance: intermediate env wins over the deepest; additional env is kept', (t) => {
  t.is(twoLevels(
    'runtime: native\nconfig_set:\n  ownBoot:\n    base: "fake.demo:intermediate"\n',
    'runtime: native\nconfig_set:\n  intermediate:\n    base: "fake.demo2:deepest"\n    env:\n      PORT: 1234\n',
  ).ownBoot, '--env=PORT?=1234 echo Deepest');
  bootEquals(t, twoLevels(
    'runtime: native\nconfig_set:\n  ownBoot:\n    base: "fake.demo:intermediate"\n    env:\n      PORT: 8000\n      HOST: localhost\n',
    'runtime: native\nconfig_set:\n  intermediate:\n    base: "fake.demo2:deepest"\n    env:\n      PORT: 1234\n',
  ).ownBoot!, 'echo Deepest', ['--env=PORT?=8000', '--env=HOST?=localhost']);
});

test('inheritance: errors name the config set and its position', (t) => {
  const app = run('runtime: native\nconfig_set:\n  ownBoot:\n    base: "unknown:demoBoot1"\n', '/app/meta/run.yaml');
  const e = t.throws(() => resolveBootScripts([{ package: 'app', run: app }]), { instanceOf: ManifestError });
  t.is(e!.code, 'E_RUN_YAML_BASE_PACKAGE_MISSING');
  t.regex(e!.message, /^\/app\/meta\/run\.yaml:3:3: config set 'ownBoot' inherits 'unknown:demoBoot1', but package 'unknown' is not included/);
  const missingSet = run('runtime: native\nconfig_set:\n  ownBoot:\n    base: "mypackage:nope"\n');
  t.is(t.throws(() => resolveBootScripts([...packages, { package: 'app', run: missingSet }]))!.message.includes("has no config set 'nope'"), true);
  const loop = run('runtime: native\nconfig_set:\n  a:\n    base: "app:b"\n  b:\n    base: "app:a"\n');
  t.is((t.throws(() => resolveBootScripts([{ package: 'app', run: loop }])) as ManifestError).code, 'E_RUN_YAML_BASE_CYCLE');
});

test('scripts: one flat namespace, a later package replaces an earlier set of the same name', (t) => {
  const first = run('runtime: native\nconfig_set:\n  cli:\n    bootcmd: /first.so\n');
  const second = run('runtime: native\nconfig_set:\n  cli:\n    bootcmd: /second.so\n');
  t.deepEqual(resolveBootScripts([{ package: 'a', run: first }, { package: 'b', run: second }]), [{ name: 'cli', package: 'b', script: '/second.so' }]);
});

test('order: own env first, then runtime defaults, then inherited env (Capstan: map order)', (t) => {
  t.is(defaultScript('runtime: java\nconfig_set:\n  default:\n    main: app.jar\n    env:\n      PORT: 8080\n'),
    '--env=PORT?=8080 --env=CLASSPATH?=/ --env=JVM_ARGS?=-jar --env=MAIN?=app.jar --env=XMS?=512m --env=XMX?=512m --env=ARGS?= /java.so');
});

// ---- manifest.require and bootCommand together -----------------------------------------------

test('require: bootstrap, runtime dependencies, package.yaml require, extras', (t) => {
  const m = assembleManifest({
    root: '/app',
    packageYaml: { file: 'meta/package.yaml', text: 'name: a\ntitle: A\nauthor: me\nrequire: [osv.cli]\n' },
    runYaml: { file: 'meta/run.yaml', text: 'runtime: java\nconfig_set:\n  web:\n    main: app.jar\nconfig_set_default: web\n' },
  }, { require: ['osv.httpserver-api'] });
  t.deepEqual(m.require, ['osv.bootstrap', 'openjdk8-zulu-compact1', 'osv.cli', 'osv.httpserver-api']);
  t.is(m.bootCommand, 'runscript /run/web;');
  t.is(m.bootSource, 'config_set_default');
  t.deepEqual(assembleManifest({ root: '/app' }, { bootstrap: false }).require, []);
  t.deepEqual(assembleManifest({ root: '/app' }, { bootstrap: 'osv.compose-remote' }).require, ['osv.compose-remote']);
  t.deepEqual(assembleManifest({ root: '/app', runYaml: { file: 'r', text: 'runtime: node\nconfig_set:\n  n:\n    shell: true\n' } }).require, ['osv.bootstrap', 'node-4.4.5']);
  t.deepEqual(assembleManifest({ root: '/app', runYaml: { file: 'r', text: 'runtime: python\nconfig_set:\n  n:\n    main: /a.py\n' } }).require, ['osv.bootstrap', 'python-2.7']);
});

test('manifest: Capstanfile cmdline is the command line unless run overrides it; env applies to both', (t) => {
  const inputs = { root: '/nonexistent', capstanfile: { file: 'Capstanfile', text: 'cmdline: /tools/hello.so\n' } };
  t.is(assembleManifest(inputs).bootCommand, '/tools/hello.so');
  t.is(assembleManifest(inputs, { run: '/other.so', env: { A: 'b' } }).bootCommand, '--env=A=b /other.so');
  t.is(assembleManifest(inputs, { env: { A: 'b' } }).bootCommand, '--env=A=b /tools/hello.so');
});

test('manifest: no inputs at all gives Capstan\'s fallbacks', (t) => {
  const m = assembleManifest({ root: '/app' });
  t.like(m, { package: { name: 'App', title: 'App', author: 'Anonymous' }, bootCommand: 'runscript /run/default;', bootSource: 'default', require: ['osv.bootstrap'], ignore: [] });
});

test('withResolvedBootScripts fills script for inherited sets without touching the originals', (t) => {
  const app = run('runtime: java\nconfig_set:\n  default:\n    main: demo.Main\n');
  t.is(app.configSets[0]!.script, '');
  const sources: Array<BootScriptSource & { origin?: string }> = [...packages, { package: 'App', run: app, origin: 'application' }];
  const resolved = withResolvedBootScripts(sources);
  const appResolved = resolved[resolved.length - 1]!;
  t.is(appResolved.origin, 'application');
  bootEquals(t, appResolved.run!.configSets[0]!.script, '/java.so',
    ['--env=XMS?=512m', '--env=XMX?=512m', '--env=CLASSPATH?=/', '--env=JVM_ARGS?=-Dx=y', '--env=MAIN?=demo.Main', '--env=ARGS?=']);
  t.is(app.configSets[0]!.script, '');
  t.is(resolved[0]!.run!.configSets[0]!.script, openjdk8.configSets[0]!.script);
});

test('manifest: falling back to /run/default warns when the app has no such config set', (t) => {
  const warnings: string[] = [];
  const m = assembleManifest({ root: '/app', runYaml: { file: 'meta/run.yaml', text: 'runtime: native\nconfig_set:\n  web:\n    bootcmd: /web.so\n' } }, {}, { onWarning: (w) => warnings.push(w.message) });
  t.is(m.bootCommand, 'runscript /run/default;');
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, /no config set 'default' \(it has: web\)/);
});
