// The files of a runtime taken from the host (node and its libraries, the small files its OSv
// settings need) as the vinyls of one package: a descriptor carrying its run configuration,
// then its files, each with its guest path and the package's layer.
import path from 'node:path';
import Vinyl from 'vinyl';
import { annotate, type PackageRef } from '../carrier.js';
import type { Manifest } from '../manifest/types.js';
import type { HostRuntimeFiles } from '../runtimes/host-runtime.js';
import { hostVinyl } from './host-files.js';
import { S_IFREG, syntheticStat } from './synthetic-stat.js';

export function runtimeVinyls(runtime: HostRuntimeFiles, ref: PackageRef, manifest: Manifest): Vinyl[] {
  const base = `/${ref.name}`;
  const descriptor = new Vinyl({ cwd: '/', base: '/', path: base, contents: null });
  annotate(descriptor, { kind: 'package', package: ref, manifest, layer: ref.layer });
  const files = runtime.closure.map((entry) => {
    const file = hostVinyl(entry);
    annotate(file, { kind: 'package-file', package: ref, manifest, layer: ref.layer, guestPath: entry.guestPath });
    return file;
  });
  for (const g of runtime.generated) {
    const file = new Vinyl({
      cwd: '/', base, path: path.posix.join(base, g.guestPath), contents: g.contents, stat: syntheticStat(S_IFREG | g.mode, g.contents.length),
    });
    annotate(file, { kind: 'package-file', package: ref, manifest, layer: ref.layer, guestPath: g.guestPath });
    files.push(file);
  }
  return [descriptor, ...files];
}
