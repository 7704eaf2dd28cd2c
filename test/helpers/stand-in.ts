// A stand-in for OSv's loader, assembled from source with GNU as/ld, so the tests can boot the
// images we compose under real QEMU without an OSv kernel binary (none is available offline).
//
// The boot sector stands in for OSv's boot16 (arch/x64/boot16.S) to check OUR layout, not
// OSv's code: like boot16 it keeps its fixed fields where boot16 has them (count32 at 0x10,
// the kernel disk-address packet at 0x12, the command-line packet at 0x22: 63 sectors from
// LBA 1 to 0x7E00), and reads the disk with INT 13h AH=42h. Instead of starting a kernel it
// prints what OSv would see to COM1 and exits QEMU:
//   CMDLINE:<the NUL-terminated string at byte 512>
//   PART:<hex of the first 16 bytes of the partition named by the MBR entry at 0x1CE>
// then writes 0x10 to the isa-debug-exit port 0xf4, so QEMU exits with status 33
// (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`). A failed disk read prints
// READ-ERROR and exits with status 35. In `wait` mode it prints the same, then halts in a loop
// until it is stopped from outside: a guest that stays up, as under Nova or libvirt (which have
// no isa-debug-exit, and whose console is only served while the guest runs).
//
// The returned file is a raw "loader" shaped like a real one: the boot sector, zeros up to
// 0x10000, then `count32` chunks of 32 KiB standing in for lzloader.elf (file size
// 65536 + count32 · 32768, §1.1).
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

/** Exit status of QEMU when the stand-in finished its report (isa-debug-exit: (0x10 << 1) | 1). */
export const STAND_IN_EXIT_OK = 33;
/** Exit status when a disk read failed. */
export const STAND_IN_EXIT_READ_ERROR = 35;

const BOOT_SECTOR_SOURCE = String.raw`
  .code16
  .text
  .globl _start
_start:
  jmp init                        # 0x000: a jump over the fixed fields, as in boot16
  .org 0x10
count32: .word COUNT32            # 0x010: 32 KiB chunks of the "kernel" (unused here)
kernel_dap:                       # 0x012: boot16's kernel packet: 64 sectors from LBA 128
  .byte 0x10, 0
  .word 0x40
  .word 0, 0x8000
  .quad 128
cmdline_dap:                      # 0x022: boot16's command-line packet: 63 sectors of LBA 1 to 0:7E00
  .byte 0x10, 0
  .word 63
  .word 0x7e00, 0
  .quad 1
part_dap:                         # one sector of the partition to 0:0600
  .byte 0x10, 0
  .word 1
  .word 0x0600, 0
part_lba:
  .quad 0
drive:
  .byte 0

init:
  cli
  xorw %ax, %ax
  movw %ax, %ds
  movw %ax, %es
  movw %ax, %ss
  movw $0x7c00, %sp
  sti
  movb %dl, drive                 # the BIOS passes the boot drive in DL

  movw $cmdline_dap, %si          # read the command-line area like boot16
  movb $0x42, %ah
  movb drive, %dl
  int $0x13
  jc read_error
  movw $msg_cmdline, %si
  call puts
  movw $0x7e00, %si
  call puts
  call crlf

  movl 0x7c00 + 0x1ce + 8, %eax   # start LBA of MBR entry 2 (OSv's /dev/vblk0.1)
  movl %eax, part_lba
  movw $part_dap, %si
  movb $0x42, %ah
  movb drive, %dl
  int $0x13
  jc read_error
  movw $msg_part, %si
  call puts
  movw $0x0600, %si
  movw $16, %cx
1:
  lodsb
  call puthex
  loop 1b
  call crlf

.if WAIT == 0
  movb $0x10, %al                 # isa-debug-exit: QEMU exits with (0x10 << 1) | 1 = 33
  outb %al, $0xf4
.endif
halt:
  hlt
  jmp halt

read_error:
  movw $msg_error, %si
  call puts
  movb $0x11, %al                 # exit status 35
  outb %al, $0xf4
  jmp halt

puts:                             # print the NUL-terminated string at DS:SI
  lodsb
  testb %al, %al
  jz 2f
  call putc
  jmp puts
2:
  ret

putc:                             # print AL on COM1 once the transmitter is empty
  pushw %dx
  pushw %ax
  movw $0x3fd, %dx
3:
  inb %dx, %al
  testb $0x20, %al
  jz 3b
  popw %ax
  movw $0x3f8, %dx
  outb %al, %dx
  popw %dx
  ret

puthex:                           # print AL as two lowercase hex digits
  pushw %ax
  shrb $4, %al
  call nibble
  popw %ax
  andb $0x0f, %al
nibble:
  addb $0x30, %al
  cmpb $0x39, %al
  jbe 4f
  addb $0x27, %al
4:
  call putc
  ret

crlf:
  movb $0x0d, %al
  call putc
  movb $0x0a, %al
  jmp putc

msg_cmdline: .asciz "CMDLINE:"
msg_part:    .asciz "PART:"
msg_error:   .asciz "READ-ERROR\r\n"

  .org 0x1b8
  .byte 0x56, 0x53, 0x4f, 0, 0, 0  # "VSO" disk signature, as in boot16
  .org 0x1fe
  .byte 0x55, 0xaa
`;

export interface StandInOptions {
  /** Number of 32 KiB "kernel" chunks after 0x10000 (default 3: a 160 KiB loader). */
  count32?: number;
  /** `exit` (default): leave QEMU through isa-debug-exit after the report; `wait`: halt in a loop instead. */
  mode?: 'exit' | 'wait';
}

/**
 * Assembles the stand-in boot sector in `dir` and writes the padded loader there.
 * Resolves with the loader's path (`<dir>/stand-in-loader.raw`, or `stand-in-loader-wait.raw`).
 */
export async function buildStandInLoader(dir: string, options: StandInOptions = {}): Promise<string> {
  const count32 = options.count32 ?? 3;
  const wait = options.mode === 'wait';
  const suffix = wait ? '-wait' : '';
  await mkdir(dir, { recursive: true });
  const source = path.join(dir, `stand-in-boot16${suffix}.S`);
  const object = path.join(dir, `stand-in-boot16${suffix}.o`);
  const binary = path.join(dir, `stand-in-boot16${suffix}.bin`);
  await writeFile(source, BOOT_SECTOR_SOURCE);
  await execa('as', ['--32', '--defsym', `COUNT32=${count32}`, '--defsym', `WAIT=${wait ? 1 : 0}`, '-o', object, source]);
  await execa('ld', ['-m', 'elf_i386', '-Ttext', '0x7c00', '-e', '_start', '--oformat', 'binary', '-o', binary, object]);
  const boot = await readFile(binary);
  if (boot.length !== 512 || boot[510] !== 0x55 || boot[511] !== 0xaa) {
    throw new Error(`stand-in boot sector assembled to ${boot.length} bytes, expected 512 ending in 55 AA`);
  }
  const loader = Buffer.alloc(65536 + count32 * 32768);
  boot.copy(loader, 0);
  // The "kernel" area: a recognisable pattern, so tests can check the loader bytes survive.
  const marker = Buffer.from('STAND-IN KERNEL ');
  for (let off = 65536; off < loader.length; off += marker.length) marker.copy(loader, off);
  const out = path.join(dir, `stand-in-loader${suffix}.raw`);
  await writeFile(out, loader);
  return out;
}

export interface StandInBoot {
  /** What the stand-in printed on COM1. */
  serial: string;
  exitCode: number | undefined;
  accel: 'kvm' | 'tcg';
  /** The CMDLINE: and PART: lines, parsed. */
  cmdline: string | undefined;
  partitionHead: string | undefined;
}

/**
 * Boots `image` (composed with the stand-in loader) under qemu-system-x86_64 on the default
 * `pc` machine with a virtio-blk boot disk as Capstan does, KVM first, TCG if KVM does not
 * work here. The stand-in exits QEMU itself; `timeout` bounds a hang.
 */
export async function bootStandIn(image: string, format: 'raw' | 'qcow2' | 'vmdk' | 'vdi', timeoutMs = 60_000): Promise<StandInBoot> {
  const args = (accel: string) => [
    '-accel', accel, '-nodefaults', '-display', 'none', '-m', '32', '-serial', 'stdio',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
    '-drive', `file=${image},format=${format},if=none,id=hd0,readonly=on`,
    '-device', 'virtio-blk-pci,id=blk0,bootindex=0,drive=hd0',
  ];
  let accel: 'kvm' | 'tcg' = 'kvm';
  let result = await execa('qemu-system-x86_64', args('kvm'), { reject: false, timeout: timeoutMs, stdin: 'ignore' });
  if (result.exitCode !== STAND_IN_EXIT_OK && !String(result.stdout).includes('CMDLINE:')) {
    accel = 'tcg';
    result = await execa('qemu-system-x86_64', args('tcg'), { reject: false, timeout: timeoutMs, stdin: 'ignore' });
  }
  const serial = String(result.stdout);
  return {
    serial,
    exitCode: result.exitCode,
    accel,
    cmdline: /^CMDLINE:(.*?)\r?$/m.exec(serial)?.[1],
    partitionHead: /^PART:([0-9a-f]{32})\r?$/m.exec(serial)?.[1],
  };
}
