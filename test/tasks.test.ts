// The ready gulp tasks through the real `gulp` binary in a user's project with the two-line
// gulpfile: a fresh CAPSTAN_ROOT pulls the loader (the stand-in, from a local releases-shaped
// server), `unikernel` writes the image, `unikernel:run` boots it and stops on Ctrl+C with no
// QEMU left, `unikernel:watch` rebuilds once for several quick saves, drops deleted files and
// keeps the last good VM through a broken manifest; `--json` lines parse and cover the run.
import test from 'ava';
import { existsSync } from 'node:fs';
import { appendFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describeImage } from '../lib/image/describe.js';
import { pidAlive } from '../lib/vm/shutdown.js';
import { userProject, type Project } from './helpers/project.js';

const NATIVE_APP = {
  'meta/package.yaml': 'name: app\ntitle: App\nauthor: tests\n',
  'meta/run.yaml': 'runtime: native\nconfig_set:\n  default:\n    bootcmd: /app.so hello\n',
  'app.so': 'not really a program',
  'data/a.txt': 'a\n',
  'data/b.txt': 'b\n',
};

type Event = { event: string; [k: string]: unknown };

/**
 * Ends a gulp child the way a user does (Ctrl+C), then for good; and makes sure no QEMU it
 * started outlives the test even if the child was killed before it could stop them.
 */
function cleanup(t: import('ava').ExecutionContext, child: ReturnType<Project['gulp']>, seen: () => Event[]): void {
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await Promise.race([child.catch(() => {}), delay(10_000)]);
      child.kill('SIGKILL');
    }
    for (const e of seen()) {
      const pid = e.event === 'vm-start' ? e.pid as number : undefined;
      if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
}

/** Reads JSON events from a running process's stdout as they come. */
function events(child: ReturnType<Project['gulp']>): { all: Event[]; next(name: string, after?: number, timeoutMs?: number): Promise<Event> } {
  const all: Event[] = [];
  let partial = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.startsWith('{')) all.push(JSON.parse(line) as Event);
      for (const w of waiters.splice(0)) w();
    }
  });
  return {
    all,
    async next(name, after = 0, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = all.slice(after).find((e) => e.event === name);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no ${name} event within ${timeoutMs} ms; got ${all.map((e) => e.event).join(', ')}`);
        await Promise.race([new Promise<void>((r) => waiters.push(r)), delay(200)]);
      }
    },
  };
}

test('gulp unikernel on a fresh machine pulls the loader once, writes the image; gulp --tasks describes every task', async (t) => {
  const p = await userProject(t, NATIVE_APP);
  const first = await p.gulp(['unikernel']);
  t.is(first.exitCode, 0, String(first.stdout) + String(first.stderr));
  const out = path.join(p.root, 'build', 'app.qcow2');
  const image = await describeImage(out);
  t.is(image.cmdline, 'runscript /run/default;');
  t.true(image.rofs!.entries.some((e) => e.path === '/app.so'));
  t.true(existsSync(path.join(p.env.CAPSTAN_ROOT, 'repository', 'osv-loader', 'osv-loader.qemu')));
  t.true(existsSync(path.join(p.env.CAPSTAN_ROOT, 'repository', 'osv-loader', 'osv-loader.elf.x86_64')));
  t.regex(String(first.stdout), /pull: osv-loader \(v0\.57\.0\)/, 'says it pulled');
  const requests = p.server.requests.length;
  const second = await p.gulp(['unikernel']);
  t.is(second.exitCode, 0);
  t.is(p.server.requests.length, requests, 'the second run downloads nothing');

  const tasks = await p.gulp(['--tasks']);
  for (const name of ['unikernel', 'unikernel:run', 'unikernel:watch', 'unikernel:clean', 'unikernel:instances', 'unikernel:stop']) {
    t.regex(String(tasks.stdout), new RegExp(`${name.replace(':', '\\:')}\\s`), name);
  }
  t.regex(String(tasks.stdout), /--forward <host:guest>\s+.*forward a host port/);
  t.regex(String(tasks.stdout), /Compose the project into an OSv unikernel image/);
  // --offline with nothing pulled: says what is missing.
  await rm(p.env.CAPSTAN_ROOT, { recursive: true });
  const offline = await p.gulp(['unikernel', '--offline']);
  t.not(offline.exitCode, 0);
  t.regex(String(offline.stdout) + String(offline.stderr), /is not in the local repository[\s\S]*offline mode forbids downloading it/);
});

test('an error prints once: file:line:column, what is wrong, what to do; no Details block of undefined fields', async (t) => {
  const p = await userProject(t, { ...NATIVE_APP, 'meta/run.yaml': 'runtime: native\nconfig_set:\n  default:\n    bootcmd: [\n' });
  const result = await p.gulp(['unikernel']);
  t.not(result.exitCode, 0);
  const text = String(result.stdout) + String(result.stderr);
  t.regex(text, /meta\/run\.yaml:\d+:\d+: invalid YAML/);
  t.notRegex(text, /Details:|line: undefined|shortMessage|column: undefined/);
  t.is(text.match(/invalid YAML/g)?.length, 1, text);
});

test('gulp unikernel:run --json: the console on stderr, events on stdout; Ctrl+C leaves no QEMU', async (t) => {
  const p = await userProject(t, NATIVE_APP);
  t.timeout(240_000);
  const child = p.gulp(['unikernel:run', '--json', '--silent', '--forward', '0:8080', '--memory', '256M']);
  const ev = events(child);
  cleanup(t, child, () => ev.all);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const start = await ev.next('vm-start');
  await ev.next('vm-ready');
  const pid = start.pid as number;
  t.true(pidAlive(pid));
  const forwards = start.forwards as Array<{ host: number; guest: number }>;
  t.is(forwards[0]?.guest, 8080);
  t.true(forwards[0]!.host > 0, 'host port 0 was given a real port, reported in the event');
  child.kill('SIGINT');
  const result = await child;
  for (let i = 0; i < 50 && pidAlive(pid); i++) await delay(100);
  t.false(pidAlive(pid), 'no QEMU left');
  t.regex(stderr, /CMDLINE:\S+ runscript \/run\/default;/, 'the guest console went to stderr');
  for (const line of String(result.stdout).split('\n').filter(Boolean)) t.notThrows(() => JSON.parse(line), line);
  const names = ev.all.map((e) => e.event);
  for (const name of ['step-start', 'step-end', 'download', 'pull', 'image', 'vm-start', 'vm-ready']) t.true(names.includes(name), name);
  t.true(ev.all.every((e) => typeof e.time === 'string' && !Number.isNaN(Date.parse(e.time as string))));
  const image = ev.all.find((e) => e.event === 'image')!;
  t.is(image.format, 'qcow2');
  t.is(image.path, path.join(p.root, 'build', 'app.qcow2'));
});

test('gulp unikernel:watch: three quick saves are one rebuild; a deleted file leaves the image; a broken manifest keeps the old VM', async (t) => {
  const p = await userProject(t, NATIVE_APP);
  t.timeout(240_000);
  const child = p.gulp(['unikernel:watch', '--json', '--silent']);
  const ev = events(child);
  cleanup(t, child, () => ev.all);
  const firstStart = await ev.next('vm-start');
  await ev.next('vm-ready');
  await ev.next('watching'); // saves before it may be missed
  const count = (name: string) => ev.all.filter((e) => e.event === name).length;
  t.is(count('image'), 1);

  const mark = ev.all.length;
  for (let i = 0; i < 3; i++) { await appendFile(path.join(p.root, 'data', 'a.txt'), `edit ${i}\n`); await delay(40); }
  const secondStart = await ev.next('vm-start', mark);
  await ev.next('vm-ready', mark);
  await delay(1500); // time for any further (wrong) rebuild to show
  t.is(count('image'), 2, 'one rebuild for three saves');
  t.false(pidAlive(firstStart.pid as number), 'the old VM was stopped');
  t.true(pidAlive(secondStart.pid as number));

  const mark2 = ev.all.length;
  await rm(path.join(p.root, 'data', 'b.txt'));
  await ev.next('vm-ready', mark2);
  const image = await describeImage(path.join(p.root, 'build', 'app.qcow2'));
  t.false(image.rofs!.entries.some((e) => e.path === '/data/b.txt'), 'the deleted file is gone from the image');
  t.true(image.rofs!.entries.some((e) => e.path === '/data/a.txt'));
  const running = ev.all.filter((e) => e.event === 'vm-start').at(-1)!.pid as number;

  const mark3 = ev.all.length;
  await writeFile(path.join(p.root, 'meta', 'run.yaml'), 'runtime: native\nconfig_set: [\n');
  const error = await ev.next('error', mark3);
  t.regex(String(error.file), /meta\/run\.yaml$/);
  t.is(typeof error.line, 'number');
  await delay(500);
  t.true(pidAlive(running), 'the last good VM keeps running');
  child.kill('SIGINT');
  await child;
  for (let i = 0; i < 50 && pidAlive(running); i++) await delay(100);
  t.false(pidAlive(running), 'Ctrl+C leaves nothing running');
});
