// bench/formats: the same tree (10,000 files / 200 MB, as bench/compose) composed into every
// output format by the image writer alone, fed by a plain blocking fs walk that reads each file
// the way writeImage reads a `capstan.src` / `read: false` vinyl (one reused buffer, added
// synchronously when the format allows), so what differs between rows is the format: time,
// file size, and what the staged formats (streamOptimized VMDK, GCE) pay for their second,
// sequential pass. Disk size 10G, as Capstan's default for images.
// Runs alternate between formats; the median (and minimum) of BENCH_ROUNDS (default 3) is shown.
//
//   node --import=tsx bench/formats.ts
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImageComposer } from '../lib/image/compose.js';
import type { ImageFormat } from '../lib/image/disk.js';
import { HOST_READ_BUFFER_BYTES, hostFileChunks } from '../lib/vinyl/host-file.js';
import { generateTree, writeLoader } from './compose.js';

const MB = 1024 * 1024;
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const variants: { label: string; format: ImageFormat; vmdkSubformat?: 'monolithicSparse' | 'streamOptimized' }[] = [
  { label: 'qcow2', format: 'qcow2' },
  { label: 'raw', format: 'raw' },
  { label: 'vmdk monolithicSparse', format: 'vmdk' },
  { label: 'vmdk streamOptimized', format: 'vmdk', vmdkSubformat: 'streamOptimized' },
  { label: 'vdi', format: 'vdi' },
  { label: 'gce (tar.gz)', format: 'gce' },
];

async function compose(tree: string, loader: string, out: string, v: (typeof variants)[number]): Promise<number> {
  const started = performance.now();
  const composer = await ImageComposer.open({ out, loader, format: v.format, vmdkSubformat: v.vmdkSubformat, size: '10G' });
  const scratch = Buffer.allocUnsafe(HOST_READ_BUFFER_BYTES);
  const walk = async (dir: string, guest: string): Promise<void> => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const g = `${guest}/${name}`;
      const st = lstatSync(p);
      if (st.isDirectory()) { composer.addDirectory(g); await walk(p, g); }
      else if (st.isSymbolicLink()) composer.addSymlink(g, readlinkSync(p));
      else if (composer.canAddSync && st.size <= HOST_READ_BUFFER_BYTES) composer.addFileSync(g, hostFileChunks(p, st, scratch));
      else await composer.addFile(g, (async function* () { yield* hostFileChunks(p, st, scratch); })());
    }
  };
  await walk(tree, '');
  await composer.finish('/hello');
  return performance.now() - started;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-bench-formats-'));
  try {
    const tree = path.join(dir, 'tree');
    await generateTree(tree, 10_000, 200 * MB, 42);
    const loader = path.join(dir, 'loader.raw');
    await writeLoader(loader);
    const times = new Map<string, number[]>();
    const sizes = new Map<string, number>();
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const out = path.join(dir, `out-${v.label.replace(/\W+/g, '-')}`);
        const ms = await compose(tree, loader, out, v);
        times.set(v.label, [...(times.get(v.label) ?? []), ms]);
        const st = await stat(out);
        sizes.set(v.label, st.size);
        await rm(out);
      }
    }
    console.log(`tree: 10,000 files, 200 MB; disk 10G; median of ${rounds} runs`);
    for (const v of variants) {
      const t = [...times.get(v.label)!].sort((a, b) => a - b);
      const median = t[Math.floor(t.length / 2)]!;
      console.log(`${v.label.padEnd(24)} ${(median / 1000).toFixed(2).padStart(6)} s (min ${(t[0]! / 1000).toFixed(2)})   file ${(sizes.get(v.label)! / MB).toFixed(1).padStart(8)} MB`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
