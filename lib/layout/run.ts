// The state of one layoutFiles stream (one build): which guest paths are taken, the ignore
// rules and Capstanfile mapping once the manifest is known, the packages' run configurations,
// and at the end the entries nobody provided (skeleton, /run scripts, implied folders).
import { createReadStream, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import Vinyl from 'vinyl';
import { APP_LAYER, annotate, capstanOf, type CapstanMeta } from '../carrier.js';
import { LayoutError } from '../errors.js';
import type { StepLogger } from '../log.js';
import { withResolvedBootScripts } from '../manifest/boot-scripts.js';
import { nodeModulesFilter } from '../runtimes/node-project.js';
import type { Manifest, RunConfig } from '../manifest/types.js';
import { syntheticStat, typeBits } from '../vinyl/synthetic-stat.js';
import {
  GuestTree, SKELETON_LAYER, capstanfileGuestPaths, capstanfileLayout, compileIgnore, guestPathOf, isIgnored,
  isMetaPath, parseCapstanignore, readHostEntry, relativeOf, rewriteSymlinkTarget, rofsSkeleton, runScriptEntries,
  type CapstanfileLayout, type GeneratedEntry, type GuestEntryType, type IgnoreFolderMemo, type IgnoreMatcher, type IgnorePatternSource,
  type RunScriptSource,
} from './index.js';

export interface LayoutSettings {
  ignore: IgnorePatternSource[];
  skeleton: boolean;
  rewriteSymlinks: boolean;
}

/** The state of one layoutFiles stream (one build). */
export class LayoutRun {
  private manifest: Manifest | undefined;
  private matcher: IgnoreMatcher | undefined;
  /** isIgnored's per-folder answers for `matcher` (set once, like the matcher). */
  private readonly ignoredFolders: IgnoreFolderMemo = new Map();
  private capstanfile: CapstanfileLayout | undefined;
  private readonly tree = new GuestTree();
  /** Run configs of the packages that passed, in resolution order. */
  private readonly packageRuns: PackageRun[] = [];
  /** Capstanfile `files` guest paths already served by a stream file. */
  private readonly filesServed = new Set<string>();
  private sawInput = false;
  private readonly count = { app: 0, package: 0, ignored: 0, leftOut: 0, generated: 0, devDependencies: 0 };
  /** A Node project's production filter for node_modules (set with the manifest). */
  private nodeModules: ((guestPath: string) => boolean) | undefined;

  constructor(private readonly settings: LayoutSettings, private readonly log: StepLogger) {}

  accept(file: Vinyl): Vinyl | undefined {
    this.sawInput = true;
    const meta = capstanOf(file);
    if (meta?.manifest) this.useManifest(meta.manifest);
    switch (meta?.kind) {
      case 'manifest':
        return undefined; // not image content; every entry carries the manifest instead
      case 'package':
        if (meta.package?.run) {
          this.packageRuns.push({
            package: meta.package.name, run: meta.package.run, origin: `package ${meta.package.name}`, file: `${meta.package.name}: meta/run.yaml`,
          });
        }
        return undefined;
      case 'image':
        return file;
      case 'generated':
        if (meta.guestPath) this.tree.claim(meta.guestPath, { type: entryType(file), layer: meta.layer ?? SKELETON_LAYER, source: file.path });
        return file;
      case 'package-file':
        return this.placePackageFile(file, meta);
      default:
        return this.placeAppFile(file);
    }
  }

  private useManifest(manifest: Manifest): void {
    if (this.manifest === undefined) {
      this.manifest = manifest;
      if (manifest.nodeModules) this.nodeModules = nodeModulesFilter(manifest.nodeModules.production);
      if (manifest.capstanfile) this.capstanfile = capstanfileLayout(manifest.capstanfile, capstanfilePathOf(manifest));
    } else if (this.manifest !== manifest) {
      throw new LayoutError('files of two different applications (two manifests) reached one layoutFiles stream', {
        code: 'E_LAYOUT_TWO_MANIFESTS',
        hint: 'Build each application in its own pipeline: src → resolveManifest → fetchPackages → layoutFiles → writeImage.',
      });
    }
  }

  private placePackageFile(file: Vinyl, meta: CapstanMeta): Vinyl | undefined {
    // A host runtime's files (node and its libraries) know their guest path; a package member's is its path in the archive.
    const guestPath = meta.guestPath?.startsWith('/') ? guestPathOf(meta.guestPath.slice(1), file.path) : guestPathOf(relativeOf(file), file.path);
    // Capstan extracts no meta/* member of a package (meta/run.yaml is parsed, not copied).
    if (guestPath === '/' || isMetaPath(guestPath)) return undefined;
    const layer = meta.package?.layer ?? meta.layer ?? 0;
    const placed = this.place(file, guestPath, layer, `package ${meta.package?.name ?? file.path}`);
    if (placed) this.count.package += 1;
    return placed;
  }

  private placeAppFile(file: Vinyl): Vinyl | undefined {
    const preset = capstanOf(file)?.guestPath;
    if (preset !== undefined) return this.placePresetFile(file, preset);
    if (this.capstanfile) return this.placeCapstanfileFile(file, this.capstanfile);
    const guestPath = guestPathOf(relativeOf(file), file.path);
    // The package root itself, and /meta (Capstan parses meta/run.yaml and uploads no /meta folder).
    if (guestPath === '/' || guestPath === '/meta') return undefined;
    const ignored = isIgnored(this.ignoreMatcher(false), guestPath, this.ignoredFolders);
    if (ignored) {
      this.count.ignored += 1;
      const why = ignored.matchedPath === guestPath ? '' : ` (inside ${ignored.matchedPath})`;
      this.log.detail(`ignore ${guestPath}${why}: ${ignored.builtIn ? 'built-in' : '.capstanignore'} pattern ${ignored.pattern}`);
      return undefined;
    }
    if (this.nodeModules && !this.nodeModules(guestPath)) {
      this.count.devDependencies += 1;
      this.log.detail(`leave out ${guestPath}: not part of a production dependency`);
      return undefined;
    }
    const placed = this.place(file, guestPath, APP_LAYER, file.path);
    if (placed) this.count.app += 1;
    return placed;
  }

  /**
   * A file whose source already knows its guest path (hostFiles: /usr/bin/node, its libraries
   * in /usr/lib): its vinyl path is the host file writeImage reads, so `relative` cannot say
   * where it goes. It is placed there as an application file; ignore rules and the Capstanfile
   * mapping, which speak about the application's own folder, do not apply to it.
   */
  private placePresetFile(file: Vinyl, preset: string): Vinyl | undefined {
    const guestPath = preset.startsWith('/') ? guestPathOf(preset.slice(1), file.path) : '/';
    if (guestPath === '/') {
      throw new LayoutError(`capstan.guestPath ${JSON.stringify(preset)} is not an absolute path below /`, {
        code: 'E_LAYOUT_GUEST_PATH', file: file.path, hint: "Set an absolute guest path such as '/usr/lib/libfoo.so', or leave it unset so the path comes from file.relative.",
      });
    }
    const placed = this.place(file, guestPath, APP_LAYER, file.path);
    if (placed) this.count.app += 1;
    return placed;
  }

  /**
   * Capstanfile mode uploads only the rootfs folder (mirrored to '/') and the `files` map.
   * A stream file serves its first destination; further `files` entries naming the same host
   * file are read from disk at the end, so no contents are ever duplicated in memory.
   */
  private placeCapstanfileFile(file: Vinyl, layout: CapstanfileLayout): Vinyl | undefined {
    if (layout.rootfs !== undefined && path.resolve(file.path) === layout.rootfs) return undefined; // becomes '/'
    const targets = capstanfileGuestPaths(layout, file.path);
    let rootfsPath = targets.rootfs;
    if (rootfsPath !== undefined) {
      const ignored = isIgnored(this.ignoreMatcher(true), rootfsPath, this.ignoredFolders);
      if (ignored) {
        this.count.ignored += 1;
        this.log.detail(`ignore ${rootfsPath}: pattern ${ignored.pattern}`);
        rootfsPath = undefined;
      }
    }
    const fromFiles = targets.files.find((guest) => !this.filesServed.has(guest));
    const guestPath = rootfsPath ?? fromFiles;
    if (guestPath === undefined) {
      if (targets.files.length === 0 && targets.rootfs === undefined) {
        this.count.leftOut += 1;
        this.log.detail(`leave out ${file.relative}: neither below the Capstanfile rootfs nor listed in its files`);
      }
      return undefined;
    }
    // A file under rootfs that the files map also sends to the same place is one entry, not a clash.
    for (const guest of targets.files) if (guest === guestPath) this.filesServed.add(guest);
    const placed = this.place(file, guestPath, APP_LAYER, file.path);
    if (placed) this.count.app += 1;
    return placed;
  }

  /**
   * Ignore rules for application files. Package mode: the manifest's .capstanignore patterns,
   * the option's and Capstan's built-in ones, anchored at the package root. Capstanfile mode:
   * only the option's, anchored at the image root (Capstan's build reads no .capstanignore).
   */
  private ignoreMatcher(capstanfileMode: boolean): IgnoreMatcher {
    if (this.matcher) return this.matcher;
    const fromOptions = compileIgnore(this.settings.ignore, { defaults: false });
    if (capstanfileMode) {
      if (this.manifest?.ignore.length) {
        this.log.warn('.capstanignore is not applied to a Capstanfile build (Capstan does not read it there); use the `ignore` option, matched against image paths');
      }
      this.matcher = fromOptions;
      return this.matcher;
    }
    let fromManifest: IgnoreMatcher;
    try {
      fromManifest = compileIgnore(this.manifest?.ignore ?? []);
    } catch (error) {
      // The manifest only keeps the pattern text: find the line in .capstanignore to point at it.
      compileIgnore(locateManifestPatterns(this.manifest), { defaults: false });
      throw error;
    }
    this.matcher = { rules: [...fromManifest.rules, ...fromOptions.rules] };
    return this.matcher;
  }

  /** Annotates a file for its guest path, or drops it when it cannot win its path. */
  private place(file: Vinyl, guestPath: string, layer: number, source: string): Vinyl | undefined {
    const type = entryType(file);
    if (type === 'symlink') {
      // gulp.src with {read: false} does not read link targets: read it here.
      if (!file.symlink && file.isNull()) file.symlink = targetOnHost(file.path) ?? null;
      if (!file.symlink) {
        throw new LayoutError('symlink has no target', { code: 'E_LAYOUT_SYMLINK_TARGET', file: file.path, hint: 'Recreate the link with a target, or remove it.' });
      }
      if (this.settings.rewriteSymlinks) file.symlink = rewriteSymlinkTarget(guestPath, file.symlink);
    }
    const outcome = this.tree.claim(guestPath, { type, layer, source });
    switch (outcome.kind) {
      case 'duplicate-directory':
        return undefined;
      case 'app-clash':
        throw new LayoutError(`guest path ${guestPath} is claimed by two application files: ${outcome.previous.source} and ${source}`, {
          code: 'E_LAYOUT_DUPLICATE_GUEST_PATH', file: source,
          hint: 'Keep one of them: check the Capstanfile rootfs against its files map, or the bases of your gulp.src globs.',
        });
      case 'shadowed':
        this.log.detail(`skip ${guestPath} from ${source}: ${outcome.previous.source} wins (higher layer)`);
        return undefined;
      case 'overrides':
        this.log.detail(`${guestPath}: ${source} overrides ${outcome.previous?.source}`);
        break;
      case 'new':
        break;
    }
    annotate(file, {
      guestPath, layer,
      ...(this.manifest ? { manifest: this.manifest } : {}),
      ...(file.stat ? {} : { mode: defaultMode(type) }),
    });
    return file;
  }

  async finish(): Promise<Vinyl[]> {
    if (!this.sawInput) return [];
    const fromDisk = await this.filesFromDisk();

    const runs = runScriptEntries(this.runSources());
    for (const o of runs.overrides) this.log.detail(`/run/${o.name}: ${o.winner} overrides ${o.loser}`);
    for (const entry of runs.entries) {
      const outcome = this.tree.claim(entry.guestPath, { type: 'file', layer: APP_LAYER, source: entry.reason }, { winsTies: true });
      if (outcome.kind === 'overrides' && outcome.previous && outcome.previous.layer === APP_LAYER) {
        this.log.warn(`${entry.guestPath} from ${outcome.previous.source} is replaced by the boot script of ${entry.reason}, as Capstan does`);
      }
    }

    // Capstan's compose always creates /run, even with no config set to write there.
    const runDir: GeneratedEntry[] = this.manifest && !this.capstanfile && !this.tree.has('/run')
      ? [{ type: 'directory', guestPath: '/run', mode: 0o755, reason: 'the /run folder (Capstan always creates it)' }]
      : [];
    for (const entry of runDir) this.tree.claim(entry.guestPath, { type: 'directory', layer: SKELETON_LAYER, source: entry.reason });

    const skeleton = this.settings.skeleton ? rofsSkeleton().filter((entry) => !this.tree.has(entry.guestPath)) : [];
    for (const entry of skeleton) this.tree.claim(entry.guestPath, { type: entry.type, layer: SKELETON_LAYER, source: entry.reason });

    const implied: GeneratedEntry[] = this.tree.impliedDirectories().map((guestPath) => ({ type: 'directory', guestPath, mode: 0o755, reason: 'implied folder' }));
    for (const entry of implied) this.tree.claim(entry.guestPath, { type: 'directory', layer: SKELETON_LAYER, source: entry.reason });

    for (const { parent, claim } of this.tree.nonDirectoryParents()) {
      this.log.warn(`${parent} is a ${claim.type} (from ${claim.source}) but other entries lie below it; the image cannot hold both`);
    }

    const generated = [
      ...[...runDir, ...implied].map((e) => this.generatedVinyl(e, SKELETON_LAYER)),
      ...skeleton.map((e) => this.generatedVinyl(e, SKELETON_LAYER)),
      ...runs.entries.map((e) => this.generatedVinyl(e, APP_LAYER)),
    ];
    this.count.generated = generated.length;
    const c = this.count;
    this.log.summary(
      `${c.app} application and ${c.package} package entries, ${fromDisk.length} read from Capstanfile files, ` +
      `${c.generated} generated (${implied.length + runDir.length} folders, ${skeleton.length} skeleton, ${runs.entries.length} /run scripts); ` +
      `${c.ignored} ignored` + (this.capstanfile ? `, ${c.leftOut} outside rootfs/files` : '') +
      (this.nodeModules ? `, ${c.devDependencies} node_modules entries of dev dependencies left out` : ''),
    );
    return [...fromDisk, ...generated];
  }

  /**
   * Every config set's final script, in resolution order with the application last. Sets that
   * inherit (`base`, and java/node/python runtimes) are computed now that all packages' run
   * configs are known.
   */
  private runSources(): RunScriptSource[] {
    const m = this.manifest;
    const app: PackageRun[] = m?.run
      ? [{ package: m.package.name, run: m.run, origin: `application ${m.package.name}`, file: m.run.file ?? path.join(m.root, 'meta', 'run.yaml') }]
      : [];
    return withResolvedBootScripts([...this.packageRuns, ...app])
      .map((s) => ({ origin: s.origin, configSets: s.run.configSets, file: s.file }));
  }

  /** Capstanfile `files` entries no stream file served: read from the host, as Capstan would. */
  private async filesFromDisk(): Promise<Vinyl[]> {
    if (!this.capstanfile || !this.manifest) return [];
    const capstanfilePath = capstanfilePathOf(this.manifest);
    const out: Vinyl[] = [];
    for (const [guestPath, hostPath] of this.capstanfile.files) {
      if (this.filesServed.has(guestPath)) continue;
      const entry = await readHostEntry(hostPath, guestPath, capstanfilePath);
      const file = new Vinyl({
        cwd: this.manifest.root,
        base: path.dirname(hostPath),
        path: hostPath,
        // An empty placeholder until the entry is placed, so a clash cannot leave a file open.
        contents: entry.type === 'file' ? Buffer.alloc(0) : null,
        stat: syntheticStat(typeBits(entry.type) | (entry.mode & 0o7777), entry.size),
      });
      if (entry.target !== undefined) file.symlink = entry.target;
      annotate(file, { kind: 'app' });
      this.filesServed.add(guestPath);
      const placed = this.place(file, guestPath, APP_LAYER, hostPath);
      if (!placed) continue;
      if (entry.type === 'file') placed.contents = createReadStream(hostPath);
      out.push(placed);
    }
    return out;
  }

  private generatedVinyl(entry: GeneratedEntry, layer: number): Vinyl {
    const base = this.manifest?.root ?? process.cwd();
    const file = new Vinyl({
      cwd: base,
      base,
      path: path.join(base, ...entry.guestPath.split('/').filter(Boolean)),
      contents: entry.type === 'file' ? entry.contents : null,
      stat: syntheticStat(typeBits(entry.type) | entry.mode, entry.type === 'file' ? entry.contents.length : 0),
    });
    if (entry.type === 'symlink') file.symlink = entry.target;
    annotate(file, { kind: 'generated', guestPath: entry.guestPath, layer, mode: entry.mode, ...(this.manifest ? { manifest: this.manifest } : {}) });
    this.log.detail(`add ${entry.guestPath} (${entry.reason})`);
    return file;
  }
}

interface PackageRun {
  package: string;
  run: RunConfig;
  origin: string;
  file: string;
}

function entryType(file: Vinyl): GuestEntryType {
  if (file.isSymbolic()) return 'symlink';
  if (file.isDirectory()) return 'directory';
  if (file.isBuffer() || file.isStream()) return 'file';
  // gulp.src(glob, {read: false}): a regular file without contents; writeImage reads it from file.path.
  if (typeof file.stat?.isFile === 'function' && file.stat.isFile()) return 'file';
  throw new LayoutError('file has no contents, so it cannot be placed in the image', {
    code: 'E_LAYOUT_NO_CONTENTS', file: file.path,
    hint: 'Give it contents, or the `stat` of a regular file (as gulp.src with {read: false} does) so that writeImage reads it from its path.',
  });
}

function targetOnHost(file: string): string | undefined {
  try {
    return readlinkSync(file);
  } catch {
    return undefined; // not a link on the host: reported as a symlink without a target
  }
}

function defaultMode(type: GuestEntryType): number {
  return type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644;
}

/** The manifest's ignore patterns with their .capstanignore line and column, when found there. */
function locateManifestPatterns(manifest: Manifest | undefined): IgnorePatternSource[] {
  if (!manifest) return [];
  const recorded = manifest.sources?.capstanignore;
  const file = recorded && path.isAbsolute(recorded) ? recorded : path.join(manifest.root, '.capstanignore');
  let parsed: IgnorePatternSource[] = [];
  try {
    parsed = parseCapstanignore(readFileSync(file, 'utf8'), file);
  } catch {
    // Not on disk (patterns from elsewhere): point at the file name only.
  }
  const used = new Set<IgnorePatternSource>();
  return manifest.ignore.map((pattern) => {
    const found = parsed.find((p) => p.pattern === pattern.trim() && !used.has(p));
    if (found) used.add(found);
    return found ?? { pattern, file };
  });
}

/** Where the manifest's Capstanfile was read (for messages), else where it would be. */
function capstanfilePathOf(manifest: Manifest): string {
  const recorded = manifest.sources?.capstanfile;
  return recorded && path.isAbsolute(recorded) ? recorded : path.join(manifest.root, 'Capstanfile');
}

