// Java and Python 3 from the host, without an OSv kernel: the captured trees against `find`
// (the runtime's own file list) and their closures against `ldd`; the jar reader against
// `unzip`; zero-config Java and Python projects; and the /run scripts of Capstan's java and
// python config sets (capstan-behaviour.md §2.3) in images read back with our own reader.
import test from 'ava';
import { execa } from 'execa';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OSV_KERNEL_LIBSTDCXX, OSV_KERNEL_SONAMES } from '../lib/host/closure.js';
import { captureTree, excludePatterns } from '../lib/host/tree.js';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { resolveManifestFromDir } from '../lib/manifest/load.js';
import { readJarManifest, readZipEntry } from '../lib/runtimes/jar.js';
import { findJavaHome, JAVA_GUEST_HOME, JAVA_GUEST_PATH, javaRuntimeFiles } from '../lib/runtimes/java.js';
import { PYTHON_GUEST_PATH, PYTHON_ROOT_LINK, pythonRuntimeFiles, queryPython } from '../lib/runtimes/python.js';
import { consoleScriptProgram } from '../lib/runtimes/python-project.js';
import { fetchPackages } from '../lib/steps/fetch-packages.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { resolveManifest, type ResolveManifestOptions } from '../lib/steps/resolve-manifest.js';
import { writeImage } from '../lib/steps/write-image.js';
import { src as capstanSrc } from '../lib/vinyl/src.js';
import { ldd } from './helpers/host-programs.js';
import { buildStandInLoader } from './helpers/stand-in.js';

const JDK = (() => { try { return findJavaHome(undefined, process.cwd()); } catch { return undefined; } })();
const withJdk = JDK && existsSync(path.join(JDK, 'bin', 'javac')) && existsSync(path.join(JDK, 'bin', 'jar')) ? test : test.skip;
const PYTHON = (() => { try { return queryPython(undefined, undefined, process.cwd()); } catch { return undefined; } })();
const withPython = PYTHON ? test : test.skip;
const KERNEL = new Set([...OSV_KERNEL_SONAMES, OSV_KERNEL_LIBSTDCXX]);

let work: string;
let loader: string;
test.before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'capstan-runtimes-'));
  loader = await buildStandInLoader(path.join(work, 'loader'));
});
test.after.always(async () => { await rm(work, { recursive: true, force: true }); });

async function write(file: string, text: string | Buffer) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}

/** `find -L dir` as relative paths of everything that is not a folder; dangling links show as type l. */
async function findFiles(dir: string): Promise<{ files: Set<string>; dangling: Set<string> }> {
  const { stdout } = await execa('find', ['-L', dir, '-mindepth', '1', '!', '-type', 'd', '-printf', '%y %P\\n']);
  const files = new Set<string>();
  const dangling = new Set<string>();
  for (const line of stdout.split('\n').filter(Boolean)) (line.startsWith('l ') ? dangling : files).add(line.slice(2));
  return { files, dangling };
}

/** Classes compiled per source set, once: javac is the slow part (a JVM start each time). */
const compiled = new Map<string, Promise<string>>();

/** Compiles `sources` (name → Java text) and makes a jar of them; `main` sets Main-Class. */
async function makeJar(jar: string, sources: Record<string, string>, main?: string): Promise<void> {
  const key = JSON.stringify(sources);
  if (!compiled.has(key)) {
    compiled.set(key, (async () => {
      const dir = await mkdtemp(path.join(work, 'javac-'));
      for (const [name, text] of Object.entries(sources)) await write(path.join(dir, 'src', name), text);
      await execa(path.join(JDK!, 'bin', 'javac'), ['-d', path.join(dir, 'classes'), ...Object.keys(sources).map((n) => path.join(dir, 'src', n))]);
      return path.join(dir, 'classes');
    })());
  }
  const classes = await compiled.get(key)!;
  await mkdir(path.dirname(jar), { recursive: true });
  await execa(path.join(JDK!, 'bin', 'jar'), ['--create', '--file', jar, ...(main ? ['--main-class', main] : []), '-C', classes, '.']);
}

const HELLO = { 'Hello.java': 'public class Hello { public static void main(String[] a) { System.out.println("hello " + a.length); } }\n' };

/** The four image steps with a stand-in loader and a repository that has only what `repo` adds. */
async function compose(app: string, options: ResolveManifestOptions, repo = path.join(work, 'empty-repo')): Promise<string> {
  const out = path.join(work, `${path.basename(app)}-${Math.random().toString(36).slice(2)}.raw`);
  await pipeline(
    capstanSrc('**', { cwd: app, dot: true }),
    resolveManifest({ cwd: app, silent: true, bootstrap: false, ...options }), fetchPackages({ root: repo, silent: true }), layoutFiles({ silent: true }),
    writeImage({ out, loader, format: 'raw', silent: true }),
    new Writable({ objectMode: true, write(_f, _e, cb) { cb(); } }),
  );
  return out;
}

test('captureTree: links inside stay links, links out are followed, dangling ones and excluded paths are left out (against find -L)', async (t) => {
  const root = path.join(work, 'tree');
  const outside = path.join(work, 'outside');
  await write(path.join(root, 'bin', 'tool'), 'tool');
  await write(path.join(root, 'lib', 'a.so'), 'a');
  await write(path.join(root, 'man', 'tool.1'), 'man');
  await write(path.join(root, 'lib', 'big.zip'), 'zip');
  await write(path.join(outside, 'etc', 'conf.cfg'), 'conf');
  await write(path.join(outside, 'shared', 'x.txt'), 'x');
  await symlink('a.so', path.join(root, 'lib', 'a-link.so'));
  await symlink(path.join(root, 'bin', 'tool'), path.join(root, 'lib', 'abs-inside'));
  await symlink(path.join(outside, 'etc', 'conf.cfg'), path.join(root, 'lib', 'conf.cfg'));
  await symlink(path.join(outside, 'shared'), path.join(root, 'docs'));
  await symlink('../../nowhere/src.zip', path.join(root, 'lib', 'src.zip'));
  await symlink('big.zip', path.join(root, 'lib', 'to-excluded'));
  await symlink('../../nowhere/old.zip', path.join(root, 'lib', 'old.zip'));
  const tree = captureTree(root, '/opt/x', { exclude: (rel) => excludePatterns(['man', 'lib/big.zip', 'lib/old.zip'])(rel) });
  const byGuest = new Map(tree.entries.map((e) => [e.guestPath, e]));
  t.deepEqual(byGuest.get('/opt/x/lib/a-link.so'), { type: 'symlink', guestPath: '/opt/x/lib/a-link.so', hostPath: path.join(root, 'lib', 'a-link.so'), target: 'a.so', size: 0 });
  t.is(byGuest.get('/opt/x/lib/abs-inside')?.target, '../bin/tool', 'an absolute link inside the tree becomes relative');
  t.is(byGuest.get('/opt/x/lib/conf.cfg')?.hostPath, path.join(outside, 'etc', 'conf.cfg'), 'a link out of the tree is followed');
  t.is(byGuest.get('/opt/x/docs/x.txt')?.type, 'file', 'a folder link out of the tree is walked');
  t.deepEqual(tree.dangling, [{ path: 'lib/src.zip', target: '../../nowhere/src.zip' }]);
  t.deepEqual(tree.excluded.sort(), ['lib/big.zip', 'lib/old.zip', 'lib/to-excluded', 'man'], 'a dangling link that is excluded anyway is not reported as dangling');
  // Independent: find -L lists the same paths, less what was excluded.
  const found = await findFiles(root);
  const expected = [...found.files].filter((p) => !p.startsWith('man/') && p !== 'lib/big.zip' && p !== 'lib/to-excluded').sort();
  t.deepEqual(tree.entries.map((e) => e.guestPath.slice('/opt/x/'.length)).sort(), expected);
  t.deepEqual([...found.dangling].sort(), ['lib/old.zip', 'lib/src.zip']);
  t.is(tree.bytes, ['tool', 'a', 'conf', 'x'].join('').length);
});

withJdk('the JDK tree is the JDK\'s own file list (find -L), less the trimmed parts and dangling links; trim: false keeps them', async (t) => {
  const trimmed = javaRuntimeFiles({ kind: 'java', root: work });
  const found = await findFiles(JDK!);
  const rel = (g: string) => g.slice(JAVA_GUEST_HOME.length + 1);
  const own = trimmed.tree.filter((e) => e.guestPath.startsWith(JAVA_GUEST_HOME + '/'));
  const desktop = ['lib/libawt_xawt.so', 'lib/libjawt.so', 'lib/libsplashscreen.so', 'lib/libjsound.so', 'lib/libatk-wrapper.so', 'lib/src.zip'];
  const isTrimmed = (p: string) => /^(docs|man|include|jmods|demo|sample)(\/|$)/.test(p) || desktop.includes(p) || /\.(debuginfo|diz)$/.test(p);
  t.deepEqual(own.map((e) => rel(e.guestPath)).sort(), [...found.files].filter((p) => !isTrimmed(p)).sort());
  for (const d of found.dangling) t.is(trimmed.notes.some((n) => n.includes(path.join(JDK!, d))), !isTrimmed(d), `dangling ${d} is reported unless trimmed anyway`);
  for (const e of own.filter((x) => x.type === 'file')) t.is(e.size, statSync(e.hostPath).size, e.guestPath);
  t.true(trimmed.tree.some((e) => e.guestPath === '/usr/bin/java' && e.target === JAVA_GUEST_PATH));
  t.true(trimmed.tree.some((e) => e.guestPath === '/java.so' && e.target === JAVA_GUEST_PATH));
  const full = javaRuntimeFiles({ kind: 'java', root: work, trim: false });
  const fullOwn = full.tree.filter((e) => e.guestPath.startsWith(JAVA_GUEST_HOME + '/')).map((e) => rel(e.guestPath)).sort();
  t.deepEqual(fullOwn, [...found.files].sort(), 'trim: false: every file the JDK has');
  t.regex(trimmed.version, /^\d+(\.\d+)*/);
  t.is(trimmed.run.configSets[0]!.bootcmd, `${JAVA_GUEST_PATH} -Xms$XMS -Xmx$XMX -cp $CLASSPATH $JVM_ARGS $MAIN $ARGS !`);
  t.deepEqual(trimmed.generated.map((g) => g.guestPath), ['/etc/fstab']);
});

withJdk('the JDK closure: every library ldd finds for the launcher and every shared object of the tree, outside the JDK and OSv\'s kernel', async (t) => {
  const files = javaRuntimeFiles({ kind: 'java', root: work });
  const objects = files.tree.filter((e) => e.type === 'file' && (/\.so$/.test(e.guestPath) || e.guestPath === JAVA_GUEST_PATH));
  t.true(objects.some((o) => o.guestPath.endsWith('/lib/server/libjvm.so')), 'libjvm.so is in the tree');
  const real = realpathSync(JDK!);
  const expected = new Map<string, string>();
  const notFound = new Set<string>();
  // The JVM has libjvm.so loaded before it dlopens the others: ldd finds it with the JDK's folders on the path.
  const env = { LD_LIBRARY_PATH: `${path.join(JDK!, 'lib', 'server')}:${path.join(JDK!, 'lib')}` };
  for (const o of objects) {
    for (const [name, at] of await ldd(o.hostPath, env)) {
      if (KERNEL.has(name)) continue;
      if (at === null) { notFound.add(name); continue; }
      const target = realpathSync(at);
      if (target.startsWith(real + path.sep)) continue;
      expected.set(name, target);
    }
  }
  const libraries = files.closure.filter((e) => e.type === 'library');
  const captured = new Map(libraries.map((e) => [e.soname!, e.hostPath]));
  expected.set('libgcc_s.so.1', captured.get('libgcc_s.so.1')!); // OSv never provides it: always captured
  t.deepEqual(new Map([...captured].sort()), new Map([...expected].sort()));
  for (const e of libraries) t.true(e.guestPath.startsWith('/usr/lib/'), e.guestPath);
  t.deepEqual(new Set(files.notes.filter((n) => / is not on this host/.test(n)).map((n) => n.split(' ')[0])), notFound);
});

withJdk('jlink: a runtime of the modules asked for, made once and reused', async (t) => {
  const a = javaRuntimeFiles({ kind: 'java', root: work, modules: ['java.base'] });
  t.not(a.home, JDK);
  const { stdout } = await execa(path.join(a.home, 'bin', 'java'), ['--list-modules']);
  t.deepEqual(stdout.trim().split('\n').map((l) => l.split('@')[0]), ['java.base']);
  t.true(a.tree.length < javaRuntimeFiles({ kind: 'java', root: work }).tree.length);
  const b = javaRuntimeFiles({ kind: 'java', root: work, modules: ['java.base'] });
  t.is(b.home, a.home);
  const error = t.throws(() => javaRuntimeFiles({ kind: 'java', root: work, modules: ['no.such.module'] }));
  t.is((error as { code?: string }).code, 'E_JAVA_JLINK');
});

withJdk('the jar reader agrees with unzip; Main-Class and Class-Path from the manifest', async (t) => {
  const jar = path.join(work, 'reader', 'app.jar');
  await makeJar(jar, HELLO, 'Hello');
  const { stdout } = await execa('unzip', ['-p', jar, 'META-INF/MANIFEST.MF'], { encoding: 'buffer', stripFinalNewline: false }).catch(async () => execa(path.join(JDK!, 'bin', 'jar'), ['xf', jar, 'META-INF/MANIFEST.MF'], { cwd: path.dirname(jar), encoding: 'buffer' }).then(async () => ({ stdout: await readFile(path.join(path.dirname(jar), 'META-INF', 'MANIFEST.MF')) })));
  t.deepEqual(readZipEntry(jar, 'META-INF/MANIFEST.MF'), Buffer.from(stdout));
  t.is(readJarManifest(jar)!['Main-Class'], 'Hello');
  t.is(readZipEntry(jar, 'nothing/here'), undefined);
  await writeFile(path.join(work, 'reader', 'not.jar'), 'plain text');
  t.is((t.throws(() => readJarManifest(path.join(work, 'reader', 'not.jar'))) as { code?: string }).code, 'E_JAR');
});

withJdk('zero-config Java: a Maven project\'s runnable jar, a Gradle one, the root\'s; several jars, none, or no Main-Class say what to do', async (t) => {
  const maven = path.join(work, 'maven');
  await write(path.join(maven, 'pom.xml'), '<project/>');
  await write(path.join(maven, 'src', 'main', 'java', 'Hello.java'), HELLO['Hello.java']);
  const noJar = await t.throwsAsync(resolveManifestFromDir(maven));
  t.is((noJar as { code?: string }).code, 'E_JAVA_MAIN');
  t.regex((noJar as Error).message, /mvn package/);
  await makeJar(path.join(maven, 'target', 'hello-1.0.jar'), HELLO, 'Hello');
  await makeJar(path.join(maven, 'target', 'hello-1.0-sources.jar'), HELLO);
  const m = await resolveManifestFromDir(maven);
  t.is(m.detected, 'java-project');
  t.is(m.run!.configSets[0]!.bootcmd, `${JAVA_GUEST_PATH} -jar /target/hello-1.0.jar !`);
  t.true(m.ignore.includes('/src') && m.ignore.includes('/target/classes'));
  t.deepEqual(m.require, [], 'no osv.bootstrap: the ROFS skeleton serves');
  t.like(m.hostRuntime, { kind: 'java', root: maven });
  // Options: memory, JVM options, arguments; a main class with a class path.
  const opts = await resolveManifestFromDir(maven, { java: { xmx: '256m', jvmArgs: ['-Dgreeting=hi there'], args: ['a', 'b'] } });
  t.is(opts.run!.configSets[0]!.bootcmd, `${JAVA_GUEST_PATH} -Xmx256m "-Dgreeting=hi there" -jar /target/hello-1.0.jar a b !`);
  const cls = await resolveManifestFromDir(maven, { java: { main: 'Hello', classpath: ['/target/hello-1.0.jar'], exit: false } });
  t.is(cls.run!.configSets[0]!.bootcmd, `${JAVA_GUEST_PATH} -cp /target/hello-1.0.jar Hello`);
  // A shaded jar beside the plain one wins; two ordinary ones are ambiguous.
  await makeJar(path.join(maven, 'target', 'hello-1.0-jar-with-dependencies.jar'), HELLO, 'Hello');
  t.is((await resolveManifestFromDir(maven)).run!.configSets[0]!.bootcmd, `${JAVA_GUEST_PATH} -jar /target/hello-1.0-jar-with-dependencies.jar !`);
  await makeJar(path.join(maven, 'target', 'other.jar'), HELLO, 'Hello');
  await rm(path.join(maven, 'target', 'hello-1.0-jar-with-dependencies.jar'));
  const several = await t.throwsAsync(resolveManifestFromDir(maven));
  t.is((several as { code?: string }).code, 'E_JAVA_MAIN');
  t.regex((several as Error).message, /several runnable jars/);
  // Gradle's build/libs, the -plain jar left aside.
  const gradle = path.join(work, 'gradle');
  await write(path.join(gradle, 'build.gradle.kts'), 'plugins { java }\n');
  await makeJar(path.join(gradle, 'build', 'libs', 'app-plain.jar'), HELLO);
  await makeJar(path.join(gradle, 'build', 'libs', 'app.jar'), HELLO, 'Hello');
  t.is((await resolveManifestFromDir(gradle)).run!.configSets[0]!.bootcmd, `${JAVA_GUEST_PATH} -jar /build/libs/app.jar !`);
  // A jar without Main-Class, named: says so.
  const named = await t.throwsAsync(resolveManifestFromDir(gradle, { java: { main: 'build/libs/app-plain.jar' } }));
  t.regex((named as Error).message, /no Main-Class/);
  // A runnable jar alone in a folder is a project; a library jar alone is not.
  const bare = path.join(work, 'bare');
  await makeJar(path.join(bare, 'lib.jar'), HELLO);
  t.is((await resolveManifestFromDir(bare)).detected, undefined);
  await makeJar(path.join(bare, 'run.jar'), HELLO, 'Hello');
  t.is((await resolveManifestFromDir(bare)).run!.configSets[0]!.bootcmd, `${JAVA_GUEST_PATH} -jar /run.jar !`);
  t.is((await resolveManifestFromDir(bare, { java: false })).detected, undefined);
});


withJdk('a zero-config Java image: the jar, the JDK at /usr/lib/jvm/java byte for byte, its libraries, OSv settings', async (t) => {
  const app = path.join(work, 'java-image');
  await write(path.join(app, 'pom.xml'), '<project/>');
  await write(path.join(app, 'src', 'main', 'java', 'Hello.java'), HELLO['Hello.java']);
  await makeJar(path.join(app, 'target', 'hello.jar'), HELLO, 'Hello');
  await write(path.join(app, 'target', 'classes', 'Hello.class'), 'compiled');
  const out = await compose(app, {});
  const image = await describeImage(out);
  const entries = new Map(image.rofs!.entries.map((e) => [e.path, e]));
  t.is(image.cmdline, 'runscript /run/default;');
  t.is((await readImageFile(out, '/run/default')).toString(), `${JAVA_GUEST_PATH} -jar /target/hello.jar !`);
  t.true((await readImageFile(out, '/target/hello.jar')).equals(await readFile(path.join(app, 'target', 'hello.jar'))));
  t.false(entries.has('/src/main/java/Hello.java'), 'sources are left out');
  t.false(entries.has('/target/classes/Hello.class'), 'build intermediates are left out');
  const runtime = javaRuntimeFiles({ kind: 'java', root: app });
  for (const e of [...runtime.tree, ...runtime.closure]) {
    const got = entries.get(e.guestPath);
    t.truthy(got, e.guestPath);
    // Layout makes `..` targets absolute, as Capstan does.
    if (e.type === 'symlink') t.is(path.posix.resolve(path.posix.dirname(e.guestPath), got!.target!), path.posix.resolve(path.posix.dirname(e.guestPath), e.target!), e.guestPath);
    else t.is(got?.size, statSync(e.hostPath).size, e.guestPath);
  }
  for (const p of [JAVA_GUEST_PATH, `${JAVA_GUEST_HOME}/lib/libjli.so`, `${JAVA_GUEST_HOME}/lib/jvm.cfg`, `${JAVA_GUEST_HOME}/release`]) {
    t.true((await readImageFile(out, p)).equals(await readFile(path.join(JDK!, p.slice(JAVA_GUEST_HOME.length + 1)))), p);
  }
  t.regex((await readImageFile(out, '/etc/fstab')).toString(), /^none +\/proc +procfs /m, 'the JVM gets /proc');
});

withJdk("Capstan's runtime: java config sets (§2.3) boot the host's JDK under the package's name when it is missing; the package itself when it is there", async (t) => {
  const app = path.join(work, 'capstan-java');
  await makeJar(path.join(app, 'app.jar'), HELLO, 'Hello');
  await write(path.join(app, 'meta', 'run.yaml'), [
    'runtime: java',
    'config_set:',
    '  cls:',
    '    main: main.Hello',
    '  jar:',
    '    main: /app.jar',
    '    xmx: 256m',
    '  full:',
    '    main: com.example.Main',
    '    classpath: [/, /lib/a.jar]',
    '    xms: 128m',
    '    xmx: 1g',
    '    jvm_args: [-Dfoo=bar]',
    '    args: [one]',
    '    env: {PORT: "8080"}',
    'config_set_default: cls',
    '',
  ].join('\n'));
  const warnings: string[] = [];
  const out = await compose(app, { onWarning: (w) => warnings.push(w.code) });
  const run = async (name: string) => (await readImageFile(out, `/run/${name}`)).toString();
  const java = `${JAVA_GUEST_PATH} -Xms$XMS -Xmx$XMX -cp $CLASSPATH $JVM_ARGS $MAIN $ARGS !`;
  t.is(await run('cls'), `--env=CLASSPATH?=/ --env=JVM_ARGS?=-Dx=y --env=MAIN?=main.Hello --env=XMS?=16m --env=XMX?=512m --env=ARGS?= ${java}`);
  t.is(await run('jar'), `--env=XMX?=256m --env=CLASSPATH?=/ --env=JVM_ARGS?=-jar --env=MAIN?=/app.jar --env=XMS?=16m --env=ARGS?= ${java}`);
  t.is(await run('full'), `--env=PORT?=8080 --env=XMS?=128m --env=XMX?=1g --env=CLASSPATH?=/:/lib/a.jar --env=JVM_ARGS?=-Dfoo=bar --env=MAIN?=com.example.Main --env=ARGS?=one ${java}`);
  t.is(await run('java'), `--env=XMS?=16m --env=XMX?=512m --env=CLASSPATH?=/ --env=JVM_ARGS?=-Duser.dir=/ --env=MAIN?=main.Hello --env=ARGS?= ${java}`, "the package's own set");
  t.is((await describeImage(out)).cmdline, 'runscript /run/cls;');
  t.true((await readImageFile(out, JAVA_GUEST_PATH)).equals(await readFile(path.join(JDK!, 'bin', 'java'))));
  t.deepEqual(warnings.filter((w) => w === 'W_RUN_ENV_WORDS'), []);
  // jvm_args with a jar: "-Dfoo=bar -jar" is two words in one variable, which OSv cannot pass.
  await write(path.join(app, 'meta', 'run.yaml'), 'runtime: java\nconfig_set:\n  x:\n    main: /app.jar\n    jvm_args: [-Dfoo=bar]\n');
  const words: string[] = [];
  await resolveManifestFromDir(app, { onWarning: (w) => words.push(`${w.code} ${w.message}`) });
  t.true(words.some((w) => /^W_RUN_ENV_WORDS .*JVM_ARGS is "-Dfoo=bar -jar"/.test(w)), words.join('\n'));
  // Capstan's demo form: native, base openjdk8-zulu-compact1:java, the package required.
  const demo = path.join(work, 'capstan-java-demo');
  await write(path.join(demo, 'meta', 'package.yaml'), 'name: demo\ntitle: Demo\nauthor: me\nrequire: [openjdk8-zulu-compact1]\n');
  await write(path.join(demo, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  burek:\n    base: "openjdk8-zulu-compact1:java"\n    env:\n      CLASSPATH: /src\n      MAIN: package1.Main\nconfig_set_default: burek\n');
  const demoOut = await compose(demo, {});
  t.is((await readImageFile(demoOut, '/run/burek')).toString(),
    `--env=CLASSPATH?=/src --env=MAIN?=package1.Main --env=XMS?=16m --env=XMX?=512m --env=JVM_ARGS?=-Duser.dir=/ --env=ARGS?= ${java}`);
  // With Capstan's package in the repository, it is used, as Capstan would.
  const repo = path.join(work, 'repo-java');
  const pkg = path.join(work, 'openjdk-pkg');
  await write(path.join(pkg, 'meta', 'package.yaml'), 'name: openjdk8-zulu-compact1\ntitle: OpenJDK 1.8.0_112\nauthor: a\n');
  await write(path.join(pkg, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  java:\n    bootcmd: /java.so -Xms$XMS -Xmx$XMX -cp $CLASSPATH $JVM_ARGS $MAIN $ARGS\n    env:\n      XMS: 512m\n      XMX: 512m\n      CLASSPATH: /\n      JVM_ARGS: -Duser.dir=/\n      MAIN: main.Hello\n      ARGS:\n');
  await write(path.join(pkg, 'java.so'), 'old launcher');
  const { buildPackage } = await import('../lib/repository/packages.js');
  const built = await buildPackage(pkg);
  await write(path.join(repo, 'packages', 'openjdk8-zulu-compact1.yaml'), 'name: openjdk8-zulu-compact1\ntitle: OpenJDK\nauthor: a\n');
  await write(path.join(repo, 'packages', 'openjdk8-zulu-compact1.mpm'), await readFile(built.path));
  const withPackage = await compose(demo, {}, repo);
  t.is((await readImageFile(withPackage, '/run/burek')).toString(),
    '--env=CLASSPATH?=/src --env=MAIN?=package1.Main --env=XMS?=512m --env=XMX?=512m --env=JVM_ARGS?=-Duser.dir=/ --env=ARGS?= /java.so -Xms$XMS -Xmx$XMX -cp $CLASSPATH $JVM_ARGS $MAIN $ARGS');
  await t.throwsAsync(readImageFile(withPackage, JAVA_GUEST_PATH));
  // java: false: no stand-in, so the missing package is an error, as in Capstan.
  const failed = await compose(demo, { java: false }).then(() => undefined, (e: Error) => e.message);
  t.regex(failed ?? 'no error', /package "openjdk8-zulu-compact1" is not in the local repository/);
});

withPython('the Python tree: the standard library as find lists it (less tests, IDLE, Tk, ensurepip, site-packages, the static library), lib-dynload\'s closure against ldd', async (t) => {
  const files = pythonRuntimeFiles({ kind: 'python', root: work, venv: false });
  const py = files.install;
  const found = await findFiles(py.stdlib);
  const libpl = py.libpl ? path.relative(py.stdlib, py.libpl) : '\0';
  const isTrimmed = (p: string) => p.split('/').some((part) => ['test', 'tests', 'idle_test'].includes(part)) ||
    /^(idlelib|tkinter|turtledemo|ensurepip|site-packages|dist-packages)(\/|$)/.test(p) || p === 'turtle.py' || p.endsWith('.a') ||
    p === libpl || p.startsWith(libpl + '/') || /^lib-dynload\/(_tkinter|_test|xxlimited)[^/]*\.so$/.test(p);
  const own = files.tree.filter((e) => e.guestPath.startsWith(py.stdlib + '/')).map((e) => e.guestPath.slice(py.stdlib.length + 1)).sort();
  t.deepEqual(own, [...found.files].filter((p) => !isTrimmed(p)).sort());
  t.true(own.some((p) => p.startsWith('lib-dynload/') && p.endsWith('.so')), 'lib-dynload comes along');
  t.true(own.includes('os.py') && own.includes('encodings/__init__.py'));
  // The interpreter where the host has it (its prefix is where it looks), linked from /usr/bin/python3 and /python3.
  t.true(files.closure.some((e) => e.type === 'program' && e.guestPath === py.executable));
  for (const link of [PYTHON_GUEST_PATH, PYTHON_ROOT_LINK]) {
    if (link !== py.executable) t.true(files.tree.some((e) => e.guestPath === link && e.target === py.executable), link);
  }
  // Closure against ldd, for the interpreter and every extension module.
  const expected = new Map<string, string>();
  const notFound = new Set<string>();
  const objects = [py.executable, ...files.tree.filter((e) => e.type === 'file' && e.guestPath.endsWith('.so')).map((e) => e.hostPath)];
  for (const o of objects) {
    for (const [name, at] of await ldd(o)) {
      if (KERNEL.has(name)) continue;
      if (at === null) notFound.add(name); else expected.set(name, realpathSync(at));
    }
  }
  const libraries = files.closure.filter((e) => e.type === 'library');
  const captured = new Map(libraries.map((e) => [e.soname!, e.hostPath]));
  expected.set('libgcc_s.so.1', captured.get('libgcc_s.so.1')!);
  t.deepEqual(new Map([...captured].sort()), new Map([...expected].sort()));
  t.deepEqual(new Set(files.notes.filter((n) => / is not on this host/.test(n)).map((n) => n.split(' ')[0])), notFound);
  t.is(files.run.configSets[0]!.bootcmd, `${PYTHON_GUEST_PATH} $PYTHON_ARGS $MAIN $ARGS !`);
  t.is((files.generated[0]!.contents.toString().match(/procfs/g) ?? []).length, 0, 'no /proc: Python does not need it');
});

test('console scripts become -c programs that run them as pip\'s wrapper would', (t) => {
  t.is(consoleScriptProgram('myapp.cli:main'), 'import sys; from myapp.cli import main; sys.exit(main())');
  t.is(consoleScriptProgram('pkg:App.run'), 'import sys; from pkg import App; sys.exit(App.run())');
  t.is(consoleScriptProgram('pkg.mod:main [extra]'), 'import sys; from pkg.mod import main; sys.exit(main())');
  t.is(consoleScriptProgram('not a spec'), undefined);
  t.is(consoleScriptProgram('os; import x:y'), undefined);
});

withPython('zero-config Python: the entry by the documented order, a src layout, a venv\'s packages, a warning without one', async (t) => {
  const proj = path.join(work, 'py-project');
  await write(path.join(proj, 'pyproject.toml'), '[project]\nname = "svc"\nversion = "1"\n[project.scripts]\nsvc = "svc.cli:main"\n');
  await write(path.join(proj, 'src', 'svc', '__init__.py'), '');
  await write(path.join(proj, 'src', 'svc', 'cli.py'), 'def main():\n    print("svc")\n');
  await write(path.join(proj, 'tests', 'test_x.py'), '');
  const scripts = await resolveManifestFromDir(proj, { python: { venv: false } });
  t.is(scripts.detected, 'python-project');
  t.is(scripts.run!.configSets[0]!.bootcmd, `${PYTHON_GUEST_PATH} -c "import sys; from svc.cli import main; sys.exit(main())" !`);
  t.deepEqual(scripts.run!.configSets[0]!.env, { PYTHONUNBUFFERED: '1', PYTHONPATH: '/src' });
  t.true(scripts.ignore.includes('/tests') && scripts.ignore.includes('/.venv'));
  await write(path.join(proj, 'app.py'), 'print(1)\n');
  t.is((await resolveManifestFromDir(proj, { python: { venv: false } })).run!.configSets[0]!.bootcmd, `${PYTHON_GUEST_PATH} /app.py !`);
  await write(path.join(proj, 'main.py'), 'print(1)\n');
  t.is((await resolveManifestFromDir(proj, { python: { venv: false } })).run!.configSets[0]!.bootcmd, `${PYTHON_GUEST_PATH} /main.py !`, 'main.py before app.py');
  const opts = await resolveManifestFromDir(proj, { python: { venv: false, module: 'svc.cli', pythonArgs: ['-X', 'utf8'], args: ['--port', '80'], exit: false } });
  t.is(opts.run!.configSets[0]!.bootcmd, `${PYTHON_GUEST_PATH} -X utf8 -m svc.cli --port 80`);
  // A package with __main__.py.
  const pkgOnly = path.join(work, 'py-package');
  await write(path.join(pkgOnly, 'requirements.txt'), 'requests==2.0\n');
  await write(path.join(pkgOnly, 'server', '__main__.py'), 'print(1)\n');
  const warnings: string[] = [];
  const m = await resolveManifestFromDir(pkgOnly, { python: { venv: false }, onWarning: (w) => warnings.push(w.message) });
  t.is(m.run!.configSets[0]!.bootcmd, `${PYTHON_GUEST_PATH} -m server !`);
  t.true(warnings.some((w) => /no virtualenv/.test(w)), warnings.join('\n'));
  // Nothing to run: says what to do.
  const none = path.join(work, 'py-none');
  await write(path.join(none, 'requirements.txt'), '');
  const error = await t.throwsAsync(resolveManifestFromDir(none));
  t.is((error as { code?: string }).code, 'E_PYTHON_MAIN');
  // A broken pyproject.toml: where.
  await write(path.join(none, 'pyproject.toml'), '[project\nname = 1\n');
  const toml = await t.throwsAsync(resolveManifestFromDir(none));
  t.is((toml as { code?: string; line?: number }).code, 'E_PYPROJECT');
  t.is((toml as { line?: number }).line, 1);
});

withPython('a zero-config Python image with a venv: the venv\'s packages at the site folder of the interpreter\'s prefix, the venv itself left out', async (t) => {
  const app = path.join(work, 'py-venv');
  await write(path.join(app, 'requirements.txt'), 'greeting\n');
  await write(path.join(app, 'main.py'), 'from greeting import hi\nprint(hi())\n');
  await execa('python3', ['-m', 'venv', '--without-pip', path.join(app, '.venv')]);
  const venvPython = queryPython(undefined, path.join(app, '.venv'), app);
  t.truthy(venvPython.venvSite);
  await write(path.join(venvPython.venvSite!, 'greeting', '__init__.py'), 'def hi():\n    return "hi"\n');
  await write(path.join(venvPython.venvSite!, 'pip', '__init__.py'), '');
  const out = await compose(app, {});
  const entries = new Map((await describeImage(out)).rofs!.entries.map((e) => [e.path, e]));
  t.is((await readImageFile(out, '/run/default')).toString(), `--env=PYTHONUNBUFFERED?=1 ${PYTHON_GUEST_PATH} /main.py !`);
  t.is((await readImageFile(out, path.posix.join(venvPython.siteDir, 'greeting', '__init__.py'))).toString(), 'def hi():\n    return "hi"\n');
  t.false(entries.has(path.posix.join(venvPython.siteDir, 'pip', '__init__.py')), 'pip is left out');
  t.false([...entries.keys()].some((p) => p.startsWith('/.venv')), 'the venv folder is not copied as it is');
  t.true(entries.has(path.posix.join(venvPython.stdlib, 'os.py')));
  t.is(entries.get(PYTHON_ROOT_LINK)?.target, venvPython.executable);
  t.true((await readImageFile(out, venvPython.executable)).equals(await readFile(venvPython.executable)));
});

withPython("Capstan's runtime: python (§2.3) and the recommended native + osv.python3x + bootcmd python3 get the host's Python 3; python-2.7 from the repository when it is there", async (t) => {
  const app = path.join(work, 'capstan-python');
  await write(path.join(app, 'app.py'), 'print(1)\n');
  await write(path.join(app, 'meta', 'run.yaml'), [
    'runtime: python',
    'config_set:',
    '  plain:',
    '    main: /app.py',
    '  full:',
    '    main: /app.py',
    '    args: [one]',
    '    python_args: [-u]',
    '  repl:',
    '    shell: true',
    'config_set_default: plain',
    '',
  ].join('\n'));
  const out = await compose(app, {});
  const run = async (name: string) => (await readImageFile(out, `/run/${name}`)).toString();
  const python = `${PYTHON_GUEST_PATH} $PYTHON_ARGS $MAIN $ARGS !`;
  const home = `--env=PYTHONHOME?=${PYTHON!.basePrefix} --env=PYTHONDONTWRITEBYTECODE?=1`;
  t.is(await run('plain'), `--env=PYTHON_ARGS?=-O --env=MAIN?=/app.py ${home} --env=ARGS?= ${python}`);
  t.is(await run('full'), `--env=PYTHON_ARGS?=-u --env=MAIN?=/app.py --env=ARGS?=one ${home} ${python}`);
  t.is(await run('repl'), `--env=PYTHON_ARGS?=-O --env=MAIN?=- --env=ARGS?= ${home} ${python}`, 'the shell: MAIN is -');
  t.is(await run('python'), `${home} --env=PYTHON_ARGS?=-O --env=MAIN?=- --env=ARGS?= ${python}`);
  t.true(existsSync(PYTHON!.executable));
  t.true((await readImageFile(out, PYTHON!.executable)).equals(await readFile(PYTHON!.executable)));
  // The recommended form: native, osv.python3x required, bootcmd python3 (OSv finds /python3).
  const modern = path.join(work, 'capstan-python3');
  await write(path.join(modern, 'app.py'), 'print(1)\n');
  await write(path.join(modern, 'meta', 'package.yaml'), 'name: app\ntitle: App\nauthor: me\nrequire: [osv.python3x]\n');
  await write(path.join(modern, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  default:\n    bootcmd: python3 /app.py\n');
  const modernOut = await compose(modern, {});
  t.is((await readImageFile(modernOut, '/run/default')).toString(), 'python3 /app.py');
  t.is((await describeImage(modernOut)).rofs!.entries.find((e) => e.path === PYTHON_ROOT_LINK)?.target, PYTHON!.executable);
  // python-2.7 in the repository: Capstan's package.
  const repo = path.join(work, 'repo-python');
  const pkg = path.join(work, 'python-pkg');
  await write(path.join(pkg, 'meta', 'package.yaml'), 'name: python-2.7\ntitle: Python 2.7\nauthor: a\n');
  await write(path.join(pkg, 'meta', 'run.yaml'), 'runtime: native\nconfig_set:\n  python:\n    bootcmd: /python $PYTHON_ARGS $MAIN $ARGS\n    env:\n      PYTHONHOME: /pyenv\n      PYTHON_ARGS: -O\n      MAIN: "-"\n      ARGS:\n');
  await write(path.join(pkg, 'python'), 'old python');
  const { buildPackage } = await import('../lib/repository/packages.js');
  const built = await buildPackage(pkg);
  await write(path.join(repo, 'packages', 'python-2.7.yaml'), 'name: python-2.7\ntitle: Python\nauthor: a\n');
  await write(path.join(repo, 'packages', 'python-2.7.mpm'), await readFile(built.path));
  const old = await compose(app, {}, repo);
  t.is((await readImageFile(old, '/run/plain')).toString(), '--env=PYTHON_ARGS?=-O --env=MAIN?=/app.py --env=PYTHONHOME?=/pyenv --env=ARGS?= /python $PYTHON_ARGS $MAIN $ARGS');
});
