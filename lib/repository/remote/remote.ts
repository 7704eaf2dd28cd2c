// What a remote repository offers, whatever its kind: the loader (and its kernel ELF for the
// fast -kernel boot), the ZFS builder, packages (a .yaml and an .mpm from one place), and, on
// S3-style remotes, namespaced images. Names that become file names are checked here.
import { RepositoryError } from '../../errors.js';

export interface RemoteFile {
  /** Name as the remote lists it (asset name or key). */
  name: string;
  url: string;
  /** Bytes served, when the remote announces it. */
  size?: number | undefined;
  /** Lowercase hex sha256 of the bytes served, when the remote gives one. */
  sha256?: string | undefined;
  /** True when the bytes are gzip to unpack (the name ends in .gz). */
  gzipped: boolean;
}

export interface RemoteLoader {
  loader: RemoteFile;
  /** The kernel ELF of the same build (`<L>.elf.<arch>[.gz]`), when the same place has it. */
  kernel?: RemoteFile | undefined;
  /** The release it comes from (GitHub), or the key prefix (S3). */
  release: string;
  /** `index.yaml` beside it (S3). */
  index?: RemoteFile | undefined;
}

export interface RemotePackage {
  name: string;
  yaml: RemoteFile;
  mpm: RemoteFile;
  release: string;
}

export interface Remote {
  /** `GitHub releases <url> (release any)` / `S3 <url>`, for messages. */
  readonly description: string;
  findLoader(name: string, arch: string): Promise<RemoteLoader | undefined>;
  /** The kernel ELF for a loader pulled earlier from `release`. */
  findKernel(loaderName: string, arch: string, release: string | undefined): Promise<RemoteFile | undefined>;
  /** The ZFS builder; from `release` only, when given (the loader's release: the two must match). */
  findZfsBuilder(arch: string, release?: string | undefined): Promise<(RemoteFile & { release: string }) | undefined>;
  findPackage(name: string, arch: string): Promise<RemotePackage | undefined>;
  /** Every package descriptor the remote offers (for search), with its release. */
  packageDescriptors(): Promise<{ file: RemoteFile; release: string }[]>;
  /** A namespaced image (`<ns>/<name>`) for a hypervisor; S3-style remotes only. */
  findImage(name: string, hypervisor: string): Promise<{ image: RemoteFile; index?: RemoteFile | undefined } | undefined>;
}

/** The host architecture in OSv's asset names. */
export function hostArch(arch: string = process.arch): string {
  return arch === 'x64' ? 'x86_64' : arch === 'arm64' ? 'aarch64' : arch;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/**
 * Checks a package or image name that becomes a file name in the local repository: no `/`,
 * no `..`, nothing that is not a plain name. Namespaced image names (`mike/osv-loader`) are
 * checked segment by segment when `namespaced`.
 */
export function checkRepositoryName(name: string, what: string, namespaced = false): string {
  const parts = namespaced ? name.split('/') : [name];
  for (const part of parts) {
    if (!NAME.test(part) || part.includes('..')) {
      throw new RepositoryError(`"${name}" is not a valid ${what} name`, {
        code: 'E_NAME_INVALID',
        hint: namespaced
          ? 'Use letters, digits, ".", "_", "+" and "-", and "/" only between a namespace and a name (e.g. "mike/osv-loader"); no "..".'
          : 'Use letters, digits, ".", "_", "+" and "-" (e.g. "osv.bootstrap"); no "/" and no "..".',
      });
    }
  }
  return name;
}
