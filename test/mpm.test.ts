import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { RepositoryError } from '../lib/errors.js';
import { readMpm, type MpmMember } from '../lib/repository/mpm.js';

type Entry = { header: Partial<tar.Header> & { name: string }; body?: string | Buffer };

async function tarOf(entries: Entry[], gzip = true): Promise<Buffer> {
  const pack = tar.pack();
  for (const { header, body } of entries) pack.entry(header, body ?? '');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  return gzip ? zlib.gzipSync(raw) : raw;
}

async function members(archive: Buffer): Promise<MpmMember[]> {
  const out: MpmMember[] = [];
  for await (const m of readMpm(Readable.from([archive]), 'test.mpm')) out.push(m);
  return out;
}

test('reads Capstan-style members (leading /, dirs with /), gzip and plain tar alike', async (t) => {
  const entries: Entry[] = [
    { header: { name: '/', type: 'directory', mode: 0o755 } },
    { header: { name: '/meta/', type: 'directory', mode: 0o755 } },
    { header: { name: '/meta/package.yaml', mode: 0o644 }, body: 'name: p\ntitle: P\nauthor: a\n' },
    { header: { name: '/usr/lib/libfoo.so', mode: 0o755 }, body: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x00, 0xff]) },
    { header: { name: 'etc/mnttab', type: 'symlink', linkname: '../proc/mounts', mode: 0o777 } },
  ];
  for (const gzip of [true, false]) {
    const got = await members(await tarOf(entries, gzip));
    t.deepEqual(got.map((m) => [m.guestPath, m.type, m.mode]), [
      ['/meta', 'directory', 0o755],
      ['/meta/package.yaml', 'file', 0o644],
      ['/usr/lib/libfoo.so', 'file', 0o755],
      ['/etc/mnttab', 'symlink', 0o777],
    ]);
    t.deepEqual([...got[2]!.contents], [0x7f, 0x45, 0x4c, 0x46, 0x00, 0xff]);
    t.is(got[3]!.linkname, '../proc/mounts');
  }
});

test('reads an archive written by GNU tar (PAX long names included)', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mpm-gnu-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const long = 'd'.repeat(120);
  await fs.mkdir(path.join(dir, 'pkg', long), { recursive: true });
  await fs.writeFile(path.join(dir, 'pkg', long, 'f.txt'), 'long');
  await fs.symlink('f.txt', path.join(dir, 'pkg', long, 'l'));
  execFileSync('tar', ['--format=pax', '-czf', path.join(dir, 'p.mpm'), '-C', path.join(dir, 'pkg'), '.']);
  const got = await members(await fs.readFile(path.join(dir, 'p.mpm')));
  const file = got.find((m) => m.guestPath === `/${long}/f.txt`);
  t.is(file?.contents.toString(), 'long');
  t.is(got.find((m) => m.guestPath === `/${long}/l`)?.linkname, 'f.txt');
});

const hostile: Array<[string, Entry[], RegExp]> = [
  ['a ../ name', [{ header: { name: '../../etc/passwd' }, body: 'x' }], /"\.\."/],
  ['a ../ inside an absolute name', [{ header: { name: '/usr/../../x' }, body: 'x' }], /"\.\."/],
  ['a character device', [{ header: { name: '/dev/sda', type: 'character-device', devmajor: 8 } }], /character-device/],
  ['a block device', [{ header: { name: '/dev/sdb', type: 'block-device' } }], /block-device/],
  ['a fifo', [{ header: { name: '/x', type: 'fifo' } }], /fifo/],
  ['a hard link', [{ header: { name: '/x', type: 'link', linkname: '/etc/passwd' } }], /hard links/],
  ['a symlink climbing above the root', [{ header: { name: '/a/b', type: 'symlink', linkname: '../../../etc' } }], /climbs above/],
  ['a write through a planted symlink', [
    { header: { name: '/lib', type: 'symlink', linkname: '/etc' } },
    { header: { name: '/lib/passwd' }, body: 'root::0:0' },
  ], /parent \/lib is a symlink/],
];

for (const [what, entries, message] of hostile) {
  test(`refuses ${what}`, async (t) => {
    const error = await t.throwsAsync(members(await tarOf(entries)), { instanceOf: RepositoryError, message });
    t.is(error?.code, 'E_MPM_UNSAFE');
    t.regex(error!.message, /test\.mpm/);
  });
}

test('a corrupt archive is a clear error naming the file', async (t) => {
  const bad = Buffer.concat([zlib.gzipSync(Buffer.alloc(0)).subarray(0, 10), Buffer.from('garbage')]);
  const error = await t.throwsAsync(members(bad), { instanceOf: RepositoryError });
  t.is(error?.code, 'E_MPM_CORRUPT');
  t.regex(error!.message, /^test\.mpm: /);
});

test('a package build ended by Ctrl+C or SIGTERM leaves no half archive in the package folder', async (t) => {
  const { execa } = await import('execa');
  const { randomBytes } = await import('node:crypto');
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-pkg-end-'));
    t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
    await fs.mkdir(path.join(dir, 'meta'));
    await fs.writeFile(path.join(dir, 'meta', 'package.yaml'), 'name: big\ntitle: Big\nauthor: test\n');
    // Random bytes do not compress: gzip takes a second or two over them, time to interrupt.
    await fs.writeFile(path.join(dir, 'data.bin'), randomBytes(48 * 1024 * 1024));
    const script = `import { buildPackage } from ${JSON.stringify(path.resolve('lib/repository/packages.ts'))}; await buildPackage(${JSON.stringify(dir)});`;
    const child = execa(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { reject: false, timeout: 60000 });
    let seen = false;
    for (let i = 0; i < 3000 && !seen && child.exitCode === null; i++) {
      seen = (await fs.readdir(dir)).some((f) => f.startsWith('.big.mpm.') && f.endsWith('.tmp'));
      if (!seen) await new Promise((r) => setTimeout(r, 10));
    }
    t.true(seen, 'the build was under way');
    child.kill(signal);
    const ended = await child;
    t.is(ended.signal, signal, `${signal}: the process still dies of the signal`);
    t.deepEqual((await fs.readdir(dir)).sort(), ['data.bin', 'meta'], `${signal}: no temp file, no .mpm`);
  }
});
