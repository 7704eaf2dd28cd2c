// Child of test/src.test.ts: runs capstan.src and gulp.src on a tree as an unprivileged user
// (root reads anything, so permission errors need someone else). Modules load first, as the
// caller; then the process drops to `nobody` when it runs as root.
//   node --import=tsx src-unprivileged.ts <root> <glob> [read]
// Prints one JSON line: {ours: "<relative,…>" | "ERROR <message>", gulp: the same for gulp.src}.
// @ts-ignore -- gulp 5 ships no type declarations
import { src as gulpSrc } from 'gulp';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Vinyl from 'vinyl';
import { src } from '../../lib/vinyl/src.js';

const [root, glob, mode] = process.argv.slice(2) as [string, string, string | undefined];
if (process.getuid?.() === 0) {
  process.setgid!(65534);
  process.setuid!(65534);
}

async function names(stream: NodeJS.ReadableStream): Promise<string> {
  const out: string[] = [];
  try {
    await pipeline(stream, new Writable({ objectMode: true, write(f: Vinyl, _e, cb) { out.push(f.relative); cb(); } }));
    return out.join(',');
  } catch (error) {
    return `ERROR ${(error as Error).message}`;
  }
}

const read = mode === 'read';
const ours = await names(src(glob, { cwd: root, read }));
const gulp = await names((gulpSrc as (g: string, o: object) => NodeJS.ReadableStream)(glob, { cwd: root, read, encoding: false, resolveSymlinks: false }));
process.stdout.write(JSON.stringify({ ours, gulp }) + '\n');
