// Looking inside an OSv kernel: its version banner, its bootfs (the files linked into the
// kernel, unpacked into a ramfs at boot), whether it can mount a ZFS root, and which ZFS
// dataset it mounts as root (osv-image-formats.md §4.5). The kernel is the x86_64 loader's
// compressed kernel (lzloader.elf at 0x10000 of loader.img, see fastlz.ts), a kernel ELF
// (loader-stripped.elf, osv-loader.elf.x86_64), or the ZFS builder ELF.
//
// bootfs (scripts/mkbootfs.py): 128-byte records {u64 size, u64 offset from the bootfs start,
// i8 type (0 file / 1 symlink), name[111] NUL-padded}, a record of zeros, then the data. The
// first record's offset is (records + 1) · 128.
import { decompressOsvLz } from './fastlz.js';
import { KERNEL_OFFSET } from './loader.js';

export interface BootfsEntry {
  /** `/usr/lib/fs/libsolaris.so`; folders end in `/`. */
  name: string;
  type: 'file' | 'symlink' | 'dir';
  size: number;
  /** Offset of the data in the kernel bytes. */
  dataOffset: number;
}

export interface Bootfs {
  /** Where the bootfs starts and ends in the kernel bytes. */
  start: number;
  end: number;
  entries: BootfsEntry[];
}

/** Which ZFS dataset a loader mounts as root: `osv` (OSv master after 0e34e4dc) or `osv/zfs` (v0.57.0 and before). */
export type ZfsRootDataset = 'osv' | 'osv/zfs';

export interface KernelFacts {
  /** `v0.57.0-398-g0e34e4dc`, from the `OSv v…` banner. */
  version?: string | undefined;
  bootfs?: Bootfs | undefined;
  /** Its bootfs carries `/usr/lib/fs/libsolaris.so` (a `fs=zfs` build): it can mount a ZFS root. */
  zfs: boolean;
  /** The dataset it mounts as root (only when `zfs`). */
  zfsRootDataset?: ZfsRootDataset | undefined;
}

const RECORD = 128;
const NAME_OFFSET = 17;
const NAME_BYTES = 111;
const LIBSOLARIS = '/usr/lib/fs/libsolaris.so';

/**
 * The kernel inside a loader image: lzloader.elf at 0x10000 (ELF32, its compressed kernel
 * between the `_binary_loader_stripped_elf_lz_start/_end` symbols, or its `.data` section), or
 * an uncompressed ELF64 kernel there. Undefined when the loader is shaped otherwise.
 */
export function kernelOfLoader(loader: Buffer): Buffer | undefined {
  const elf = loader.subarray(KERNEL_OFFSET);
  if (elf.length < 52 || elf.toString('latin1', 0, 4) !== '\x7fELF') return undefined;
  if (elf[4] === 2) return elf; // ELF64: the kernel itself, not compressed
  if (elf[4] !== 1 || elf[5] !== 1) return undefined;
  const blob = lzBlob(elf);
  if (!blob) return undefined;
  try {
    return decompressOsvLz(blob);
  } catch {
    return undefined;
  }
}

interface Section { name: string; type: number; addr: number; offset: number; size: number; link: number }

function lzBlob(elf: Buffer): Buffer | undefined {
  const shoff = elf.readUInt32LE(0x20);
  const shentsize = elf.readUInt16LE(0x2e);
  const shnum = elf.readUInt16LE(0x30);
  const shstrndx = elf.readUInt16LE(0x32);
  if (shentsize < 40 || shoff + shnum * shentsize > elf.length || shstrndx >= shnum) return undefined;
  const raw = (i: number) => {
    const o = shoff + i * shentsize;
    return { nameOff: elf.readUInt32LE(o), type: elf.readUInt32LE(o + 4), addr: elf.readUInt32LE(o + 12), offset: elf.readUInt32LE(o + 16), size: elf.readUInt32LE(o + 20), link: elf.readUInt32LE(o + 24) };
  };
  const strtab = raw(shstrndx);
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = raw(i);
    sections.push({ ...s, name: cString(elf, strtab.offset + s.nameOff) });
  }
  const inFile = (s: Section) => s.offset + s.size <= elf.length;
  // The symbols say exactly where the blob is.
  const symtab = sections.find((s) => s.type === 2 && inFile(s));
  if (symtab && sections[symtab.link]) {
    const names = sections[symtab.link]!;
    let start: number | undefined;
    let end: number | undefined;
    let shndx = -1;
    for (let o = symtab.offset; o + 16 <= symtab.offset + symtab.size; o += 16) {
      const name = cString(elf, names.offset + elf.readUInt32LE(o));
      if (name === '_binary_loader_stripped_elf_lz_start') { start = elf.readUInt32LE(o + 4); shndx = elf.readUInt16LE(o + 14); }
      if (name === '_binary_loader_stripped_elf_lz_end') end = elf.readUInt32LE(o + 4);
    }
    const section = sections[shndx];
    if (start !== undefined && end !== undefined && section && end > start && inFile(section)) {
      const from = section.offset + (start - section.addr);
      if (from >= section.offset && from + (end - start) <= section.offset + section.size) return elf.subarray(from, from + (end - start));
    }
  }
  const data = sections.find((s) => s.name === '.data' && inFile(s));
  return data ? elf.subarray(data.offset, data.offset + data.size) : undefined;
}

function cString(b: Buffer, at: number): string {
  const end = b.indexOf(0, at);
  return b.toString('latin1', at, end < 0 ? b.length : end);
}

/** The record at `r`, when it looks like a bootfs record. */
function recordAt(k: Buffer, r: number): { size: number; pos: number; type: number; name: string } | undefined {
  if (r < 0 || r + RECORD > k.length) return undefined;
  const type = k[r + 16]!;
  if ((type !== 0 && type !== 1) || k[r + NAME_OFFSET] !== 0x2f) return undefined;
  const nul = k.indexOf(0, r + NAME_OFFSET);
  if (nul < 0 || nul >= r + NAME_OFFSET + NAME_BYTES) return undefined;
  for (let i = nul; i < r + RECORD; i++) if (k[i] !== 0) return undefined;
  const sizeHi = k.readUInt32LE(r + 4);
  const posHi = k.readUInt32LE(r + 12);
  if (sizeHi !== 0 || posHi !== 0) return undefined;
  return { size: k.readUInt32LE(r), pos: k.readUInt32LE(r + 8), type, name: k.toString('utf8', r + NAME_OFFSET, nul) };
}

function isZeroRecord(k: Buffer, r: number): boolean {
  if (r + RECORD > k.length) return false;
  for (let i = r; i < r + RECORD; i++) if (k[i] !== 0) return false;
  return true;
}

/** Finds the bootfs in kernel bytes (the table is recognised by its shape; see the module comment). */
export function findBootfs(kernel: Buffer): Bootfs | undefined {
  for (let slash = kernel.indexOf(0x2f); slash >= 0; slash = kernel.indexOf(0x2f, slash + 1)) {
    const r = slash - NAME_OFFSET;
    if (!recordAt(kernel, r)) continue;
    let start = r;
    while (recordAt(kernel, start - RECORD)) start -= RECORD;
    let end = start;
    while (recordAt(kernel, end)) end += RECORD;
    const count = (end - start) / RECORD;
    const first = recordAt(kernel, start)!;
    if (!isZeroRecord(kernel, end) || first.pos !== (count + 1) * RECORD) { slash = end; continue; }
    const entries: BootfsEntry[] = [];
    let dataEnd = start + (count + 1) * RECORD;
    for (let o = start; o < end; o += RECORD) {
      const rec = recordAt(kernel, o)!;
      const type = rec.type === 1 ? 'symlink' : rec.name.endsWith('/') ? 'dir' : 'file';
      entries.push({ name: rec.name, type, size: rec.size, dataOffset: start + rec.pos });
      dataEnd = Math.max(dataEnd, start + rec.pos + rec.size);
    }
    if (dataEnd > kernel.length) { slash = end; continue; }
    return { start, end: dataEnd, entries };
  }
  return undefined;
}

/** The bytes of a bootfs file. */
export function bootfsFile(kernel: Buffer, bootfs: Bootfs, name: string): Buffer | undefined {
  const e = bootfs.entries.find((x) => x.name === name && x.type === 'file');
  return e ? kernel.subarray(e.dataOffset, e.dataOffset + e.size) : undefined;
}

/**
 * What a kernel tells about ZFS. The root dataset: the kernel's own code (loader.cc) names
 * `osv/zfs` in v0.57.0 and before; master after 0e34e4dc mounts `osv` and has no `osv/zfs`
 * string outside its bootfs (the builder's mkfs.so in the bootfs still creates osv/zfs).
 */
export function inspectKernel(kernel: Buffer): KernelFacts {
  const banner = /OSv (v\d+\.\d+[\w.+-]*)/.exec(kernel.toString('latin1', 0, kernel.length));
  const bootfs = findBootfs(kernel);
  const zfs = bootfs?.entries.some((e) => e.name === LIBSOLARIS && e.type === 'file' && e.size > 0) ?? false;
  let zfsRootDataset: ZfsRootDataset | undefined;
  if (zfs) {
    const needle = Buffer.from('osv/zfs\0', 'latin1');
    let outside = false;
    for (let at = kernel.indexOf(needle); at >= 0 && !outside; at = kernel.indexOf(needle, at + 1)) {
      if (!bootfs || at < bootfs.start || at >= bootfs.end) outside = true;
    }
    zfsRootDataset = outside ? 'osv/zfs' : 'osv';
  }
  return { version: banner?.[1], bootfs, zfs, zfsRootDataset };
}
