// An ELF64 little-endian reader for what a dynamic loader needs to know about a file: the file
// header, the program headers (PT_INTERP, PT_DYNAMIC, PT_LOAD) and the dynamic section's
// library entries (DT_NEEDED, DT_SONAME, DT_RUNPATH, DT_RPATH, DT_FLAGS_1). Layouts are the
// System V gABI's (Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn). Only those bytes are read, never the
// whole file: /usr/bin/node is ~100 MB with a 5 MB string table, of which we need ~100 bytes,
// so each wanted string is read on its own.
import { closeSync, openSync, readSync } from 'node:fs';
import { HostError } from '../errors.js';

export const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

// e_ident[EI_CLASS], e_ident[EI_DATA]
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;

// e_type
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;

// e_machine (the ones worth naming in a message)
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
const MACHINE_NAMES: Record<number, string> = {
  2: 'SPARC', 3: 'i386', 8: 'MIPS', 20: 'PowerPC', 21: 'PowerPC64', 22: 'S/390', 40: 'ARM (32-bit)', 43: 'SPARC V9',
  50: 'IA-64', 62: 'x86-64', 183: 'AArch64', 243: 'RISC-V', 258: 'LoongArch',
};

// p_type
export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;
export const PT_SHLIB = 5;
export const PT_PHDR = 6;
export const PT_TLS = 7;
export const PT_GNU_EH_FRAME = 0x6474e550;
export const PT_GNU_STACK = 0x6474e551;
export const PT_GNU_RELRO = 0x6474e552;
export const PT_GNU_PROPERTY = 0x6474e553;
export const PT_PAX_FLAGS = 0x65041580;

// d_tag
export const DT_NULL = 0;
export const DT_NEEDED = 1;
export const DT_STRTAB = 5;
export const DT_STRSZ = 10;
export const DT_SONAME = 14;
export const DT_RPATH = 15;
export const DT_RUNPATH = 29;
export const DT_FLAGS_1 = 0x6ffffffb;
export const DF_1_NODEFLIB = 0x800;
export const DF_1_PIE = 0x08000000;

const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const DYN_SIZE = 16;
const PN_XNUM = 0xffff;

export interface ElfHeader {
  /** Always 64 here: ELF32 files are refused. */
  class: 64;
  /** Always little-endian here. */
  data: 'lsb';
  /** e_ident[EI_OSABI]: 0 (System V) or 3 (Linux) on Linux. */
  osabi: number;
  /** e_type: ET_EXEC, ET_DYN, … */
  type: number;
  machine: number;
  entry: number;
  phoff: number;
  phentsize: number;
  /** Number of program headers (PN_XNUM already resolved through section header 0). */
  phnum: number;
  shoff: number;
}

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface DynamicInfo {
  /** DT_NEEDED names, in order (the loader's search order). */
  needed: string[];
  soname?: string | undefined;
  /** DT_RUNPATH, verbatim (':'-separated, DSTs such as $ORIGIN unexpanded). */
  runpath?: string | undefined;
  /** DT_RPATH, verbatim. */
  rpath?: string | undefined;
  /** DT_FLAGS_1 (DF_1_PIE, DF_1_NODEFLIB, …), 0 when absent. */
  flags1: number;
}

export interface ElfFile {
  path: string;
  header: ElfHeader;
  programHeaders: ProgramHeader[];
  /** The PT_INTERP path (the program's dynamic loader), if any. */
  interpreter?: string | undefined;
  /** PT_LOAD segments, in file order. */
  loads: ProgramHeader[];
  /** The dynamic section's library entries; absent for a file without PT_DYNAMIC (static). */
  dynamic?: DynamicInfo | undefined;
}

export function machineName(machine: number): string {
  return MACHINE_NAMES[machine] ?? `machine ${machine}`;
}

/** What the first bytes of a non-ELF file are, for a message: a `#!` script or something else. */
export interface NotElf {
  /** The `#!` line of a script (without `#!`), when it is one. */
  shebang?: string | undefined;
}

/** True when `bytes` start with the ELF magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ELF_MAGIC.equals(bytes.subarray(0, 4));
}

/** True when the file at `path` starts with the ELF magic (false when it cannot be read). */
export function isElfFile(path: string): boolean {
  let fd: number;
  try { fd = openSync(path, 'r'); } catch { return false; }
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && isElf(magic);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the ELF facts of `path`. Throws HostError: E_HOST_NOT_FOUND, E_HOST_NOT_ELF (with the
 * `#!` line of a script), E_ELF_CLASS (ELF32), E_ELF_DATA (big-endian), E_ELF_CORRUPT.
 */
export function readElf(path: string): ElfFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    const missing = ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');
    throw new HostError(missing ? 'does not exist' : `cannot be opened: ${(error as Error).message}`, {
      code: missing ? 'E_HOST_NOT_FOUND' : 'E_HOST_READ', file: path, cause: error,
      hint: missing ? 'Check the path (an absolute host path, e.g. /usr/bin/node).' : 'Check that the file is readable.',
    });
  }
  try {
    return readElfFrom((buffer, offset, length, position) => readSync(fd, buffer, offset, length, position), path);
  } finally {
    closeSync(fd);
  }
}

/** Reads up to `length` bytes at `position` into `buffer` at `offset`; returns how many (0 at the end). */
export type ElfByteSource = (buffer: Buffer, offset: number, length: number, position: number) => number;

/** readElf over any byte source (`name` is used in messages). */
export function readElfFrom(source: ElfByteSource, name: string): ElfFile {
  return new ElfReader(source, name).read();
}

class ElfReader {
  constructor(private readonly source: ElfByteSource, private readonly path: string) {}

  read(): ElfFile {
    const ident = this.bytes(0, EHDR_SIZE, true);
    if (!isElf(ident)) throw notElf(this.path, ident);
    const cls = ident[4];
    const machine = ident.length >= 20 ? ident.readUInt16LE(18) : 0;
    if (cls === ELFCLASS32) {
      throw new HostError(`is a 32-bit ELF file (ELF32, ${machineName(machine)}); OSv runs 64-bit x86-64 programs only`, {
        code: 'E_ELF_CLASS', file: this.path, hint: 'Use the 64-bit (x86-64) build of the program.',
      });
    }
    if (cls !== ELFCLASS64) throw this.corrupt(`unknown ELF class ${cls}`);
    if (ident[5] === ELFDATA2MSB) {
      throw new HostError(`is a big-endian ELF file (${machineName(ident.length >= 20 ? ident.readUInt16BE(18) : 0)}); OSv runs little-endian x86-64 programs only`, {
        code: 'E_ELF_DATA', file: this.path, hint: 'Use the x86-64 build of the program.',
      });
    }
    if (ident[5] !== ELFDATA2LSB) throw this.corrupt(`unknown ELF data encoding ${ident[5]}`);
    if (ident.length < EHDR_SIZE) throw this.corrupt(`the ELF header is cut short (${ident.length} of ${EHDR_SIZE} bytes)`);

    const header: ElfHeader = {
      class: 64, data: 'lsb', osabi: ident[7]!, type: ident.readUInt16LE(16), machine,
      entry: this.u64(ident, 24), phoff: this.u64(ident, 32), shoff: this.u64(ident, 40),
      phentsize: ident.readUInt16LE(54), phnum: ident.readUInt16LE(56),
    };
    if (header.phnum === PN_XNUM) header.phnum = this.extendedPhnum(header.shoff);
    if (header.phnum > 0 && header.phentsize < PHDR_SIZE) throw this.corrupt(`program headers of ${header.phentsize} bytes (ELF64 needs ${PHDR_SIZE})`);

    const table = header.phnum > 0 ? this.bytes(header.phoff, header.phnum * header.phentsize) : Buffer.alloc(0);
    const programHeaders: ProgramHeader[] = [];
    for (let i = 0; i < header.phnum; i++) {
      const at = i * header.phentsize;
      programHeaders.push({
        type: table.readUInt32LE(at), flags: table.readUInt32LE(at + 4),
        offset: this.u64(table, at + 8), vaddr: this.u64(table, at + 16),
        filesz: this.u64(table, at + 32), memsz: this.u64(table, at + 40), align: this.u64(table, at + 48),
      });
    }
    const loads = programHeaders.filter((p) => p.type === PT_LOAD);
    const interp = programHeaders.find((p) => p.type === PT_INTERP);
    const interpreter = interp ? cString(this.bytes(interp.offset, interp.filesz), 0) : undefined;
    const dyn = programHeaders.find((p) => p.type === PT_DYNAMIC);
    const dynamic = dyn ? this.dynamic(dyn, loads) : undefined;
    return { path: this.path, header, programHeaders, loads, ...(interpreter !== undefined ? { interpreter } : {}), ...(dynamic ? { dynamic } : {}) };
  }

  /** e_phnum was PN_XNUM: the real count is sh_info of section header 0. */
  private extendedPhnum(shoff: number): number {
    if (shoff === 0) throw this.corrupt('e_phnum is PN_XNUM but there is no section header 0');
    return this.bytes(shoff, 64).readUInt32LE(44);
  }

  private dynamic(dyn: ProgramHeader, loads: ProgramHeader[]): DynamicInfo {
    const raw = this.bytes(dyn.offset, dyn.filesz);
    const needed: number[] = [];
    let strtab: number | undefined;
    let strsz: number | undefined;
    let soname: number | undefined;
    let runpath: number | undefined;
    let rpath: number | undefined;
    let flags1 = 0;
    for (let at = 0; at + DYN_SIZE <= raw.length; at += DYN_SIZE) {
      const tag = raw.readBigInt64LE(at);
      if (tag === BigInt(DT_NULL)) break;
      const value = raw.readBigUInt64LE(at + 8);
      switch (Number(tag)) {
        case DT_NEEDED: needed.push(this.num(value)); break;
        case DT_STRTAB: strtab = this.num(value); break;
        case DT_STRSZ: strsz = this.num(value); break;
        case DT_SONAME: soname = this.num(value); break;
        case DT_RUNPATH: runpath = this.num(value); break;
        case DT_RPATH: rpath = this.num(value); break;
        case DT_FLAGS_1: flags1 = Number(value & 0xffffffffn); break;
        default: break;
      }
    }
    const wantsStrings = needed.length > 0 || soname !== undefined || runpath !== undefined || rpath !== undefined;
    if (!wantsStrings) return { needed: [], flags1 };
    if (strtab === undefined) throw this.corrupt('the dynamic section names libraries but has no DT_STRTAB');
    // DT_STRTAB is an address: the loader sees the file through its PT_LOAD mappings.
    const tableOffset = this.fileOffsetOf(strtab, loads);
    const limit = strsz ?? Number.MAX_SAFE_INTEGER;
    const str = (offset: number) => this.string(tableOffset, offset, limit);
    return {
      needed: needed.map(str), flags1,
      ...(soname !== undefined ? { soname: str(soname) } : {}),
      ...(runpath !== undefined ? { runpath: str(runpath) } : {}),
      ...(rpath !== undefined ? { rpath: str(rpath) } : {}),
    };
  }

  private fileOffsetOf(vaddr: number, loads: ProgramHeader[]): number {
    const load = loads.find((p) => vaddr >= p.vaddr && vaddr < p.vaddr + p.filesz);
    if (!load) throw this.corrupt(`DT_STRTAB 0x${vaddr.toString(16)} lies in no PT_LOAD segment`);
    return load.offset + (vaddr - load.vaddr);
  }

  /** The NUL-terminated string at `offset` of the string table, read in small pieces. */
  private string(table: number, offset: number, limit: number): string {
    if (offset >= limit) throw this.corrupt(`a string offset (${offset}) lies past DT_STRSZ (${limit})`);
    const pieces: Buffer[] = [];
    for (let at = offset, piece = 256; at < limit; at += piece, piece = Math.min(piece * 4, 65536)) {
      const chunk = this.bytes(table + at, Math.min(piece, limit - at), true);
      const nul = chunk.indexOf(0);
      if (nul >= 0) { pieces.push(chunk.subarray(0, nul)); return Buffer.concat(pieces).toString('utf8'); }
      if (chunk.length === 0) break;
      pieces.push(chunk);
    }
    throw this.corrupt(`the string at offset ${offset} of the dynamic string table has no end`);
  }

  /** `length` bytes at `position`; with `short`, fewer when the file ends first. */
  private bytes(position: number, length: number, short = false): Buffer {
    const buffer = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = this.source(buffer, done, length - done, position + done);
      } catch (error) {
        throw new HostError(`cannot be read: ${(error as Error).message}`, { code: 'E_HOST_READ', file: this.path, cause: error, hint: 'Pass a regular, readable file.' });
      }
      if (n === 0) break;
      done += n;
    }
    if (done < length && !short) throw this.corrupt(`it ends before byte ${position + length} (a header points past its end)`);
    return done < length ? buffer.subarray(0, done) : buffer;
  }

  private u64(buffer: Buffer, at: number): number {
    return this.num(buffer.readBigUInt64LE(at));
  }

  private num(value: bigint): number {
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.corrupt(`a 64-bit field holds 0x${value.toString(16)}, beyond any x86-64 address`);
    return Number(value);
  }

  private corrupt(problem: string): HostError {
    return new HostError(`is not a valid ELF file: ${problem}`, {
      code: 'E_ELF_CORRUPT', file: this.path, hint: 'The file may be truncated or damaged; reinstall it.',
    });
  }
}

function cString(buffer: Buffer, at: number): string {
  const nul = buffer.indexOf(0, at);
  return buffer.subarray(at, nul < 0 ? buffer.length : nul).toString('utf8');
}

function notElf(path: string, head: Buffer): HostError {
  const text = head.toString('latin1');
  if (text.startsWith('#!')) {
    const line = text.slice(2).split('\n')[0]!.trim();
    const interpreter = line.split(/\s+/);
    const program = interpreter[0]?.endsWith('/env') && interpreter[1] ? interpreter[1] : interpreter[0] ?? '';
    return new HostError(`is a script (#!${line}), not a program: OSv has no shell and does not run scripts by their #! line`, {
      code: 'E_HOST_NOT_ELF', file: path,
      hint: `Capture the interpreter instead (e.g. hostFiles(['${program.startsWith('/') ? program : `/usr/bin/${program}`}'])), put the script in the image as a file, and boot "<interpreter> <script>".`,
    });
  }
  return new HostError('is not an ELF program or library (no \\x7fELF magic)', {
    code: 'E_HOST_NOT_ELF', file: path, hint: 'Pass compiled x86-64 Linux programs or shared libraries.',
  });
}
