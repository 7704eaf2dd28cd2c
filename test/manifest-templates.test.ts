// Runtime templates and package scaffolding (capstan runtime list|preview|init, package init).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ManifestError } from '../lib/errors.js';
import {
  initPackage, initRuntime, listRuntimes, packageYamlText, rfc3339, parsePackageYaml, parseRunYaml, previewRuntime, removeTemplateComments, resolveManifestFromDir,
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

// Capstan's text, derived from its code: cmd/runtime.go composeConf and removeComments applied to
// each runtime/*.go GetYamlTemplate() (with CommonRuntime's part for java, node and python).
// Written out here as expectations, byte for byte (trailing spaces, the stale --runconfig note
// and the python template's "node_args" typo are Capstan's).
const NATIVE_COMMENTED = [
  '',
  'runtime: native',
  '',
  'config_set: ',
  '',
  '   ################################################################',
  '   ### This is one configuration set (feel free to rename it).  ###',
  '   ################################################################',
  '   myconfig1:',
  '      # REQUIRED',
  '      # Command to be executed in OSv.',
  '      # Note that package root will correspond to filesystem root (/) in OSv image.',
  '      # Example value: /usr/bin/simpleFoam.so -help',
  '      bootcmd: <command>   ',
  '',
  '   # Add as many named configurations as you need',
  '',
  '# OPTIONAL',
  '# What config_set should be used as default.',
  '# This value can be overwritten with --runconfig argument.',
  'config_set_default: myconfig1',
  '',
].join('\n');

const NATIVE_PLAIN = [
  'runtime: native',
  'config_set: ',
  '   myconfig1:',
  '      bootcmd: <command>   ',
  'config_set_default: myconfig1',
  '',
].join('\n');

const JAVA_COMMENTED = [
  '',
  'runtime: java',
  '',
  'config_set: ',
  '',
  '   ################################################################',
  '   ### This is one configuration set (feel free to rename it).  ###',
  '   ################################################################',
  '   myconfig1:',
  '      # REQUIRED',
  '      # Fully classified name of the main class.',
  '      # Example value: main.Hello',
  '      main: <name>',
  '      ',
  '      # OPTIONAL',
  '      # A list of paths where classes and other resources can be found.',
  '      # By default, the unikernel root "/" is added to the classpath.',
  '      # Example value: classpath:',
  '      #                   - /',
  '      #                   - /src',
  '      classpath:',
  '         - <list>',
  '      ',
  '      # OPTIONAL',
  '      # Initial and maximum JVM memory size.',
  '      # Example value: xms: 512m',
  '      xms: <value>',
  '      xmx: <value>',
  '      ',
  '      # OPTIONAL',
  '      # A list of JVM args.',
  '      # Example value: jvm_args:',
  '      #                   - -Djava.net.preferIPv4Stack=true',
  '      #                   - -Dhadoop.log.dir=/hdfs/logs',
  '      jvm_args:',
  '         - <list>',
  '      ',
  '      # OPTIONAL',
  '      # A list of command line args used by the application.',
  '      # Example value: args:',
  '      #                   - argument1',
  '      #                   - argument2',
  '      args:',
  '         - <list>',
  '      ',
  '      # OPTIONAL',
  '      # Environment variables.',
  '      # A map of environment variables to be set when unikernel is run.',
  '      # Example value:  env:',
  '      #                    PORT: 8000',
  '      #                    HOSTNAME: www.myserver.org',
  '      env:',
  '         <key>: <value>',
  '      ',
  '      # OPTIONAL',
  '      # Configuration to contextualize.',
  '      base: "<package-name>:<config_set>"   ',
  '',
  '   # Add as many named configurations as you need',
  '',
  '# OPTIONAL',
  '# What config_set should be used as default.',
  '# This value can be overwritten with --runconfig argument.',
  'config_set_default: myconfig1',
  '',
].join('\n');

const JAVA_PLAIN = [
  'runtime: java',
  'config_set: ',
  '   myconfig1:',
  '      main: <name>',
  '      classpath:',
  '         - <list>',
  '      xms: <value>',
  '      xmx: <value>',
  '      jvm_args:',
  '         - <list>',
  '      args:',
  '         - <list>',
  '      env:',
  '         <key>: <value>',
  '      base: "<package-name>:<config_set>"   ',
  'config_set_default: myconfig1',
  '',
].join('\n');

const NODE_COMMENTED = [
  '',
  'runtime: node',
  '',
  'config_set: ',
  '',
  '   ################################################################',
  '   ### This is one configuration set (feel free to rename it).  ###',
  '   ################################################################',
  '   myconfig1:',
  '      # REQUIRED',
  '      # Filepath of the NodeJS entrypoint (where server is defined).',
  '      # Note that package root will correspond to filesystem root (/) in OSv image.',
  '      # Example value: /server.js',
  '      main: <filepath>',
  '      ',
  '      # OPTIONAL',
  '      # A list of Node.js args.',
  '      # Example value: node_args:',
  '      #                   - --require module1',
  '      node_args:',
  '         - <list>',
  '      ',
  '      # OPTIONAL',
  '      # A list of command line args used by the application.',
  '      # Example value: args:',
  '      #                   - argument1',
  '      #                   - argument2',
  '      args:',
  '         - <list>',
  '      ',
  '      # OPTIONAL',
  '      # Set to true to only run node shell. Note that "main" and "args" will then be ignored.',
  '      shell: false',
  '      ',
  '      # OPTIONAL',
  '      # Environment variables.',
  '      # A map of environment variables to be set when unikernel is run.',
  '      # Example value:  env:',
  '      #                    PORT: 8000',
  '      #                    HOSTNAME: www.myserver.org',
  '      env:',
  '         <key>: <value>',
  '      ',
  '      # OPTIONAL',
  '      # Configuration to contextualize.',
  '      base: "<package-name>:<config_set>"   ',
  '',
  '   # Add as many named configurations as you need',
  '',
  '# OPTIONAL',
  '# What config_set should be used as default.',
  '# This value can be overwritten with --runconfig argument.',
  'config_set_default: myconfig1',
  '',
].join('\n');

const NODE_PLAIN = [
  'runtime: node',
  'config_set: ',
  '   myconfig1:',
  '      main: <filepath>',
  '      node_args:',
  '         - <list>',
  '      args:',
  '         - <list>',
  '      shell: false',
  '      env:',
  '         <key>: <value>',
  '      base: "<package-name>:<config_set>"   ',
  'config_set_default: myconfig1',
  '',
].join('\n');

const PYTHON_COMMENTED = [
  '',
  'runtime: python',
  '',
  'config_set: ',
  '',
  '   ################################################################',
  '   ### This is one configuration set (feel free to rename it).  ###',
  '   ################################################################',
  '   myconfig1:',
  '      # REQUIRED',
  '      # Filepath of the Python script.',
  '      # Note that package root will correspond to filesystem root (/) in OSv image.',
  '      # Example value: /hello-world.py',
  '      main: <filepath>',
  '      ',
  '      # OPTIONAL',
  '      # A list of Python args.',
  '      # Example value: node_args:',
  '      #                   - -O',
  '      python_args:',
  '         - <list>',
  '      ',
  '      # OPTIONAL',
  '      # A list of command line args used by the application.',
  '      # Example value: args:',
  '      #                   - argument1',
  '      #                   - argument2',
  '      args:',
  '         - <list>',
  '      ',
  '      # OPTIONAL',
  '      # Environment variables.',
  '      # A map of environment variables to be set when unikernel is run.',
  '      # Example value:  env:',
  '      #                    PORT: 8000',
  '      #                    HOSTNAME: www.myserver.org',
  '      env:',
  '         <key>: <value>',
  '      ',
  '      # OPTIONAL',
  '      # Configuration to contextualize.',
  '      base: "<package-name>:<config_set>"   ',
  '',
  '   # Add as many named configurations as you need',
  '',
  '# OPTIONAL',
  '# What config_set should be used as default.',
  '# This value can be overwritten with --runconfig argument.',
  'config_set_default: myconfig1',
  '',
].join('\n');

const PYTHON_PLAIN = [
  'runtime: python',
  'config_set: ',
  '   myconfig1:',
  '      main: <filepath>',
  '      python_args:',
  '         - <list>',
  '      args:',
  '         - <list>',
  '      env:',
  '         <key>: <value>',
  '      base: "<package-name>:<config_set>"   ',
  'config_set_default: myconfig1',
  '',
].join('\n');

const NODE_FRAMED_PLAIN = [
  '--------- meta/run.yaml ---------',
  'runtime: node',
  'config_set: ',
  '   myconfig1:',
  '      main: <filepath>',
  '      node_args:',
  '         - <list>',
  '      args:',
  '         - <list>',
  '      shell: false',
  '      env:',
  '         <key>: <value>',
  '      base: "<package-name>:<config_set>"   ',
  'config_set_default: myconfig1',
  '---------------------------------',
  'Use \'capstan runtime init\' to persist this template into $CWD/meta/run.yaml',
  '',
].join('\n');

const EXPECTED = {
  native: { commented: NATIVE_COMMENTED, plain: NATIVE_PLAIN },
  java: { commented: JAVA_COMMENTED, plain: JAVA_PLAIN },
  node: { commented: NODE_COMMENTED, plain: NODE_PLAIN },
  python: { commented: PYTHON_COMMENTED, plain: PYTHON_PLAIN },
} as const;

for (const runtime of ['native', 'java', 'node', 'python'] as const) {
  test(`previewRuntime(${runtime}) is Capstan's template to the byte, commented and --plain`, (t) => {
    t.is(previewRuntime(runtime), EXPECTED[runtime].commented);
    t.is(previewRuntime(runtime, { plain: true }), EXPECTED[runtime].plain);
  });
}

test('previewRuntime with frame: the whole output of `capstan runtime preview --plain`', (t) => {
  t.is(previewRuntime('node', { plain: true, frame: true }), NODE_FRAMED_PLAIN);
  const commented = previewRuntime('java', { frame: true });
  t.true(commented.startsWith(`--------- meta/run.yaml ---------\n${JAVA_COMMENTED}---------------------------------\n`));
  t.true(commented.endsWith("Use 'capstan runtime init' to persist this template into $CWD/meta/run.yaml\n"));
});

test('Capstan\'s java/node/python templates fail validation as they stand (the active base line); commentOutBase makes them parse', (t) => {
  // Capstan's own Validate refuses runtime fields next to a base that is not the runtime's package.
  t.is(t.throws(() => parseRunYaml(previewRuntime('java'), 'java template'), { instanceOf: ManifestError })!.code, 'E_RUN_YAML_BASE_CONFLICT');
  t.notThrows(() => parseRunYaml(previewRuntime('native', { plain: true }), 'native template', { strict: true }));
  for (const runtime of ['java', 'node', 'python'] as const) {
    const commented = previewRuntime(runtime, { commentOutBase: true });
    t.is(commented, EXPECTED[runtime].commented.replace('      base: "<package-name>:<config_set>"   ', '      # base: "<package-name>:<config_set>"   '));
    const plain = previewRuntime(runtime, { commentOutBase: true, plain: true });
    t.is(plain, EXPECTED[runtime].plain.replace('      base: "<package-name>:<config_set>"   \n', ''));
    for (const text of [commented, plain]) {
      const warnings: unknown[] = [];
      const run = parseRunYaml(text, `${runtime} template`, { strict: true, onWarning: (w) => warnings.push(w) });
      t.is(run.runtime, runtime);
      t.deepEqual(run.configSets.map((c) => c.name), ['myconfig1']);
      t.deepEqual(run.configSetDefault, ['myconfig1']);
      t.is(run.configSets[0]!.env?.['<key>'], '<value>');
      t.deepEqual(warnings, []);
    }
  }
});

test('removeTemplateComments follows Go\'s regexp: comment lines with the line breaks after them, then blank lines', (t) => {
  t.is(removeTemplateComments('a\n  # c\n\n\nb\n   \n# d\nc #not\n'), 'a\nb\nc #not\n');
  // A line starts after \n only, and `.` takes \r: a comment ending in \r\n goes whole.
  t.is(removeTemplateComments('# c\r\nx\n'), 'x\n');
  t.is(removeTemplateComments('x\r # not a line start\n'), 'x\r # not a line start\n');
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
  t.is(await fs.readFile(written, 'utf8'), JAVA_COMMENTED);
  await initRuntime(dir, 'java', { force: true, commentOutBase: true });
  t.is(parseRunYaml(await fs.readFile(written, 'utf8'), written).runtime, 'java');
});

test('initPackage: writes package.yaml as yaml.Marshal of Capstan\'s Package, with an RFC3339 created stamp', async (t) => {
  const dir = await tempDir(t);
  const created = new Date();
  const result = await initPackage(dir, {
    name: 'com.example.app', title: 'Example', author: 'Jane', version: '0.1', require: ['osv.cli'], platform: 'Ubuntu 24.04', created,
  });
  const text = await fs.readFile(result.packageYaml, 'utf8');
  t.is(text, `name: com.example.app\ntitle: Example\nauthor: Jane\nversion: "0.1"\nrequire:\n- osv.cli\ncreated: "${rfc3339(created)}"\nplatform: Ubuntu 24.04\n`);
  const info = parsePackageYaml(text, result.packageYaml);
  t.like(info, { name: 'com.example.app', title: 'Example', author: 'Jane', version: '0.1', require: ['osv.cli'], platform: 'Ubuntu 24.04' });
  t.regex(info.created!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
  t.is(Math.floor(Date.parse(info.created!) / 1000), Math.floor(created.getTime() / 1000));
  t.is(result.runYaml, undefined);
  const again = await t.throwsAsync(initPackage(dir, { name: 'x', title: 'x', author: 'x' }), { instanceOf: ManifestError });
  t.is(again!.code, 'E_PACKAGE_YAML_EXISTS');
});

// Expected texts worked out from go-yaml v2.2.8's encoder (stringv quotes what would read back
// as another type) and its libyaml emitter (plain unless an indicator forbids it, then single,
// then double quotes; folding past 80 columns); test/yaml-go.test.ts checks the emitter against
// libyaml itself.
test('packageYamlText: go-yaml\'s quoting and folding, field order and omitempty of core.Package', (t) => {
  const created = new Date(Date.UTC(2017, 8, 14, 16, 8, 16));
  const z = rfc3339(created);
  t.is(packageYamlText({ name: 'app', title: 'App', author: 'me', created }), `name: app\ntitle: App\nauthor: me\ncreated: "${z}"\n`);
  t.is(packageYamlText({
    name: 'hello', title: 'Hello: a demo', author: 'MIKELANGELO Project (info@mikelangelo-project.eu)', version: '1.10',
    require: ['osv.bootstrap', 'node-4.4.5'], platform: '#1 box', created,
  }), [
    'name: hello',
    "title: 'Hello: a demo'",
    'author: MIKELANGELO Project (info@mikelangelo-project.eu)',
    'version: "1.10"',
    'require:',
    '- osv.bootstrap',
    '- node-4.4.5',
    `created: "${z}"`,
    "platform: '#1 box'",
    '',
  ].join('\n'));
  // Words go-yaml would read as booleans or numbers are double-quoted; a version with two dots is not.
  t.is(packageYamlText({ name: 'yes', title: 'on', author: '0755', version: '1.0.0', created }),
    `name: "yes"\ntitle: "on"\nauthor: "0755"\nversion: 1.0.0\ncreated: "${z}"\n`);
  // Long plain text folds at the first space past column 80, continuing two spaces in.
  t.is(packageYamlText({ name: 'a', title: 'A unikernel image of the example application that serves static files over HTTP quickly and well', author: 'b', created }),
    `name: a\ntitle: A unikernel image of the example application that serves static files over\n  HTTP quickly and well\nauthor: b\ncreated: "${z}"\n`);
});

test('initPackage with a runtime adds a run.yaml stub, and the folder resolves as a manifest', async (t) => {
  const dir = await tempDir(t);
  const result = await initPackage(dir, { name: 'app', title: 'App', author: 'me', runtime: 'java', commentOutBase: true });
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
