// The files of a runtime taken from the host (a program and its libraries, a runtime's folder,
// the small files its OSv settings need) as the vinyls of one package: a descriptor carrying its
// run configuration, then its files, each with its guest path and the package's layer.
import path from 'node:path';
import Vinyl from 'vinyl';
import { annotate, type PackageRef } from '../carrier.js';
import { HostError } from '../errors.js';
import type { Manifest } from '../manifest/types.js';
import type { HostRuntimeFiles } from '../runtimes/host-runtime.js';
import { hostVinyl } from './host-files.js';
import { S_IFREG, syntheticStat } from './synthetic-stat.js';

export function runtimeVinyls(runtime: HostRuntimeFiles, ref: PackageRef, manifest: Manifest): Vinyl[] {
  const base = `/${ref.name}`;
  const descriptor = new Vinyl({ cwd: '/', base: '/', path: base, contents: null });
  annotate(descriptor, { kind: 'package', package: ref, manifest, layer: ref.layer });
  // A library the closure places inside the runtime's tree is the tree's file; two different
  // files at one guest path would be a silent loss, so that is an error.
  const placed = new Map<string, string>();
  const files: Vinyl[] = [];
  for (const entry of [...runtime.tree, ...runtime.closure]) {
    const key = entry.type === 'symlink' ? `-> ${entry.target}` : entry.hostPath;
    const previous = placed.get(entry.guestPath);
    if (previous !== undefined) {
      if (previous === key) continue;
      throw new HostError(`two files of the ${runtime.title} would share the guest path ${entry.guestPath}: ${previous} and ${key}`, {
        code: 'E_HOST_GUEST_CLASH', file: entry.hostPath, hint: 'Report this: the runtime and its libraries should not overlap.',
      });
    }
    placed.set(entry.guestPath, key);
    const file = hostVinyl(entry);
    annotate(file, { kind: 'package-file', package: ref, manifest, layer: ref.layer, guestPath: entry.guestPath });
    files.push(file);
  }
  for (const g of runtime.generated) {
    const file = new Vinyl({
      cwd: '/', base, path: path.posix.join(base, g.guestPath), contents: g.contents, stat: syntheticStat(S_IFREG | g.mode, g.contents.length),
    });
    annotate(file, { kind: 'package-file', package: ref, manifest, layer: ref.layer, guestPath: g.guestPath });
    files.push(file);
  }
  return [descriptor, ...files];
}
