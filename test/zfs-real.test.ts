// ZFS images against real OSv — runs only when you point to the binaries (none may be
// committed or fetched in CI):
//   OSV_ZFS_BUILDER=/path/to/zfs_builder-stripped.elf   (OSv's build/release, or the release asset gunzipped)
//   OSV_LOADER=/path/to/loader.img                      (a fs=zfs build, e.g. the release osv-loader.qemu.x86_64)
//   OSV_KERNEL=/path/to/loader-stripped.elf             (optional: also boots with -kernel, and checks our decompression)
// Under TCG (KVM cannot run OSv on every host). The app is a C program compiled here that
// appends a line to /data/x.txt on the ZFS root, then prints the file and /data/msg.txt, so a
// reboot shows whether the write persisted; --update then changes msg.txt alone.
import test from 'ava';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { openDiskImage } from '../lib/image/disk.js';
import { bootfsFile, inspectKernel, kernelOfLoader } from '../lib/image/osv-kernel.js';
import { readZfsLabel } from '../lib/image/zfs-label.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { writeImage } from '../lib/steps/write-image.js';
import { boot } from '../lib/vm/index.js';
import { runSteps, vinylFile } from './helpers/streams.js';

const builder = process.env.OSV_ZFS_BUILDER;
const loader = process.env.OSV_LOADER;
const kernel = process.env.OSV_KERNEL;
const withOsv = builder && loader ? test.serial : test.skip;
const withKernel = builder && loader && kernel ? test.serial : test.skip;

const APP_C = String.raw`
#include <stdio.h>
int main(int argc, char **argv) {
  FILE *f = fopen("/data/x.txt", "a");
  if (!f) { perror("open /data/x.txt"); return 1; }
  fprintf(f, "run %s\n", argc > 1 ? argv[1] : "?");
  fclose(f);
  char line[256];
  f = fopen("/data/x.txt", "r");
  while (f && fgets(line, sizeof line, f)) printf("X:%s", line);
  if (f) fclose(f);
  f = fopen("/data/msg.txt", "r");
  while (f && fgets(line, sizeof line, f)) printf("MSG:%s", line);
  if (f) fclose(f);
  return 0;
}`;

interface App { dir: string; binary: Buffer; tools: Record<string, Buffer> }

async function app(t: { teardown(fn: () => Promise<void>): void }): Promise<App> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-zfs-real-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'app.c'), APP_C);
  await execa('gcc', ['-O2', '-fPIE', '-pie', '-o', path.join(dir, 'app'), path.join(dir, 'app.c')]);
  // --update needs cpiod and the libraries it links in the image: what osv.bootstrap ships;
  // taken here from the builder's own bootfs.
  const b = await readFile(builder!);
  const bootfs = inspectKernel(b).bootfs!;
  const tools: Record<string, Buffer> = {};
  for (const name of ['/tools/cpiod.so', '/libzfs.so', '/libuutil.so']) tools[name] = bootfsFile(b, bootfs, name)!;
  return { dir, binary: await readFile(path.join(dir, 'app')), tools };
}

function files(a: App, msg: string) {
  return [
    vinylFile(a.dir, 'app', a.binary, 0o755),
    ...Object.entries(a.tools).map(([p, data]) => vinylFile(a.dir, p.slice(1), data, 0o755)),
    vinylFile(a.dir, 'data/msg.txt', msg),
  ];
}

async function compose(a: App, out: string, msg: string, extra: Record<string, unknown> = {}): Promise<{ ms: number; log: string }> {
  const log = new PassThrough();
  let text = '';
  log.on('data', (c: Buffer) => { text += c.toString(); });
  const started = Date.now();
  await runSteps(files(a, msg), layoutFiles({ silent: true }), writeImage({
    out, loader: loader!, fs: 'zfs', size: '256M', zfsBuilder: builder!, cmdline: '/app', accel: 'tcg', logTo: log, ...extra,
  }));
  return { ms: Date.now() - started, log: text };
}

/** Boots the image (a persisted instance, so its qcow2 overlay keeps what the app wrote) and returns the console. */
async function run(a: App, image: string, name: string, bootKernel: string | false): Promise<{ out: string; ms: number }> {
  const started = Date.now();
  const vm = await boot(image, { root: a.dir, name, persist: true, kernel: bootKernel, accel: 'tcg', memory: '512M', cpus: 1, network: 'none', readyTimeout: 120_000, silent: true, execute: '/app again' });
  let out = '';
  vm.on('line', (line) => { out += `${line}\n`; });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([vm.exited, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no exit in time:\n${out}`)), 120_000); })])
    .finally(() => { clearTimeout(timer); return vm.stop().catch(() => undefined); });
  return { out, ms: Date.now() - started };
}

withKernel('the loader\'s kernel, decompressed by us, is OSv\'s loader-stripped.elf; both loader and builder mount dataset osv', async (t) => {
  const k = kernelOfLoader(await readFile(loader!))!;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.is(sha(k), sha(await readFile(kernel!)));
  t.like(inspectKernel(k), { zfs: true, zfsRootDataset: 'osv' });
  t.like(inspectKernel(await readFile(builder!)), { zfs: true, zfsRootDataset: 'osv' });
});

withOsv('a ZFS image from OSv\'s builder boots, the app\'s write survives a reboot, and --update changes one file', async (t) => {
  const a = await app(t);
  const image = path.join(a.dir, 'app.qemu');
  const built = await compose(a, image, 'first\n');
  t.log(`build: ${built.ms} ms (${built.log.trim().split('\n').pop()})`);
  await t.notThrowsAsync(execa('qemu-img', ['check', image]));
  const disk = await openDiskImage(image);
  const mbr = await disk.read(0, 512);
  const label = await readZfsLabel(disk, mbr.readUInt32LE(0x1ce + 8) * 512, mbr.readUInt32LE(0x1ce + 12) * 512);
  await disk.close();
  t.like(label, { name: 'osv', state: 'exported' });

  const first = await run(a, image, 'zfs-disk', false);
  t.log(`first boot (disk): ${first.ms} ms`);
  t.regex(first.out, /X:run again\n(?!X:)/);
  t.regex(first.out, /MSG:first/);
  const second = await run(a, image, 'zfs-disk', false);
  t.log(`second boot (disk): ${second.ms} ms`);
  t.regex(second.out, /X:run again\nX:run again\n/, 'the line written at the first boot is still there');

  const updated = await compose(a, image, 'second\n', { update: true });
  t.log(`update of one file: ${updated.ms} ms (${updated.log.trim().split('\n').pop()})`);
  t.regex(updated.log, /ZFS updated: 1 sent, \d+ unchanged/);
  const fresh = await run(a, image, 'zfs-after-update', kernel ?? false);
  t.log(`boot after update (${kernel ? '-kernel' : 'disk'}): ${fresh.ms} ms`);
  t.regex(fresh.out, /MSG:second/);
  t.regex(fresh.out, /X:run again\n(?!X:)/, 'a new instance of the updated image starts from its content');
});

withKernel('a ZFS image boots through -kernel with its command line in -append', async (t) => {
  const a = await app(t);
  const image = path.join(a.dir, 'app.qemu');
  await compose(a, image, 'kernel\n');
  const first = await run(a, image, 'zfs-kernel', kernel!);
  t.regex(first.out, /MSG:kernel/);
  const again = await run(a, image, 'zfs-kernel', kernel!);
  t.regex(again.out, /X:run again\nX:run again\n/);
});
