// What OSv's ELF loader accepts, checked on the host so that an image never carries a program
// OSv would refuse at boot. Read from OSv's source (cloudius-systems/osv, master 0e34e4dc and
// tag v0.57.0, the release Capstan's loaders come from):
//
// * core/elf.cc `file::load_elf_header`: ELFCLASS64, ELFDATA2LSB, EV_CURRENT, EI_OSABI 0 or
//   ELFOSABI_LINUX (3), e_type ET_DYN or ET_EXEC, e_machine the kernel's (x86-64 here).
// * core/elf.cc `object::process_headers`: any p_type outside PT_NULL, DYNAMIC, INTERP, NOTE,
//   LOAD, PHDR, GNU_STACK, GNU_RELRO, PAX_FLAGS, GNU_PROPERTY, GNU_EH_FRAME, TLS aborts
//   ("Unknown p_type in executable").
// * core/elf.cc `object::set_base`: ET_EXEC (non-PIE) is supported since 2019 (commit
//   1e22a86f, in v0.54.0+). It is mapped at its link addresses (base 0), and OSv aborts
//   ("Non-PIE executable … collides with kernel") when its lowest PT_LOAD address or the end of
//   its highest lies inside the kernel image, [elf_start, elf_start + elf_size). On x86-64
//   elf_start is kernel_vm_base = 0x40200000 (Makefile; arch/x64/loader.ld links the kernel at
//   OSV_KERNEL_VM_BASE; arch/x64/arch-setup.cc sets elf_start/elf_size) and elf_size is the
//   kernel's loaded size (edata − start), a few MB, not known before a loader is chosen. Shared
//   objects and PIEs are relocated to program_base 0x100000000000 (include/osv/elf.hh), so
//   only ET_EXEC can collide. The usual non-PIE link address 0x400000 is far below the kernel.
// * Statically linked executables (no PT_INTERP, not a shared library) are started through
//   their entry point only since commit e154fc59 (2023-09, after v0.57.0); older loaders look
//   for `main` in a dynamic symbol table such a program does not have.
import { HostError } from '../errors.js';
import {
  DF_1_PIE, EM_X86_64, ET_DYN, ET_EXEC, machineName, PT_DYNAMIC, PT_GNU_EH_FRAME, PT_GNU_PROPERTY, PT_GNU_RELRO,
  PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_NOTE, PT_NULL, PT_PAX_FLAGS, PT_PHDR, PT_TLS, type ElfFile,
} from './elf.js';

/** Where OSv's x86-64 kernel is linked (Makefile `kernel_vm_base`). */
export const OSV_KERNEL_VM_BASE = 0x40200000;
/**
 * How much above OSV_KERNEL_VM_BASE we treat as the kernel's. OSv's own check uses the real
 * kernel size (a few MB); 64 MiB covers any kernel with room to spare, so a program that passes
 * here cannot collide whatever loader the image gets.
 */
export const OSV_KERNEL_RESERVED_BYTES = 64 * 1024 * 1024;

const OSV_P_TYPES = new Set([
  PT_NULL, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_LOAD, PT_PHDR, PT_GNU_STACK, PT_GNU_RELRO, PT_PAX_FLAGS, PT_GNU_PROPERTY,
  PT_GNU_EH_FRAME, PT_TLS,
]);

export type ElfKind = 'executable' | 'pie' | 'shared-library' | 'static-executable' | 'static-pie';

/** What the loader makes of an ELF file (OSv's include/osv/elf.hh classification). */
export function elfKind(elf: ElfFile): ElfKind {
  const pie = elf.header.type === ET_DYN && ((elf.dynamic?.flags1 ?? 0) & DF_1_PIE) !== 0;
  if (elf.header.type === ET_EXEC) return elf.interpreter !== undefined ? 'executable' : 'static-executable';
  if (pie) return elf.interpreter !== undefined ? 'pie' : 'static-pie';
  // ET_DYN without DF_1_PIE: a shared library, or a PIE linked before DF_1_PIE existed.
  return elf.interpreter !== undefined ? 'pie' : 'shared-library';
}

export interface OsvRuleOptions {
  /** Accept statically linked executables (OSv master after commit e154fc59, 2023-09). Default false. */
  allowStatic?: boolean | undefined;
}

/** Throws a HostError when OSv's loader would refuse `elf`, or abort on it. */
export function checkOsvCanLoad(elf: ElfFile, options: OsvRuleOptions = {}): ElfKind {
  const { header } = elf;
  const file = elf.path;
  if (header.machine !== EM_X86_64) {
    throw new HostError(`is built for ${machineName(header.machine)}, not x86-64: OSv's x86-64 kernel refuses it ("machine type differs from the kernel")`, {
      code: 'E_ELF_MACHINE', file, hint: 'Use the x86-64 build of the program and of its libraries.',
    });
  }
  if (header.osabi !== 0 && header.osabi !== 3) {
    throw new HostError(`has OS ABI ${header.osabi}, not System V (0) or Linux (3): OSv refuses it ("bad os abi")`, {
      code: 'E_ELF_OSABI', file, hint: 'Use a Linux build of the program.',
    });
  }
  if (header.type !== ET_EXEC && header.type !== ET_DYN) {
    const what = header.type === 1 ? 'a relocatable object (.o)' : header.type === 4 ? 'a core dump' : `of ELF type ${header.type}`;
    throw new HostError(`is ${what}: OSv loads only executables and shared libraries`, {
      code: 'E_ELF_TYPE', file, hint: 'Link it into a program (gcc -o prog …) or a shared library (gcc -shared …).',
    });
  }
  for (const p of elf.programHeaders) {
    if (!OSV_P_TYPES.has(p.type)) {
      throw new HostError(`has a program header of type 0x${p.type.toString(16)}, which OSv's loader does not know (it aborts with "Unknown p_type")`, {
        code: 'E_ELF_P_TYPE', file, hint: 'Relink without the feature that adds it (e.g. binutils --sframe), or strip that segment.',
      });
    }
  }
  const kind = elfKind(elf);
  if ((kind === 'static-executable' || kind === 'static-pie') && !options.allowStatic) {
    throw new HostError(`is a statically linked executable (no PT_INTERP): OSv v0.57.0 and older cannot start it (they call its \`main\` through dynamic symbols it does not have)`, {
      code: 'E_ELF_STATIC', file,
      hint: 'Link it dynamically (without -static), or pass {allowStatic: true} when the image boots an OSv loader built from master after 2023-09 (commit e154fc59), which starts static programs at their entry point.',
    });
  }
  if (header.type === ET_EXEC && elf.loads.length > 0) {
    const low = Math.min(...elf.loads.map((p) => p.vaddr));
    const high = Math.max(...elf.loads.map((p) => p.vaddr + p.memsz));
    const kernelEnd = OSV_KERNEL_VM_BASE + OSV_KERNEL_RESERVED_BYTES;
    if (low < kernelEnd && high > OSV_KERNEL_VM_BASE) {
      throw new HostError(
        `is a position-dependent (non-PIE) executable mapped at 0x${low.toString(16)}–0x${high.toString(16)}, over OSv's kernel ` +
        `(linked at 0x${OSV_KERNEL_VM_BASE.toString(16)}); OSv aborts "Non-PIE executable collides with kernel"`, {
          code: 'E_ELF_KERNEL_COLLISION', file,
          hint: 'Build it as a PIE (gcc -fPIE -pie, the default on most distributions) or link it below 0x40000000 (e.g. the default -Ttext-segment=0x400000).',
        });
    }
  }
  return kind;
}
