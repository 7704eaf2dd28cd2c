// The shared-library closure of host programs, and where each file goes in an OSv image.
//
// Resolution is the host loader's (search.ts), breadth-first in DT_NEEDED order like glibc's
// _dl_map_object_deps, one namespace per program: a name already loaded (by DT_NEEDED name or
// DT_SONAME) is reused, so what we capture is what `ldd` shows. Sonames OSv's kernel provides
// are left out (and not followed), as is the program's PT_INTERP.
//
// Placement follows OSv's loader (core/elf.cc `object::load_needed`, `program::load_object`):
// a name without '/' is searched in the needing object's DT_RUNPATH (else DT_RPATH) with only
// `$ORIGIN` replaced (by the folder of the object's real guest path), then in `/`, then in
// `/usr/lib`; LD_LIBRARY_PATH is not honoured and RPATH is not inherited. OSv loads
// depth-first, so any needer may be the one that searches. Hence:
//   * a library goes to /usr/lib, found by every needer, unless the host found it through a
//     `$ORIGIN` entry of its needer's own RUNPATH/RPATH: then it keeps that relative place
//     (bin/../lib stays bin/../lib), which OSv finds the same way;
//   * a needer whose OSv search would miss that place gets a /usr/lib/<name> symlink to it.
//   * the real file keeps its host file name and each DT_NEEDED name that differs becomes a
//     symlink beside it (libz.so.1 → libz.so.1.2.13), as the host has them.
// One name serves one file in OSv's program namespace: two programs that resolve a name to
// different files are an error, not a guess.
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { HostError } from '../errors.js';
import { readElf } from './elf.js';
import { DEFAULT_LIBRARY_DIRS, LD_CACHE_FILE, ldCacheIndex, readLdCache } from './ld-cache.js';
import { checkOsvCanLoad, type OsvRuleOptions } from './osv-rules.js';
import { searchLibrary, type FoundVia, type HostObject, type SearchHit, type SearchSettings } from './search.js';

/** Sonames OSv's kernel provides (core/elf.cc `supplied_modules`; osv-image-formats.md §3.11). */
export const OSV_KERNEL_SONAMES: readonly string[] = [
  'libc.so.6', 'libm.so.6', 'libpthread.so.0', 'libdl.so.2', 'librt.so.1', 'libresolv.so.2', 'libaio.so.1',
  'libxenstore.so.3.0', 'libcrypt.so.1', 'libutil.so', 'ld-linux-x86-64.so.2', 'libc.musl-x86_64.so.1', 'ld-musl-x86_64.so.1',
];
/** Also provided, except by the "hidden symbols" kernels (osv-loader-hidden*). */
export const OSV_KERNEL_LIBSTDCXX = 'libstdc++.so.6';
/** Not provided by any OSv kernel, yet needed by most C++ programs. */
export const LIBGCC_S = 'libgcc_s.so.1';
/** Where OSv looks last, and where captured libraries go by default. */
export const GUEST_LIBRARY_DIR = '/usr/lib';

export interface ClosureOptions extends OsvRuleOptions {
  /** The image boots a "hidden symbols" kernel (osv-loader-hidden*), which does not provide libstdc++.so.6. Default false. */
  hiddenKernel?: boolean | undefined;
  /** Capture libgcc_s.so.1 even when nothing needs it (OSv's kernel never provides it). Default false. */
  withGccS?: boolean | undefined;
  /** Search these folders as LD_LIBRARY_PATH (a ':'-list or an array). Default: none (the build's environment is not the app's). */
  ldLibraryPath?: string | readonly string[] | undefined;
  /** The loader cache to read, or false for none. Default /etc/ld.so.cache (absent: none). */
  ldCache?: string | false | undefined;
  /** The loader's standard folders. Default: DEFAULT_LIBRARY_DIRS. */
  defaultDirs?: readonly string[] | undefined;
  /** Guest path of the program when there is one (default: its host path). */
  at?: string | undefined;
  /** What $LIB expands to. Default lib/x86_64-linux-gnu on multiarch hosts, else lib64. */
  dstLib?: string | undefined;
  /** What $PLATFORM expands to. Default x86_64. */
  dstPlatform?: string | undefined;
  /**
   * Names the image provides by itself, left out like the kernel's (a JDK's libjvm.so, which its
   * other libraries need without a RUNPATH: the JVM has loaded it before it loads them).
   */
  alsoProvided?: readonly string[] | undefined;
  /**
   * A library the host lacks: `'error'` (default) fails, `'report'` lists it in `missing` and goes
   * on, for objects that are only ever loaded on demand (a JDK's GUI libraries on a headless host).
   */
  missing?: 'error' | 'report' | undefined;
}

/** A program to capture, optionally with its guest path. */
export interface ProgramSpec {
  path: string;
  at?: string | undefined;
}

export interface ClosureEntry {
  type: 'program' | 'library' | 'symlink';
  /** Absolute guest path. */
  guestPath: string;
  /** The real host file (symlinks followed); for a symlink, the file it leads to. */
  hostPath: string;
  /** Library: the first DT_NEEDED name it serves. Symlink: the name it provides. */
  soname?: string | undefined;
  /** Symlink target, as stored in the image. */
  target?: string | undefined;
  /** Host paths of the objects that need it (programs and libraries). */
  neededBy: string[];
  /** Library: where the host's loader found it, and how. */
  foundAt?: string | undefined;
  foundVia?: FoundVia | 'withGccS' | undefined;
}

export interface SkippedLibrary {
  name: string;
  /** `kernel`: OSv provides it; `interpreter`: the program's PT_INTERP; `image`: named in alsoProvided. */
  reason: 'kernel' | 'interpreter' | 'image';
  neededBy: string[];
}

export interface MissingLibrary {
  name: string;
  /** Host paths of the objects that need it. */
  neededBy: string[];
  /** Where the host's loader looked. */
  searched: string[];
}

export interface HostClosure {
  entries: ClosureEntry[];
  /** Names left out because OSv provides them. */
  skipped: SkippedLibrary[];
  /** With `missing: 'report'`: names the host does not have (their needers will fail to load). */
  missing: MissingLibrary[];
}

/** An object placed in the guest. */
interface Placed {
  object: HostObject;
  /** Guest path of its real file (OSv's $ORIGIN is its folder). */
  guestFile: string;
}

interface Library {
  realPath: string;
  names: string[];
  foundAt: string;
  via: FoundVia | 'withGccS';
  guestDir: string;
  guestFile: string;
  neededBy: Set<string>;
  uses: Array<{ needer: Placed | undefined; name: string }>;
  /** Put a /usr/lib/<name> link even if no needer requires one (libgcc_s with withGccS). */
  wantsLibraryDirLink: boolean;
}

/** Captures `programs` and every library they need that OSv does not provide. */
export function captureClosure(programs: ReadonlyArray<string | ProgramSpec>, options: ClosureOptions = {}): HostClosure {
  return new ClosureBuilder(options).capture(normalisePrograms(programs, options));
}

/** The entries of captureClosure: what goes into the image, and where. */
export function hostClosure(programs: ReadonlyArray<string | ProgramSpec>, options: ClosureOptions = {}): ClosureEntry[] {
  return captureClosure(programs, options).entries;
}

function normalisePrograms(programs: ReadonlyArray<string | ProgramSpec>, options: ClosureOptions): ProgramSpec[] {
  if (!Array.isArray(programs) || programs.length === 0) {
    throw new HostError('no programs to capture', { code: 'E_HOST_OPTIONS', hint: "Pass host paths, e.g. hostFiles(['/usr/bin/node'])." });
  }
  const specs = programs.map((p) => (typeof p === 'string' ? { path: p } : p));
  for (const s of specs) {
    if (!s || typeof s.path !== 'string' || s.path === '') {
      throw new HostError('each program must be a host path or {path, at}', { code: 'E_HOST_OPTIONS', hint: "e.g. ['/usr/bin/node'] or [{path: 'build/app', at: '/app'}]." });
    }
  }
  if (options.at !== undefined) {
    if (specs.length !== 1) {
      throw new HostError('option `at` places one program, but several were given', {
        code: 'E_HOST_OPTIONS', hint: "Give each program its own guest path: [{path: '/usr/bin/a', at: '/a'}, {path: '/usr/bin/b', at: '/b'}].",
      });
    }
    specs[0] = { ...specs[0]!, at: options.at };
  }
  for (const s of specs) {
    if (s.at !== undefined && (typeof s.at !== 'string' || !s.at.startsWith('/') || s.at === '/')) {
      throw new HostError(`guest path ${JSON.stringify(s.at)} for ${s.path} must be an absolute path below /`, { code: 'E_HOST_OPTIONS', hint: "e.g. at: '/usr/bin/node'." });
    }
  }
  return specs;
}

class ClosureBuilder {
  private readonly settings: SearchSettings;
  private readonly provided: Set<string>;
  private readonly programs: Placed[] = [];
  private readonly libraries: Library[] = [];
  private readonly byName = new Map<string, Library>();
  private readonly byReal = new Map<string, Library>();
  private readonly skipped = new Map<string, SkippedLibrary>();
  private readonly missing = new Map<string, MissingLibrary>();
  private readonly alsoProvided: Set<string>;

  constructor(private readonly options: ClosureOptions) {
    const cacheFile = options.ldCache === false ? undefined : options.ldCache ?? LD_CACHE_FILE;
    const cache = cacheFile === undefined ? undefined : readLdCache(cacheFile);
    const llp = options.ldLibraryPath;
    const ldLibraryPath = llp === undefined ? [] : (typeof llp === 'string' ? llp.split(':') : [...llp]).filter((d) => d !== '').map((d) => path.resolve(d));
    this.settings = {
      ldLibraryPath,
      cache: ldCacheIndex(cache),
      cacheFile: cache ? cacheFile : undefined,
      defaultDirs: options.defaultDirs ?? DEFAULT_LIBRARY_DIRS,
      dstLib: options.dstLib ?? (existsSync('/lib/x86_64-linux-gnu') ? 'lib/x86_64-linux-gnu' : 'lib64'),
      dstPlatform: options.dstPlatform ?? 'x86_64',
    };
    this.provided = new Set(OSV_KERNEL_SONAMES);
    if (!options.hiddenKernel) this.provided.add(OSV_KERNEL_LIBSTDCXX);
    this.alsoProvided = new Set(options.alsoProvided ?? []);
  }

  capture(specs: ProgramSpec[]): HostClosure {
    for (const spec of specs) this.walk(this.loadProgram(spec));
    if (this.options.withGccS) this.addGccS();
    return { entries: this.entries(), skipped: [...this.skipped.values()], missing: [...this.missing.values()] };
  }

  private loadProgram(spec: ProgramSpec): Placed {
    const foundAt = path.resolve(spec.path);
    const elf = readElf(foundAt);
    checkOsvCanLoad(elf, this.options);
    const realPath = realpathSync(foundAt);
    const placed: Placed = { object: { foundAt, realPath, origin: path.dirname(realPath), elf }, guestFile: guestNormal(spec.at ?? foundAt) };
    this.programs.push(placed);
    return placed;
  }

  /** Breadth-first over DT_NEEDED, one program's namespace. */
  private walk(root: Placed): void {
    const namespace = new Map<string, Placed & { library: Library }>();
    const interpreter = root.object.elf.interpreter;
    const queue: Placed[] = [root];
    for (let current = queue.shift(); current; current = queue.shift()) {
      for (const name of current.object.elf.dynamic?.needed ?? []) {
        if (this.provided.has(name)) { this.skip(name, 'kernel', current); continue; }
        if (interpreter !== undefined && (name === interpreter || name === path.posix.basename(interpreter))) { this.skip(name, 'interpreter', current); continue; }
        if (this.alsoProvided.has(name)) { this.skip(name, 'image', current); continue; }
        const known = namespace.get(name);
        if (known) { this.use(known.library, current, name); continue; }
        const loaded = this.load(name, current);
        if (!loaded) continue;
        namespace.set(name, loaded);
        const soname = loaded.object.elf.dynamic?.soname;
        if (soname !== undefined && !namespace.has(soname)) namespace.set(soname, loaded);
        queue.push(loaded);
      }
    }
  }

  private load(name: string, needer: Placed | undefined): (Placed & { library: Library }) | undefined {
    const hit = name.includes('/') ? this.byPath(name, needer) : this.search(name, needer);
    if (!hit) return undefined;
    const realPath = realpathSync(hit.path);
    checkOsvCanLoad(hit.elf, this.options);
    const object: HostObject = { foundAt: hit.path, realPath, origin: realpathSync(path.dirname(hit.path)), elf: hit.elf, loader: needer?.object };
    const named = this.byName.get(name);
    if (named && named.realPath !== realPath) throw conflict(name, named, realPath, needer);
    let library = named ?? this.byReal.get(realPath);
    if (!library) {
      const guestDir = name.includes('/') ? path.posix.dirname(guestNormal(name)) : guestDirFor(hit, needer);
      library = {
        realPath, names: [], foundAt: hit.path, via: needer ? hit.via : 'withGccS', guestDir,
        guestFile: name.includes('/') ? guestNormal(name) : path.posix.join(guestDir, path.basename(realPath)),
        neededBy: new Set(), uses: [], wantsLibraryDirLink: false,
      };
      this.libraries.push(library);
      this.byReal.set(realPath, library);
    }
    if (!library.names.includes(name)) library.names.push(name);
    this.byName.set(name, library);
    this.use(library, needer, name);
    return { object, guestFile: library.guestFile, library };
  }

  private search(name: string, needer: Placed | undefined): SearchHit | undefined {
    const result = searchLibrary(name, needer?.object, this.settings);
    if (result.hit) return result.hit;
    if (this.options.missing === 'report' && needer) {
      const entry = this.missing.get(name) ?? { name, neededBy: [], searched: result.searched };
      if (!entry.neededBy.includes(needer.object.foundAt)) entry.neededBy.push(needer.object.foundAt);
      this.missing.set(name, entry);
      return undefined;
    }
    const chain: string[] = [];
    for (let l = needer?.object.loader; l; l = l.loader) chain.push(l.foundAt);
    const who = needer ? `${needer.object.foundAt}${chain.length ? ` (loaded for ${chain.join(' ← ')})` : ''}` : 'option withGccS';
    throw new HostError(`${name}, needed by ${who}, was not found; searched ${result.searched.join('; ')}` +
      (result.passedOver.length ? `; passed over ${result.passedOver.join(', ')}` : ''), {
      code: 'E_LIB_NOT_FOUND', file: needer?.object.foundAt,
      hint: `Install the package that provides ${name} (the program would not start on this host either), or name its folder with {ldLibraryPath: ['/path/to/lib']}.`,
    });
  }

  /** A DT_NEEDED name with a '/': the loader opens that path as it is. */
  private byPath(name: string, needer: Placed | undefined): SearchHit {
    if (!name.startsWith('/')) {
      throw new HostError(`needs ${name}, a path relative to the folder it is started from`, {
        code: 'E_LIB_RELATIVE', file: needer?.object.foundAt, hint: 'Relink it against the library by soname (-L<dir> -l<name>), not by a relative path.',
      });
    }
    return { path: name, elf: readElf(name), via: 'path' };
  }

  private use(library: Library, needer: Placed | undefined, name: string): void {
    library.uses.push({ needer, name });
    if (needer) library.neededBy.add(needer.object.foundAt);
  }

  private skip(name: string, reason: SkippedLibrary['reason'], needer: Placed): void {
    const entry = this.skipped.get(name) ?? { name, reason, neededBy: [] };
    if (!entry.neededBy.includes(needer.object.foundAt)) entry.neededBy.push(needer.object.foundAt);
    this.skipped.set(name, entry);
  }

  /** libgcc_s.so.1 at /usr/lib whether or not a program needs it (as OSv's own images carry it). */
  private addGccS(): void {
    const present = this.byName.get(LIBGCC_S);
    if (present) { present.wantsLibraryDirLink = true; return; }
    const loaded = this.load(LIBGCC_S, undefined)!; // without a needer, a missing one throws
    loaded.library.wantsLibraryDirLink = true;
    this.walk(loaded);
  }

  private entries(): ClosureEntry[] {
    const out = new Map<string, ClosureEntry>();
    const add = (entry: ClosureEntry) => {
      const previous = out.get(entry.guestPath);
      if (!previous) { out.set(entry.guestPath, entry); return; }
      if (previous.type === entry.type && previous.hostPath === entry.hostPath && previous.target === entry.target) return;
      throw new HostError(`two captured files would share the guest path ${entry.guestPath}: ${previous.hostPath} and ${entry.hostPath}`, {
        code: 'E_HOST_GUEST_CLASH', file: entry.hostPath, hint: 'Place the program elsewhere ({at: …}), or capture the programs into separate images.',
      });
    };
    for (const p of this.programs) add({ type: 'program', guestPath: p.guestFile, hostPath: p.object.realPath, neededBy: [] });
    for (const lib of this.libraries) {
      add({
        type: 'library', guestPath: lib.guestFile, hostPath: lib.realPath, soname: lib.names[0], neededBy: [...lib.neededBy],
        foundAt: lib.foundAt, foundVia: lib.via,
      });
      const links = new Map<string, { target: string; name: string }>();
      for (const name of lib.names.filter((n) => !n.includes('/'))) {
        const at = path.posix.join(lib.guestDir, name);
        if (at !== lib.guestFile) links.set(at, { target: path.posix.basename(lib.guestFile), name });
      }
      for (const { needer, name } of lib.uses) {
        if (name.includes('/') || lib.guestDir === GUEST_LIBRARY_DIR) continue;
        if (needer && osvSearchDirs(needer).includes(lib.guestDir)) continue;
        links.set(path.posix.join(GUEST_LIBRARY_DIR, name), { target: path.posix.join(lib.guestDir, name), name });
      }
      if (lib.wantsLibraryDirLink && lib.guestDir !== GUEST_LIBRARY_DIR) {
        for (const name of lib.names) links.set(path.posix.join(GUEST_LIBRARY_DIR, name), { target: path.posix.join(lib.guestDir, name), name });
      }
      for (const [guestPath, { target, name }] of links) {
        add({ type: 'symlink', guestPath, hostPath: lib.realPath, soname: name, target, neededBy: [...lib.neededBy] });
      }
    }
    return [...out.values()];
  }
}

/** Where a newly found library goes: beside what found it through its own $ORIGIN path, else /usr/lib. */
function guestDirFor(hit: SearchHit, needer: Placed | undefined): string {
  if (needer && (hit.via === 'runpath' || hit.via === 'rpath') && hit.owner === needer.object && hit.entry !== undefined) {
    const dir = osvExpand(hit.entry, path.posix.dirname(needer.guestFile));
    if (dir !== undefined) return dir;
  }
  return GUEST_LIBRARY_DIR;
}

/** A RUNPATH/RPATH element as OSv expands it (only `$ORIGIN`), when it names an absolute folder built on $ORIGIN. */
function osvExpand(entry: string, guestOrigin: string): string | undefined {
  if (!entry.includes('$ORIGIN')) return undefined;
  const expanded = entry.split('$ORIGIN').join(guestOrigin);
  if (expanded.includes('$') || !expanded.startsWith('/')) return undefined;
  return guestNormal(expanded);
}

/** The folders OSv searches for a needer's names (core/elf.cc load_needed + the program search path). */
function osvSearchDirs(needer: Placed): string[] {
  const dyn = needer.object.elf.dynamic;
  const list = dyn?.runpath ?? dyn?.rpath ?? '';
  const origin = path.posix.dirname(needer.guestFile);
  const dirs = list === '' ? [] : list.split(':').map((e) => e.split('$ORIGIN').join(origin)).filter((d) => d.startsWith('/')).map(guestNormal);
  return [...dirs, '/', GUEST_LIBRARY_DIR];
}

function guestNormal(p: string): string {
  const normal = path.posix.normalize(p);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

function conflict(name: string, existing: Library, other: string, needer: Placed | undefined): HostError {
  return new HostError(
    `${name} resolves to two different files: ${existing.realPath} (for ${[...existing.neededBy].join(', ') || 'withGccS'}) and ${other} (for ${needer?.object.foundAt ?? 'withGccS'})`, {
      code: 'E_LIB_CONFLICT', file: needer?.object.foundAt,
      hint: 'OSv loads one library per name for all programs of an image: make the programs use the same build of it (same RUNPATH), or put them in separate images.',
    });
}
