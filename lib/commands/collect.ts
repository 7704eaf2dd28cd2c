// Capstan's `package collect`: the dry run of a compose. Exactly what would go into the image —
// the packages in resolution order, the application over them, the /run scripts, the ROFS
// skeleton — is materialised as a folder (`./mpm-pkg` by default) and left there to look at.
// The same steps as compose up to the layout; the folder replaces the image. It is written
// beside its place and renamed at the end, so a failed collect leaves no half folder.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, rename, rm, symlink, chmod } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Vinyl from 'vinyl';
import { APP_LAYER, capstanOf } from '../carrier.js';
import { LayoutError } from '../errors.js';
import { fetchPackages } from '../steps/fetch-packages.js';
import { layoutFiles } from '../steps/layout-files.js';
import { resolveManifest } from '../steps/resolve-manifest.js';
import { readAhead } from '../vinyl/read-ahead.js';
import { src } from '../vinyl/src.js';
import { buildOptions } from './compose.js';
import type { UnikernelOptions } from './options.js';

/** Capstan's folder name for the collected package. */
export const COLLECT_DIR = 'mpm-pkg';

export interface CollectOptions extends UnikernelOptions {
  /** The folder to fill, relative to `cwd`. Default `mpm-pkg`. Replaced as a whole. */
  into?: string | undefined;
}

export interface CollectedPackage {
  dir: string;
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
}

type EntryType = 'file' | 'directory' | 'symlink';

/** Collects the package in `cwd` (and what it requires) into a folder. */
export async function collectPackage(options: CollectOptions = {}): Promise<CollectedPackage> {
  const s = buildOptions(options);
  const dir = path.resolve(s.cwd, options.into ?? COLLECT_DIR);
  const temp = path.join(path.dirname(dir), `.${path.basename(dir)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  const rel = path.relative(s.cwd, path.dirname(dir));
  const inside = !rel.startsWith('..') && !path.isAbsolute(rel);
  const prefix = inside && rel !== '' ? `${rel.split(path.sep).join('/')}/` : '';
  // The folder (old or being written) must not be read back into itself.
  const exclude = inside ? [`${prefix}${path.basename(dir)}`, `${prefix}${path.basename(dir)}/**`, `${prefix}.${path.basename(dir)}.*`, `${prefix}.${path.basename(dir)}.*/**`] : [];
  const writer = new FolderWriter(temp);
  await mkdir(temp, { recursive: true });
  try {
    await pipeline(
      src(s.files, { cwd: s.cwd, dot: true, ignore: [...s.exclude, ...exclude] }) as unknown as Readable,
      resolveManifest(s.manifest), fetchPackages(s.packages), layoutFiles(s.layout),
      async (entries: AsyncIterable<Vinyl>) => {
        // readAhead gives each entry's bytes (stream contents, or the host file for src's vinyls).
        for await (const { file, content, release } of readAhead(entries, () => {})) {
          if ((await writer.add(file, content)) === 'shadowed') await release();
        }
      },
    );
    await writer.finish();
    await rm(dir, { recursive: true, force: true });
    await rename(temp, dir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  return { dir, ...writer.counts };
}

/**
 * Writes laid-out entries under a folder, with the image's precedence: an entry replaces one
 * of a lower or equal layer at its path (later wins among equals) and is dropped under a
 * higher one; folders merge. Folder modes are applied at the end, so a read-only folder of a
 * package does not stop its own files from being written.
 */
class FolderWriter {
  readonly counts = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  private readonly placed = new Map<string, { layer: number; type: EntryType }>();
  private readonly folderModes = new Map<string, number>();

  constructor(private readonly root: string) {}

  async add(file: Vinyl, content: AsyncIterable<Uint8Array | string> | undefined): Promise<'added' | 'shadowed'> {
    const meta = capstanOf(file);
    const guestPath = meta?.guestPath;
    if (!guestPath || guestPath === '/') return 'shadowed';
    const layer = meta.layer ?? meta.package?.layer ?? APP_LAYER;
    const type: EntryType = file.isSymbolic() ? 'symlink' : file.isDirectory() ? 'directory' : 'file';
    const existing = this.placed.get(guestPath);
    if (existing && existing.layer > layer) return 'shadowed';
    // A parent held by a file or link of a higher layer: the entry cannot exist in the image either.
    const parts = guestPath.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const parent = '/' + parts.slice(0, i).join('/');
      const held = this.placed.get(parent);
      if (held && held.type !== 'directory') {
        if (held.layer > layer) return 'shadowed';
        await rm(this.hostPath(parent), { force: true });
        this.placed.set(parent, { layer, type: 'directory' });
      }
    }
    const target = this.hostPath(guestPath);
    await mkdir(path.dirname(target), { recursive: true });
    const mode = meta.mode ?? (file.stat ? file.stat.mode & 0o7777 : undefined);
    if (existing && (existing.type !== type || type !== 'directory')) await rm(target, { recursive: true, force: true });
    switch (type) {
      case 'directory':
        await mkdir(target, { recursive: true });
        this.folderModes.set(target, mode ?? 0o755);
        if (!existing) this.counts.directories++;
        break;
      case 'symlink':
        if (typeof file.symlink !== 'string') throw new LayoutError('symlink has no target', { code: 'E_LAYOUT_SYMLINK_TARGET', file: file.path });
        await symlink(file.symlink, target);
        if (!existing) this.counts.symlinks++;
        break;
      case 'file': {
        const fh = await open(target, 'w', 0o600);
        try {
          if (content) {
            for await (const chunk of content) {
              const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
              await fh.write(bytes);
              this.counts.bytes += bytes.length;
            }
          } else if (file.isBuffer()) {
            await fh.write(file.contents);
            this.counts.bytes += file.contents.length;
          }
          await fh.chmod(mode ?? 0o644);
        } finally {
          await fh.close();
        }
        if (!existing) this.counts.files++;
        break;
      }
    }
    this.placed.set(guestPath, { layer, type });
    return 'added';
  }

  /** Applies folder modes, deepest first. */
  async finish(): Promise<void> {
    const folders = [...this.folderModes].sort((a, b) => b[0].length - a[0].length);
    for (const [folder, mode] of folders) {
      if ((await lstat(folder).catch(() => undefined))?.isDirectory()) await chmod(folder, mode);
    }
  }

  private hostPath(guestPath: string): string {
    return path.join(this.root, ...guestPath.split('/').filter(Boolean));
  }
}
