// The cpio newc stream for the ZFS builder's cpiod (osv-image-formats.md §4.3), checked against
// the spec's test vector and against GNU cpio (listing and extraction of a large random tree).
import { lstat, mkdtemp, readFile, readlink, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import {
  checkCpioEntry, cpioArchive, CpioWriter, CPIO_TRAILER, encodeCpioHeader, type CpioArchiveEntry,
} from '../lib/image/cpio.js';
import { ImageError } from '../lib/errors.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-cpio-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

/** One newc header as the spec's table writes it: 13 fields of 8 hex digits after the magic. */
function specHeader(mode: string, size: string, namesize: string): string {
  const z = '00000000';
  return `070701${z}${mode}${z}${z}${z}${z}${size}${z}${z}${z}${z}${namesize}${z}`;
}

test('the spec\'s test vector: /etc, /etc/hosts (12 bytes), /etc/mnttab → /proc/mounts, trailer = 512 exact bytes', async (t) => {
  const hosts = Buffer.from('127.0.0.1 x\n');
  t.is(hosts.length, 12);
  const bytes = await collect(cpioArchive([
    { path: '/etc', type: 'dir', mode: 0o755 },
    { path: '/etc/hosts', type: 'file', mode: 0o644, content: hosts },
    { path: '/etc/mnttab', type: 'symlink', target: '/proc/mounts' },
  ]));
  const expected = Buffer.concat([
    Buffer.from(specHeader('000041ed', '00000000', '00000005') + '/etc\0' + '\0', 'latin1'), // 110+5 → pad 1
    Buffer.from(specHeader('000081a4', '0000000c', '0000000b') + '/etc/hosts\0' + '\0\0\0', 'latin1'), // 110+11 → pad 3
    hosts, // 12: no data padding
    Buffer.from(specHeader('0000a1ff', '0000000c', '0000000c') + '/etc/mnttab\0' + '\0\0', 'latin1'), // 110+12 → pad 2
    Buffer.from('/proc/mounts', 'latin1'),
    Buffer.from(specHeader('00000000', '00000000', '0000000b') + 'TRAILER!!!\0' + '\0\0\0', 'latin1'),
  ]);
  t.is(bytes.length, 512);
  t.is(expected.length, 512);
  t.true(bytes.equals(expected), bytes.toString('latin1'));
  t.is(CPIO_TRAILER.length, 124);

  const listing = await execa('cpio', ['-itv'], { input: bytes });
  const lines = listing.stdout.trim().split('\n');
  t.is(lines.length, 3, listing.stdout);
  t.regex(lines[0]!, /^drwxr-xr-x .* \/etc$/);
  t.regex(lines[1]!, /^-rw-r--r-- .* 12 .* \/etc\/hosts$/);
  t.regex(lines[2]!, /^lrwxrwxrwx .* \/etc\/mnttab -> \/proc\/mounts$/);
  t.regex(listing.stderr, /^1 block/m);
});

test('headers: 8 lowercase hex digits, padding of name and data to 4', (t) => {
  const h = encodeCpioHeader('/a', 0o100755, 0xabcdef);
  t.is(h.toString('latin1', 0, 110), specHeader('000081ed', '00abcdef', '00000003'));
  t.is(h.length, 116); // 110 + "/a\0" = 113 → 116
  t.is(encodeCpioHeader('/ab', 0o40755, 0).length, 116); // 114 → 116
  t.is(encodeCpioHeader('/abc', 0o40755, 0).length, 116); // 115 → 116
  t.is(encodeCpioHeader('/abcd', 0o40755, 0).length, 116); // 116, no padding
});

/** A small deterministic PRNG, so a failure reproduces. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let r = Math.imul(s ^ (s >>> 15), 1 | s);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

interface TreeItem { path: string; type: 'file' | 'dir' | 'symlink'; mode: number; data?: Buffer; target?: string }

function randomTree(seed: number): TreeItem[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const syllables = ['lib', 'etc', 'données', '日本', 'x', 'app', 'a b', 'ünï', '🦀', 'conf.d', 'v1.2', '-dash', '_u'];
  const dirModes = [0o755, 0o700, 0o750, 0o775, 0o711, 0o777];
  const fileModes = [0o644, 0o600, 0o755, 0o444, 0o640, 0o700, 0o666, 0o400];
  const items: TreeItem[] = [];
  const dirs = ['/'];
  const used = new Set<string>(['/']);
  const fresh = (parent: string): string => {
    for (;;) {
      const name = pick(syllables) + (rnd() < 0.5 ? String(Math.floor(rnd() * 100)) : '');
      const p = (parent === '/' ? '' : parent) + '/' + name;
      if (!used.has(p)) { used.add(p); return p; }
    }
  };
  for (let i = 0; i < 60; i++) {
    const p = fresh(pick(dirs));
    dirs.push(p);
    items.push({ path: p, type: 'dir', mode: pick(dirModes) });
  }
  for (let i = 0; i < 300; i++) {
    const p = fresh(pick(dirs));
    const r = rnd();
    if (r < 0.15) {
      items.push({ path: p, type: 'file', mode: pick(fileModes), data: Buffer.alloc(0) });
    } else if (r < 0.3) {
      const target = rnd() < 0.5 ? pick(items.filter((x) => x.type === 'file').map((x) => x.path).concat(['/nowhere'])) : `../${pick(syllables)}/dangling`;
      items.push({ path: p, type: 'symlink', mode: 0o777, target });
    } else {
      const size = rnd() < 0.05 ? 300_000 + Math.floor(rnd() * 900_000) : Math.floor(rnd() * 5000);
      const data = Buffer.alloc(size);
      for (let j = 0; j < size; j++) data[j] = Math.floor(rnd() * 256);
      items.push({ path: p, type: 'file', mode: pick(fileModes), data });
    }
  }
  return items;
}

/** Splits `data` into chunks of random sizes, as a file stream would deliver it. */
async function* chunked(data: Buffer, rnd: () => number): AsyncGenerator<Buffer> {
  let at = 0;
  while (at < data.length) {
    const n = 1 + Math.floor(rnd() * 70_000);
    yield data.subarray(at, at + n);
    at += n;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('a random tree of 360 entries (modes, symlinks, empty files, UTF-8 names, nested folders) extracts with GNU cpio file for file', async (t) => {
  const dir = await tempDir(t);
  const items = randomTree(20260817);
  const rnd = prng(7);
  const entries: CpioArchiveEntry[] = items.map((x) => x.type === 'file'
    ? { path: x.path, type: 'file', mode: x.mode, size: x.data!.length, content: chunked(x.data!, rnd) }
    : { ...x });
  const archive = path.join(dir, 'tree.cpio');
  await writeFile(archive, await collect(cpioArchive([{ path: '/', type: 'dir' }, ...entries])));
  const out = path.join(dir, 'out');
  await execa('mkdir', [out]);
  const extract = await execa('cpio', ['-idm', '--no-absolute-filenames', '-F', archive], { cwd: out, reject: false });
  t.is(extract.exitCode, 0, extract.stderr);

  // Everything we sent is there, as sent…
  for (const x of items) {
    const local = path.join(out, x.path);
    const st = await lstat(local);
    if (x.type === 'dir') {
      t.true(st.isDirectory(), x.path);
      t.is(st.mode & 0o777, x.mode, `mode of ${x.path}`);
    } else if (x.type === 'symlink') {
      t.true(st.isSymbolicLink(), x.path);
      t.is(await readlink(local), x.target!, x.path);
    } else {
      t.true(st.isFile(), x.path);
      t.is(st.mode & 0o777, x.mode, `mode of ${x.path}`);
      if (x.mode & 0o400) t.true((await readFile(local)).equals(x.data!), `content of ${x.path}`);
      else t.is(st.size, x.data!.length);
    }
  }
  // …and nothing else (no "." or root entry, no stray names).
  const seen: string[] = [];
  const walk = async (d: string, guest: string): Promise<void> => {
    for (const name of await readdir(d)) {
      const g = `${guest}/${name}`;
      seen.push(g);
      const st = await lstat(path.join(d, name));
      if (st.isDirectory()) await walk(path.join(d, name), g);
    }
  };
  await walk(out, '');
  t.deepEqual(seen.sort(), items.map((x) => x.path).sort());
  t.true(items.some((x) => x.type === 'file' && x.data!.length === 0));
  t.true(items.some((x) => x.type === 'symlink'));
  t.true(items.some((x) => /[^\x00-\x7f]/.test(x.path)));
});

test('a file that grows or shrinks while sent is a clear error, and the stream then refuses more members', async (t) => {
  const sent: Buffer[] = [];
  const w = new CpioWriter((c) => { sent.push(c); });
  async function* three() { yield Buffer.from('abc'); }
  const longer = await t.throwsAsync(w.file('/grew', 2, three(), 0o644, 'src/grew.txt'), { instanceOf: ImageError });
  t.is(longer.code, 'E_CPIO_SIZE_CHANGED');
  t.regex(longer.message, /^src\/grew\.txt: \/grew changed size while it was being sent: 2 bytes were declared, more than 2 arrived/);
  await t.throwsAsync(w.directory('/after'), { code: 'E_CPIO_STATE' } as never);

  const w2 = new CpioWriter(() => {});
  const shorter = await t.throwsAsync(w2.file('/shrank', 10, three()), { instanceOf: ImageError });
  t.regex(shorter.message, /10 bytes were declared, only 3 arrived/);
});

test('files of 4 GiB or more are refused before anything is sent; paths must be absolute and normal; the root is never sent', async (t) => {
  const big = t.throws(() => checkCpioEntry({ path: '/data/huge.bin', type: 'file', size: 4 * 1024 ** 3, source: 'app/huge.bin' }), { instanceOf: ImageError });
  t.is(big.code, 'E_CPIO_TOO_LARGE');
  t.regex(big.message, /^app\/huge\.bin: \/data\/huge\.bin is 4294967296 bytes; files of 4 GiB or more cannot be sent/);
  t.notThrows(() => checkCpioEntry({ path: '/data/max.bin', type: 'file', size: 4 * 1024 ** 3 - 1 }));

  const sent: Buffer[] = [];
  const w = new CpioWriter((c) => { sent.push(c); });
  await t.throwsAsync(w.file('/huge', 2 ** 32, Buffer.alloc(0)), { code: 'E_CPIO_TOO_LARGE' } as never);
  t.is(sent.length, 0);
  // Array input is checked entirely before the first byte.
  const gen = cpioArchive([{ path: '/ok', type: 'dir' }, { path: '/big', type: 'file', size: 2 ** 32, content: Buffer.alloc(0) }]);
  await t.throwsAsync(gen.next(), { code: 'E_CPIO_TOO_LARGE' } as never);

  for (const bad of ['relative/path', '/a/./b', '/a/../b', '/a//b', '/trailing/']) {
    t.throws(() => checkCpioEntry({ path: bad, type: 'dir' }), { code: 'E_CPIO_PATH' } as never, bad);
  }
  t.throws(() => checkCpioEntry({ path: '/', type: 'dir' }), { code: 'E_CPIO_PATH' } as never);
  const w3 = new CpioWriter((c) => { sent.push(c); });
  t.false(await w3.directory('/'));
  t.is(sent.length, 0);
  const only = await collect(cpioArchive([{ path: '/', type: 'dir' }]));
  t.true(only.equals(CPIO_TRAILER));
});

test('streaming: the generator hands over one chunk at a time (a large file is never queued whole)', async (t) => {
  let produced = 0;
  async function* big() { for (let i = 0; i < 64; i++) { produced++; yield Buffer.alloc(65536, i); } }
  const gen = cpioArchive([{ path: '/big', type: 'file', size: 64 * 65536, content: big() }]);
  const first = await gen.next(); // the header
  t.false(first.done);
  await gen.next(); // first data chunk
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.true(produced <= 2, `produced ${produced} chunks ahead of the reader`);
  let total = first.value!.length + 65536;
  for await (const c of gen) total += c.length;
  t.is(total, 116 + 64 * 65536 + 124);
});
