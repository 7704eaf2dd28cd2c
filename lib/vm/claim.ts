// Taking an instance folder for a boot (capstan-behaviour.md §2.7): an explicit name is
// reused (a persisted instance keeps its overlay) unless it is running; without a name the
// image's base name is made unique (`app`, `app-2`, …), so parallel boots never collide.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { VmError } from '../errors.js';
import {
  instanceNameFor, instancePaths, instanceRunning, readInstanceConfig, stopInstance, type InstancePaths,
} from './instances.js';
import { pidAlive } from './shutdown.js';

export interface Claim {
  paths: InstancePaths;
  /** A persisted instance whose overlay is booted again. */
  reuseDisk: boolean;
}

/**
 * Takes an instance folder for this boot. A folder is claimed atomically with mkdir and marked
 * with this process's pid (QEMU's -pidfile replaces it), so concurrent boots never share one.
 */
export async function claimInstance(explicit: string | undefined, image: string, root: string, replace: boolean): Promise<Claim> {
  await mkdir(path.join(root, 'instances', 'qemu'), { recursive: true });
  if (explicit !== undefined) {
    const p = instancePaths(explicit, root);
    if (existsSync(p.dir) && await instanceRunning(explicit, root)) {
      if (!replace) {
        throw new VmError(`instance "${explicit}" is already running`, {
          code: 'E_VM_RUNNING', file: p.dir,
          hint: `Stop it first (stopInstance("${explicit}")), pass \`replace: true\`, or choose another name.`,
        });
      }
      await stopInstance(explicit, { root });
    }
    const persisted = existsSync(p.dir) && (await readInstanceConfig(p.config)) !== undefined;
    if (persisted && existsSync(p.disk)) {
      writeFileSync(p.pidFile, `${process.pid}\n`);
      return { paths: p, reuseDisk: true };
    }
    await rm(p.dir, { recursive: true, force: true });
    mkdirSync(p.dir);
    writeFileSync(p.pidFile, `${process.pid}\n`);
    return { paths: p, reuseDisk: false };
  }
  const base = instanceNameFor(image);
  for (let i = 1; i < 1000; i++) {
    const name = i === 1 ? base : `${base}-${i}`;
    const p = instancePaths(name, root);
    try {
      mkdirSync(p.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (!(await isStale(p))) continue;
      await rm(p.dir, { recursive: true, force: true });
      try { mkdirSync(p.dir); } catch { continue; }
    }
    writeFileSync(p.pidFile, `${process.pid}\n`);
    return { paths: p, reuseDisk: false };
  }
  throw new VmError(`no free instance name for ${base}`, { code: 'E_VM_NAME', hint: 'Delete old instances (deleteInstance) or pass `name`.' });
}

/** A folder left by a process that died without cleaning up: not persisted, its pid gone. */
async function isStale(p: InstancePaths): Promise<boolean> {
  if ((await readInstanceConfig(p.config)) !== undefined) return false;
  let pid: number | undefined;
  try {
    pid = Number(readFileSync(p.pidFile, 'utf8').trim()) || undefined;
  } catch {
    return false; // being set up right now
  }
  return !pidAlive(pid);
}
