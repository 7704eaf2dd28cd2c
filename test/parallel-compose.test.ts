// Twenty composes of different apps at once — in one process (no shared state between builds)
// and in twenty processes (no shared files: temp names, the pulled loader) — all give valid
// images: each read back file for file with our reader, and checked by qemu-img.
import test from 'ava';
import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compose } from '../lib/commands/compose.js';
import { readImageFile, describeImage } from '../lib/image/describe.js';
import { repo } from './helpers/build.js';
import { buildStandInLoader } from './helpers/stand-in.js';

const APPS = 20;

async function makeApps(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-parallel-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const apps: string[] = [];
  for (let a = 0; a < APPS; a++) {
    const app = path.join(dir, `app${a}`);
    await mkdir(path.join(app, 'meta'), { recursive: true });
    await writeFile(path.join(app, 'meta', 'run.yaml'), `runtime: native\nconfig_set:\n  default:\n    bootcmd: /bin/app${a}\n`);
    for (let f = 0; f < 150; f++) {
      await mkdir(path.join(app, `d${f % 7}`), { recursive: true });
      await writeFile(path.join(app, `d${f % 7}`, `f${f}.txt`), `app ${a} file ${f} `.repeat(1 + ((a * 31 + f * 17) % 400)));
    }
    apps.push(app);
  }
  return { dir, loader, apps };
}

async function check(t: import('ava').ExecutionContext, app: string, image: string, a: number): Promise<void> {
  const description = await describeImage(image);
  t.is(description.cmdline, 'runscript /run/default;');
  t.is((await readImageFile(image, '/run/default')).toString(), `/bin/app${a}`, `image of app ${a}`);
  const files = description.rofs!.entries.filter((e) => e.type === 'file' && e.path.startsWith('/d'));
  t.is(files.length, 150);
  for (const f of [0, 77, 149]) {
    const p = `/d${f % 7}/f${f}.txt`;
    t.true((await readImageFile(image, p)).equals(await readFile(path.join(app, p))), `${p} of app ${a}`);
  }
  const { exitCode, stdout } = await execa('qemu-img', ['check', image], { reject: false });
  t.is(exitCode, 0, String(stdout));
}

test('20 composes in one process at once', async (t) => {
  const { dir, loader, apps } = await makeApps(t);
  const images = await Promise.all(apps.map((app, a) => compose({
    cwd: app, loader, root: path.join(dir, 'root'), offline: true, silent: true, bootstrap: false, out: path.join(dir, `one-${a}.qcow2`),
  })));
  for (const [a, image] of images.entries()) await check(t, apps[a]!, image.path, a);
});

test('20 composes in 20 processes at once', async (t) => {
  const { dir, loader, apps } = await makeApps(t);
  const script = (app: string, out: string) => `
    import { compose } from ${JSON.stringify(path.join(repo, 'lib/commands/compose.ts'))};
    await compose(${JSON.stringify({ cwd: app, loader, root: path.join(dir, 'root'), offline: true, silent: true, bootstrap: false, out })});
  `;
  const outs = apps.map((_, a) => path.join(dir, `proc-${a}.qcow2`));
  const results = await Promise.all(apps.map((app, a) => execa(process.execPath, ['--import=tsx', '--input-type=module', '-e', script(app, outs[a]!)], { cwd: repo, reject: false, timeout: 120_000 })));
  for (const [a, r] of results.entries()) t.is(r.exitCode, 0, `process ${a}: ${String(r.stderr)}`);
  for (const [a, out] of outs.entries()) await check(t, apps[a]!, out, a);
});
