// A stand-in for OSv's loader.elf in the -kernel fast path: a tiny multiboot kernel (a.out
// kludge, so QEMU's `-kernel` loads it as a flat binary at 1 MiB) that prints a prefix and the
// command line QEMU hands it (the `-append` string, after QEMU's kernel-path word) to COM1,
// then either leaves QEMU through isa-debug-exit (`-device isa-debug-exit,iobase=0xf4`),
// halts for ever (a guest that keeps running until it is stopped), or crashes: `ud2` with no
// usable IDT escalates to a triple fault, i.e. a reset, which ends QEMU under -no-reboot.
// Assembled here by hand (32-bit protected mode, as multiboot enters it) so tests need no
// assembler; the byte offsets are fixed and spelled out below.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

const BASE = 0x100000;
const ENTRY = 0x20;
const PUTS = 0x4a;
const PREFIX = 0x58;

export interface StandInKernelOptions {
  /** Printed before the command line; default `CMDLINE:`. At most 32 bytes. */
  prefix?: string;
  /**
   * `exit` (default): write `exitCode` to isa-debug-exit, so QEMU ends with status
   * `(exitCode << 1) | 1`. `wait`: halt in a loop until QEMU is stopped from outside.
   * `crash`: triple-fault after printing.
   */
  mode?: 'exit' | 'wait' | 'crash';
  exitCode?: number;
}

/** The kernel image bytes. */
export function standInKernel(options: StandInKernelOptions = {}): Buffer {
  const prefix = Buffer.from(options.prefix ?? 'CMDLINE:', 'latin1');
  if (prefix.length > 32) throw new Error('stand-in kernel prefix longer than 32 bytes');
  const newline = PREFIX + prefix.length + 1;
  const size = newline + 2;
  const image = Buffer.alloc((size + 3) & ~3);
  // Multiboot header with the address fields valid (flags bit 16).
  const magic = 0x1badb002;
  const flags = 0x00010000;
  image.writeUInt32LE(magic, 0);
  image.writeUInt32LE(flags, 4);
  image.writeUInt32LE((-(magic + flags)) >>> 0, 8);
  image.writeUInt32LE(BASE, 12); // header_addr
  image.writeUInt32LE(BASE, 16); // load_addr
  image.writeUInt32LE(BASE + image.length, 20); // load_end_addr
  image.writeUInt32LE(0, 24); // bss_end_addr
  image.writeUInt32LE(BASE + ENTRY, 28); // entry_addr
  const code: number[] = [
    /* 20 */ 0xbc, ...u32(0x90000), //            mov esp, 0x90000
    /* 25 */ 0x89, 0xdf, //                       mov edi, ebx        ; multiboot info
    /* 27 */ 0xbe, ...u32(BASE + PREFIX), //      mov esi, prefix
    /* 2c */ 0xe8, ...u32(PUTS - 0x31), //        call puts
    /* 31 */ 0x8b, 0x77, 0x10, //                 mov esi, [edi+16]   ; mbi.cmdline
    /* 34 */ 0xe8, ...u32(PUTS - 0x39), //        call puts
    /* 39 */ 0xbe, ...u32(BASE + newline), //     mov esi, "\n"
    /* 3e */ 0xe8, ...u32(PUTS - 0x43), //        call puts
    /* 43 */ ...(options.mode === 'wait' ? [0x90, 0x90, 0x90, 0x90] //  nop ×4
      : options.mode === 'crash' ? [0x0f, 0x0b, 0x90, 0x90] //          ud2; nop ×2
        : [0xb0, (options.exitCode ?? 0) & 0xff, 0xe6, 0xf4]), //       mov al, code; out 0xf4, al
    /* 47 */ 0xf4, //                             hlt
    /* 48 */ 0xeb, 0xfd, //                       jmp 47
    // puts: print the NUL-terminated string at esi to COM1 (QEMU's UART needs no polling).
    /* 4a */ 0xac, //                             lodsb
    /* 4b */ 0x84, 0xc0, //                       test al, al
    /* 4d */ 0x74, 0x07, //                       jz 56
    /* 4f */ 0x66, 0xba, 0xf8, 0x03, //           mov dx, 0x3f8
    /* 53 */ 0xee, //                             out dx, al
    /* 54 */ 0xeb, 0xf4, //                       jmp 4a
    /* 56 */ 0xc3, //                             ret
  ];
  if (ENTRY + code.length !== 0x57) throw new Error('stand-in kernel: code layout drifted');
  Buffer.from(code).copy(image, ENTRY);
  prefix.copy(image, PREFIX);
  image[newline] = 0x0a;
  return image;
}

/** Writes the stand-in kernel to `<dir>/<name>` and returns its path. */
export async function writeStandInKernel(dir: string, options: StandInKernelOptions = {}, name = 'stand-in-kernel.bin'): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, standInKernel(options));
  return file;
}

/**
 * The `-append` string out of a line the stand-in printed: QEMU's multiboot loader passes
 * `<kernel path> <append>`, so the first word is dropped.
 */
export function appendFromLine(line: string, prefix = 'CMDLINE:'): string | undefined {
  if (!line.startsWith(prefix)) return undefined;
  const rest = line.slice(prefix.length);
  const space = rest.indexOf(' ');
  return space < 0 ? '' : rest.slice(space + 1);
}

function u32(n: number): number[] {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n | 0, 0);
  return [...b];
}

/**
 * A bootable test disk: the stand-in loader (test/helpers/stand-in.ts) with `cmdline` at byte
 * 512, padded to `size` (SeaBIOS does not boot a virtio-blk disk as small as the bare 160 KiB
 * stand-in loader; real images are megabytes anyway).
 */
export async function writeStandInDisk(loader: string, file: string, cmdline = '', size = 2 * 1024 * 1024): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const { encodeCmdlineArea, CMDLINE_OFFSET } = await import('../../lib/image/cmdline.js');
  const bytes = Buffer.alloc(size);
  (await readFile(loader)).copy(bytes, 0);
  encodeCmdlineArea(cmdline).copy(bytes, CMDLINE_OFFSET);
  await writeFile(file, bytes);
  return file;
}
