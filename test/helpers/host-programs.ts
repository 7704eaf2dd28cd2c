// Small C/C++ programs and libraries compiled with the host's gcc for the closure tests, and
// readers of the independent tools we compare against (ldd, readelf, ldconfig).
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

export interface Fixtures {
  dir: string;
  /** app/bin/prog: RUNPATH $ORIGIN/../lib and <dir>/abs; needs libfoo (RUNPATH $ORIGIN → libbar.so.1), libabs, libcxx (C++). */
  prog: string;
  /** old/bin/prog2: RPATH $ORIGIN/../lib; needs libbaz, which needs libqux through prog2's inherited RPATH. */
  prog2: string;
  /** old/bin/prog3: like prog2, but needs libqux itself too. */
  prog3: string;
  /** old/bin/prog4: RUNPATH $ORIGIN/../lib; needs libbaz, whose libqux RUNPATH does not reach (not inherited). */
  prog4: string;
  /** A position-dependent executable at the usual 0x400000. */
  nonPie: string;
  /** A position-dependent executable linked over OSv's kernel (0x40400000). */
  overKernel: string;
  /** gcc -static -no-pie, when the host has libc.a; else undefined. */
  staticExe: string | undefined;
}

async function gcc(args: string[], cwd: string, cxx = false): Promise<void> {
  await execa(cxx ? 'g++' : 'gcc', args, { cwd });
}

export async function buildFixtures(dir: string): Promise<Fixtures> {
  const src = path.join(dir, 'src');
  const appLib = path.join(dir, 'app/lib');
  const abs = path.join(dir, 'abs');
  const oldLib = path.join(dir, 'old/lib');
  for (const d of [src, appLib, path.join(dir, 'app/bin'), abs, oldLib, path.join(dir, 'old/bin'), path.join(dir, 'misc')]) await mkdir(d, { recursive: true });
  const write = (name: string, text: string) => writeFile(path.join(src, name), text);
  await write('bar.c', 'int bar(void) { return 2; }\n');
  await write('foo.c', 'int bar(void);\nint foo(void) { return bar() + 1; }\n');
  await write('abs.c', 'int absval(void) { return 4; }\n');
  await write('cxx.cc', '#include <stdexcept>\n#include <string>\nextern "C" int cxx(int x) { try { if (x) throw std::runtime_error(std::to_string(x)); } catch (const std::exception &e) { return (int)e.what()[0]; } return 0; }\n');
  await write('prog.c', 'int foo(void); int absval(void); int cxx(int);\nint main(void) { return foo() + absval() + cxx(0) == 7 ? 0 : 1; }\n');
  await write('qux.c', 'int qux(void) { return 5; }\n');
  await write('baz.c', 'int qux(void);\nint baz(void) { return qux() + 1; }\n');
  await write('prog2.c', 'int baz(void);\nint main(void) { return baz() == 6 ? 0 : 1; }\n');
  await write('prog3.c', 'int baz(void); int qux(void);\nint main(void) { return baz() + qux() == 11 ? 0 : 1; }\n');
  await write('plain.c', 'int main(void) { return 0; }\n');

  const s = (name: string) => path.join(src, name);
  // libbar: real file libbar.so.1.0.0, soname link libbar.so.1, dev link libbar.so (as packages install them).
  await gcc(['-shared', '-fPIC', '-o', path.join(appLib, 'libbar.so.1.0.0'), '-Wl,-soname,libbar.so.1', s('bar.c')], dir);
  await symlink('libbar.so.1.0.0', path.join(appLib, 'libbar.so.1'));
  await symlink('libbar.so.1', path.join(appLib, 'libbar.so'));
  await gcc(['-shared', '-fPIC', '-o', path.join(appLib, 'libfoo.so'), '-Wl,-soname,libfoo.so', s('foo.c'), `-L${appLib}`, '-lbar', '-Wl,--enable-new-dtags,-rpath,$ORIGIN'], dir);
  await gcc(['-shared', '-fPIC', '-o', path.join(abs, 'libabs.so'), '-Wl,-soname,libabs.so', s('abs.c')], dir);
  await gcc(['-shared', '-fPIC', '-o', path.join(appLib, 'libcxx.so'), '-Wl,-soname,libcxx.so', s('cxx.cc')], dir, true);
  const prog = path.join(dir, 'app/bin/prog');
  await gcc(['-o', prog, s('prog.c'), `-L${appLib}`, `-L${abs}`, '-lfoo', '-labs', '-lcxx', `-Wl,-rpath-link,${appLib}`,
    '-Wl,--enable-new-dtags', '-Wl,-rpath,$ORIGIN/../lib', `-Wl,-rpath,${abs}`], dir);

  await gcc(['-shared', '-fPIC', '-o', path.join(oldLib, 'libqux.so'), '-Wl,-soname,libqux.so', s('qux.c')], dir);
  await gcc(['-shared', '-fPIC', '-o', path.join(oldLib, 'libbaz.so'), '-Wl,-soname,libbaz.so', s('baz.c'), `-L${oldLib}`, '-lqux'], dir);
  const old = (name: string, source: string, libs: string[], tags: string) =>
    gcc(['-o', path.join(dir, 'old/bin', name), s(source), `-L${oldLib}`, ...libs, `-Wl,-rpath-link,${oldLib}`, `-Wl,${tags}`, '-Wl,-rpath,$ORIGIN/../lib'], dir);
  await old('prog2', 'prog2.c', ['-lbaz'], '--disable-new-dtags');
  await old('prog3', 'prog3.c', ['-lbaz', '-lqux'], '--disable-new-dtags');
  await old('prog4', 'prog2.c', ['-lbaz'], '--enable-new-dtags');

  const nonPie = path.join(dir, 'misc/nonpie');
  await gcc(['-no-pie', '-o', nonPie, s('plain.c')], dir);
  const overKernel = path.join(dir, 'misc/overkernel');
  await gcc(['-no-pie', '-Wl,-Ttext-segment=0x40400000', '-o', overKernel, s('plain.c')], dir);
  let staticExe: string | undefined = path.join(dir, 'misc/static');
  try {
    await gcc(['-static', '-no-pie', '-o', staticExe, s('plain.c')], dir);
  } catch {
    staticExe = undefined; // no libc.a: the test crafts a static header instead
  }
  return {
    dir, prog, prog2: path.join(dir, 'old/bin/prog2'), prog3: path.join(dir, 'old/bin/prog3'), prog4: path.join(dir, 'old/bin/prog4'),
    nonPie, overKernel, staticExe,
  };
}

/** `ldd` of a program: DT_NEEDED-style name → resolved path, or null for "not found". vdso and the interpreter line are left out. */
export async function ldd(program: string, env: Record<string, string> = {}): Promise<Map<string, string | null>> {
  const { stdout } = await execa('ldd', [program], { env: { ...env, LC_ALL: 'C' }, reject: false });
  const out = new Map<string, string | null>();
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\S+) => (?:(\/\S+) \(0x[0-9a-f]+\)|not found)\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2] ?? null);
  }
  return out;
}

export interface ReadelfFacts {
  needed: string[];
  soname?: string | undefined;
  runpath?: string | undefined;
  rpath?: string | undefined;
  interpreter?: string | undefined;
  type: string;
  machine: string;
  loads: Array<{ vaddr: number; memsz: number }>;
}

/** What binutils' readelf says about a file (-h -l -d). */
export async function readelf(file: string): Promise<ReadelfFacts> {
  const { stdout } = await execa('readelf', ['-hldW', file], { env: { LC_ALL: 'C' } });
  const facts: ReadelfFacts = { needed: [], type: '', machine: '', loads: [] };
  for (const line of stdout.split('\n')) {
    let m;
    if ((m = /\(NEEDED\)\s+Shared library: \[(.*)\]/.exec(line))) facts.needed.push(m[1]!);
    else if ((m = /\(SONAME\)\s+Library soname: \[(.*)\]/.exec(line))) facts.soname = m[1]!;
    else if ((m = /\(RUNPATH\)\s+Library runpath: \[(.*)\]/.exec(line))) facts.runpath = m[1]!;
    else if ((m = /\(RPATH\)\s+Library rpath: \[(.*)\]/.exec(line))) facts.rpath = m[1]!;
    else if ((m = /Requesting program interpreter: (.*)\]/.exec(line))) facts.interpreter = m[1]!;
    else if ((m = /^\s+Type:\s+(\S+)/.exec(line))) facts.type = m[1]!;
    else if ((m = /^\s+Machine:\s+(.*)$/.exec(line))) facts.machine = m[1]!.trim();
    else if ((m = /^\s+LOAD\s+0x[0-9a-f]+ 0x([0-9a-f]+) 0x[0-9a-f]+ 0x[0-9a-f]+ 0x([0-9a-f]+)/.exec(line))) {
      facts.loads.push({ vaddr: parseInt(m[1]!, 16), memsz: parseInt(m[2]!, 16) });
    }
  }
  return facts;
}

/** `ldconfig -p` (optionally of another cache file): name, description and path, in order; and the count line's number. */
export async function ldconfigPrint(cache?: string): Promise<{ count: number; entries: Array<{ name: string; desc: string; path: string }> }> {
  const { stdout } = await execa('ldconfig', ['-p', ...(cache ? ['-C', cache] : [])], { env: { LC_ALL: 'C', PATH: `/sbin:/usr/sbin:${process.env.PATH}` } });
  const lines = stdout.split('\n');
  const count = Number(/^(\d+) libs found/.exec(lines[0] ?? '')?.[1]);
  const entries = lines.slice(1).map((l) => /^\t(\S+) \((.*)\) => (.*)$/.exec(l)).filter((m) => m !== null)
    .map((m) => ({ name: m[1]!, desc: m[2]!, path: m[3]! }));
  return { count, entries };
}
