// A real boot of an image we composed: the loader is the stand-in boot sector (it stands in
// for OSv's boot16 to check our layout: command line at byte 512, MBR entry 2 → ROFS), booted
// under qemu-system-x86_64 (KVM if usable, else TCG). The stand-in prints what it read.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { writeImage } from '../lib/steps/write-image.js';
import { capstanOf } from '../lib/carrier.js';
import { bootStandIn, buildStandInLoader, STAND_IN_EXIT_OK } from './helpers/stand-in.js';
import { runSteps, vinylFile, vinylSymlink } from './helpers/streams.js';

for (const format of ['qcow2', 'raw'] as const) {
  test(`a ${format} image boots the stand-in loader, which sees our command line and the ROFS magic`, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-boot-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const loader = await buildStandInLoader(path.join(dir, 'loader'));
    const out = path.join(dir, `app.${format}`);
    const cmdline = `--rootfs=rofs /hello "ünïcode" ${format}`;
    const [image] = await runSteps(
      [vinylFile(dir, 'hello', 'hi\n'), vinylFile(dir, 'etc/hosts', '127.0.0.1 localhost\n'), vinylSymlink(dir, 'link', '/hello')],
      writeImage({ out, loader, format, cmdline, silent: true }),
    );
    t.is(capstanOf(image!)?.image?.partition.start, 2 * 1024 * 1024);
    const boot = await bootStandIn(out, format);
    t.log(`booted with ${boot.accel}`);
    t.is(boot.exitCode, STAND_IN_EXIT_OK, boot.serial);
    t.is(boot.cmdline, cmdline);
    // First 16 bytes of the partition: the ROFS superblock's magic (ad be ad de) and version 1.
    t.is(boot.partitionHead, 'adbeadde000000000100000000000000');
  });
}
