// The manifest parsers: every bad input names file:line:column, what is wrong and what to do.
import path from 'node:path';
import test from 'ava';
import { ManifestError } from '../lib/errors.js';
import {
  collectCapstanignorePatterns, fallbackPackageInfo, packageInfoFromObject, parseCapstanfile, parsePackageYaml, parseRunYaml,
  runConfigFromObject, type ManifestWarning,
} from '../lib/manifest/index.js';

function thrown(t: import('ava').ExecutionContext, fn: () => unknown): ManifestError {
  const error = t.throws(fn, { instanceOf: ManifestError });
  return error as ManifestError;
}

// ---- meta/package.yaml -------------------------------------------------------------------

test('package.yaml: every field, as Capstan stores them', (t) => {
  const info = parsePackageYaml([
    'name: osv.bootstrap',
    'title: OSv Bootstrap',
    'author: Anonymous',
    'version: 0.54.0',
    'require:',
    '  - osv.libz',
    '  - osv.cli',
    'created: "2019-09-16T07:52:38-04:00"',
    'platform: Ubuntu 19.04',
    'binary:',
    '  cli: /cli/cli.so',
  ].join('\n'), 'meta/package.yaml');
  t.deepEqual(info, {
    name: 'osv.bootstrap', title: 'OSv Bootstrap', author: 'Anonymous', version: '0.54.0',
    require: ['osv.libz', 'osv.cli'], created: '2019-09-16T07:52:38-04:00', platform: 'Ubuntu 19.04', binary: { cli: '/cli/cli.so' },
  });
});

test('package.yaml: numbers and unquoted timestamps keep their spelling', (t) => {
  const info = parsePackageYaml('name: app\ntitle: 1.10\nauthor: me\nversion: 1.10\ncreated: 2019-09-16T07:52:38-04:00\n', 'p');
  t.is(info.version, '1.10');
  t.is(info.title, '1.10');
  t.is(info.created, '2019-09-16T07:52:38-04:00');
});

test('package.yaml: missing author names the file and the position', (t) => {
  const e = thrown(t, () => parsePackageYaml('name: app\ntitle: App\n', '/src/app/meta/package.yaml'));
  t.is(e.code, 'E_PACKAGE_YAML_AUTHOR_MISSING');
  t.regex(e.message, /^\/src\/app\/meta\/package\.yaml:1:1: 'author' must be provided/);
  t.regex(e.message, /Add `author:/);
});

test('package.yaml: empty name is missing too, pointed at its key', (t) => {
  const e = thrown(t, () => parsePackageYaml('title: App\nauthor: me\nname:\n', 'meta/package.yaml'));
  t.is(e.code, 'E_PACKAGE_YAML_NAME_MISSING');
  t.is(e.line, 3);
  t.is(e.column, 1);
});

test('package.yaml: require must be a list (wrong type, with position)', (t) => {
  const e = thrown(t, () => parsePackageYaml('name: a\ntitle: b\nauthor: c\nrequire: osv.cli\n', 'meta/package.yaml'));
  t.is(e.code, 'E_YAML_TYPE');
  t.is(e.line, 4);
  t.is(e.column, 10);
  t.regex(e.message, /meta\/package\.yaml:4:10: `require` must be a list, found "osv\.cli"/);
  t.regex(e.message, /- /);
});

test('package.yaml: a mapping where text is expected', (t) => {
  const e = thrown(t, () => parsePackageYaml('name:\n  first: a\ntitle: b\nauthor: c\n', 'meta/package.yaml'));
  t.is(e.code, 'E_YAML_TYPE');
  t.is(e.line, 2);
  t.is(e.column, 3);
  t.regex(e.message, /`name` must be a single value, found a mapping/);
});

test('package.yaml: YAML syntax error becomes a ManifestError with line and column', (t) => {
  const e = thrown(t, () => parsePackageYaml('name: a\ntitle: "unterminated\nauthor: c\n', 'meta/package.yaml'));
  t.is(e.code, 'E_YAML_SYNTAX');
  t.is(e.file, 'meta/package.yaml');
  t.truthy(e.line);
  t.truthy(e.column);
  t.regex(e.message, /^meta\/package\.yaml:\d+:\d+: invalid YAML: /);
  t.notRegex(e.message, /\n\s+at /); // no stack trace in the message
});

test('package.yaml: a repeated key warns at the repeat and the last one wins; strict makes it an error there', (t) => {
  const warnings: ManifestWarning[] = [];
  const info = parsePackageYaml('name: a\ntitle: b\nname: c\nauthor: d\n', 'meta/package.yaml', { onWarning: (w) => warnings.push(w) });
  t.is(info.name, 'c');
  t.like(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', file: 'meta/package.yaml', line: 3, column: 1 }]);
  t.regex(warnings[0]!.message, /`name` is given again \(first at line 1\); Capstan's YAML reader keeps the last value/);
  const e = thrown(t, () => parsePackageYaml('name: a\ntitle: b\nname: c\nauthor: d\n', 'meta/package.yaml', { strict: true }));
  t.is(e.code, 'E_YAML_DUPLICATE_KEY');
  t.is(e.line, 3);
  t.is(e.column, 1);
  t.regex(e.message, /^meta\/package\.yaml:3:1: `name` is given again/);
});

test('package.yaml: tabs for indentation', (t) => {
  const e = thrown(t, () => parsePackageYaml('name: a\ntitle: b\nauthor: c\nrequire:\n\t- x\n', 'meta/package.yaml'));
  t.is(e.code, 'E_YAML_SYNTAX');
  t.is(e.line, 5);
});

test('package.yaml: unknown keys warn with position; strict makes them errors', (t) => {
  const warnings: ManifestWarning[] = [];
  parsePackageYaml('name: a\ntitle: b\nauthor: c\nrequires: [x]\n', 'meta/package.yaml', { onWarning: (w) => warnings.push(w) });
  t.is(warnings.length, 1);
  t.like(warnings[0], { code: 'W_UNKNOWN_KEY', file: 'meta/package.yaml', line: 4, column: 1 });
  const e = thrown(t, () => parsePackageYaml('name: a\ntitle: b\nauthor: c\nrequires: [x]\n', 'meta/package.yaml', { strict: true }));
  t.regex(e.message, /meta\/package\.yaml:4:1: unknown key `requires`/);
  t.regex(e.message, /Did you mean `require`\?/);
});

test('package.yaml: fallback is App/App/Anonymous; inline object is validated the same way', (t) => {
  t.deepEqual(fallbackPackageInfo(), { name: 'App', title: 'App', author: 'Anonymous', require: [] });
  t.deepEqual(packageInfoFromObject({ name: 'x', title: 'X', author: 'me', require: ['osv.cli'] }, 'options.package'),
    { name: 'x', title: 'X', author: 'me', require: ['osv.cli'] });
  const e = thrown(t, () => packageInfoFromObject({ name: 'x', title: 'X' }, 'resolveManifest options.package'));
  t.regex(e.message, /^resolveManifest options\.package: 'author' must be provided/);
});

test('package.yaml: an empty or scalar document', (t) => {
  t.is(thrown(t, () => parsePackageYaml('', 'p')).code, 'E_PACKAGE_YAML_NAME_MISSING');
  const e = thrown(t, () => parsePackageYaml('just text\n', 'p'));
  t.regex(e.message, /^p:1:1: the file must be a mapping/);
});

// ---- meta/run.yaml -----------------------------------------------------------------------

test('run.yaml: native config sets, config_set_default list', (t) => {
  const run = parseRunYaml([
    'runtime: native',
    'config_set:',
    '  hello:',
    '    bootcmd: /hello.so --greet',
    '    env:',
    '      PORT: 8000',
    '      HOST: localhost',
    '  other:',
    '    bootcmd: /other.so',
    'config_set_default: hello, other',
  ].join('\n'), 'meta/run.yaml');
  t.is(run.runtime, 'native');
  t.deepEqual(run.configSetDefault, ['hello', 'other']);
  t.deepEqual(run.configSets.map((c) => [c.name, c.script]), [
    ['hello', '--env=PORT?=8000 --env=HOST?=localhost /hello.so --greet'],
    ['other', '/other.so'],
  ]);
  t.like(run.configSets[0], { location: { file: 'meta/run.yaml', line: 3, column: 3 } });
});

test('run.yaml: unknown runtime', (t) => {
  const e = thrown(t, () => parseRunYaml('runtime: rust\nconfig_set:\n  a:\n    bootcmd: x\n', 'meta/run.yaml'));
  t.is(e.code, 'E_RUN_YAML_RUNTIME_UNKNOWN');
  t.regex(e.message, /^meta\/run\.yaml:1:10: unknown runtime 'rust'\n {2}Use one of: native, node, java, python/);
});

test('run.yaml: missing runtime and missing config_set', (t) => {
  t.regex(thrown(t, () => parseRunYaml('config_set:\n  a:\n    bootcmd: x\n', 'r')).message, /^r:1:1: 'runtime' must be provided/);
  const e = thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n', 'r'));
  t.is(e.code, 'E_RUN_YAML_CONFIG_SET_MISSING');
  t.is(e.line, 2);
});

test('run.yaml: native without bootcmd', (t) => {
  const e = thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  web:\n    env:\n      A: b\n', 'meta/run.yaml'));
  t.is(e.code, 'E_RUN_YAML_BOOTCMD_MISSING');
  t.regex(e.message, /^meta\/run\.yaml:3:3: config set 'web': 'bootcmd' must be provided/);
});

test('run.yaml: java/node/python without main', (t) => {
  for (const runtime of ['java', 'node', 'python']) {
    const e = thrown(t, () => parseRunYaml(`runtime: ${runtime}\nconfig_set:\n  app:\n    args: [a]\n`, 'meta/run.yaml'));
    t.is(e.code, 'E_RUN_YAML_MAIN_MISSING');
    t.regex(e.message, /^meta\/run\.yaml:3:3: config set 'app': 'main' must be provided/);
  }
});

test('run.yaml: base without a colon', (t) => {
  const e = thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  a:\n    base: osv.cli\n', 'meta/run.yaml'));
  t.is(e.code, 'E_RUN_YAML_BASE_FORMAT');
  t.regex(e.message, /^meta\/run\.yaml:4:11: 'base' must be in format <pkg_name>:<config_set>/);
});

test('run.yaml: spaces in env key or value', (t) => {
  const v = thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  a:\n    bootcmd: x\n    env:\n      GREETING: hello world\n', 'meta/run.yaml'));
  t.is(v.code, 'E_RUN_YAML_ENV_SPACES');
  t.regex(v.message, /^meta\/run\.yaml:6:17: spaces not allowed in env key\/value: 'GREETING':'hello world'/);
  const k = thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  a:\n    bootcmd: x\n    env:\n      "MY KEY": v\n', 'meta/run.yaml'));
  t.is(k.line, 6);
  t.is(k.column, 7);
});

test('run.yaml: wrong types in config sets', (t) => {
  const list = thrown(t, () => parseRunYaml('runtime: java\nconfig_set:\n  a:\n    main: x.Main\n    classpath: /src\n', 'meta/run.yaml'));
  t.regex(list.message, /^meta\/run\.yaml:5:16: `config_set\.a\.classpath` must be a list/);
  const bool = thrown(t, () => parseRunYaml('runtime: node\nconfig_set:\n  a:\n    shell: maybe\n', 'meta/run.yaml'));
  t.regex(bool.message, /^meta\/run\.yaml:4:12: `config_set\.a\.shell` must be true or false/);
  const set = thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  - bootcmd: x\n', 'meta/run.yaml'));
  t.regex(set.message, /^meta\/run\.yaml:3:3: `config_set` must be a mapping/);
  const env = thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  a:\n    bootcmd: x\n    env: [A=b]\n', 'meta/run.yaml'));
  t.regex(env.message, /^meta\/run\.yaml:5:10: `config_set\.a\.env` must be a mapping/);
});

test('run.yaml: runtime fields that conflict with base or shell', (t) => {
  const java = thrown(t, () => parseRunYaml('runtime: java\nconfig_set:\n  a:\n    base: "mypkg:run"\n    xmx: 1g\n', 'meta/run.yaml'));
  t.is(java.code, 'E_RUN_YAML_BASE_CONFLICT');
  t.is(java.line, 5);
  const shell = thrown(t, () => parseRunYaml('runtime: node\nconfig_set:\n  a:\n    shell: true\n    main: /x.js\n', 'meta/run.yaml'));
  t.is(shell.code, 'E_RUN_YAML_SHELL_CONFLICT');
  const shellEnv = thrown(t, () => parseRunYaml('runtime: python\nconfig_set:\n  a:\n    shell: true\n    env:\n      MAIN: /x.py\n', 'meta/run.yaml'));
  t.is(shellEnv.code, 'E_RUN_YAML_SHELL_CONFLICT');
  // An openjdk base behaves like the default one: main is required again.
  t.is(thrown(t, () => parseRunYaml('runtime: java\nconfig_set:\n  a:\n    base: "openjdk7:java"\n', 'r')).code, 'E_RUN_YAML_MAIN_MISSING');
  // Inheritance replaces validation of main.
  t.notThrows(() => parseRunYaml('runtime: java\nconfig_set:\n  a:\n    base: "some.package:its_config_set"\n', 'r'));
});

test('run.yaml: unknown key in a config set warns at its position', (t) => {
  const warnings: ManifestWarning[] = [];
  parseRunYaml('runtime: native\nconfig_set:\n  a:\n    bootcmd: x\n    bootcommand: y\n', 'meta/run.yaml', { onWarning: (w) => warnings.push(w) });
  t.like(warnings[0], { line: 5, column: 5, code: 'W_UNKNOWN_KEY' });
  t.regex(warnings[0]!.message, /runtime native/);
});

test('run.yaml: config_set_default with an empty name, config set name with a slash', (t) => {
  t.is(thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  a:\n    bootcmd: x\nconfig_set_default: a,,b\n', 'r')).code, 'E_RUN_YAML_CONFIG_SET_DEFAULT');
  t.is(thrown(t, () => parseRunYaml('runtime: native\nconfig_set:\n  a/b:\n    bootcmd: x\n', 'r')).code, 'E_RUN_YAML_CONFIG_SET_NAME');
});

test('run.yaml: inline object without positions names the option', (t) => {
  const e = thrown(t, () => runConfigFromObject({ runtime: 'native', config_set: { a: { env: { K: 'v' } } } }, 'resolveManifest options.run'));
  t.regex(e.message, /^resolveManifest options\.run: config set 'a': 'bootcmd' must be provided/);
  t.is(e.line, undefined);
});

// ---- Capstanfile -------------------------------------------------------------------------

const root = '/work/app';
const existing = new Map<string, 'file' | 'dir'>([
  [path.join(root, 'build/app.jar'), 'file'],
  [path.join(root, 'ROOTFS'), 'dir'],
  [path.join(root, 'other-root'), 'dir'],
  [path.join(root, 'notadir'), 'file'],
]);
const pathKind = (p: string) => existing.get(p);

test('Capstanfile: cmdline, base, build split on whitespace, files with &, default ROOTFS', (t) => {
  const c = parseCapstanfile([
    'base: cloudius/osv-openjdk',
    'cmdline: /java.so -jar /usr/app/app.jar',
    'build: mvn  package -q',
    'files:',
    '  /usr/app/app.jar: build/&',
  ].join('\n'), 'Capstanfile', { root, pathKind });
  t.deepEqual(c, {
    base: 'cloudius/osv-openjdk', cmdline: '/java.so -jar /usr/app/app.jar', build: ['mvn', 'package', '-q'],
    files: { '/usr/app/app.jar': path.join(root, 'build/app.jar') }, rootfs: path.join(root, 'ROOTFS'),
  });
});

test('Capstanfile: cmdline is required', (t) => {
  const e = thrown(t, () => parseCapstanfile('base: cloudius/osv-base\n', 'Capstanfile', { root, pathKind }));
  t.is(e.code, 'E_CAPSTANFILE_CMDLINE_MISSING');
  t.regex(e.message, /^Capstanfile:1:1: "cmdline" not found/);
});

test('Capstanfile: rootfs must exist and be a folder; no ROOTFS folder means no rootfs', (t) => {
  t.is(parseCapstanfile('cmdline: /x\nrootfs: other-root\n', 'C', { root, pathKind }).rootfs, path.join(root, 'other-root'));
  const missing = thrown(t, () => parseCapstanfile('cmdline: /x\nrootfs: nope\n', 'Capstanfile', { root, pathKind }));
  t.regex(missing.message, /^Capstanfile:2:9: rootfs: .*nope does not exist/);
  t.regex(thrown(t, () => parseCapstanfile('cmdline: /x\nrootfs: notadir\n', 'C', { root, pathKind })).message, /is not a folder/);
  t.is(parseCapstanfile('cmdline: /x\n', 'C', { root: '/elsewhere', pathKind }).rootfs, undefined);
});

test('Capstanfile: a missing host file is an error unless a build command makes it', (t) => {
  const e = thrown(t, () => parseCapstanfile('cmdline: /x\nfiles:\n  /app.jar: target/&\n', 'Capstanfile', { root, pathKind }));
  t.is(e.code, 'E_CAPSTANFILE_FILE_MISSING');
  t.is(e.line, 3);
  t.is(e.column, 13);
  t.notThrows(() => parseCapstanfile('cmdline: /x\nbuild: make\nfiles:\n  /app.jar: target/&\n', 'Capstanfile', { root, pathKind }));
});

test('Capstanfile: rpm-base is refused, unknown keys warn, relative image paths are refused', (t) => {
  t.is(thrown(t, () => parseCapstanfile('cmdline: /x\nrpm-base:\n  name: x\n', 'C', { root, pathKind })).code, 'E_CAPSTANFILE_RPM_BASE');
  const warnings: ManifestWarning[] = [];
  parseCapstanfile('cmdline: /x\ncmdlin: y\n', 'Capstanfile', { root, pathKind, onWarning: (w) => warnings.push(w) });
  t.like(warnings[0], { line: 2, column: 1 });
  t.regex(warnings[0]!.message, /unknown key `cmdlin`/);
  t.is(thrown(t, () => parseCapstanfile('cmdline: /x\nfiles:\n  app.jar: build/app.jar\n', 'C', { root, pathKind })).code, 'E_CAPSTANFILE_FILES');
});

// ---- .capstanignore ----------------------------------------------------------------------

test('.capstanignore: patterns without comments and blanks', (t) => {
  t.deepEqual(collectCapstanignorePatterns('# comment\n\n/build\n  /d/*  \r\n/**/*.md\n', '.capstanignore'), ['/build', '/d/*', '/**/*.md']);
});

test('.capstanignore: /meta is rejected with file:line:column', (t) => {
  const e = thrown(t, () => collectCapstanignorePatterns('/build\n# keep\n  /meta\n', '/app/.capstanignore'));
  t.is(e.code, 'E_CAPSTANIGNORE_META');
  t.is(e.line, 3);
  t.is(e.column, 3);
  t.regex(e.message, /^\/app\/\.capstanignore:3:3: '\/meta' cannot be ignored\n {2}Remove this line/);
  // `/meta/*` is allowed (it is one of Capstan's own defaults).
  t.deepEqual(collectCapstanignorePatterns('/meta/*\n', 'x'), ['/meta/*']);
});
