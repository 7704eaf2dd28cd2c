// Where the host's dynamic loader (glibc's ld.so, elf/dl-load.c `_dl_map_object`) finds a
// DT_NEEDED name, step for step:
//   1. unless the needing object has DT_RUNPATH: the DT_RPATH of the needing object, then of the
//      object that loaded it, and so on up to the program (RPATH is inherited; an object that
//      has DT_RUNPATH has its DT_RPATH ignored altogether);
//   2. LD_LIBRARY_PATH (here an option, off by default: the build's environment is not the app's);
//   3. the needing object's own DT_RUNPATH (not inherited);
//   4. /etc/ld.so.cache, then 5. the standard folders — both skipped for DF_1_NODEFLIB objects.
// A file found but of the wrong class or machine is passed over, as glibc's open_verify does.
// $ORIGIN, $LIB and $PLATFORM (also as ${…}) are expanded in path lists. glibc's optional
// glibc-hwcaps subfolders are not searched (the guest's CPU is not the host's).
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { CapstanError } from '../errors.js';
import { DF_1_NODEFLIB, EM_X86_64, ET_DYN, readElf, type ElfFile } from './elf.js';

/** An object as the host's loader has it mapped. */
export interface HostObject {
  /** The path the loader opened it under (a program's given path, or search folder + name). */
  foundAt: string;
  /** The real file (symlinks followed). */
  realPath: string;
  /** $ORIGIN: the folder of the real program file, or the folder a library was found in. */
  origin: string;
  elf: ElfFile;
  /** The object whose DT_NEEDED loaded it first (glibc's l_loader); none for a program. */
  loader?: HostObject | undefined;
}

export type FoundVia = 'rpath' | 'ld-library-path' | 'runpath' | 'ld.so.cache' | 'default-dirs' | 'path';

export interface SearchHit {
  path: string;
  elf: ElfFile;
  via: FoundVia;
  /** For rpath/runpath: the object whose list matched, and the list element as written. */
  owner?: HostObject | undefined;
  entry?: string | undefined;
}

export interface SearchSettings {
  /** LD_LIBRARY_PATH folders (already split); empty when not emulated. */
  ldLibraryPath: readonly string[];
  /** ld.so.cache name → paths, for this architecture. */
  cache: ReadonlyMap<string, readonly string[]>;
  cacheFile: string | undefined;
  defaultDirs: readonly string[];
  /** What $LIB and $PLATFORM expand to. */
  dstLib: string;
  dstPlatform: string;
}

export interface SearchResult {
  hit?: SearchHit | undefined;
  /** What was searched, in order, for a "not found" message. */
  searched: string[];
  /** Files that exist under the name but are no x86-64 ELF64 shared object. */
  passedOver: string[];
}

const DST = /\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))/g;

/** Splits a DT_RPATH/DT_RUNPATH/LD_LIBRARY_PATH value and expands its DSTs. Empty elements mean the current folder. */
export function expandPathList(list: string, origin: string, settings: Pick<SearchSettings, 'dstLib' | 'dstPlatform'>): Array<{ entry: string; dir: string }> {
  return list.split(':').map((entry) => {
    const expanded = entry.replace(DST, (_m, braced: string | undefined, plain: string | undefined) => {
      const name = braced ?? plain;
      return name === 'ORIGIN' ? origin : name === 'LIB' ? settings.dstLib : settings.dstPlatform;
    });
    return { entry, dir: path.resolve(expanded === '' ? '.' : expanded) };
  });
}

/** Finds `name` (no '/') for `loader` the way glibc's loader would. */
export function searchLibrary(name: string, loader: HostObject | undefined, settings: SearchSettings): SearchResult {
  const searched: string[] = [];
  const passedOver: string[] = [];
  const tryDirs = (dirs: Array<{ entry?: string; dir: string }>, via: FoundVia, owner?: HostObject): SearchHit | undefined => {
    for (const { entry, dir } of dirs) {
      const candidate = path.join(dir, name);
      const elf = acceptable(candidate, passedOver);
      if (elf) return { path: candidate, elf, via, owner, entry };
    }
    return undefined;
  };
  const describeList = (what: string, owner: HostObject, list: string) =>
    `${what} of ${owner.foundAt} (${expandPathList(list, owner.origin, settings).map((d) => d.entry === d.dir ? d.dir : `${d.entry} → ${d.dir}`).join(', ')})`;

  const dyn = loader?.elf.dynamic;
  if (loader && dyn?.runpath === undefined) {
    for (let l: HostObject | undefined = loader; l; l = l.loader) {
      const rpath = l.elf.dynamic?.runpath === undefined ? l.elf.dynamic?.rpath : undefined;
      if (rpath === undefined) continue;
      searched.push(describeList('DT_RPATH', l, rpath));
      const hit = tryDirs(expandPathList(rpath, l.origin, settings), 'rpath', l);
      if (hit) return { hit, searched, passedOver };
    }
  }
  if (settings.ldLibraryPath.length > 0) {
    searched.push(`LD_LIBRARY_PATH (${settings.ldLibraryPath.join(', ')})`);
    const hit = tryDirs(settings.ldLibraryPath.map((dir) => ({ dir })), 'ld-library-path');
    if (hit) return { hit, searched, passedOver };
  }
  if (loader && dyn?.runpath !== undefined) {
    searched.push(describeList('DT_RUNPATH', loader, dyn.runpath));
    const hit = tryDirs(expandPathList(dyn.runpath, loader.origin, settings), 'runpath', loader);
    if (hit) return { hit, searched, passedOver };
  }
  if (loader && ((dyn?.flags1 ?? 0) & DF_1_NODEFLIB)) {
    searched.push(`(not the cache nor the standard folders: ${loader.foundAt} is linked with -z nodefaultlib)`);
    return { searched, passedOver };
  }
  if (settings.cacheFile !== undefined) {
    searched.push(`the loader cache ${settings.cacheFile}`);
    const hit = tryDirs((settings.cache.get(name) ?? []).map((p) => ({ dir: path.dirname(p) })), 'ld.so.cache');
    if (hit) return { hit, searched, passedOver };
  }
  searched.push(`the standard folders (${settings.defaultDirs.join(', ')})`);
  const hit = tryDirs(settings.defaultDirs.map((dir) => ({ dir })), 'default-dirs');
  return { hit, searched, passedOver };
}

/** The ELF of `file` when it is an x86-64 ELF64 shared object; undefined (noted in passedOver) otherwise. */
function acceptable(file: string, passedOver: string[]): ElfFile | undefined {
  let elf: ElfFile;
  try {
    elf = readElf(file);
  } catch (error) {
    if (error instanceof CapstanError && error.code === 'E_HOST_NOT_FOUND') return undefined;
    passedOver.push(`${file} (${error instanceof CapstanError ? error.shortMessage : (error as Error).message})`);
    return undefined;
  }
  if (elf.header.machine !== EM_X86_64 || elf.header.type !== ET_DYN) {
    passedOver.push(`${file} (not an x86-64 shared library)`);
    return undefined;
  }
  return elf;
}

/** The real path of a file known to exist. */
export function realFile(file: string): string {
  return realpathSync(file);
}
