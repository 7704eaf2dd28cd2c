// The real services the stack / libvirt tests run against — the OpenStack and libvirt that
// .ci/run starts (.ci/openstack-setup.sh, .ci/libvirt-setup.sh), on loopback — and the test
// image they boot: the stand-in boot sector in `wait` mode (it prints its CMDLINE:/PART: report
// on COM1, then stays up, as a real app would; Nova serves a console only while the guest runs).
// When a service is not there, the tests are skipped with the reason in one line.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { cloudSettings, type AuthSettings } from '../../lib/cloud/openstack/clouds-yaml.js';
import { writeImage } from '../../lib/steps/write-image.js';
import { buildStandInLoader } from './stand-in.js';
import { runSteps, vinylFile } from './streams.js';

/** Where .ci/openstack-setup.sh writes the credentials (CAPSTAN_CI_STATE overrides). */
export const CI_STATE = process.env['CAPSTAN_CI_STATE'] ?? '/var/lib/capstan-ci';
export const CI_CLOUD = process.env['CAPSTAN_TEST_CLOUD'] ?? 'capstan-ci';
export const CI_CLOUDS_YAML = process.env['CAPSTAN_TEST_CLOUDS_YAML'] ?? path.join(CI_STATE, 'clouds.yaml');

/** The test cloud's settings, or why there is none. Never the user's own clouds: only the CI's file. */
export async function openStackTarget(): Promise<{ settings: AuthSettings; cloudsFile: string } | { skip: string }> {
  if (!existsSync(CI_CLOUDS_YAML)) return { skip: `no test OpenStack: ${CI_CLOUDS_YAML} is missing (bash .ci/openstack-setup.sh makes one)` };
  let settings: AuthSettings;
  try {
    settings = cloudSettings(CI_CLOUD, { cloudsFile: CI_CLOUDS_YAML });
  } catch (error) {
    return { skip: `no test OpenStack: ${(error as Error).message.split('\n')[0]}` };
  }
  try {
    const controller = AbortSignal.timeout(3000);
    await fetch(settings.authUrl, { signal: controller });
  } catch (error) {
    return { skip: `no test OpenStack: Keystone at ${settings.authUrl} does not answer (${(error as Error).cause ?? (error as Error).message})` };
  }
  return { settings, cloudsFile: CI_CLOUDS_YAML };
}

export const CI_LIBVIRT_URI = process.env['CAPSTAN_TEST_LIBVIRT_URI'] ?? 'qemu+tcp://127.0.0.1/system';

/** The test libvirt's URI, or why there is none. */
export async function libvirtTarget(): Promise<{ uri: string } | { skip: string }> {
  const r = await execa('virsh', ['-q', '-c', CI_LIBVIRT_URI, 'pool-info', 'default'], { reject: false, timeout: 15_000 });
  if ((r as { code?: string }).code === 'ENOENT') return { skip: 'no test libvirt: virsh is not installed (bash .ci/libvirt-setup.sh)' };
  if (r.exitCode !== 0) return { skip: `no test libvirt at ${CI_LIBVIRT_URI}: ${String(r.stderr).split('\n')[0] || `virsh status ${r.exitCode}`}` };
  return { uri: CI_LIBVIRT_URI };
}

/**
 * A qcow2 (or raw) image composed by writeImage with the stand-in loader in wait mode: it
 * boots, prints `CMDLINE:<cmdline>` and `PART:<ROFS magic…>`, and stays up.
 */
export async function standInImage(dir: string, options: { cmdline?: string; format?: 'qcow2' | 'raw'; size?: string; name?: string } = {}): Promise<string> {
  const loader = await buildStandInLoader(path.join(dir, 'loader'), { mode: 'wait' });
  const format = options.format ?? 'qcow2';
  const out = path.join(dir, `${options.name ?? 'stand-in'}.${format}`);
  await runSteps(
    [vinylFile(dir, 'hello', 'hi\n'), vinylFile(dir, 'etc/hosts', '127.0.0.1 localhost\n')],
    writeImage({ out, loader, format, cmdline: options.cmdline ?? '/hello', size: options.size ?? '16M', silent: true }),
  );
  return out;
}
