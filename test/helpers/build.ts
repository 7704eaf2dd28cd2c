// The tests that run the real `gulp` and `capstan` binaries use the built package (dist/), as
// a user's project does. .ci/run builds first; locally, build when a source is newer.
import { execa } from 'execa';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';

export const repo = path.resolve(import.meta.dirname, '../..');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(full) : e.name.endsWith('.ts') ? statSync(full).mtimeMs : 0);
  }
  return t;
}

let building: Promise<void> | undefined;

export function ensureBuilt(): Promise<void> {
  building ??= (async () => {
    let built = 0;
    try { built = statSync(path.join(repo, 'dist', 'tasks', 'index.js')).mtimeMs; } catch { /* not built */ }
    if (built >= Math.max(newest(path.join(repo, 'lib')), newest(path.join(repo, 'tasks')))) return;
    // ava runs test files in parallel processes: one builds, the others wait for it.
    const lock = path.join(repo, '.build-lock');
    for (;;) {
      try { mkdirSync(lock); break; } catch { await delay(200); }
      try { if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true }); } catch { /* gone */ }
    }
    try {
      let again = 0;
      try { again = statSync(path.join(repo, 'dist', 'tasks', 'index.js')).mtimeMs; } catch { /* not built */ }
      if (again < Math.max(newest(path.join(repo, 'lib')), newest(path.join(repo, 'tasks')))) {
        await execa('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repo });
      }
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  })();
  return building;
}
