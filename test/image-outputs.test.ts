// The VMDK, VDI and GCE outputs of writeImage, checked with independent tools: qemu-img (check,
// info, compare against the raw image of the same build), GNU tar for the GCE tarball, QEMU
// booting the stand-in loader from a VMDK and a VDI — and read back through our own readers.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import test from 'ava';
import { execa } from 'execa';
import { capstanOf, type ImageInfo } from '../lib/carrier.js';
import { describeImage, readImageFile } from '../lib/image/describe.js';
import { createDiskWriter, openDiskImage } from '../lib/image/disk.js';
import { capstanInfo, probeImageFormat } from '../lib/image/probe.js';
import { writeImage } from '../lib/steps/write-image.js';
import { boot } from '../lib/vm/boot.js';
import { VmError } from '../lib/errors.js';
import { bootStandIn, buildStandInLoader, STAND_IN_EXIT_OK } from './helpers/stand-in.js';
import { runSteps, vinylFile, vinylSymlink } from './helpers/streams.js';

const GIB = 1024 ** 3;
/** The same in every build of a run: spans many grains and several VDI blocks. */
const BIG = randomBytes(3 * 1024 * 1024 + 12345);

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-outputs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function qemuInfo(file: string): Promise<Record<string, any>> {
  return JSON.parse((await execa('qemu-img', ['info', '--output=json', file])).stdout);
}

/** One build (the same files, command line and size) written in `format`. */
async function build(dir: string, loader: string, format: string, extra: Record<string, unknown> = {}): Promise<{ out: string; info: ImageInfo }> {
  const name = `app-${format}${extra.vmdkSubformat ? `-${String(extra.vmdkSubformat)}` : ''}.img`;
  const out = path.join(dir, name);
  const [image] = await runSteps([
    vinylFile(dir, 'hello', 'hi\n'),
    vinylFile(dir, 'etc/hosts', '127.0.0.1 localhost\n'),
    vinylFile(dir, 'data/big.bin', BIG),
    vinylFile(dir, 'empty', ''),
    vinylSymlink(dir, 'link', '/hello'),
  ], writeImage({ out, loader, format: format as never, cmdline: '/hello --flag "ü"', size: '64M', silent: true, ...extra }));
  return { out, info: capstanOf(image!)!.image! };
}

/** The stand-in loader and the raw image every other format is compared against. */
async function fixture(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  const raw = await build(dir, loader, 'raw');
  return { dir, loader, raw };
}

for (const variant of [
  { format: 'vmdk', extra: {}, createType: 'monolithicSparse', qemuFormat: 'vmdk' },
  { format: 'vmdk', extra: { vmdkSubformat: 'streamOptimized' }, createType: 'streamOptimized', qemuFormat: 'vmdk' },
  { format: 'vdi', extra: {}, createType: undefined, qemuFormat: 'vdi' },
] as const) {
  const label = `${variant.format}${variant.createType ? ` (${variant.createType})` : ''}`;
  test(`${label}: qemu-img check is clean, info gives the format and size, compare says identical to the raw build`, async (t) => {
    const { dir, loader, raw } = await fixture(t);
    const { out, info } = await build(dir, loader, variant.format, variant.extra);
    t.is(info.format, variant.format);
    t.is(info.virtualSize, raw.info.virtualSize);
    t.is(info.virtualSize, 64 * 1024 * 1024);
    if (variant.createType) t.is(info.vmdkSubformat, variant.createType);

    const check = await execa('qemu-img', ['check', '-f', variant.qemuFormat, out], { reject: false });
    t.is(check.exitCode, 0, check.stdout + check.stderr);
    t.regex(check.stdout, /No errors were found on the image/);
    const qi = await qemuInfo(out);
    t.is(qi.format, variant.qemuFormat);
    t.is(qi['virtual-size'], raw.info.virtualSize);
    if (variant.createType) {
      t.is(qi['format-specific']?.data?.['create-type'], variant.createType);
      t.is(qi['format-specific']?.data?.extents?.[0]?.compressed ?? false, variant.createType === 'streamOptimized');
    }
    // Sparse: far smaller than the 64 MiB disk (about the 3 MiB of data).
    t.true((await stat(out)).size < 8 * 1024 * 1024, `file is ${(await stat(out)).size} bytes`);
    const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', variant.qemuFormat, raw.out, out], { reject: false });
    t.is(compare.exitCode, 0, compare.stdout + compare.stderr);
    t.regex(compare.stdout, /Images are identical/);

    // Our own reader sees the same image.
    t.is(await probeImageFormat(out), variant.format);
    t.is(await capstanInfo(out), `${out}: ${variant.format.toUpperCase()}`);
    const d = await describeImage(out);
    const r = await describeImage(raw.out);
    t.is(d.format, variant.format);
    t.is(d.subformat, variant.createType ?? 'dynamic');
    t.is(d.cmdline, '/hello --flag "ü"');
    t.deepEqual(d.rofs?.entries, r.rofs?.entries);
    t.true((await readImageFile(out, '/data/big.bin')).equals(await readImageFile(raw.out, '/data/big.bin')));
  });
}

test('gce: a tar.gz whose only member is disk.raw, GNU (oldgnu) sparse format, padded to whole GiB; extracted it equals the raw build', async (t) => {
  const { dir, loader, raw } = await fixture(t);
  const { out, info } = await build(dir, loader, 'gce');
  t.is(info.format, 'gce');
  t.is(info.virtualSize, GIB); // 64M rounded up to the GiB GCE wants
  t.is(await probeImageFormat(out), 'gce');
  t.is(await capstanInfo(out), `${out}: not a runnable image`);

  const listing = await execa('tar', ['-tvzf', out]);
  const lines = listing.stdout.trim().split('\n');
  t.is(lines.length, 1, listing.stdout);
  t.regex(lines[0]!, new RegExp(`^-rw-r--r-- root/root\\s+${GIB} .* disk\\.raw$`));
  // GNU format: the oldgnu magic "ustar  \0", typeflag 'S' (sparse), as `tar --format=oldgnu -S` writes.
  const tarBytes = gunzipSync(await readFile(out));
  t.is(tarBytes.toString('latin1', 257, 265), 'ustar  \0');
  t.is(tarBytes.toString('latin1', 156, 157), 'S');
  t.is(tarBytes.length % 10240, 0);
  t.true(tarBytes.length < 8 * 1024 * 1024, 'only the data ranges are stored, not the zeros');
  const file = await execa('file', ['-b', '-'], { input: tarBytes.subarray(0, 10240) });
  t.regex(file.stdout, /GNU/);

  const x = path.join(dir, 'x');
  await mkdir(x);
  await execa('tar', ['-xzf', out, '-C', x]);
  const disk = path.join(x, 'disk.raw');
  t.is((await stat(disk)).size, GIB);
  const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', raw.out, disk], { reject: false });
  t.regex(compare.stdout, /Images are identical/, compare.stdout + compare.stderr); // the padding is zeros
  // And byte for byte over the image itself (qemu-img compare covered the zero padding).
  const fh = await open(disk, 'r');
  const head = Buffer.alloc(raw.info.virtualSize);
  await fh.read(head, 0, head.length, 0);
  await fh.close();
  t.true(head.equals(await readFile(raw.out)));
  await t.throwsAsync(describeImage(out), { code: 'E_IMAGE_FORMAT' } as never);
});

test('gce: a disk of 8 GiB or more (sizes in GNU base-256) and a sparse map longer than the header\'s 4 entries extract exactly', async (t) => {
  const dir = await tempDir(t);
  const writes: [number, Buffer][] = [];
  for (let i = 0; i < 30; i++) writes.push([i * 300 * 1024 * 1024 + 777, randomBytes(5000 + i)]); // 30 separate ranges, up to ~8.5 GiB
  const raw = path.join(dir, 'disk.raw.src');
  const gce = path.join(dir, 'big.tar.gz');
  for (const [file, format] of [[raw, 'raw'], [gce, 'gce']] as const) {
    const w = await createDiskWriter(file, format);
    for (const [off, data] of writes) await w.write(off, data);
    await w.finish(9 * GIB + 512);
  }
  const listing = await execa('tar', ['-tvzf', gce]);
  t.regex(listing.stdout, new RegExp(`\\s${10 * GIB} .* disk\\.raw$`));
  const x = path.join(dir, 'x');
  await mkdir(x);
  await execa('tar', ['-xzf', gce, '-C', x]);
  const disk = path.join(x, 'disk.raw');
  t.is((await stat(disk)).size, 10 * GIB);
  const fh = await open(disk, 'r');
  t.teardown(() => fh.close());
  for (const [off, data] of writes) {
    const got = Buffer.alloc(data.length + 2);
    await fh.read(got, 0, got.length, off - 1);
    t.true(got.subarray(1, -1).equals(data), `range at ${off}`);
    t.is(got[0], 0);
  }
  const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', raw, disk], { reject: false });
  t.regex(compare.stdout, /Images are identical/, compare.stdout + compare.stderr);
});

test('vmdk and vdi: tables that outgrow the room left for them (no size hint, big disks) move the first data to the end; still identical', async (t) => {
  const dir = await tempDir(t);
  const writes: [number, Buffer][] = [[0, randomBytes(3 * 1024 * 1024)]];
  for (let i = 1; i < 40; i++) writes.push([i * 7.5 * GIB, randomBytes(70_000)]);
  writes.push([100, Buffer.from('rewritten after everything else')]); // an early grain/block, written again
  const size = 300 * GIB; // VDI map: 300 Ki entries = 1.2 MB > the 1 MiB left; VMDK: 19 MB of tables
  const files = { raw: path.join(dir, 'd.raw'), vmdk: path.join(dir, 'd.vmdk'), vdi: path.join(dir, 'd.vdi') };
  for (const format of ['raw', 'vmdk', 'vdi'] as const) {
    const w = await createDiskWriter(files[format], format);
    for (const [off, data] of writes) await w.write(off, data);
    await w.finish(size);
  }
  // A 1 GiB VMDK with 3 MiB of data: its tables need 2 more grains than left, out of 48 written.
  const small = { raw: path.join(dir, 's.raw'), vmdk: path.join(dir, 's.vmdk') };
  for (const format of ['raw', 'vmdk'] as const) {
    const w = await createDiskWriter(small[format], format);
    await w.write(0, writes[0]![1]);
    await w.write(100, writes.at(-1)![1]);
    await w.finish(GIB);
  }
  t.regex((await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', small.raw, small.vmdk])).stdout, /Images are identical/);
  t.regex((await execa('qemu-img', ['check', small.vmdk])).stdout, /No errors were found/);
  for (const format of ['vmdk', 'vdi'] as const) {
    const check = await execa('qemu-img', ['check', files[format]], { reject: false });
    t.regex(check.stdout, /No errors were found/, `${format}: ${check.stdout}${check.stderr}`);
    t.is((await qemuInfo(files[format]))['virtual-size'], size);
    const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', format, files.raw, files[format]], { reject: false });
    t.regex(compare.stdout, /Images are identical/, `${format}: ${compare.stdout}${compare.stderr}`);
    const disk = await openDiskImage(files[format]);
    t.true((await disk.read(0, 64)).equals(Buffer.concat([writes[0]![1].subarray(0, 100), Buffer.from('rewritten after everything else')]).subarray(0, 64)));
    t.true((await disk.read(39 * 7.5 * GIB, 70_000)).equals(writes[39]![1]));
    await disk.close();
  }
});

test('our readers read what qemu-img writes: VMDK monolithicSparse, streamOptimized, monolithicFlat, twoGbMaxExtentSparse, and VDI', async (t) => {
  const dir = await tempDir(t);
  const src = path.join(dir, 'src.raw');
  const data = Buffer.alloc(5 * 1024 * 1024);
  randomBytes(300_000).copy(data, 70_001);
  randomBytes(1000).copy(data, 4 * 1024 * 1024 + 3);
  await writeFile(src, data);
  const cases: [string, string[]][] = [
    ['sparse.vmdk', ['-O', 'vmdk']],
    ['stream.vmdk', ['-O', 'vmdk', '-o', 'subformat=streamOptimized']],
    ['flat.vmdk', ['-O', 'vmdk', '-o', 'subformat=monolithicFlat']],
    ['split.vmdk', ['-O', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse']],
    ['qemu.vdi', ['-O', 'vdi']],
  ];
  for (const [name, args] of cases) {
    const file = path.join(dir, name);
    await execa('qemu-img', ['convert', '-f', 'raw', ...args, src, file]);
    const disk = await openDiskImage(file);
    t.is(disk.format, name.endsWith('.vdi') ? 'vdi' : 'vmdk', name);
    t.is(disk.virtualSize, data.length, name);
    t.true((await disk.read(0, data.length)).equals(data), name);
    t.true((await disk.read(70_000, 5000)).equals(data.subarray(70_000, 75_000)), name);
    await disk.close();
  }
});

test('writeImage refuses unknown formats and a vmdkSubformat without vmdk when the stream is created', (t) => {
  const e1 = t.throws(() => writeImage({ out: '/tmp/x.img', format: 'vhd' as never }), { any: true }) as Error;
  t.regex(e1!.message, /unknown image format "vhd"[\s\S]*"qcow2", "raw", "vmdk", "vdi", "gce"/);
  const e2 = t.throws(() => writeImage({ out: '/tmp/x.img', format: 'vmdk', vmdkSubformat: 'twoGbMaxExtentFlat' as never }), { any: true }) as Error;
  t.regex(e2!.message, /unknown VMDK subformat/);
  const e3 = t.throws(() => writeImage({ out: '/tmp/x.img', format: 'vdi', vmdkSubformat: 'streamOptimized' }), { any: true }) as Error;
  t.regex(e3!.message, /vmdkSubformat is given but the format is "vdi"/);
});

test('a failed build leaves nothing at out and no staging file beside it', async (t) => {
  const dir = await tempDir(t);
  const loader = await buildStandInLoader(path.join(dir, 'loader'));
  for (const format of ['vmdk', 'vdi', 'gce'] as const) {
    const out = path.join(dir, `fail.${format}`);
    await t.throwsAsync(runSteps([vinylFile(dir, 'big', Buffer.alloc(2 * 1024 * 1024, 1))],
      writeImage({ out, loader, format, cmdline: '/x', size: '1M', silent: true, ...(format === 'vmdk' ? { vmdkSubformat: 'streamOptimized' as const } : {}) })),
    { any: true, message: /smaller than the image needs/ });
  }
  const { readdir } = await import('node:fs/promises');
  t.deepEqual((await readdir(dir)).sort(), ['loader']);
});

test('QEMU boots the stand-in loader from a VMDK (both subformats) and a VDI we wrote', async (t) => {
  const { dir, loader } = await fixture(t);
  for (const [format, extra] of [['vmdk', {}], ['vmdk', { vmdkSubformat: 'streamOptimized' }], ['vdi', {}]] as const) {
    const { out } = await build(dir, loader, format, extra);
    const result = await bootStandIn(out, format);
    t.log(`${format} ${JSON.stringify(extra)} booted with ${result.accel}`);
    t.is(result.exitCode, STAND_IN_EXIT_OK, result.serial);
    t.is(result.cmdline, '/hello --flag "ü"');
    t.is(result.partitionHead, 'adbeadde000000000100000000000000');
  }
});

test('bootVm refuses a GCE tarball with a clear error (QEMU cannot boot it directly)', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'app.tar.gz');
  const w = await createDiskWriter(file, 'gce');
  await w.write(0, Buffer.from('x'));
  await w.finish(512);
  const err = await t.throwsAsync(boot(file, { root: path.join(dir, 'root'), silent: true }), { instanceOf: VmError });
  t.regex(err.message, /GCE tarball/);
});

test('bootVm refuses a file that is no disk (no boot sector) with a clear error, before anything is created', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'app');
  await writeFile(file, Buffer.alloc(16384, 0x7f)); // e.g. the program itself, named like the image
  const root = path.join(dir, 'root');
  const err = await t.throwsAsync(boot(file, { root, silent: true }), { instanceOf: VmError });
  t.is(err.code, 'E_VM_IMAGE');
  t.regex(err.message, /is not a bootable disk image: no boot sector/);
  t.false(existsSync(path.join(root, 'instances')), 'no instance folder was made');
});

test('streamOptimized byte layout: header says GD at end; grains behind LBA markers in increasing order; each GT after its grains; GD, footer, end-of-stream last', async (t) => {
  const { dir, loader } = await fixture(t);
  const { out } = await build(dir, loader, 'vmdk', { vmdkSubformat: 'streamOptimized' });
  const f = await readFile(out);
  t.is(f.length % 512, 0);
  t.is(f.toString('latin1', 0, 4), 'KDMV');
  t.is(f.readUInt32LE(4), 3); // version
  t.is(f.readUInt32LE(8), 0x30001); // newline test, compressed grains, markers
  const capacity = Number(f.readBigUInt64LE(12));
  t.is(capacity * 512, 64 * 1024 * 1024);
  t.is(Number(f.readBigUInt64LE(20)), 128); // 64 KiB grains
  t.is(f.readBigUInt64LE(56), 0xffffffffffffffffn); // GD at end
  t.is(Number(f.readBigUInt64LE(64)), 128); // the first grain right after the overhead
  t.is(f.readUInt16LE(77), 1); // deflate
  const descriptor = f.toString('utf8', 512, 512 * 21).replace(/\0+$/, '');
  t.regex(descriptor, /^# Disk DescriptorFile\nversion=1\nCID=[0-9a-f]{8}\nparentCID=ffffffff\ncreateType="streamOptimized"\n/);
  t.regex(descriptor, new RegExp(`\\nRW ${capacity} SPARSE "${path.basename(out).replace('.', '\\.')}"\\n`));

  let pos = 128 * 512;
  let lastLba = -1;
  const grainAt = new Map<number, number>(); // sector → lba
  const gts = new Map<number, Buffer>(); // sector of GT data → GT
  let gd: Buffer | undefined;
  let footerAt = -1;
  for (;;) {
    const value = Number(f.readBigUInt64LE(pos));
    const size = f.readUInt32LE(pos + 8);
    if (size > 0) {
      t.true(value > lastLba, `grain LBA ${value} after ${lastLba}`);
      t.is(value % 128, 0);
      lastLba = value;
      grainAt.set(pos / 512, value);
      pos += Math.ceil((12 + size) / 512) * 512;
      continue;
    }
    const type = f.readUInt32LE(pos + 12);
    const body = pos + 512;
    if (type === 1) { t.is(value, 4); gts.set(body / 512, f.subarray(body, body + 2048)); pos = body + 2048; continue; }
    if (type === 2) { gd = f.subarray(body, body + value * 512); pos = body + value * 512; continue; }
    if (type === 3) { t.is(value, 1); footerAt = body; pos = body + 512; continue; }
    t.is(type, 0, `unknown marker type at ${pos}`);
    t.is(pos + 512, f.length, 'the end-of-stream marker is the last sector');
    break;
  }
  t.true(grainAt.size > 40, `${grainAt.size} grains`);
  // The footer repeats the header, with the real GD offset.
  t.is(f.toString('latin1', footerAt, footerAt + 4), 'KDMV');
  const gdSector = Number(f.readBigUInt64LE(footerAt + 56));
  t.true(gd !== undefined && gdSector * 512 === gd.byteOffset - f.byteOffset);
  // Every GD entry names a GT we walked past; every GT entry names the grain marker of its LBA.
  let mapped = 0;
  for (let i = 0; i < gd!.length / 4; i++) {
    const gtSector = gd!.readUInt32LE(i * 4);
    if (gtSector === 0) continue;
    const gt = gts.get(gtSector);
    t.truthy(gt, `GD[${i}] → ${gtSector}`);
    for (let j = 0; j < 512; j++) {
      const s = gt!.readUInt32LE(j * 4);
      if (s === 0) continue;
      t.is(grainAt.get(s), (i * 512 + j) * 128);
      t.true(s < gtSector, 'a GT follows its grains');
      mapped++;
    }
  }
  t.is(mapped, grainAt.size);
});

test('monolithicSparse and VDI headers hold the fields VMware and VirtualBox check', async (t) => {
  const { dir, loader } = await fixture(t);
  const vmdk = await readFile((await build(dir, loader, 'vmdk')).out);
  t.is(vmdk.toString('latin1', 0, 4), 'KDMV');
  t.is(vmdk.readUInt32LE(4), 1);
  t.is(vmdk.readUInt32LE(8), 3); // newline test + redundant grain directory
  t.is(Number(vmdk.readBigUInt64LE(28)), 1); // descriptor at sector 1…
  t.is(Number(vmdk.readBigUInt64LE(36)), 20); // …20 sectors, as QEMU and VMware write it
  t.is(vmdk.readUInt32LE(44), 512);
  t.deepEqual([...vmdk.subarray(73, 77)], [0x0a, 0x20, 0x0d, 0x0a]);
  const rgd = Number(vmdk.readBigUInt64LE(48));
  const gd = Number(vmdk.readBigUInt64LE(56));
  const overhead = Number(vmdk.readBigUInt64LE(64));
  t.is(rgd, 21);
  t.is(overhead % 128, 0);
  // The redundant tables equal the primary ones (VirtualBox compares them), each GT 4 sectors.
  const gts = 64 * 1024 * 1024 / (512 * 65536); // 2
  const rgdEntries = [0, 1].map((i) => vmdk.readUInt32LE(rgd * 512 + i * 4));
  const gdEntries = [0, 1].map((i) => vmdk.readUInt32LE(gd * 512 + i * 4));
  t.is(gts, 2);
  for (let i = 0; i < gts; i++) {
    t.true(vmdk.subarray(rgdEntries[i]! * 512, rgdEntries[i]! * 512 + 2048).equals(vmdk.subarray(gdEntries[i]! * 512, gdEntries[i]! * 512 + 2048)));
    t.true(gdEntries[i]! + 4 <= overhead);
  }
  t.regex(vmdk.toString('utf8', 512, 512 * 21), /createType="monolithicSparse"\n[\s\S]*RW 131072 SPARSE "app-vmdk\.img"\n/);

  const vdiA = await readFile((await build(dir, loader, 'vdi')).out);
  t.is(vdiA.toString('latin1', 0, 40), '<<< Oracle VM VirtualBox Disk Image >>>\n');
  t.is(vdiA.readUInt32LE(0x40), 0xbeda107f);
  t.is(vdiA.readUInt32LE(0x44), 0x00010001);
  t.is(vdiA.readUInt32LE(0x48), 0x190); // header 1.1 "plus"
  t.is(vdiA.readUInt32LE(0x4c), 1); // dynamic
  t.is(vdiA.readUInt32LE(0x154), 512);
  const offData = vdiA.readUInt32LE(0x158);
  t.is(offData % (1024 * 1024), 0);
  t.is(Number(vdiA.readBigUInt64LE(0x170)), 64 * 1024 * 1024);
  t.is(vdiA.readUInt32LE(0x178), 1024 * 1024);
  const blocks = vdiA.readUInt32LE(0x180);
  const allocated = vdiA.readUInt32LE(0x184);
  t.is(blocks, 64);
  t.is(vdiA.length, offData + allocated * 1024 * 1024);
  const entries = Array.from({ length: blocks }, (_, i) => vdiA.readUInt32LE(512 + i * 4)).filter((e) => e !== 0xffffffff);
  t.is(entries.length, allocated);
  t.deepEqual([...entries].sort((a, b) => a - b), Array.from({ length: allocated }, (_, i) => i));
  const uuid = (b: Buffer, at: number) => b.subarray(at, at + 16);
  t.false(uuid(vdiA, 0x188).every((x) => x === 0), 'creation UUID set');
  t.false(uuid(vdiA, 0x198).every((x) => x === 0), 'modification UUID set');
  t.is(uuid(vdiA, 0x188)[7]! >> 4, 4); // version 4
  const vdiB = await readFile((await build(dir, loader, 'vdi')).out);
  t.false(uuid(vdiA, 0x188).equals(uuid(vdiB, 0x188)), 'every image gets its own UUID');
});

test('bootVm boots VMDK and VDI images (probed, through its qcow2 overlay over them)', async (t) => {
  const { dir, loader } = await fixture(t);
  for (const [format, extra] of [['vmdk', {}], ['vmdk', { vmdkSubformat: 'streamOptimized' }], ['vdi', {}]] as const) {
    const { out } = await build(dir, loader, format, extra);
    const vm = await boot(out, { root: path.join(dir, 'root'), accel: 'tcg', kernel: false, debugExit: true, silent: true, execute: `/run-time ${format}` });
    t.teardown(() => vm.kill());
    const lines: string[] = [];
    vm.on('line', (l) => lines.push(l));
    const exit = await vm.exited;
    t.is(exit.exitCode, STAND_IN_EXIT_OK, lines.join('\n'));
    t.is(lines[0], `CMDLINE:/run-time ${format}`);
    t.is(lines[1], 'PART:adbeadde000000000100000000000000');
  }
});

test('the same build twice gives the same bytes for vmdk (both subformats) and gce', async (t) => {
  const { dir, loader } = await fixture(t);
  for (const [format, extra] of [['vmdk', {}], ['vmdk', { vmdkSubformat: 'streamOptimized' }], ['gce', {}]] as const) {
    const a = await readFile((await build(dir, loader, format, extra)).out);
    const b = await readFile((await build(dir, loader, format, extra)).out);
    t.true(a.equals(b), `${format} ${JSON.stringify(extra)}`);
  }
});
