// A stand-in for QEMU running OSv's ZFS builder (or an image booted with cpiod), for CI where
// no OSv binary exists. Started as $CAPSTAN_QEMU_PATH (through the wrapper fake-cpiod.ts
// writes), it does what the guest side does, as far as the host can see:
//  - reads the forwarded port from `-netdev user,...,hostfwd=tcp:127.0.0.1:PORT-:10000`.
//    With user-mode networking QEMU itself listens on that host port, so this program
//    listens there;
//  - prints cpiod's `Waiting for connection from host...` on stdout (the serial console);
//  - extracts what it receives with GNU `cpio -idm --no-absolute-filenames` into
//    $FAKE_CPIOD_DIR/<port>-<pid>/tree, keeps the raw stream in …/stream.cpio, and records its
//    arguments and the disk's command line in …/args.json;
//  - writes the four vdev labels of an exported pool `osv` into the disk's partition (what the
//    builder leaves, so the host-side check passes), prints `cpiod finished`, closes, exits 0.
// $FAKE_CPIOD_MODE changes the ending: `die` (exit 1 after 64 KiB, the connection dropped),
// `abort` (print cpiod's exception and "Aborted", then hang with the socket open), `full`
// (the same with "No space left on device"), `hang` (finish, then never exit), `nolabel`
// (finish without writing labels).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, openSync, writeFileSync, writeSync, closeSync, renameSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { decodeCmdline } from '../../lib/image/cmdline.js';
import { openDiskImage } from '../../lib/image/disk.js';
import { Qcow2Writer, openQcow2 } from '../../lib/image/qcow2.js';
import { encodeZfsLabel } from './zfs-label-vector.js';

const args = process.argv.slice(2);
const arg = (flag: string) => { const i = args.indexOf(flag); return i >= 0 ? args[i + 1] : undefined; };
const netdev = args[args.indexOf('-netdev') + 1] ?? '';
const port = Number(/hostfwd=tcp:127\.0\.0\.1:(\d+)-:10000/.exec(netdev)?.[1]);
const drive = /file=((?:[^,]|,,)+),.*format=(\w+)/.exec(args[args.indexOf('-drive') + 1] ?? '');
const disk = { path: drive?.[1]?.replaceAll(',,', ',') ?? '', format: drive?.[2] ?? 'raw' };
const mode = process.env.FAKE_CPIOD_MODE ?? 'ok';
const out = path.join(process.env.FAKE_CPIOD_DIR ?? '/tmp/fake-cpiod', `${port}-${process.pid}`);
mkdirSync(path.join(out, 'tree'), { recursive: true });
// The command line on the disk when the VM started (a disk boot reads it from there).
const diskCmdline = await (async () => {
  const r = await openDiskImage(disk.path, disk.format);
  try { return decodeCmdline(await r.read(0, 32768)); } finally { await r.close(); }
})();
writeFileSync(path.join(out, 'args.json'), JSON.stringify({ args, kernel: arg('-kernel'), append: arg('-append'), disk, diskCmdline, pid: process.pid, started: Date.now() }));
const raw = createWriteStream(path.join(out, 'stream.cpio'));

const say = (line: string) => process.stdout.write(`${line}\n`);
say('OSv v0.57.0-fake (stand-in)');

const server = net.createServer((socket) => {
  server.close();
  const cpio = spawn('cpio', ['-idm', '--no-absolute-filenames', '--quiet'], { cwd: path.join(out, 'tree'), stdio: ['pipe', 'ignore', 'inherit'] });
  // GNU cpio exits at the trailer, which can come before the socket's 'end': wait on its exit
  // from the start (a listener added later would miss it), and ignore writes after it left.
  const cpioExit = new Promise<number | null>((resolve) => cpio.on('close', resolve));
  cpio.stdin.on('error', () => {});
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (mode === 'die' && received > 64 * 1024) { socket.destroy(); process.exit(1); }
    if ((mode === 'abort' || mode === 'full') && received > 16 * 1024) {
      say("terminate called after throwing an instance of 'std::system_error'");
      say(mode === 'full' ? '  what():  mkdirp /zfs/big: No space left on device' : '  what():  bad cpio header');
      say('Aborted');
      socket.pause(); // halted: the connection stays open, nothing more is read
      return;
    }
    cpio.stdin.write(chunk);
    raw.write(chunk);
  });
  socket.on('end', () => {
    cpio.stdin.end();
    raw.end();
    void cpioExit.then(async (code) => {
      if (code !== 0) { say(`cpio failed with status ${code}`); socket.destroy(); process.exit(2); }
      if (mode !== 'nolabel') await writeLabels();
      say('cpiod finished');
      socket.end();
      if (mode === 'hang') return;
      setTimeout(() => process.exit(0), 50);
    }).catch((error: unknown) => { process.stderr.write(`fake cpiod: ${String(error)}\n`); process.exit(3); });
  });
});
server.on('error', (error: NodeJS.ErrnoException) => {
  // What QEMU says when the forwarded host port is taken (writeImage then picks another).
  process.stderr.write(`qemu-system-x86_64: -netdev ${netdev}: Could not set up host forwarding rule 'tcp:127.0.0.1:${port}-:10000' (${error.code})\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => say('Waiting for connection from host...'));
setInterval(() => {}, 1 << 30); // stay alive until told otherwise

/** Writes an exported pool's labels into the partition named by the MBR entry at 0x1CE. */
async function writeLabels(): Promise<void> {
  const reader = await openDiskImage(disk.path, disk.format);
  const mbr = await reader.read(0, 512);
  const start = mbr.readUInt32LE(0x1ce + 8) * 512;
  const size = mbr.readUInt32LE(0x1ce + 12) * 512;
  const label = encodeZfsLabel({ name: 'osv', state: 1n, txg: 4n });
  const aligned = Math.floor(size / 262144) * 262144;
  const at = [0, 262144, aligned - 2 * 262144, aligned - 262144].map((o) => start + o);
  if (disk.format === 'raw') {
    await reader.close();
    const fd = openSync(disk.path, 'r+');
    for (const o of at) writeSync(fd, label, 0, label.length, o);
    closeSync(fd);
    return;
  }
  // qcow2: rewrite the file with the labels added (what QEMU would allocate in place).
  const q = await openQcow2(disk.path);
  const temp = `${disk.path}.fake`;
  const writer = await Qcow2Writer.create(temp);
  for (const [s, e] of await q.dataExtents()) await writer.write(s, await q.read(s, e - s));
  for (const o of at) await writer.write(o, label);
  await writer.finish(q.virtualSize);
  await q.close();
  await reader.close();
  renameSync(temp, disk.path);
}
