// Volumes as Capstan keeps them (cmd/volume.go, hypervisor/util.go): volumes/<name> and its
// .yaml metadata in the package root, option keys in any case, sizes through ParseMemSize.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { VmError } from '../lib/errors.js';
import { parseVolume } from '../lib/vm/drives.js';
import {
  createVolume, createVolumeFile, deleteVolume, packageVolumes, parseVolumeMetadata, volumeMetadataText,
} from '../lib/vm/volumes.js';

function packageDir(t: ExecutionContext, withPackage = true): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capstan-vol-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  if (withPackage) {
    mkdirSync(path.join(dir, 'meta'));
    writeFileSync(path.join(dir, 'meta', 'package.yaml'), 'name: app\ntitle: App\nauthor: me\n');
  }
  return dir;
}

async function qemuImgInfo(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse((await execa('qemu-img', ['info', '--output=json', file])).stdout) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

test('createVolume writes volumes/<name> and the metadata Capstan writes: "format: raw\\n" by default', async (t) => {
  const dir = packageDir(t);
  const info = await createVolume(dir, 'vol1', { size: '128M' });
  t.deepEqual(info, { path: path.join(dir, 'volumes', 'vol1'), format: 'raw', size: 128 * 1048576, metadata: path.join(dir, 'volumes', 'vol1.yaml') });
  t.is(readFileSync(info.metadata!, 'utf8'), 'format: raw\n');
  t.is(statSync(info.path).size, 128 * 1048576);
  t.is(statSync(info.metadata!).mode & 0o777 & ~process.umask(), 0o644 & ~process.umask());
  t.deepEqual(readdirSync(path.join(dir, 'volumes')).sort(), ['vol1', 'vol1.yaml']); // no temporary files left
  const q = await createVolume(dir, 'db', { size: '1G', format: 'qcow2', aio: 'threads', cache: 'writeback' });
  t.is(readFileSync(q.metadata!, 'utf8'), 'format: qcow2\naio: threads\ncache: writeback\n');
  const qi = await qemuImgInfo(q.path);
  if (qi) {
    t.is(qi['format'], 'qcow2');
    t.is(qi['virtual-size'], 1024 * 1048576);
  }
});

test('createVolume refuses outside a package root, an existing volume, a name that is a path, and a format it cannot write', async (t) => {
  const bare = packageDir(t, false);
  const outside = await t.throwsAsync(createVolume(bare, 'vol1'), { instanceOf: VmError });
  t.is(outside!.code, 'E_VM_VOLUME_NOT_PACKAGE');
  t.regex(outside!.message, /must be in the package root directory/);
  t.false(existsSync(path.join(bare, 'volumes')));
  const dir = packageDir(t);
  await createVolume(dir, 'vol1', { size: '1M' });
  const exists = await t.throwsAsync(createVolume(dir, 'vol1', { size: '2M' }), { instanceOf: VmError });
  t.is(exists!.code, 'E_VM_VOLUME_EXISTS');
  t.is(statSync(path.join(dir, 'volumes', 'vol1')).size, 1048576); // untouched
  for (const name of ['', '.', '..', 'a/b', '../x']) {
    t.is((await t.throwsAsync(createVolume(dir, name), { instanceOf: VmError }))!.code, 'E_VM_VOLUME', name);
  }
  const vhd = await t.throwsAsync(createVolume(dir, 'v', { format: 'vpc' as never }), { instanceOf: VmError });
  t.regex(vhd!.message, /volume format "vpc" is not supported/);
  t.false(existsSync(path.join(dir, 'volumes', 'v')));
});

test('vdi and vmdk volumes, from 1 MiB to 100 GiB, are empty disks QEMU checks clean, writes into and reads back', async (t) => {
  const dir = packageDir(t);
  for (const format of ['vdi', 'vmdk'] as const) {
    for (const size of ['1M', '1G', '100G']) {
      const name = `${format}-${size}`;
      const v = await createVolume(dir, name, { size, format });
      t.is(readFileSync(v.metadata!, 'utf8'), `format: ${format}\n`);
      const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', v.path])).stdout) as Record<string, unknown>;
      t.is(info['format'], format, name);
      t.is(info['virtual-size'], v.size, name);
      t.true(statSync(v.path).size < 16 * 1048576, `${name}: no data preallocated (${statSync(v.path).size} bytes)`);
      await execa('qemu-img', ['check', v.path]);
      // What a guest does with it: QEMU's own writer fills a run across block/grain edges.
      await execa('qemu-io', ['-f', format, '-c', 'write -P 0xab 61440 200k', v.path]);
      const read = await execa('qemu-io', ['-f', format, '-c', 'read -P 0xab 61440 200k', '-c', 'read -P 0 0 61440', v.path]);
      t.notRegex(read.stdout, /Pattern verification failed/, name);
      await execa('qemu-img', ['check', v.path]);
    }
  }
});

test('volume sizes go through Capstan\'s ParseMemSize: a unit is required, zero is refused, MB/GB spellings work', async (t) => {
  const dir = packageDir(t);
  const bare = await t.throwsAsync(createVolume(dir, 'a', { size: '1024' }), { instanceOf: VmError });
  t.is(bare!.code, 'E_VM_SIZE');
  t.regex(bare!.message, /the volume size "1024" is not understood: it has no unit/);
  t.regex(bare!.message, /write "1024M" for MiB or "1024G" for GiB/);
  t.regex((await t.throwsAsync(createVolume(dir, 'a', { size: '0M' }), { instanceOf: VmError }))!.message, /"0M" must be larger than zero/);
  // Capstan's pattern is not anchored at the start, so it reads "1.5G" as 5G; refused here.
  t.regex((await t.throwsAsync(createVolume(dir, 'a', { size: '1.5G' }), { instanceOf: VmError }))!.message, /"1\.5G" is not understood/);
  t.regex((await t.throwsAsync(createVolume(dir, 'a', { size: '10T' }), { instanceOf: VmError }))!.message, /"10T" is not understood/);
  t.regex((await t.throwsAsync(createVolume(dir, 'a', { size: 1000 }), { instanceOf: VmError }))!.message, /not a whole number of 512-byte sectors/);
  t.false(existsSync(path.join(dir, 'volumes', 'a')));
  t.is((await createVolume(dir, 'mb', { size: '64MB' })).size, 64 * 1048576);
  t.is((await createVolume(dir, 'gb', { size: '2gb' })).size, 2 * 1024 * 1048576);
  t.is((await createVolume(dir, 'bytes', { size: 4096 })).size, 4096);
  t.is((await createVolume(dir, 'default')).size, 1024 * 1048576); // Capstan's -s default is 1G
});

test('volume metadata round trip: our text reads back; Capstan-style files with YAML 1.1 quirks read as go-yaml reads them', (t) => {
  for (const meta of [{ format: 'raw' }, { format: 'qcow2', aio: 'native' }, { format: 'raw', aio: 'threads', cache: 'unsafe' }, {}]) {
    const text = volumeMetadataText(meta);
    t.deepEqual(parseVolumeMetadata(text, 'v.yaml'), { format: undefined, aio: undefined, cache: undefined, ...meta });
  }
  t.is(volumeMetadataText({}), '{}\n'); // yaml.Marshal of an all-empty Volume
  const warnings: unknown[] = [];
  t.deepEqual(parseVolumeMetadata('format: qcow2\nformat: raw\ncache: ~\nsize: 1G\n', 'volumes/v.yaml', { onWarning: (w) => warnings.push(w) }),
    { format: 'raw', aio: undefined, cache: undefined });
  t.like(warnings, [{ code: 'W_YAML_DUPLICATE_KEY', line: 2 }, { code: 'W_UNKNOWN_KEY', line: 4 }]);
  const strict = t.throws(() => parseVolumeMetadata('format: qcow2\nformat: raw\n', 'volumes/v.yaml', { strict: true }), { instanceOf: VmError });
  t.regex(strict!.message, /^volumes\/v\.yaml:2:1: `format` is given again/);
});

test('deleteVolume removes the volume and its metadata; a missing volume is Capstan\'s error', async (t) => {
  const dir = packageDir(t);
  await createVolume(dir, 'vol1', { size: '1M' });
  t.deepEqual(await deleteVolume(dir, 'vol1'), [path.join(dir, 'volumes', 'vol1'), path.join(dir, 'volumes', 'vol1.yaml')]);
  t.deepEqual(readdirSync(path.join(dir, 'volumes')), []);
  const missing = await t.throwsAsync(deleteVolume(dir, 'vol1'), { instanceOf: VmError });
  t.is(missing!.code, 'E_VM_NO_VOLUME');
  t.regex(missing!.message, /could not find volume with name 'vol1'/);
  // A volume without metadata (made by hand) goes alone.
  writeFileSync(path.join(dir, 'volumes', 'hand'), Buffer.alloc(512));
  t.deepEqual(await deleteVolume(dir, 'hand'), [path.join(dir, 'volumes', 'hand')]);
});

test('packageVolumes: every volume in file-name order with its metadata; defaults where it says nothing', async (t) => {
  const dir = packageDir(t);
  t.deepEqual(await packageVolumes(dir), []); // no volumes folder
  await createVolume(dir, 'b', { size: '1M', format: 'qcow2', aio: 'threads' });
  await createVolume(dir, 'a', { size: '1M' });
  writeFileSync(path.join(dir, 'volumes', 'C'), Buffer.alloc(512)); // no metadata; upper case sorts first
  writeFileSync(path.join(dir, 'volumes', 'x.yaml'), Buffer.alloc(512)); // a volume named x.yaml (no "x" beside it)
  mkdirSync(path.join(dir, 'volumes', 'sub'));
  const volumes = await packageVolumes(dir);
  const v = (name: string) => path.join(dir, 'volumes', name);
  t.deepEqual(volumes, [
    { name: 'C', path: v('C') },
    { name: 'a', path: v('a'), format: 'raw' },
    { name: 'b', path: v('b'), format: 'qcow2', aio: 'threads' },
    { name: 'x.yaml', path: v('x.yaml') },
  ]);
  const drives = volumes.map((x) => parseVolume(x));
  t.deepEqual(drives.map((d) => [path.basename(d.path), d.format]), [['C', 'raw'], ['a', 'raw'], ['b', 'qcow2'], ['x.yaml', 'raw']]);
  t.is(drives[2]!.aio, 'threads');
});

test('volume options: keys in any case as Capstan lowercases them; a setting without = and an unknown one are refused', (t) => {
  const d = parseVolume('/tmp/v1:FORMAT=qcow2:Aio=threads:CACHE=writeback');
  t.deepEqual([d.path, d.format, d.aio], ['/tmp/v1', 'qcow2', 'threads']);
  t.true(d.cache === 'writeback' || d.cache === 'unsafe'); // unsafe where O_DIRECT is not available
  const noEq = t.throws(() => parseVolume('/tmp/v1:qcow2'), { instanceOf: VmError });
  t.regex(noEq!.message, /"qcow2" is not key=value \(use '=' for volume settings/);
  t.regex(t.throws(() => parseVolume('/tmp/v1:size=1G'), { instanceOf: VmError })!.message, /unknown volume setting "size"/);
  // Values are not case-folded (Capstan hands them to QEMU as written, and QEMU refuses QCOW2).
  t.regex(t.throws(() => parseVolume('/tmp/v1:format=QCOW2'), { instanceOf: VmError })!.message, /format "QCOW2" is not one of raw, qcow2/);
});

test('createVolumeFile: any path, no metadata, never a partial file', async (t) => {
  const dir = packageDir(t, false);
  const file = path.join(dir, 'deep', 'er', 'disk.img');
  const info = await createVolumeFile(file, { size: '2M' });
  t.deepEqual(info, { path: file, format: 'raw', size: 2 * 1048576 });
  t.false(existsSync(`${file}.yaml`));
  await t.throwsAsync(createVolumeFile(path.join(dir, 'bad'), { size: 'lots' }), { instanceOf: VmError });
  t.false(existsSync(path.join(dir, 'bad')));
});
