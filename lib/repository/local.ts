// The local package repository (`<root>/packages/<name>.{mpm,yaml}`) and Capstan's package
// resolution order (capstan-behaviour.md §2.6 step 2).
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { RepositoryError } from '../errors.js';
import { parsePackageYaml, parseRunYaml, type ParseOptions } from '../manifest/index.js';
import type { PackageInfo, RunConfig } from '../manifest/types.js';
import { isMetaMember, readMpm, type MpmMember } from './mpm.js';
import { repositoryPackagePaths } from './root.js';

export interface LocalPackage {
  name: string;
  mpmPath: string;
  yamlPath: string;
  info: PackageInfo;
}

/**
 * Reads `<root>/packages/<name>.yaml`; a package exists only when its .mpm exists too.
 * `parse` receives the descriptor's warnings (repeated keys…) and can make them errors.
 */
export async function findLocalPackage(name: string, root: string, parse: ParseOptions = {}): Promise<LocalPackage> {
  const { mpm, yaml } = repositoryPackagePaths(name, root);
  let text: string;
  try {
    await fs.access(mpm);
    text = await fs.readFile(yaml, 'utf8');
  } catch {
    throw new RepositoryError(`package "${name}" is not in the local repository`, {
      code: 'E_PACKAGE_MISSING', file: mpm,
      hint: `Pull it (fetchPackages({ pullMissing: true }), pullPackage("${name}") or \`capstan package pull ${name}\`), put ${name}.mpm and ${name}.yaml into ${root}/packages, or remove "${name}" from require.`,
    });
  }
  return { name, mpmPath: mpm, yamlPath: yaml, info: parsePackageYaml(text, yaml, parse) };
}

/**
 * Capstan's resolution: depth-first, each package's own requirements before it. Capstan does
 * not de-duplicate and extracts a package again where it recurs, later extractions winning;
 * keeping only the last occurrence of each package gives the same files and is cheaper. A
 * cycle (which Capstan would recurse on forever) is an error. `find` looks a package up (and
 * may pull it: Capstan's --pull-missing).
 */
export async function resolveLocalPackages(
  require: readonly string[], root: string,
  find: (name: string) => Promise<LocalPackage> = (name) => findLocalPackage(name, root),
): Promise<LocalPackage[]> {
  const known = new Map<string, LocalPackage>();
  const order: string[] = [];
  const visit = async (name: string, chain: string[]): Promise<void> => {
    if (chain.includes(name)) {
      throw new RepositoryError(`packages require each other in a cycle: ${[...chain, name].join(' → ')}`, {
        code: 'E_PACKAGE_CYCLE', file: known.get(chain[chain.length - 1] ?? '')?.yamlPath,
        hint: 'Remove one of these requirements; Capstan would loop forever on it.',
      });
    }
    let pkg = known.get(name);
    if (!pkg) {
      pkg = await find(name);
      known.set(name, pkg);
    }
    for (const dep of pkg.info.require) await visit(dep, [...chain, name]);
    order.push(name);
  };
  for (const name of require) await visit(name, []);
  const lastIndex = new Map(order.map((name, i) => [name, i]));
  return order.filter((name, i) => lastIndex.get(name) === i).map((name) => known.get(name)!);
}

export interface PackageContents {
  /** meta/run.yaml of the package, when it has one. */
  run?: RunConfig | undefined;
  /** Members to extract (meta/* excluded), in archive order. */
  members: MpmMember[];
}

/** Reads a package's archive whole: its run configuration and the members that go into the image. */
export async function readLocalPackage(pkg: LocalPackage, parse: ParseOptions = {}): Promise<PackageContents> {
  const members: MpmMember[] = [];
  const found: { run?: RunConfig | undefined } = {};
  for await (const member of localPackageMembers(pkg, found, parse)) members.push(member);
  return { run: found.run, members };
}

/**
 * The members of a package that go into the image (meta/* left out), in archive order, as the
 * archive is read: one member in memory at a time, so a JDK-sized package is not held whole.
 * `found.run` is set when meta/run.yaml has been read (wherever it lies in the archive; at the
 * latest when the last member has been yielded).
 */
export async function* localPackageMembers(pkg: LocalPackage, found: { run?: RunConfig | undefined }, parse: ParseOptions = {}): AsyncGenerator<MpmMember> {
  for await (const member of readMpm(createReadStream(pkg.mpmPath), pkg.mpmPath)) {
    if (isMetaMember(member.guestPath)) {
      if (member.guestPath === '/meta/run.yaml' && member.type === 'file') {
        found.run = parseRunYaml(member.contents.toString('utf8'), `${pkg.mpmPath}:meta/run.yaml`, parse);
      }
      continue;
    }
    yield member;
  }
}
