// Byte-level checks of the formats against the spec's vectors (osv-image-formats.md §1.2,
// §2.2, Appendix A) and the limits of §3.7.
import { createHash } from 'node:crypto';
import test from 'ava';
import {
  checkCmdline, decodeCmdline, encodeCmdlineArea, CMDLINE_AREA_SIZE,
} from '../lib/image/cmdline.js';
import { decodePartitionEntry, encodePartitionEntry, partitionStartFor } from '../lib/image/mbr.js';
import { decodeStructure, decodeSuperBlock } from '../lib/image/rofs.js';
import { RofsBuilder } from '../lib/image/rofs-builder.js';
import { parseDiskSize } from '../lib/image/size.js';
import { ImageError } from '../lib/errors.js';

/** A ROFS volume built in memory. */
async function buildVolume(fill: (b: RofsBuilder) => Promise<void> | void, options = {}) {
  let bytes = Buffer.alloc(0);
  const sink = {
    async write(offset: number, data: Uint8Array) {
      if (offset + data.length > bytes.length) {
        const grown = Buffer.alloc(Math.max(offset + data.length, bytes.length * 2));
        bytes.copy(grown);
        bytes = grown;
      }
      bytes.set(data, offset);
    },
  };
  const builder = new RofsBuilder(sink, options);
  await fill(builder);
  const summary = await builder.finish();
  return { bytes: bytes.subarray(0, summary.size), summary };
}

const hex = (s: string) => Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex');

test('ROFS: the spec\'s Appendix A tree gives the spec\'s bytes (sha256 and hexdump)', async (t) => {
  const { bytes, summary } = await buildVolume(async (b) => {
    await b.addFile('/hello', Buffer.from('hi\n'));
    await b.addFile('/etc/hosts', Buffer.from('127.0.0.1 localhost\n'));
    b.addSymlink('/link', '/hello');
  });
  t.is(bytes.length, 2048);
  t.is(createHash('sha256').update(bytes).digest('hex'), '65522727b24208fc6aa8b5e2e90a2985f0074ff4f067dca8f0b0fec063aa7701');
  t.deepEqual(bytes.subarray(0, 64), hex(
    'adbeadde00000000 0100000000000000 0002000000000000 0300000000000000' +
    '0100000000000000 0400000000000000 0100000000000000 0500000000000000'));
  t.deepEqual(bytes.subarray(0x600, 0x6e1), hex(`
    04 00 00 00 00 00 00 00 05 00 68 6f 73 74 73 02 00 00 00 00 00 00 00 05 00 68 65 6c 6c 6f 03 00
    00 00 00 00 00 00 03 00 65 74 63 05 00 00 00 00 00 00 00 04 00 6c 69 6e 6b 06 00 2f 68 65 6c 6c
    6f 00 40 00 00 00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 03 00 00 00 00 00 00
    00 00 80 00 00 00 00 00 00 02 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 03 00 00 00 00 00 00
    00 00 40 00 00 00 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00
    00 00 80 00 00 00 00 00 00 04 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 14 00 00 00 00 00 00
    00 00 a0 00 00 00 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00`));
  t.like(summary, { inodes: 5, files: 2, directories: 2, symlinks: 1, fileBytes: 23 });
});

test('ROFS: streamed chunks give the same bytes as buffers', async (t) => {
  async function* chunks(s: string) { for (const c of s) yield Buffer.from(c); }
  const a = await buildVolume(async (b) => {
    await b.addFile('/hello', chunks('hi\n'));
    await b.addFile('/etc/hosts', chunks('127.0.0.1 localhost\n'));
    b.addSymlink('/link', '/hello');
  });
  t.is(createHash('sha256').update(a.bytes).digest('hex'), '65522727b24208fc6aa8b5e2e90a2985f0074ff4f067dca8f0b0fec063aa7701');
});

test('ROFS: addFileSync (a sink that writes synchronously) gives the spec\'s bytes too, and reads nothing of a shadowed file', async (t) => {
  let bytes = Buffer.alloc(4096);
  const writeSync = (offset: number, data: Uint8Array) => { bytes.set(data, offset); };
  const builder = new RofsBuilder({ write: async (o, d) => writeSync(o, d), writeSync });
  t.true(builder.canAddSync);
  function* chunks(s: string) { for (const c of s) yield Buffer.from(c); }
  t.is(builder.addFileSync('/hello', Buffer.from('hi\n')), 'added');
  t.is(builder.addFileSync('/etc/hosts', chunks('127.0.0.1 localhost\n')), 'added');
  builder.addSymlink('/link', '/hello');
  let read = false;
  function* untouched() { read = true; yield Buffer.from('never'); }
  t.is(builder.addFileSync('/hello', untouched(), { layer: -1 }), 'shadowed');
  t.false(read);
  const summary = await builder.finish();
  bytes = bytes.subarray(0, summary.size);
  t.is(createHash('sha256').update(bytes).digest('hex'), '65522727b24208fc6aa8b5e2e90a2985f0074ff4f067dca8f0b0fec063aa7701');
  // A sink without writeSync cannot take it: a typed error, not a silent await.
  const asyncOnly = new RofsBuilder({ write: async () => {} });
  t.false(asyncOnly.canAddSync);
  const refused = t.throws(() => asyncOnly.addFileSync('/a', Buffer.from('a')), { instanceOf: ImageError });
  t.is(refused?.code, 'E_ROFS_SYNC');
  // A chunk source that fails mid-file leaves the builder usable (nothing placed).
  const again = new RofsBuilder({ write: async (o, d) => writeSync(o, d), writeSync });
  function* failing() { yield Buffer.from('x'); throw new Error('read failed'); }
  t.throws(() => again.addFileSync('/broken', failing()), { message: 'read failed' });
  t.is(again.addFileSync('/ok', Buffer.from('y')), 'added');
  t.like(await again.finish(), { files: 1 });
});

test('ROFS: an aligned structure region gets OSv\'s extra zero block; empty files take no block', async (t) => {
  // 1 root inode (32) + dirents: choose names so dirents+inodes = 512 bytes exactly.
  // 3 inodes (96) + 2 dirents (10+n1 + 10+n2) = 512 → n1 + n2 = 396.
  const { bytes } = await buildVolume(async (b) => {
    await b.addFile('/' + 'a'.repeat(198), Buffer.alloc(0));
    await b.addFile('/' + 'b'.repeat(198), Buffer.alloc(0));
  });
  const sb = decodeSuperBlock(bytes)!;
  t.is(sb.structureInfoFirstBlock, 1);
  t.is(sb.structureInfoBlocksCount, 1);
  t.is(bytes.length, 512 * 3);
  const { inodes } = decodeStructure(bytes.subarray(512), sb);
  t.deepEqual(inodes.map((i) => [i.dataOffset, i.count]), [[0, 2], [1, 0], [1, 0]]);
});

test('ROFS: UTF-8 names are stored with their byte length', async (t) => {
  const { bytes } = await buildVolume(async (b) => { await b.addFile('/héllo-日本', Buffer.from('x')); });
  const sb = decodeSuperBlock(bytes)!;
  const { dirents } = decodeStructure(bytes.subarray(sb.structureInfoFirstBlock * 512), sb);
  t.is(dirents[0]!.name.length, Buffer.byteLength('héllo-日本'));
  t.is(dirents[0]!.name.toString('utf8'), 'héllo-日本');
});

test('ROFS: limits — names up to 255 bytes, symlink targets up to 4095 bytes', async (t) => {
  await t.notThrowsAsync(buildVolume(async (b) => { await b.addFile('/' + 'é'.repeat(127) + 'x', Buffer.from('ok')); }));
  const long = await t.throwsAsync(buildVolume(async (b) => { await b.addFile('/dir/' + 'é'.repeat(128), Buffer.from('no')); }), { instanceOf: ImageError });
  t.is(long.code, 'E_ROFS_NAME_TOO_LONG');
  t.regex(long.message, /256 bytes long; ROFS names are at most 255 bytes/);
  await t.notThrowsAsync(buildVolume((b) => { b.addSymlink('/l', 'x'.repeat(4095)); }));
  const target = await t.throwsAsync(buildVolume((b) => { b.addSymlink('/l', 'x'.repeat(4096)); }), { instanceOf: ImageError });
  t.is(target.code, 'E_ROFS_SYMLINK_TARGET');
  await t.throwsAsync(buildVolume((b) => { b.addDirectory('relative/path'); }), { instanceOf: ImageError, message: /not absolute/ });
  await t.throwsAsync(buildVolume((b) => { b.addDirectory('/a/../b'); }), { instanceOf: ImageError, message: /contains "\.\."/ });
  await t.throwsAsync(buildVolume(async (b) => { await b.addFile('/', Buffer.from('x')); }), { instanceOf: ImageError, message: /root folder/ });
  const tooBig = await t.throwsAsync(buildVolume(async (b) => { await b.addFile('/big', Buffer.alloc(4096)); }, { maxBytes: 2048 }), { instanceOf: ImageError });
  t.is(tooBig.code, 'E_ROFS_TOO_BIG');
});

test('ROFS: same guest path — higher or equal layer wins, lower is ignored, folders merge, old data stays dead', async (t) => {
  const { bytes, summary } = await buildVolume(async (b) => {
    t.is(await b.addFile('/etc/conf', Buffer.from('package 1'), { layer: 1 }), 'added');
    t.is(await b.addFile('/etc/conf', Buffer.from('package 0'), { layer: 0 }), 'shadowed');
    t.is(await b.addFile('/etc/conf', Buffer.from('app'), { layer: 5 }), 'replaced');
    t.is(b.addDirectory('/etc', { layer: 5 }), 'merged');
    t.is(await b.addFile('/etc/other', Buffer.from('x'), { layer: 0 }), 'added');
    t.is(b.addSymlink('/etc/conf', '/nowhere', { layer: 2 }), 'shadowed');
    t.is(await b.addFile('/x', Buffer.from('file'), { layer: 1 }), 'added');
    t.is(await b.addFile('/x/y', Buffer.from('under a folder now'), { layer: 1 }), 'added');
  });
  const sb = decodeSuperBlock(bytes)!;
  const { dirents, inodes } = decodeStructure(bytes.subarray(sb.structureInfoFirstBlock * 512), sb);
  const names = dirents.map((d) => d.name.toString());
  t.deepEqual(names, ['conf', 'other', 'y', 'etc', 'x']); // first-mention order, post-order runs
  const conf = inodes[dirents[0]!.inodeNo - 1]!;
  t.is(bytes.toString('utf8', conf.dataOffset * 512, conf.dataOffset * 512 + conf.count), 'app');
  t.is(conf.dataOffset, 2); // block 1 holds the replaced 'package 1' (dead)
  t.is(summary.deadBlocks, 2);
});

test('command line: area of 63 sectors, string then NUL then zeros; too long or NUL is a clear error', (t) => {
  const area = encodeCmdlineArea('--rootfs=rofs /hello');
  t.is(area.length, CMDLINE_AREA_SIZE);
  t.is(area.toString('latin1', 0, 21), '--rootfs=rofs /hello\0');
  t.true(area.subarray(20).every((b) => b === 0));
  t.is(decodeCmdline(area, true), '--rootfs=rofs /hello');
  t.notThrows(() => checkCmdline('x'.repeat(1023)));
  const tooLong = t.throws(() => checkCmdline('é'.repeat(512)), { instanceOf: ImageError });
  t.is(tooLong.code, 'E_CMDLINE_TOO_LONG');
  t.regex(tooLong.message, /1024 bytes long; OSv accepts at most 1023/);
  t.regex(tooLong.message, /runscript/);
  t.throws(() => checkCmdline('a\0b'), { instanceOf: ImageError, message: /NUL/ });
});

test('MBR entry: the spec\'s §2.2 vectors and Appendix A\'s entry', (t) => {
  t.deepEqual(encodePartitionEntry(4194304, 76800), hex('00 82 03 00 83 84 1b 00 00 20 00 00 96 00 00 00'));
  t.deepEqual(encodePartitionEntry(4194304, 10 * 1024 ** 3 - 4 * 1024 ** 2), hex('00 82 03 00 83 fe ff ff 00 20 00 00 00 e0 3f 01'));
  t.deepEqual(encodePartitionEntry(4194304, 76543), hex('00 82 03 00 83 84 1a 00 00 20 00 00 95 00 00 00'));
  t.deepEqual(encodePartitionEntry(4194304, 2048), hex('00 82 03 00 83 82 07 00 00 20 00 00 04 00 00 00'));
  t.is(partitionStartFor(3768320), 4194304);
  t.is(partitionStartFor(163840), 2097152);
  const sector = Buffer.alloc(512);
  encodePartitionEntry(4194304, 2048).copy(sector, 0x1ce);
  t.deepEqual(decodePartitionEntry(sector), { start: 4194304, size: 2048, systemId: 0x83 });
  t.is(decodePartitionEntry(Buffer.alloc(512)), undefined);
  t.throws(() => encodePartitionEntry(3 * 1024 ** 4, 512), { instanceOf: ImageError, message: /2 TiB/ });
});

test('size: Capstan syntax', (t) => {
  t.is(parseDiskSize('10G'), 10 * 1024 ** 3);
  t.is(parseDiskSize('512M'), 512 * 1024 ** 2);
  t.is(parseDiskSize('2gb'), 2 * 1024 ** 3);
  t.is(parseDiskSize('64MB'), 64 * 1024 ** 2);
  t.is(parseDiskSize(1048576), 1048576);
  t.throws(() => parseDiskSize('10T'), { instanceOf: ImageError, message: /"10T" is not understood/ });
  t.throws(() => parseDiskSize('0M'), { instanceOf: ImageError });
  t.throws(() => parseDiskSize(-5), { instanceOf: ImageError });
});

test('ROFS: overlapping addFile calls are refused (data is laid out one file at a time)', async (t) => {
  const builder = new RofsBuilder({ write: () => new Promise((r) => setTimeout(r, 10)) });
  const first = builder.addFile('/a', Buffer.from('a'));
  await t.throwsAsync(builder.addFile('/b', Buffer.from('b')), { instanceOf: ImageError, message: /while another file was being written/ });
  await first;
  t.is(await builder.addFile('/b', Buffer.from('b')), 'added');
});

test('ROFS: permissions are stored only when asked (OSv ignores them)', async (t) => {
  const fill = async (b: RofsBuilder) => {
    b.addDirectory('/bin', { mode: 0o750 });
    await b.addFile('/bin/tool', Buffer.from('x'), { mode: 0o4755 });
    b.addSymlink('/link', '/bin/tool');
  };
  const modes = async (options: object) => {
    const { bytes } = await buildVolume(fill, options);
    const sb = decodeSuperBlock(bytes)!;
    return decodeStructure(bytes.subarray(sb.structureInfoFirstBlock * 512), sb).inodes.map((i) => i.mode.toString(8));
  };
  t.deepEqual(await modes({}), ['40000', '40000', '100000', '120000']);
  t.deepEqual(await modes({ permissions: true }), ['40755', '40750', '104755', '120777']);
});
