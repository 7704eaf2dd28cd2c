// Test doubles for the ZFS path without OSv binaries: a QEMU stand-in that plays the guest's
// cpiod (fake-cpiod-qemu.ts, run through tsx by a small shell wrapper), and a "builder"
// kernel file that has what we look for in a real one (a version banner and a bootfs table
// naming the builder's tools; see lib/image/osv-kernel.ts), with no code in it.
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Writes the QEMU stand-in's wrapper into `dir`; returns its path (for CAPSTAN_QEMU_PATH / `qemu`). */
export async function writeFakeCpiodQemu(dir: string): Promise<string> {
  const wrapper = path.join(dir, 'fake-qemu');
  const tsx = import.meta.resolve('tsx');
  await writeFile(wrapper, `#!/bin/sh\nexec '${process.execPath}' --import '${tsx}' '${path.join(HERE, 'fake-cpiod-qemu.ts')}' "$@"\n`);
  await chmod(wrapper, 0o755);
  return wrapper;
}

const BUILDER_TOOLS = ['/libuutil.so', '/zpool.so', '/usr/lib/fs/libsolaris.so', '/libzfs.so', '/zfs.so', '/tools/mkfs.so', '/tools/cpiod.so', '/tools/umount.so'];

/** A bootfs table (scripts/mkbootfs.py's format) holding `names`, each with a few bytes of data. */
export function bootfsTable(names: string[]): Buffer {
  const records: Buffer[] = [];
  const data: Buffer[] = [];
  let pos = (names.length + 1) * 128;
  for (const name of names) {
    const body = Buffer.from(`contents of ${name}\n`);
    const r = Buffer.alloc(128);
    r.writeBigUInt64LE(BigInt(body.length), 0);
    r.writeBigUInt64LE(BigInt(pos), 8);
    r.writeInt8(0, 16);
    r.write(name, 17, 'utf8');
    records.push(r);
    data.push(body);
    pos += body.length;
  }
  return Buffer.concat([...records, Buffer.alloc(128), ...data]);
}

/**
 * A stand-in builder kernel: an ELF magic, an `OSv v…` banner, the bootfs. `generation`
 * `v0.57` leaves out /tools/umount.so and names `osv/zfs` in the kernel part, as v0.57.0 does.
 */
export async function writeFakeBuilder(file: string, generation: 'master' | 'v0.57' = 'master'): Promise<string> {
  const tools = generation === 'master' ? BUILDER_TOOLS : BUILDER_TOOLS.filter((n) => n !== '/tools/umount.so');
  const kernelPart = Buffer.from(`\x7fELF\x02\x01\x01${'\0'.repeat(57)}OSv v0.57.0-${generation === 'master' ? '398' : '0'}-gfake\0${generation === 'v0.57' ? 'osv/zfs\0' : ''}`, 'latin1');
  await writeFile(file, Buffer.concat([kernelPart, Buffer.alloc(4096 - (kernelPart.length % 4096)), bootfsTable(tools)]));
  return file;
}

export interface FakeRun {
  port: number;
  args: string[];
  kernel: string | undefined;
  append: string | undefined;
  disk: { path: string; format: string };
  /** The command line on the disk when the VM started. */
  diskCmdline: string;
  /** The raw stream received. */
  stream: string;
  /** Where the stand-in extracted the stream. */
  tree: string;
  started: number;
}

/** Every session the stand-in ran under `dir` (FAKE_CPIOD_DIR). */
export async function fakeRuns(dir: string): Promise<FakeRun[]> {
  const out: FakeRun[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = /^(\d+)-\d+$/.exec(name);
    if (!m) continue;
    const info = JSON.parse(await readFile(path.join(dir, name, 'args.json'), 'utf8'));
    out.push({ port: Number(m[1]), ...info, tree: path.join(dir, name, 'tree'), stream: path.join(dir, name, 'stream.cpio') });
  }
  return out.sort((a, b) => a.started - b.started);
}
