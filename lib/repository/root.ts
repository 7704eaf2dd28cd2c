// Where Capstan keeps its state: $CAPSTAN_ROOT, else ~/.capstan (capstan-behaviour.md §2.5).
import os from 'node:os';
import path from 'node:path';

/** The Capstan root folder: `explicit`, else $CAPSTAN_ROOT, else ~/.capstan. */
export function capstanRoot(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const root = explicit ?? env.CAPSTAN_ROOT;
  return path.resolve(root && root.length > 0 ? root : path.join(os.homedir(), '.capstan'));
}

/**
 * Path of an image in the local repository: `repository/<name>/<basename>.<hypervisor>`.
 * Names may be namespaced (`mike/osv-loader`).
 */
export function repositoryImagePath(name: string, root: string, hypervisor = 'qemu'): string {
  return path.join(root, 'repository', ...name.split('/'), `${path.posix.basename(name)}.${hypervisor}`);
}

/** Paths of a package in the local repository (`packages/<name>.mpm` and `.yaml`). */
export function repositoryPackagePaths(name: string, root: string): { mpm: string; yaml: string } {
  const dir = path.join(root, 'packages');
  return { mpm: path.join(dir, `${name}.mpm`), yaml: path.join(dir, `${name}.yaml`) };
}

/** Folder of a QEMU instance (`instances/qemu/<name>`). */
export function instanceDir(name: string, root: string, platform = 'qemu'): string {
  return path.join(root, 'instances', platform, name);
}
