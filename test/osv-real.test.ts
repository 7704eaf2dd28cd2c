// Fidelity against a real OSv kernel — runs only when you point to one:
//   OSV_LOADER=/path/to/osv-loader.qemu.x86_64 (or OSv's build/release/loader.img)
//   OSV_KERNEL=/path/to/loader-stripped.elf     (optional: also checks the -kernel fast path)
// CI has no OSv binary (none may be fetched or committed), so there the stand-in boot sector
// tests (write-image/vm) check our layout; these check that real OSv boots what we write.
import test from 'ava';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import gulp from 'gulp';
import { pipeline } from 'node:stream/promises';
import { fetchPackages, layoutFiles, resolveManifest, writeImage } from '../lib/index.js';
import { boot } from '../lib/vm/index.js';

const loader = process.env.OSV_LOADER;
const kernel = process.env.OSV_KERNEL;
const withLoader = loader ? test.serial : test.skip;
const withKernel = loader && kernel ? test.serial : test.skip;

// A host PIE runs on OSv unchanged (the kernel provides libc). It prints its arguments, an
// environment variable set by our /run script, a file from the image and the root listing.
const HELLO_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
int main(int argc, char **argv) {
  printf("HELLO argc=%d argv1=%s GREETING=%s\n", argc, argc > 1 ? argv[1] : "", getenv("GREETING"));
  FILE *f = fopen(argv[1], "r"); char line[256];
  if (f) { while (fgets(line, sizeof line, f)) printf("FILE:%s", line); fclose(f); }
  DIR *d = opendir("/"); struct dirent *e;
  while (d && (e = readdir(d))) printf("ROOT:%s\n", e->d_name);
  return 0;
}`;

async function composeApp(t: { teardown(fn: () => unknown): void }, format: 'raw' | 'qcow2' | 'vmdk' | 'vdi'): Promise<{ image: string; root: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'osv-real-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const app = path.join(dir, 'app');
  await fs.mkdir(path.join(app, 'meta'), { recursive: true });
  await fs.writeFile(path.join(dir, 'hello.c'), HELLO_C);
  await execa('gcc', ['-O2', '-fPIE', '-pie', '-o', path.join(app, 'hello'), path.join(dir, 'hello.c')]);
  await fs.writeFile(path.join(app, 'data.txt'), 'bytes from our ROFS\n');
  await fs.writeFile(path.join(app, 'meta', 'package.yaml'), 'name: test.hello\ntitle: Hello\nauthor: tests\n');
  await fs.writeFile(path.join(app, 'meta', 'run.yaml'),
    'runtime: native\nconfig_set:\n  default:\n    bootcmd: /hello /data.txt\n    env:\n      GREETING: soft\n');
  const image = path.join(dir, `app.${format}`);
  await pipeline(
    gulp.src('**/*', { cwd: app, base: app, dot: true, encoding: false, resolveSymlinks: false }),
    resolveManifest({ bootstrap: false }), fetchPackages({ root: dir }), layoutFiles(),
    writeImage({ out: image, loader: loader!, format }),
  );
  return { image, root: dir };
}

async function runToEnd(image: string, root: string, extra: Parameters<typeof boot>[1] = {}): Promise<string> {
  // Real OSv under KVM may not work on every host (see the vm tests); TCG always does.
  const vm = await boot(image, { root, accel: 'tcg', memory: '512M', cpus: 1, network: 'none', readyTimeout: 120_000, silent: true, ...extra });
  let out = '';
  vm.on('line', (line) => { out += line + '\n'; });
  const exit = await Promise.race([vm.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit in time:\n${out}`)), 120_000))])
    .finally(() => vm.stop().catch(() => undefined));
  if (!out.includes('ROOT:')) throw new Error(`guest exited (${JSON.stringify(exit)}) without listing /:\n${out}`);
  return out;
}

withLoader('real OSv boots our qcow2 image from disk: /run script, env, file contents, skeleton', async (t) => {
  const { image, root } = await composeApp(t, 'qcow2');
  const out = await runToEnd(image, root, { kernel: false });
  t.regex(out, /HELLO argc=2 argv1=\/data\.txt GREETING=soft/);
  t.regex(out, /FILE:bytes from our ROFS/);
  for (const name of ['hello', 'data.txt', 'run', 'etc', 'dev', 'proc', 'tmp']) t.regex(out, new RegExp(`ROOT:${name}\\n`));
  t.notRegex(out, /ROOT:meta\n/);
});

withLoader('real OSv boots our raw image, with a run-time command line in the overlay', async (t) => {
  const { image, root } = await composeApp(t, 'raw');
  const out = await runToEnd(image, root, { kernel: false, env: { GREETING: 'hard' } });
  t.regex(out, /GREETING=hard/, 'the hard --env= prefix beats the script\'s soft default');
});

withLoader('real OSv boots our VMDK (monolithicSparse) and VDI images from disk', async (t) => {
  // Written through the blocking unit allocator; OSv reads its ROFS through QEMU's VMDK and VDI drivers.
  for (const format of ['vmdk', 'vdi'] as const) {
    const { image, root } = await composeApp(t, format);
    const out = await runToEnd(image, root, { kernel: false });
    t.regex(out, /HELLO argc=2 argv1=\/data\.txt GREETING=soft/, format);
    t.regex(out, /FILE:bytes from our ROFS/, format);
  }
});

withKernel('real OSv kernel ELF boots our image through -kernel/-append', async (t) => {
  const { image, root } = await composeApp(t, 'qcow2');
  const out = await runToEnd(image, root, { kernel: kernel! });
  t.regex(out, /HELLO argc=2 argv1=\/data\.txt GREETING=soft/);
});
