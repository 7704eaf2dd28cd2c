// The `capstan` command through the real binary (dist/lib/cli/capstan.js) in a user's project,
// with a fresh CAPSTAN_ROOT and a local releases-shaped server serving the stand-in loader,
// kernel and osv.bootstrap: exit codes (64 usage, 65 data), Capstan's tables to the column,
// the package, runtime, image, volume and config commands, and VMs — run until the guest ends,
// Ctrl+C leaving no QEMU, a detached persisted instance listed, stopped and deleted.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { setTimeout as delay } from 'node:timers/promises';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { findJavaHome } from '../lib/runtimes/java.js';
import { execa } from 'execa';
import { pidAlive } from '../lib/vm/shutdown.js';
import { userProject, type Project } from './helpers/project.js';
import { serveBucket } from './helpers/remote-server.js';

const APP = {
  'meta/package.yaml': 'name: app\ntitle: App\nauthor: tests\nversion: 1.2.3\ncreated: 2024-05-01T10:20:30+02:00\n',
  'meta/run.yaml': 'runtime: native\nconfig_set:\n  default:\n    bootcmd: /app.so hello\n',
  'app.so': 'not really a program',
  'data/a.txt': 'a\n',
};

type Result = { exitCode?: number | undefined; stdout?: unknown; stderr?: unknown };
const out = (r: Result) => String(r.stdout);
const err = (r: Result) => String(r.stderr);
const both = (r: Result) => `${out(r)}\n${err(r)}`;

/** Capstan's `%-50s %-50s %-15s %-20s %-15s`, trimmed. */
function fileInfoRow(...cells: string[]): string {
  return cells.map((c, i) => c.padEnd([50, 50, 15, 20, 15][i]!)).join(' ').trim();
}

/** The binary, with its output kept byte for byte (execa strips the final newline by default). */
function cli(p: Project): Project['capstan'] {
  return (args, options = {}) => p.capstan(args, { stripFinalNewline: false, ...options });
}

async function waitGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && pidAlive(pid); i++) await delay(100);
  return !pidAlive(pid);
}

test('usage errors exit 64 and say what to type; help and version exit 0', async (t) => {
  const p = await userProject(t, APP);
  const c = cli(p);
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /'frobnicate' is not a capstan command/],
    [['pakage', 'list'], /Did you mean 'capstan package'\?/],
    [['package', 'frob'], /'frob' is not a capstan package command/],
    [['images', '--bogus'], /flag provided but not defined: --bogus\n {2}See 'capstan images --help'/],
    [['package', 'compose'], /missing argument; Usage: capstan package compose \[image-name\]/],
    [['info'], /usage: capstan info \[image-file\]/],
    [['run', '-c', 'many'], /invalid value "many" for flag -c/],
    [['run', '-m'], /flag needs an argument: -m/],
    [['package', 'compose', 'app', '--env', 'NOEQUALS'], /--env "NOEQUALS" is not KEY=VALUE/],
    [['package', 'compose', 'app', '-s', '10'], /incorrect size format/],
    [['package', 'init'], /You must provide the name of the package \(--name or -n\)/],
    [['runtime', 'preview'], /usage: capstan runtime preview -r \[runtime-name\]/],
    [['package', 'compose', 'app', '--fs', 'ext4'], /invalid value "ext4" for flag --fs/],
  ];
  await Promise.all(cases.map(async ([args, message]) => {
    const r = await c(args);
    t.is(r.exitCode, 64, `${args.join(' ')}: ${both(r)}`);
    t.regex(err(r), message, args.join(' '));
    t.is(out(r), '', 'nothing on stdout');
    t.notRegex(err(r), /\n\s+at /, 'no stack trace');
  }));
  const help = await c(['package', 'compose', '--help']);
  t.is(help.exitCode, 0);
  t.regex(out(help), /USAGE:\n {3}capstan package compose \[command options\] \[image-name\]/);
  t.regex(out(help), /--pull-missing, -p +attempt to pull packages missing/);
  t.regex(out(help), /ROFS unless --fs zfs \(Capstan defaults to ZFS/, 'the help says where we differ');
  t.regex(out(await c(['package'])), /COMMANDS:[\s\S]*compose +composes the package/);
  t.regex(out(await c(['-h'])), /instances, I +list instances/);
  t.regex(out(await c(['help', 'run'])), /--persist/);
  t.regex(out(await c(['--version'])), /^capstan version \d+\.\d+\.\d+\n$/);
});

test('data errors exit 65, printed once: file:line:column, what is wrong, what to do', async (t) => {
  const p = await userProject(t, { ...APP, 'meta/run.yaml': 'runtime: native\nconfig_set:\n  default:\n    bootcmd: [\n' });
  const c = cli(p);
  const bad = await c(['package', 'compose', 'app', '-p']);
  t.is(bad.exitCode, 65, both(bad));
  t.regex(err(bad), /meta\/run\.yaml:\d+:\d+: invalid YAML/);
  t.is(err(bad).match(/invalid YAML/g)?.length, 1, 'once');
  t.notRegex(both(bad), /\n\s+at |Details:|undefined/);
  t.false(existsSync(path.join(p.env.CAPSTAN_ROOT, 'repository', 'app', 'app.qemu')), 'no image written');

  await writeFile(path.join(p.root, 'meta', 'run.yaml'), APP['meta/run.yaml']);
  const missing = await c(['package', 'compose', 'app']);
  t.is(missing.exitCode, 65);
  t.regex(err(missing), /package "osv\.bootstrap" is not in the local repository\n {2}Pull it with 'capstan package pull osv\.bootstrap', or add --pull-missing \(-p\)/);
  // --fs zfs goes to the ZFS path, which needs a ZFS-capable loader (the stand-in is not one).
  const zfs = await c(['package', 'compose', 'app', '--fs', 'zfs', '-p']);
  t.is(zfs.exitCode, 65, both(zfs));
  t.regex(err(zfs), /ZFS/);
  for (const args of [['info', 'nothere.qcow2'], ['package', 'describe', 'nothere'], ['rmi', 'nothere'], ['delete', 'nothere'], ['pull', 'x', '-p', 'xen']]) {
    const r = await c(args);
    t.is(r.exitCode, 65, `${args.join(' ')}: ${both(r)}`);
    t.is(err(r).trim().split('\n').length <= 2, true, `one message and a hint: ${err(r)}`);
  }
});

test('package search, pull, list, describe, build, import, init, collect', async (t) => {
  const p = await userProject(t, { ...APP, 'meta/README.md': 'The app.\n', '.capstanignore': '/data/secret\n', 'data/secret': 'no\n' });
  const c = cli(p);
  const search = await c(['package', 'search', 'boot']);
  t.is(search.exitCode, 0, both(search));
  const header = fileInfoRow('Name', 'Description', 'Version', 'Created', 'Platform');
  t.is(out(search), `${'Release'.padEnd(10)}${header}\n${'v0.57.0'.padEnd(10)}${fileInfoRow('osv.bootstrap', 'OSv Bootstrap', '0.57.0', 'N/A')}\n`);
  t.is(out(await c(['package', 'search', 'nomatch'])), `${'Release'.padEnd(10)}${header}\n`);

  const pull = await c(['package', 'pull', 'osv.bootstrap']);
  t.is(pull.exitCode, 0, both(pull));
  t.true(existsSync(path.join(p.env.CAPSTAN_ROOT, 'packages', 'osv.bootstrap.mpm')));

  const describe = await c(['package', 'describe', 'osv.bootstrap', '--content']);
  t.is(describe.exitCode, 0, both(describe));
  t.regex(out(describe), /^PACKAGE METADATA\nname: osv\.bootstrap\ntitle: OSv Bootstrap\nauthor: tests\n\nNo package execution information was found\.\n\nPACKAGE CONTENT\n/);
  t.regex(out(describe), /\n-rw-r--r-- {2}0 0 {6}0 {10}30 \d\d [A-Z][a-z]{2} \d\d \d\d:\d\d UTC \/etc\/hosts\n/);

  const build = await c(['package', 'build']);
  t.is(build.exitCode, 0, both(build));
  t.is(out(build), `Building package\nPackage built and stored in ${path.join(p.root, 'app.mpm')}\n`);
  const imported = await c(['package', 'import']);
  t.is(imported.exitCode, 0, both(imported));
  t.regex(out(imported), /Package app\.mpm successfully imported into repository .*packages\n$/);
  const update = await c(['package', 'update', '-v']);
  t.is(out(update), `[01/02] ${'app'.padEnd(50)}... package does not exist in remote repository\n` +
    `[02/02] ${'osv.bootstrap'.padEnd(50)}... already latest\nUpdated 0 packages (out of 2 that were found locally)\n`);
  // A descriptor that does not parse is left out with a warning (Capstan's list stops quietly there).
  await writeFile(path.join(p.env.CAPSTAN_ROOT, 'packages', 'aa.broken.yaml'), 'name: [\n');
  const listed = await c(['package', 'list']);
  t.is(listed.exitCode, 0, both(listed));
  t.is(out(listed), `${header}\n${fileInfoRow('app', 'App', '1.2.3', '2024-05-01 10:20')}\n${fileInfoRow('osv.bootstrap', 'OSv Bootstrap', '0.57.0', 'N/A')}\n`);
  t.regex(err(listed), /^warning: .*aa\.broken\.yaml.*\(aa\.broken\.yaml left out\)\n$/);
  const described = await c(['package', 'describe', 'app']);
  t.regex(out(described), /PACKAGE EXECUTION\nruntime: native\ndefault configuration: default\n-+\nCONFIGURATION NAME {8}\| BOOT COMMAND\n-+\ndefault {19}\| \/app\.so hello\n-+\n\nPACKAGE DOCUMENTATION\nThe app\.\n/);

  const fresh = path.join(p.dir, 'fresh');
  const init = await c(['package', 'init', fresh, '-n', 'fresh', '-t', 'Fresh one', '-a', 'me', '--require', 'osv.bootstrap', '--runtime', 'native']);
  t.is(init.exitCode, 0, both(init));
  t.regex(out(init), /^Initializing package in .*fresh\/meta\nmeta\/run\.yaml stub successfully added/);
  t.regex(await readFile(path.join(fresh, 'meta', 'package.yaml'), 'utf8'), /^name: fresh\ntitle: Fresh one\nauthor: me\nrequire:\n- osv\.bootstrap\ncreated: "\d{4}-/);
  t.regex(await readFile(path.join(fresh, 'meta', 'run.yaml'), 'utf8'), /runtime: native/);

  const collect = await c(['package', 'collect']);
  t.is(collect.exitCode, 0, both(collect));
  const pkg = path.join(p.root, 'mpm-pkg');
  t.is(await readFile(path.join(pkg, 'app.so'), 'utf8'), APP['app.so']);
  t.is(await readFile(path.join(pkg, 'etc', 'hosts'), 'utf8'), '127.0.0.1 localhost osv.local\n', 'from osv.bootstrap');
  t.is(await readFile(path.join(pkg, 'run', 'default'), 'utf8'), '/app.so hello');
  t.false(existsSync(path.join(pkg, 'data', 'secret')), '.capstanignore applies');
  t.false(existsSync(path.join(pkg, 'meta')), 'no meta/');
  // Again: replaced whole, the old mpm-pkg not collected into the new one; the app's files win over the packages'.
  await mkdir(path.join(p.root, 'etc'));
  await writeFile(path.join(p.root, 'etc', 'hosts'), 'mine\n');
  t.is((await c(['package', 'collect'])).exitCode, 0);
  t.false(existsSync(path.join(pkg, 'mpm-pkg')));
  t.is(await readFile(path.join(pkg, 'etc', 'hosts'), 'utf8'), 'mine\n');
  t.deepEqual((await readdir(p.root)).filter((n) => n.includes('mpm-pkg')), ['mpm-pkg'], 'no temp folder left');
});

test('package compose writes a repository image; images, info, --json, plain compose, import, rmi', async (t) => {
  const p = await userProject(t, APP);
  const c = cli(p);
  const composed = await c(['package', 'compose', 'app', '-p', '--env', 'PORT=8000', '--boot', 'default']);
  t.is(composed.exitCode, 0, both(composed));
  const image = path.join(p.env.CAPSTAN_ROOT, 'repository', 'app', 'app.qemu');
  const described = await describeImage(image);
  t.is(described.format, 'qcow2');
  t.is(described.cmdline, '--env=PORT=8000 runscript /run/default;');
  t.true(described.rofs!.entries.some((e) => e.path === '/app.so'));
  t.regex(out(composed), /Command line set to: '--env=PORT=8000 runscript \/run\/default;'\n$/);
  t.regex(out(composed), /writeImage: .*app\.qemu: qcow2/, 'step summaries are shown');
  const index = await readFile(path.join(path.dirname(image), 'index.yaml'), 'utf8');
  t.regex(index, /^format_version: "1"\nversion: ""\ncreated: \d{4}-\d\d-\d\d \d\d:\d\d\n/);
  // Our addition: the loader it was built from, and that file's sha256 (for capstan run's -kernel boot).
  const loaderFile = path.join(p.env.CAPSTAN_ROOT, 'repository', 'osv-loader', 'osv-loader.qemu');
  const loaderSha = createHash('sha256').update(await readFile(loaderFile)).digest('hex');
  t.true(index.endsWith(`\nloader: ${loaderFile}\nloader_sha256: ${loaderSha}\n`), index);

  const images = out(await c(['i']));
  const lines = images.split('\n');
  t.is(lines[0], fileInfoRow('Name', 'Description', 'Version', 'Created', 'Platform'));
  const created = (line: string | undefined) => /\d{4}-\d\d-\d\d \d\d:\d\d/.exec(line ?? '')?.[0] ?? '?';
  t.is(lines[1], fileInfoRow('app', '', '', created(lines[1]), 'N/A'), 'app: no description or version');
  t.is(lines[2], fileInfoRow('osv-loader', 'OSv kernel - osv-loader', 'v0.57.0', created(lines[2]), 'N/A'));

  t.is(out(await c(['info', image])), `${image}: QCOW2\n`);
  t.is(out(await c(['info', path.join(p.root, 'app.so')])), `${path.join(p.root, 'app.so')}: not a runnable image\n`);

  // --json: stdout is only events; the summary lines went to stderr.
  const json = await c(['package', 'compose', 'app', '--json']);
  t.is(json.exitCode, 0, both(json));
  const events = out(json).trim().split('\n').map((l) => JSON.parse(l) as { event: string; time: string; path?: string });
  t.true(events.every((e) => !Number.isNaN(Date.parse(e.time))));
  t.is(events.find((e) => e.event === 'image')?.path, image);
  t.regex(err(json), /Command line set to:/);
  const failed = await c(['package', 'compose', 'app', '--json', '--require', 'nothere']);
  t.is(failed.exitCode, 65);
  const last = JSON.parse(out(failed).trim().split('\n').at(-1)!) as { event: string; code: string };
  t.is(last.event, 'error');
  t.is(last.code, 'E_PACKAGE_MISSING');

  // Plain compose of a folder and of one file, no packages.
  await mkdir(path.join(p.dir, 'raw', 'sub'), { recursive: true });
  await writeFile(path.join(p.dir, 'raw', 'sub', 'x.txt'), 'x');
  await writeFile(path.join(p.dir, 'raw', 'hello'), 'h');
  const raw = await c(['compose', 'raw', path.join(p.dir, 'raw'), '-c', '/hello']);
  t.is(raw.exitCode, 0, both(raw));
  const rawImage = await describeImage(path.join(p.env.CAPSTAN_ROOT, 'repository', 'raw', 'raw.qemu'));
  t.is(rawImage.cmdline, '/hello');
  t.deepEqual(rawImage.rofs!.entries.filter((e) => e.type === 'file' && !e.path.startsWith('/etc')).map((e) => e.path).sort(), ['/hello', '/sub/x.txt']);
  const single = await c(['compose', 'one', path.join(p.dir, 'raw', 'sub', 'x.txt'), '-c', '/x.txt']);
  t.is(single.exitCode, 0, both(single));
  t.true((await describeImage(path.join(p.env.CAPSTAN_ROOT, 'repository', 'one', 'one.qemu'))).rofs!.entries.some((e) => e.path === '/x.txt'));

  const imp = await c(['import', 'mine/copy', image, '-v', '2.0', '-d', 'a copy']);
  t.is(imp.exitCode, 0, both(imp));
  t.is(out(imp), `Importing mine/copy...\nImporting into ${path.join(p.env.CAPSTAN_ROOT, 'repository', 'mine', 'copy', 'copy.qemu')}\n`);
  t.true(out(await c(['images'])).split('\n').includes(fileInfoRow('mine/copy', 'a copy', '2.0', 'N/A', 'N/A')), 'no -c: created N/A, as in Capstan');
  const rmi = await c(['rmi', 'mine/copy']);
  t.is(out(rmi), 'Removing mine/copy...\n');
  t.false(existsSync(path.join(p.env.CAPSTAN_ROOT, 'repository', 'mine', 'copy')));

  const pulled = await c(['pull', 'osv-loader', '--json']);
  t.is(pulled.exitCode, 0, both(pulled));
  t.true(out(pulled).trim().split('\n').map((l) => JSON.parse(l) as { event: string }).some((e) => e.event === 'pull'));
});

test('build (Capstanfile mode) runs the build command, then writes rootfs and files with its cmdline; run with no argument builds and boots', async (t) => {
  const capstanfile = 'base: cloudius/osv-base\ncmdline: /tools/hello.so --greet\nbuild: node make.mjs\nfiles:\n  /app/app.bin: out/&\n';
  const p = await userProject(t, {
    Capstanfile: capstanfile,
    // The build makes the file the `files` map names (it does not exist before).
    'make.mjs': "import { mkdirSync, writeFileSync } from 'node:fs'; mkdirSync('out', { recursive: true }); writeFileSync('out/app.bin', 'built ' + process.argv.length);\n",
    'fail.mjs': "console.log('compiler says no'); process.exit(2);\n",
    'ROOTFS/etc/greeting': 'hello\n',
    'src/main.c': 'not in the image',
  }, { mode: 'crash' });
  const c = cli(p);
  const built = await c(['build']);
  t.is(built.exitCode, 0, both(built));
  t.regex(out(built), /^Building app\.\.\.\n/, 'named after the folder, as Capstan');
  t.regex(out(built), /Command line set to: '\/tools\/hello\.so --greet'\n$/);
  const image = path.join(p.env.CAPSTAN_ROOT, 'repository', 'app', 'app.qemu');
  const described = await describeImage(image);
  t.is(described.format, 'qcow2');
  t.is(described.cmdline, '/tools/hello.so --greet');
  const files = described.rofs!.entries.filter((e) => e.type === 'file').map((e) => e.path);
  t.true(files.includes('/app/app.bin') && files.includes('/etc/greeting'), files.join(' '));
  t.false(files.some((f) => f.includes('main.c') || f.includes('make.mjs')), 'only rootfs and files go in');
  t.regex(await readFile(path.join(path.dirname(image), 'index.yaml'), 'utf8'), /\nbuild: node make\.mjs\n/);

  // run with no argument in a Capstanfile folder: built (the build command again), then booted.
  await writeFile(path.join(p.root, 'out', 'app.bin'), 'stale');
  const ran = await c(['run']);
  t.is(ran.exitCode, 0, both(ran));
  t.regex(out(ran), /Created instance: app\n[\s\S]*CMDLINE:\S+ \/tools\/hello\.so --greet\n/);
  t.is(await readFile(path.join(p.root, 'out', 'app.bin'), 'utf8'), 'built 2', 'the build command ran again');

  const vbox = await c(['build', 'other', '-p', 'vbox', '-m', '1G']);
  t.is(vbox.exitCode, 0, both(vbox));
  t.is((await describeImage(path.join(p.env.CAPSTAN_ROOT, 'repository', 'other', 'other.vbox'))).format, 'vdi');

  await writeFile(path.join(p.root, 'Capstanfile'), capstanfile.replace('make.mjs', 'fail.mjs'));
  const failed = await c(['build', 'broken']);
  t.is(failed.exitCode, 65, both(failed));
  t.regex(err(failed), /Capstanfile: the build command `node fail\.mjs` failed \(exit status 2\)\n[\s\S]*compiler says no/);
  t.notRegex(err(failed), /\n\s+at /);
  t.false(existsSync(path.join(p.env.CAPSTAN_ROOT, 'repository', 'broken')), 'no image when the build fails');
  for (const [args, code, message] of [
    [['build', 'a', 'b'], 64, /too many arguments; usage: capstan build \[image-name\]/],
    [['build', 'x', '-m', 'lots'], 64, /invalid value "lots" for flag -m/],
    [['build', 'x', '-p', 'xen'], 65, /'xen' is not a supported hypervisor/],
  ] as Array<[string[], number, RegExp]>) {
    const r = await c(args);
    t.is(r.exitCode, code, `${args.join(' ')}: ${both(r)}`);
    t.regex(err(r), message);
  }
  const nowhere = await c(['build'], { cwd: p.dir });
  t.is(nowhere.exitCode, 64, both(nowhere));
  t.regex(err(nowhere), /usage: capstan build \[image-name\]/);
});

const JDK = (() => { try { return findJavaHome(undefined, process.cwd()); } catch { return undefined; } })();
const withJdk = JDK && existsSync(path.join(JDK, 'bin', 'javac')) && existsSync(path.join(JDK, 'bin', 'jar')) ? test : test.skip;

withJdk('run <file>.jar: an image of the jar and the host JDK, image and instance named after the jar, booted', async (t) => {
  const p = await userProject(t, { 'src/Hello.java': 'public class Hello { public static void main(String[] a) { System.out.println("hi"); } }\n' }, { mode: 'crash' });
  await execa(path.join(JDK!, 'bin', 'javac'), ['-d', path.join(p.root, 'classes'), path.join(p.root, 'src', 'Hello.java')]);
  await mkdir(path.join(p.root, 'dist'));
  await execa(path.join(JDK!, 'bin', 'jar'), ['--create', '--file', path.join(p.root, 'dist', 'hello.jar'), '--main-class', 'Hello', '-C', path.join(p.root, 'classes'), '.']);
  const c = cli(p);
  const ran = await c(['run', '-i', 'dist/hello.jar', 'ignored']);
  t.is(ran.exitCode, 0, both(ran));
  t.regex(out(ran), /Created instance: hello\n/, 'the instance is named after the jar, as in Capstan');
  t.regex(out(ran), /CMDLINE:\S+ runscript \/run\/default;/);
  const described = await describeImage(path.join(p.env.CAPSTAN_ROOT, 'repository', 'hello', 'hello.qemu'));
  const files = described.rofs!.entries.filter((e) => e.type === 'file').map((e) => e.path);
  t.true(files.includes('/hello.jar'), 'the jar at the root');
  t.true(files.some((f) => /\/bin\/java$/.test(f)), 'and a JDK');
  t.false(files.some((f) => f.includes('Hello.java') || f.includes('Hello.class')), 'only the jar of the folder');
  t.regex((await readImageFile(path.join(p.env.CAPSTAN_ROOT, 'repository', 'hello', 'hello.qemu'), '/run/default')).toString(), /java -jar \/hello\.jar !/);
  const missing = await c(['run', 'nothere.jar']);
  t.is(missing.exitCode, 65, both(missing));
  t.regex(err(missing), /nothere\.jar: no such jar/);
});

test('search lists the images of an S3 bucket (-u), whatever --s3 says, matching the name without its namespace', async (t) => {
  const p = await userProject(t, APP);
  const c = cli(p);
  const bucket = serveBucket(p.server, {
    'mike/osv-loader/index.yaml': Buffer.from('format_version: "1"\nversion: v0.24\ncreated: 2016-01-01 10:00\ndescription: OSv loader from S3\nplatform: Ubuntu-14.04\n'),
    'mike/osv-loader/osv-loader.qemu.gz': Buffer.from('x'),
    'mike/myapp/index.yaml': Buffer.from('format_version: "1"\ndescription: an app\n'),
    'other/broken/index.yaml': Buffer.from('[unclosed\n'),
    'packages/osv.bootstrap.yaml': Buffer.from('name: osv.bootstrap\ntitle: t\nauthor: a\n'),
  });
  const all = await c(['-u', bucket, 'search']);
  t.is(all.exitCode, 0, both(all));
  t.is(out(all), [
    fileInfoRow('Name', 'Description', 'Version', 'Created', 'Platform'),
    fileInfoRow('mike/myapp', 'an app', '', 'N/A', 'N/A'),
    fileInfoRow('mike/osv-loader', 'OSv loader from S3', 'v0.24', '2016-01-01 10:00', 'Ubuntu-14.04'),
  ].join('\n') + '\n', 'key order; the index that does not parse is left out, packages are not images');
  t.is(out(await c(['-u', bucket, 'search', 'loader'])).split('\n').length, 3, 'header, one row, end');
  t.is(out(await c(['-u', bucket, 'search', 'mike'])).split('\n').length, 2, 'the namespace is not matched, as in Capstan');
  const down = await c(['-u', 'http://127.0.0.1:9/none/', 'search']);
  t.is(down.exitCode, 1, both(down));
});

test('runtime list, preview, init; volume create, delete; config print', async (t) => {
  const p = await userProject(t, { ...APP, '.capstanignore': '# comment\n/data/*.tmp\n' });
  const c = cli(p);
  const list = out(await c(['runtime', 'list']));
  t.is(list.split('\n')[0], `${'RUNTIME'.padEnd(20)}${'DESCRIPTION'.padEnd(50)}${'DEPENDENCIES'.padEnd(20)}`);
  t.is(list.split('\n')[1], `${'native'.padEnd(20)}${'Run arbitrary command inside OSv'.padEnd(50)}[]`);
  t.is(list.split('\n')[2], `${'node'.padEnd(20)}${'Run JavaScript NodeJS 4.4.5 application'.padEnd(50)}[${'node-4.4.5'.padEnd(20)}]`);
  const preview = out(await c(['runtime', 'preview', '-r', 'node']));
  t.regex(preview, /^--------- meta\/run\.yaml ---------\n\nruntime: node\n/);
  t.regex(preview, /Use 'capstan runtime init' to persist this template into \$CWD\/meta\/run\.yaml\n$/);
  t.notRegex(out(await c(['runtime', 'preview', '-r', 'node', '--plain'])), /#/);
  t.is((await c(['runtime', 'preview', '-r', 'cobol'])).exitCode, 65);
  const refused = await c(['runtime', 'init', '-r', 'node']);
  t.is(refused.exitCode, 65, 'meta/run.yaml exists');
  t.regex(err(refused), /Pass --force \(-f\)/);
  const forced = await c(['runtime', 'init', '-r', 'node', '-f']);
  t.is(forced.exitCode, 0, both(forced));
  t.regex(await readFile(path.join(p.root, 'meta', 'run.yaml'), 'utf8'), /runtime: node/);

  const created = await c(['volume', 'create', 'data', '-s', '64M', '-f', 'qcow2']);
  t.is(created.exitCode, 0, both(created));
  t.is(await readFile(path.join(p.root, 'volumes', 'data.yaml'), 'utf8'), 'format: qcow2\n');
  t.is(out(await c(['info', path.join(p.root, 'volumes', 'data')])), `${path.join(p.root, 'volumes', 'data')}: QCOW2\n`);
  t.is((await c(['volume', 'create', 'data'])).exitCode, 65, 'exists already');
  const deleted = await c(['volume', 'delete', 'data', '-v']);
  t.is(out(deleted), `Removed volume ${path.join(p.root, 'volumes', 'data')}\nRemoved volume metadata ${path.join(p.root, 'volumes', 'data.yaml')}\n`);
  t.is((await c(['volume', 'delete', 'data'])).exitCode, 65);
  t.is((await c(['volume', 'create', 'v'], { cwd: p.dir })).exitCode, 65, 'not in a package folder');

  const config = out(await c(['-u', 'https://mirror.example/osv/', 'config', 'print']));
  t.is(config, [
    '--- global configuration', `CAPSTAN_ROOT: ${p.env.CAPSTAN_ROOT}`, 'CAPSTAN_REPO_URL: https://mirror.example/osv/',
    'CAPSTAN_DISABLE_KVM: true', 'CAPSTAN_QEMU_AIO_TYPE: threads', '', '--- curent directory configuration', 'CAPSTANIGNORE:',
    '/data/*.tmp', '/meta/*', '/mpm-pkg', '/.git', '/.capstanignore', '/.gitignore', '/volumes', '',
  ].join('\n'));
  // As Capstan: a .capstanignore that cannot be used is printed in place of its patterns, exit 0.
  await writeFile(path.join(p.root, '.capstanignore'), '/meta\n');
  const badIgnore = await c(['config', 'print']);
  t.is(badIgnore.exitCode, 0, both(badIgnore));
  t.regex(out(badIgnore), /^--- global configuration\n[\s\S]*\nCAPSTANIGNORE:\n\S*\.capstanignore:1:1: '\/meta' cannot be ignored\n$/);
});

test('capstan run in a package folder composes, boots in the foreground and returns when the guest ends', async (t) => {
  const p = await userProject(t, APP, { mode: 'crash' });
  const c = cli(p);
  // -e's value starts with a dash, as OSv command lines do: it is the value, not a flag.
  const r = await c(['run', '--json', '-m', '256M', '-e', '--verbose /app.so hi']);
  t.is(r.exitCode, 0, both(r));
  const events = out(r).trim().split('\n').map((l) => JSON.parse(l) as { event: string; pid?: number; instance?: string; reason?: string });
  const start = events.find((e) => e.event === 'vm-start')!;
  t.is(start.instance, 'app', 'named after the package');
  t.truthy(events.find((e) => e.event === 'vm-exit'));
  t.regex(err(r), /Created instance: app\n/);
  t.regex(err(r), /CMDLINE:\S+ --verbose \/app\.so hi\n/, 'the console, on stderr with --json');
  t.false(pidAlive(start.pid), 'no QEMU left');
  t.false(existsSync(path.join(p.env.CAPSTAN_ROOT, 'instances', 'qemu', 'app')), 'a non-persisted instance is removed');
});

test('capstan run <image>: through its loader\'s kernel while that loader is unchanged, else from the disk; Ctrl+C stops the VM and leaves no QEMU', async (t) => {
  const p = await userProject(t, APP, { mode: 'wait' });
  const c = cli(p);
  t.is((await c(['package', 'compose', 'app', '-p'])).exitCode, 0);
  const runUntil = async (seen: RegExp) => {
    const child = c(['run', 'app', '-f', '0:8080']);
    let text = '';
    child.stdout!.on('data', (c: Buffer) => { text += c.toString(); });
    for (let i = 0; i < 300 && !seen.test(text); i++) await delay(100);
    const pid = Number(await readFile(path.join(p.env.CAPSTAN_ROOT, 'instances', 'qemu', 'app', 'qemu.pid'), 'utf8'));
    t.true(pidAlive(pid));
    child.kill('SIGINT');
    const r = await child;
    t.is(r.exitCode, 130, both(r));
    t.true(await waitGone(pid), 'no QEMU left');
    return text;
  };
  // The stand-in kernel prints its own path before the -append line; the stand-in boot sector
  // prints the disk's command line and then PART:.
  const fast = await runUntil(/CMDLINE:.*runscript/);
  t.regex(fast, /Created instance: app\nForwarding tcp 127\.0\.0\.1:\d+ → guest port 8080\n[\s\S]*CMDLINE:\S*osv-loader\.elf\.x86_64 runscript \/run\/default;/);
  // A loader pulled again since (another sha256) may not be the image's: then from the disk.
  const indexFile = path.join(p.env.CAPSTAN_ROOT, 'repository', 'app', 'index.yaml');
  await writeFile(indexFile, (await readFile(indexFile, 'utf8')).replace(/loader_sha256: \w+/, `loader_sha256: ${'0'.repeat(64)}`));
  const fromDisk = await runUntil(/PART:/);
  t.regex(fromDisk, /CMDLINE:runscript \/run\/default;\s*\nPART:/);
});

test('capstan run <namespace>/<name> pulls the image from the S3 repository first, as Capstan; one it does not have is no such image', async (t) => {
  const p = await userProject(t, APP, { mode: 'wait' });
  const c = cli(p);
  t.is((await c(['package', 'compose', 'app', '-p'])).exitCode, 0);
  const composed = await readFile(path.join(p.env.CAPSTAN_ROOT, 'repository', 'app', 'app.qemu'));
  const bucket = serveBucket(p.server, {
    'mike/myapp/index.yaml': Buffer.from('format_version: "1"\ndescription: from S3\n'),
    'mike/myapp/myapp.qemu.gz': gzipSync(composed),
  });
  const child = c(['-u', bucket, 'run', 'mike/myapp']);
  let text = '';
  child.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
  for (let i = 0; i < 300 && !/PART:/.test(text); i++) await delay(100);
  child.kill('SIGINT');
  const r = await child;
  t.is(r.exitCode, 130, both(r));
  t.regex(text, /Created instance: mike-myapp\n[\s\S]*CMDLINE:runscript \/run\/default;\s*\nPART:/, 'booted from the pulled disk');
  t.deepEqual(await readFile(path.join(p.env.CAPSTAN_ROOT, 'repository', 'mike', 'myapp', 'myapp.qemu')), composed);
  t.regex(await readFile(path.join(p.env.CAPSTAN_ROOT, 'repository', 'mike', 'myapp', 'index.yaml'), 'utf8'), /description: from S3/);
  const missing = await c(['-u', bucket, 'run', 'mike/nothere']);
  t.is(missing.exitCode, 65, both(missing));
  t.regex(err(missing), /mike\/nothere: no such image at: /);
  // A disk file's path that is not there is not looked up in S3.
  const asked = p.server.requests.length;
  const typo = await c(['-u', bucket, 'run', 'out/app.qcow2']);
  t.is(typo.exitCode, 65, both(typo));
  t.regex(err(typo), /out\/app\.qcow2: no such image at: /);
  t.is(p.server.requests.length, asked, 'no request to the bucket');
});

test('a detached persisted instance: instances, stop, run it again, delete', async (t) => {
  const p = await userProject(t, APP, { mode: 'wait' });
  const c = cli(p);
  t.is((await c(['package', 'compose', 'app', '-p'])).exitCode, 0);
  // A folder named like the image (the package folder, often) does not hide it, as in Capstan.
  await mkdir(path.join(p.root, 'app'));
  const started = await c(['run', '-i', 'app', 'myvm', '--persist', '--detach', '-m', '256M']);
  t.is(started.exitCode, 0, both(started));
  const pid = Number(/\(pid (\d+)\)/.exec(out(started))?.[1]);
  t.true(pidAlive(pid), 'still running after capstan returned');
  t.teardown(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  const row = (status: string) => `${'myvm'.padEnd(35)} ${'qemu'.padEnd(10)} ${status.padEnd(10)} ${'app'.padEnd(15)}`;
  t.is(out(await c(['instances'])), `${'Name'.padEnd(35)} ${'Platform'.padEnd(10)} ${'Status'.padEnd(10)} ${'Image'.padEnd(15)}\n${row('Running')}\n`);
  const stopped = await c(['stop', 'myvm']);
  t.is(out(stopped), 'Stopped instance: myvm\n');
  t.true(await waitGone(pid));
  const again0 = await c(['stop', 'myvm']);
  t.is(out(again0), 'Stopped instance: myvm\n', "Capstan's line, whatever the instance was doing");
  t.regex(err(again0), /warning: myvm was not running/);
  t.is(out(await c(['I'])).split('\n')[1], row('Stopped'), 'persisted: still listed');

  // Booting it by name takes its stored settings; -e sets a new command line in its overlay.
  const again = c(['run', 'myvm', '-e', '/other cmd']);
  let text = '';
  again.stdout!.on('data', (c: Buffer) => { text += c.toString(); });
  for (let i = 0; i < 300 && !/CMDLINE:.*\/other cmd/.test(text); i++) await delay(100);
  t.regex(text, /Running \(already existing\) instance: myvm\n[\s\S]*CMDLINE:\S*osv-loader\.elf\.x86_64 \/other cmd/, 'the kernel it was started with');
  again.kill('SIGINT');
  t.is((await again).exitCode, 130);

  // The loader pulled again (its kernel file replaced): the instance boots from its disk, and says why.
  const kernelFile = path.join(p.env.CAPSTAN_ROOT, 'repository', 'osv-loader', 'osv-loader.elf.x86_64');
  await utimes(kernelFile, new Date(), new Date(Date.now() + 5000));
  const third = c(['run', 'myvm']);
  let thirdText = '';
  third.stdout!.on('data', (c: Buffer) => { thirdText += c.toString(); });
  third.stderr!.on('data', (c: Buffer) => { thirdText += c.toString(); });
  for (let i = 0; i < 300 && !/PART:/.test(thirdText); i++) await delay(100);
  t.regex(thirdText, /myvm: the kernel it was made with \(\S+osv-loader\.elf\.x86_64\) has changed since[^\n]*booting from its disk/);
  t.regex(thirdText, /CMDLINE:\/other cmd\s*\nPART:/, 'from the disk, with the command line set at the last run');
  third.kill('SIGINT');
  t.is((await third).exitCode, 130);

  const deleted = await c(['delete', 'myvm']);
  t.is(out(deleted), 'Deleted instance: myvm\n');
  t.false(existsSync(path.join(p.env.CAPSTAN_ROOT, 'instances', 'qemu', 'myvm')));
  t.is((await c(['stop', 'myvm'])).exitCode, 65);

  // An image file: the instance is named after the argument as typed, "/" as "-" (Capstan's rule).
  await mkdir(path.join(p.root, 'out'));
  await writeFile(path.join(p.root, 'out', 'app.qcow2'), await readFile(path.join(p.env.CAPSTAN_ROOT, 'repository', 'app', 'app.qemu')));
  const fromFile = await c(['run', 'out/app.qcow2', '--persist', '--detach', '-m', '256M']);
  t.is(fromFile.exitCode, 0, both(fromFile));
  t.regex(out(fromFile), /Created instance: out-app\.qcow2\n/);
  t.regex(out(await c(['instances'])), /\nout-app\.qcow2 +qemu +Running +app\.qcow2 *\n/);
  t.is((await c(['delete', 'out-app.qcow2'])).exitCode, 0);

  // An instance Capstan persisted (its qemu.VMConfig): listed, refused with a clear error, deletable.
  const capstanDir = path.join(p.env.CAPSTAN_ROOT, 'instances', 'qemu', 'capi');
  await mkdir(capstanDir, { recursive: true });
  await writeFile(path.join(capstanDir, 'osv.config'), [
    'name: capi', 'cmd: ""', 'disablekvm: true', 'persist: true', `instancedir: ${capstanDir}`, `monitor: ${capstanDir}/osv.monitor`,
    `configfile: ${capstanDir}/osv.config`, 'aiotype: threads', `image: ${capstanDir}/disk.qcow2`, 'backingfile: true', 'volumes: []',
    'memory: 1024', 'cpus: 2', 'networking: nat', 'bridge: ""', 'natrules: []', 'mac: ""', `vncfile: ${capstanDir}/vnc-domain-socket`, '',
  ].join('\n'));
  t.regex(out(await c(['instances'])), /\ncapi +qemu +Stopped *\n/, 'listed, the Image column blank as Capstan leaves it');
  const foreign = await c(['run', 'capi']);
  t.is(foreign.exitCode, 65, both(foreign));
  t.regex(err(foreign), /osv\.config: instance "capi" was made by Capstan, whose osv\.config gulp-capstan does not boot\n {2}Boot it with Capstan/);
  t.notRegex(err(foreign), /unexpected error/);
  t.is((await c(['delete', 'capi'])).exitCode, 0);
  t.false(existsSync(capstanDir));
});
