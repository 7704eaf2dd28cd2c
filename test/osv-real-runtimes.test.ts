// Java and Python from the host on a real OSv kernel — runs only when you point to one (CI has none):
//   OSV_LOADER=/path/to/loader.img OSV_KERNEL=/path/to/loader-stripped.elf
// Projects without Capstan files are composed with the host's JDK and Python 3 and booted with
// -kernel under TCG: a jar whose main returns and a Python script that ends power the VM off;
// an HTTP server of each answers through a forwarded port; Capstan's runtime: java boots too.
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compose } from '../lib/commands/compose.js';
import type { UnikernelOptions } from '../lib/commands/options.js';
import { findJavaHome } from '../lib/runtimes/java.js';
import { queryPython } from '../lib/runtimes/python.js';
import { boot } from '../lib/vm/boot.js';

const loader = process.env.OSV_LOADER;
const kernel = process.env.OSV_KERNEL;
const JDK = (() => { try { return findJavaHome(undefined, process.cwd()); } catch { return undefined; } })();
const hasPython = (() => { try { return Boolean(queryPython(undefined, undefined, process.cwd())); } catch { return false; } })();
const realJava = loader && kernel && JDK && existsSync(path.join(JDK, 'bin', 'javac')) ? test.serial : test.skip;
const realPython = loader && kernel && hasPython ? test.serial : test.skip;

async function project(t: ExecutionContext, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'osv-real-rt-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

/** javac + jar with Main-Class, as `mvn package` leaves it in target/. */
async function buildJar(dir: string, source: string, main: string, jar: string): Promise<void> {
  await execa(path.join(JDK!, 'bin', 'javac'), ['-d', path.join(dir, 'target', 'classes'), path.join(dir, source)]);
  await execa(path.join(JDK!, 'bin', 'jar'), ['--create', '--file', path.join(dir, jar), '--main-class', main, '-C', path.join(dir, 'target', 'classes'), '.']);
}

/** Boots, collects the console, and waits (at most 120 s) for the guest to power off. */
async function runToEnd(t: ExecutionContext, dir: string, options: UnikernelOptions = {}) {
  const image = await compose({ cwd: dir, loader, silent: true, ...options });
  const lines: string[] = [];
  const started = Date.now();
  const vm = await boot({ path: image.path, info: image }, { kernel, accel: 'tcg', readyTimeout: 120_000, silent: true });
  vm.on('line', (l: string) => lines.push(l));
  t.teardown(() => vm.stop({ graceMs: 200 }));
  const exit = await Promise.race([vm.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 120_000))]);
  t.log(`powered off ${(Date.now() - started) / 1000} s after boot(); image ${(statSync(image.path).size / 1e6).toFixed(0)} MB`);
  return { exit, lines };
}

async function serveAndFetch(t: ExecutionContext, dir: string, options: UnikernelOptions = {}): Promise<string> {
  const image = await compose({ cwd: dir, loader, silent: true, ...options });
  const started = Date.now();
  const vm = await boot({ path: image.path, info: image }, {
    kernel, accel: 'tcg', forward: ['0:8080'], ready: /LISTENING/, readyTimeout: 150_000, silent: true, memory: '1G',
  });
  t.teardown(() => vm.stop({ graceMs: 500 }));
  await vm.ready;
  const port = vm.forwards[0]!.host;
  let body = '';
  for (let i = 0; i < 50 && !body; i++) {
    try { body = await (await fetch(`http://127.0.0.1:${port}/`)).text(); } catch { await new Promise((r) => setTimeout(r, 200)); }
  }
  t.log(`first response ${(Date.now() - started) / 1000} s after boot(); image ${(statSync(image.path).size / 1e6).toFixed(0)} MB`);
  return body;
}

const JAVA_SERVER = [
  'import com.sun.net.httpserver.HttpServer;',
  'import java.net.InetSocketAddress;',
  'public class Server {',
  '  public static void main(String[] args) throws Exception {',
  '    HttpServer server = HttpServer.create(new InetSocketAddress(8080), 0);',
  '    server.createContext("/", (x) -> { byte[] b = ("hello from java " + System.getProperty("java.version")).getBytes(); x.sendResponseHeaders(200, b.length); x.getResponseBody().write(b); x.close(); });',
  '    server.start();',
  '    System.out.println("LISTENING");',
  '  }',
  '}',
  '',
].join('\n');

realJava('a jar whose main prints and returns powers the VM off, status 0', async (t) => {
  const dir = await project(t, {
    'pom.xml': '<project/>',
    'src/main/java/Hello.java': 'public class Hello { public static void main(String[] a) { System.out.println("HELLO " + System.getProperty("java.version") + " " + Runtime.getRuntime().availableProcessors()); } }\n',
  });
  await buildJar(dir, 'src/main/java/Hello.java', 'Hello', 'target/hello-1.0.jar');
  const { exit, lines } = await runToEnd(t, dir);
  t.truthy(exit, 'the VM powered off by itself');
  t.is(exit?.endedBy, 'guest');
  t.is(exit?.exitCode, 0);
  t.true(lines.some((l) => /^HELLO \d+(\.\d+)* 2$/.test(l)), lines.join('\n'));
});

realJava('a Java HTTP server (com.sun.net.httpserver) answers through a forwarded port', async (t) => {
  const dir = await project(t, { 'pom.xml': '<project/>', 'src/main/java/Server.java': JAVA_SERVER });
  await buildJar(dir, 'src/main/java/Server.java', 'Server', 'target/server-1.0.jar');
  t.regex(await serveAndFetch(t, dir), /^hello from java \d+/);
});

realJava('the same server on a jlink\'ed runtime (java.base, jdk.httpserver)', async (t) => {
  const dir = await project(t, { 'pom.xml': '<project/>', 'src/main/java/Server.java': JAVA_SERVER });
  await buildJar(dir, 'src/main/java/Server.java', 'Server', 'target/server-1.0.jar');
  t.regex(await serveAndFetch(t, dir, { java: { modules: ['java.base', 'jdk.httpserver'] } }), /^hello from java \d+/);
});

realJava("Capstan's runtime: java boots the host's JDK in place of openjdk8-zulu-compact1, and ends", async (t) => {
  const dir = await project(t, {
    'Hello.java': 'public class Hello { public static void main(String[] a) { System.out.println("CAPSTAN " + a[0]); } }\n',
    'meta/run.yaml': 'runtime: java\nconfig_set:\n  hello:\n    main: Hello\n    args: [one]\n    xmx: 256m\nconfig_set_default: hello\n',
  });
  await execa(path.join(JDK!, 'bin', 'javac'), ['-d', dir, path.join(dir, 'Hello.java')]);
  const { exit, lines } = await runToEnd(t, dir, { bootstrap: false, pullMissing: false });
  t.is(exit?.endedBy, 'guest');
  t.true(lines.includes('CAPSTAN one'), lines.join('\n'));
});

realPython('a Python script that ends powers the VM off, status 0', async (t) => {
  const dir = await project(t, {
    'pyproject.toml': '[project]\nname = "hello"\nversion = "1"\n',
    'main.py': 'import os, platform, ssl, sqlite3, sys\nprint("HELLO", platform.python_version(), os.cpu_count(), sys.argv[1:])\n',
  });
  const { exit, lines } = await runToEnd(t, dir, { python: { args: ['x'] } });
  t.truthy(exit, 'the VM powered off by itself');
  t.is(exit?.endedBy, 'guest');
  t.is(exit?.exitCode, 0);
  t.true(lines.some((l) => /^HELLO 3\.\d+\.\d+ 2 \['x'\]$/.test(l)), lines.join('\n'));
});

realPython('a Python HTTP server with a package from its venv answers through a forwarded port', async (t) => {
  const dir = await project(t, {
    'requirements.txt': 'greeting\n',
    'app.py': [
      'import http.server, platform',
      'from greeting import hi',
      'class H(http.server.BaseHTTPRequestHandler):',
      '    def do_GET(self):',
      '        b = f"{hi()} on python {platform.python_version()}".encode()',
      '        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)',
      'srv = http.server.ThreadingHTTPServer(("", 8080), H)',
      'print("LISTENING")',
      'srv.serve_forever()',
      '',
    ].join('\n'),
  });
  await execa('python3', ['-m', 'venv', '--without-pip', path.join(dir, '.venv')]);
  const site = queryPython(undefined, path.join(dir, '.venv'), dir).venvSite!;
  await mkdir(path.join(site, 'greeting'), { recursive: true });
  await writeFile(path.join(site, 'greeting', '__init__.py'), 'def hi():\n    return "hello from a venv package"\n');
  t.regex(await serveAndFetch(t, dir), /^hello from a venv package on python 3\.\d+\.\d+$/);
});
