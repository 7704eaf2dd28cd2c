// boot(image, options) → Vm: prepares the instance (folder, qcow2 overlay with the run-time
// command line, free host ports), picks QEMU and the accelerator, and starts the VM.
import { existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { ImageInfo } from '../carrier.js';
import { VmError } from '../errors.js';
import type { DiskFormat } from '../image/disk.js';
import { probeImageBytes, readImageHead } from '../image/probe.js';
import { hasBootSignature } from '../image/mbr.js';
import { stepLogger } from '../log.js';
import { RepositoryClient } from '../repository/pull.js';
import type { RemoteOptions } from '../repository/remote/settings.js';
import { formatWarning } from '../yaml/source.js';
import { capstanRoot } from '../repository/root.js';
import { chooseAccel, type AccelChoice } from './accel.js';
import { readCapstanVmConfig, withCapstanConfig } from './capstan-config.js';
import { bootDrive, parseVolume, type AioMode, type VolumeSpec } from './drives.js';
import { claimInstance } from './claim.js';
import { instancePaths, readInstanceConfig, writeInstanceConfig } from './instances.js';
import { resolveKernel } from './kernel.js';
import { packageVolumes } from './volumes.js';
import { parseMemory } from './memory.js';
import { parseForward, planNetwork, type ForwardSpec, type NetworkMode } from './network.js';
import { createInstanceOverlay, overlayBackingFile, patchOverlayCmdline, readDiskCmdline } from './overlay.js';
import { qemuArgs } from './qemu-args.js';
import { findQemu } from './qemu-binary.js';
import { runtimeCmdline } from './runtime-cmdline.js';
import { Vm, type ReadyMarker } from './vm.js';

export interface BootOptions extends Omit<RemoteOptions, 'env' | 'root' | 'silent'> {
  /** Instance name; default the image's base name (made unique among running instances). */
  name?: string | undefined;
  /** Capstan root for instances; default $CAPSTAN_ROOT, else ~/.capstan. */
  root?: string | undefined;
  /** QEMU executable; default $CAPSTAN_QEMU_PATH, else Capstan's default locations. */
  qemu?: string | undefined;
  /** Guest memory: `1G`, `512M`, or MiB as a number. Default 1G. */
  memory?: string | number | undefined;
  /** Virtual CPUs; default 2. */
  cpus?: number | undefined;
  /** `auto` (default): KVM when /dev/kvm is usable and $CAPSTAN_DISABLE_KVM is not set, else TCG. */
  accel?: AccelChoice | undefined;
  /** CPU model under KVM; default `host`. */
  kvmCpu?: string | undefined;
  /** When KVM fails, retry once under TCG (default true). */
  fallbackToTcg?: boolean | undefined;
  /**
   * Kernel ELF for the `-kernel` fast path; default: looked for beside the image's loader (and
   * pulled from the loader's release when that is where the loader came from); `false`: disk boot.
   */
  kernel?: string | false | undefined;
  /** Pull a missing kernel ELF for a pulled loader (default true; `offline` forbids it). */
  pull?: boolean | undefined;
  /** The loader the image was built from (where the kernel is looked for); default `ImageInfo.loader`. */
  loader?: string | undefined;
  /** Image format; default from ImageInfo or probed (qcow2, VDI, VMDK, else raw). */
  format?: DiskFormat | undefined;
  /** Run-time command line (Capstan `-e`); written into the overlay only. */
  execute?: string | undefined;
  /** Config sets to run (Capstan `--boot`): `runscript /run/<name>;` each. */
  boot?: string[] | undefined;
  /** Guest environment (Capstan `--env`): `--env=K=V ` prefixes. */
  env?: Record<string, string> | string[] | undefined;
  /** `nat` (default), `bridge`, `tap` or `none`. */
  network?: NetworkMode | undefined;
  /** NAT port forwards, e.g. `"8080:80"`, `"0:80"` (free host port), `"5353:53/udp"`. */
  forward?: ForwardSpec[] | undefined;
  /** Bridge name (default virbr0) or tap interface. */
  networkDevice?: string | undefined;
  /** NIC MAC for bridge/tap; default random locally administered. */
  mac?: string | undefined;
  /**
   * Extra disks: `path[:format=..][:aio=..][:cache=..]` each; or `'package'` / `{package: dir}`:
   * the volumes kept in `<dir>/volumes` (default dir: process.cwd()), see packageVolumes().
   */
  volumes?: VolumeSpec[] | 'package' | { package: string } | undefined;
  /** aio for the boot disk; default $CAPSTAN_QEMU_AIO_TYPE, else threads. */
  aio?: AioMode | undefined;
  /** Keep the instance (overlay + `osv.config`) after the VM ends. Default false. */
  persist?: boolean | undefined;
  /** Leave the VM running when this process ends (it is then managed by name). Default false. */
  detached?: boolean | undefined;
  /** If an instance of this `name` is running, stop it first instead of failing. Default false. */
  replace?: boolean | undefined;
  /** Readiness marker; default: the first console line. */
  ready?: ReadyMarker | undefined;
  /** ms to wait for the marker (0: for ever). Default 60000. */
  readyTimeout?: number | undefined;
  /** Add isa-debug-exit at port 0xf4 (test guests exit through it). Default false. */
  debugExit?: boolean | undefined;
  /** VNC on a unix socket in the instance folder (adds a VGA card). Default false. */
  vnc?: boolean | undefined;
  /** Reboot on guest reset instead of ending QEMU. Default false. */
  rebootOnReset?: boolean | undefined;
  /** Extra QEMU arguments, appended. */
  qemuArgs?: string[] | undefined;
  /** Give QEMU this process's stdin (a console you can type into). Default false. */
  interactive?: boolean | undefined;
  /** Copy console output to this stream (or process.stdout when true). Default false (true when `interactive`). */
  echo?: boolean | NodeJS.WritableStream | undefined;
  /** No log messages. */
  silent?: boolean | undefined;
  /** Environment to read CAPSTAN_* from and to run QEMU with; default process.env. */
  hostEnv?: NodeJS.ProcessEnv | undefined;
}

/** An image to boot: a path, or a path with what writeImage knows about it. */
export type BootImage = string | { path: string; info?: ImageInfo | undefined };

/** Starts a VM for `image`. Resolves once QEMU runs; `vm.ready` tells when the guest is up. */
export async function boot(image: BootImage, options: BootOptions = {}): Promise<Vm> {
  const root = capstanRoot(options.root, options.hostEnv ?? process.env);
  // config.yaml's disable_kvm / qemu_aio_type, unless the environment says otherwise.
  const log = stepLogger('bootVm', { silent: options.silent });
  const hostEnv = withCapstanConfig(options.hostEnv ?? process.env, readCapstanVmConfig(root, (w) => log.warn(formatWarning(w))));
  const imagePath = path.resolve(typeof image === 'string' ? image : image.path);
  const info = typeof image === 'string' ? undefined : image.info;
  if (!existsSync(imagePath)) {
    throw new VmError('the image to boot does not exist', { code: 'E_VM_IMAGE', file: imagePath, hint: 'Build it first (writeImage), or fix the path.' });
  }
  const format = options.format ?? await bootableFormat(imagePath, info?.format);
  const qemu = findQemu(options.qemu, hostEnv);
  const memoryMiB = parseMemory(options.memory ?? '1G');
  const cpus = options.cpus ?? 2;
  if (!Number.isInteger(cpus) || cpus < 1) {
    throw new VmError(`bad CPU count ${cpus}`, { code: 'E_VM_CPUS', hint: 'Give a whole number ≥ 1.' });
  }
  const volumeSpecs = options.volumes === 'package' || (options.volumes && !Array.isArray(options.volumes))
    ? await packageVolumes(options.volumes === 'package' ? process.cwd() : options.volumes.package, { onWarning: (w) => log.warn(formatWarning(w)) })
    : options.volumes ?? [];
  const volumes = volumeSpecs.map((v) => parseVolume(v));
  for (const v of volumes) {
    if (!existsSync(v.path)) {
      throw new VmError('the volume does not exist', { code: 'E_VM_VOLUME', file: v.path, hint: 'Create it first with createVolume().' });
    }
  }
  const runtime = { execute: options.execute, boot: options.boot, env: options.env };
  runtimeCmdline(runtime); // bad env entries fail before anything is created

  const claim = await claimInstance(options.name, imagePath, root, options.replace ?? false);
  const p = claim.paths;
  try {
    let cmdline: string;
    if (claim.reuseDisk) {
      const backing = await overlayBackingFile(p.disk);
      if (backing !== imagePath) {
        throw new VmError(`instance "${p.name}" was made from ${backing ?? 'another image'}, not this one`, {
          code: 'E_VM_INSTANCE_IMAGE', file: p.dir, hint: `Delete the instance (deleteInstance("${p.name}")) or pick another name.`,
        });
      }
      // The instance's own command line (perhaps set at an earlier run) is the base here.
      const current = await readDiskCmdline(p.disk, 'qcow2');
      const wanted = runtimeCmdline(runtime, current);
      if (wanted !== undefined) await patchOverlayCmdline(p.disk, wanted);
      cmdline = wanted ?? current;
    } else {
      const imageCmdline = info?.cmdline ?? await readDiskCmdline(imagePath, format);
      const wanted = runtimeCmdline(runtime, imageCmdline);
      await createInstanceOverlay(p.disk, imagePath, format, wanted);
      cmdline = wanted ?? imageCmdline;
    }
    const loader = options.loader ?? info?.loader;
    let kernel = await resolveKernel(options.kernel, loader, p.dir);
    if (kernel === undefined && options.kernel === undefined && loader && options.pull !== false) {
      const client = new RepositoryClient({ ...options, root, env: hostEnv, silent: options.silent });
      if (await client.pullKernelFor(loader)) kernel = await resolveKernel(undefined, loader, p.dir);
    }
    const networkOptions = { mode: options.network, forward: options.forward, device: options.networkDevice, mac: options.mac };
    let network = await planNetwork(networkOptions);
    const macChosen = network.mac;
    const disk = bootDrive(p.disk, 'qcow2', options.aio, hostEnv, imagePath);
    const detached = options.detached ?? false;
    const accel = chooseAccel(options.accel ?? 'auto', hostEnv);
    const argsFor = (a: typeof accel, bootKernel: string | undefined) => qemuArgs({
      memoryMiB, cpus, accel: a, kvmCpu: options.kvmCpu ?? 'host', disk, volumes,
      kernel: bootKernel ? { path: bootKernel, append: cmdline } : undefined,
      network, monitor: p.monitor, events: p.events, pidFile: p.pidFile,
      console: detached ? { kind: 'file', path: p.consoleFile } : { kind: 'stdio' },
      debugExit: options.debugExit ?? false,
      vnc: options.vnc ? p.vnc : undefined,
      rebootOnReset: options.rebootOnReset ?? false,
      extra: options.qemuArgs ?? [],
    }, hostEnv);
    if (options.persist) {
      await writeInstanceConfig(p.config, {
        name: p.name, image: imagePath, memoryMiB, cpus, cmdline, kernel, kernelFile: kernel ? fileFacts(kernel) : undefined,
        network: { mode: network.mode, forward: options.forward, forwards: network.forwards, device: network.device, mac: network.mac },
        volumes, format,
      });
    }
    // An interactive console is one you see: echo defaults to on there.
    const wantEcho = options.echo ?? options.interactive ?? false;
    const echo = wantEcho === true ? process.stdout : wantEcho || undefined;
    const vm = new Vm({
      name: p.name, dir: p.dir, image: imagePath, disk: p.disk, monitor: p.monitor, events: p.events, pidFile: p.pidFile,
      qemu, argsFor, accel, fallbackToTcg: options.fallbackToTcg ?? true, cmdline, kernel,
      forwards: network.forwards, mac: network.mac,
      ready: options.ready, readyTimeoutMs: options.readyTimeout ?? 60_000,
      detached, consoleFile: p.consoleFile, logFile: p.logFile,
      persist: options.persist ?? false, debugExit: options.debugExit ?? false,
      interactive: options.interactive ?? false, echo,
      onFallback: (reason) => log.warn(`${p.name}: ${reason}`),
      replanPorts: (options.forward ?? []).some((f) => parseForward(f).host === 0) ? async () => {
        network = await planNetwork({ ...networkOptions, mac: macChosen });
        log.warn(`${p.name}: a host port was taken before QEMU could bind it; trying other free ports`);
        return network.forwards;
      } : undefined,
      env: hostEnv,
    });
    vm.start();
    return vm;
  } catch (error) {
    if (!claim.reuseDisk) await rm(p.dir, { recursive: true, force: true });
    throw error;
  }
}

/** The image's disk format (from writeImage's info, else probed); a GCE tarball is no disk. */
async function bootableFormat(file: string, known: ImageInfo['format'] | undefined): Promise<DiskFormat> {
  const head = known === undefined ? await readImageHead(file) : undefined;
  const format = known ?? probeImageBytes(head!);
  if (format === 'gce') {
    throw new VmError('this is a GCE tarball (disk.raw in a tar.gz), which QEMU cannot boot directly', {
      code: 'E_VM_IMAGE', file, hint: 'Build a qcow2 or raw image to boot locally, or extract disk.raw and boot that.',
    });
  }
  // Any file probes as raw: one without a boot sector is not a disk (e.g. `capstan run -i app`
  // in a folder holding a program called app, which wins over the repository image app).
  if (format === 'raw' && head && !hasBootSignature(head)) {
    throw new VmError('is not a bootable disk image: no boot sector (the MBR signature 55 AA at byte 510)', {
      code: 'E_VM_IMAGE', file,
      hint: 'Name an image written by writeImage or compose. A file of that name in the current folder is taken before the repository image of that name.',
    });
  }
  return format;
}

/** Options for booting a persisted instance again: only the run-time ones. */
export type BootInstanceOptions = Omit<BootOptions, 'name' | 'persist' | 'memory' | 'cpus' | 'network' | 'forward' | 'networkDevice' | 'mac' | 'volumes' | 'format'>;

/**
 * Boots a persisted instance again with its stored configuration (`capstan run <instance>`):
 * its overlay keeps the guest's disk state; `execute` / `boot` / `env` set a new command line.
 * Forwards given with host port 0 get a free port again.
 */
export async function bootInstance(name: string, options: BootInstanceOptions = {}): Promise<Vm> {
  const root = capstanRoot(options.root, options.hostEnv ?? process.env);
  const paths = instancePaths(name, root);
  const config = await readInstanceConfig(paths.config);
  if (!config) {
    throw new VmError(`no persisted instance named "${name}"`, {
      code: 'E_VM_NO_INSTANCE', file: paths.dir, hint: 'Only instances booted with `persist: true` can be booted by name; see listInstances().',
    });
  }
  if (typeof config.image !== 'string' || typeof config.network?.mode !== 'string') {
    // Capstan's osv.config is its qemu.VMConfig (instancedir, natrules, networking…), another
    // shape: say so rather than boot half of it.
    const capstans = ['instancedir', 'natrules', 'networking', 'aiotype'].some((key) => key in (config as object));
    throw new VmError(capstans ? `instance "${name}" was made by Capstan, whose osv.config gulp-capstan does not boot` : `instance "${name}" has an osv.config gulp-capstan cannot read`, {
      code: 'E_VM_INSTANCE_CONFIG', file: paths.config,
      hint: capstans ? "Boot it with Capstan, or run its image as a new instance here ('capstan run -i <image> <name>' replaces it)." : 'Delete the instance and run its image again.',
    });
  }
  let kernel = options.kernel ?? (config.kernel ? config.kernel : false);
  if (options.kernel === undefined && config.kernel && config.kernelFile && !sameFacts(fileFacts(config.kernel), config.kernelFile)) {
    stepLogger('bootVm', { silent: options.silent }).warn(`${name}: the kernel it was made with (${config.kernel}) has changed since (a loader pulled again?); booting from its disk`);
    kernel = false;
  }
  return boot(config.image, {
    ...options,
    name,
    persist: true,
    memory: config.memoryMiB,
    cpus: config.cpus,
    format: config.format,
    kernel,
    network: config.network.mode as NetworkMode,
    forward: config.network.forward ?? config.network.forwards,
    networkDevice: config.network.device,
    mac: config.network.mac,
    volumes: config.volumes as VolumeSpec[],
  });
}

/** Size and mtime of a file, or undefined when it is gone. */
function fileFacts(file: string): { size: number; mtimeMs: number } | undefined {
  try {
    const st = statSync(file);
    return { size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

function sameFacts(a: { size: number; mtimeMs: number } | undefined, b: { size: number; mtimeMs: number }): boolean {
  return a !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
