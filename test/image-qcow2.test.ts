// Our qcow2 writer and reader, checked with qemu-img as the independent tool.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { createDiskWriter, createQcow2Overlay, openDiskImage } from '../lib/image/disk.js';
import { ImageError } from '../lib/errors.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-qcow2-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A deterministic pseudo-random sparse write pattern spanning two L2 regions (> 512 MiB). */
function writePattern(): { offset: number; data: Buffer }[] {
  const writes: { offset: number; data: Buffer }[] = [];
  let offset = 0;
  for (let i = 0; i < 120; i++) {
    const n = (i * 7919) % 150000;
    writes.push({ offset, data: randomBytes(n) });
    offset += n + (i % 5 === 0 ? 3_000_000 : (i * 31) % 700);
  }
  writes.push({ offset: 100, data: Buffer.from('rewritten at the start') });
  writes.push({ offset: 600 * 1024 * 1024 + 12345, data: Buffer.from('in the second L2 table') });
  writes.push({ offset: 5 * 65536, data: Buffer.alloc(65536) }); // an all-zero cluster stays unallocated
  return writes;
}

test('qcow2 writer: qemu-img check is clean and compare says identical to the raw writer\'s output', async (t) => {
  const dir = await tempDir(t);
  const writes = writePattern();
  for (const format of ['raw', 'qcow2'] as const) {
    const w = await createDiskWriter(path.join(dir, `disk.${format}`), format);
    for (const x of writes) await w.write(x.offset, x.data);
    await w.finish(1024 ** 3);
  }
  const check = await execa('qemu-img', ['check', '-f', 'qcow2', path.join(dir, 'disk.qcow2')]);
  t.regex(check.stdout, /No errors were found on the image/);
  const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', path.join(dir, 'disk.raw'), path.join(dir, 'disk.qcow2')]);
  t.regex(compare.stdout, /Images are identical/);
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', path.join(dir, 'disk.qcow2')])).stdout);
  t.is(info['virtual-size'], 1024 ** 3);
  t.is(info.format, 'qcow2');
  // Only non-zero clusters are allocated: far less than the virtual size.
  t.true(info['actual-size'] < 64 * 1024 * 1024);
});

test('qcow2 reader: reads images qemu-img wrote, same bytes as the raw source', async (t) => {
  const dir = await tempDir(t);
  const raw = path.join(dir, 'src.raw');
  const data = Buffer.alloc(3 * 1024 * 1024);
  randomBytes(200_000).copy(data, 70_000);
  randomBytes(1000).copy(data, 2 * 1024 * 1024 + 5);
  await writeFile(raw, data);
  const qcow = path.join(dir, 'by-qemu.qcow2');
  await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4096', raw, qcow]);
  const disk = await openDiskImage(qcow);
  t.teardown(() => disk.close());
  t.is(disk.format, 'qcow2');
  t.is(disk.virtualSize, data.length);
  t.true((await disk.read(0, data.length)).equals(data));
  t.true((await disk.read(69_999, 5000)).equals(data.subarray(69_999, 74_999)));
});

test('qcow2 reader: compressed clusters and encryption are clear errors', async (t) => {
  const dir = await tempDir(t);
  const raw = path.join(dir, 'src.raw');
  await writeFile(raw, Buffer.alloc(1024 * 1024, 'compressible '));
  const compressed = path.join(dir, 'compressed.qcow2');
  await execa('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, compressed]);
  const disk = await openDiskImage(compressed);
  t.teardown(() => disk.close());
  const err = await t.throwsAsync(disk.read(0, 512), { instanceOf: ImageError });
  t.is(err.code, 'E_QCOW2_COMPRESSED');
  t.regex(err.message, /compressed clusters.*qemu-img convert/s);

  const encrypted = path.join(dir, 'encrypted.qcow2');
  const made = await execa('qemu-img', ['create', '-f', 'qcow2', '--object', 'secret,id=s0,data=password',
    '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', encrypted, '1M'], { reject: false });
  if (made.exitCode !== 0) { t.log('qemu-img cannot create an encrypted image here; skipped that part'); return; }
  const enc = await t.throwsAsync(openDiskImage(encrypted), { instanceOf: ImageError });
  t.is(enc.code, 'E_QCOW2_ENCRYPTED');
});

test('qcow2 overlay: header names the backing file, only written clusters are allocated, reads fall through', async (t) => {
  const dir = await tempDir(t);
  const base = path.join(dir, 'base.qcow2');
  const w = await createDiskWriter(base, 'qcow2');
  const payload = randomBytes(300_000);
  await w.write(0, payload);
  await w.finish(8 * 1024 * 1024);
  const overlay = path.join(dir, 'overlay.qcow2');
  await createQcow2Overlay(overlay, base, { writes: [{ offset: 512, data: Buffer.from('NEW COMMAND LINE\0') }] });

  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', overlay])).stdout);
  t.is(info['backing-filename'], base);
  t.is(info['backing-filename-format'], 'qcow2');
  t.regex((await execa('qemu-img', ['check', overlay])).stdout, /No errors/);
  const map = JSON.parse((await execa('qemu-img', ['map', '--output=json', overlay])).stdout) as { start: number; length: number; depth: number; data: boolean }[];
  t.deepEqual(map.filter((m) => m.depth === 0 && m.data).map((m) => [m.start, m.length]), [[0, 65536]]);

  // qemu-img's view of the overlay = the base with our bytes at 512.
  const flat = path.join(dir, 'flat.raw');
  await execa('qemu-img', ['convert', '-O', 'raw', overlay, flat]);
  const expected = Buffer.alloc(8 * 1024 * 1024);
  payload.copy(expected);
  Buffer.from('NEW COMMAND LINE\0').copy(expected, 512);
  t.true((await readFile(flat)).equals(expected));
  const ours = await openDiskImage(overlay);
  t.teardown(() => ours.close());
  t.true((await ours.read(0, expected.length)).equals(expected));
});
