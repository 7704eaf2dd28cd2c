// /run/<config_set> boot scripts (capstan-behaviour.md §2.3, osv-image-formats.md §5.2): one
// file per config set of every package and of the application, mode 0700, holding the set's
// boot command. Names share one namespace; a later source wins (packages in resolution order,
// the application last).
import { LayoutError } from '../errors.js';
import type { ConfigSet } from '../manifest/types.js';
import type { GeneratedEntry } from './types.js';

export const RUN_SCRIPT_MODE = 0o700;

export interface RunScriptSource {
  /** Package name, or the application's name; used in messages. */
  origin: string;
  configSets: readonly ConfigSet[];
  /** Where the sets were written (e.g. `osv.nginx: meta/run.yaml`), for errors. */
  file?: string | undefined;
}

export interface RunScriptOverride {
  name: string;
  /** Origin whose script is kept. */
  winner: string;
  /** Origin whose script is replaced. */
  loser: string;
}

export interface RunScriptLayout {
  entries: Array<GeneratedEntry & { type: 'file' }>;
  overrides: RunScriptOverride[];
}

/** The /run entries for `sources` in order (later wins on a clashing name). */
export function runScriptEntries(sources: readonly RunScriptSource[]): RunScriptLayout {
  const byName = new Map<string, { origin: string; script: string }>();
  const overrides: RunScriptOverride[] = [];
  for (const source of sources) {
    for (const set of source.configSets) {
      checkConfigSetName(set.name, source);
      const previous = byName.get(set.name);
      if (previous) {
        overrides.push({ name: set.name, winner: source.origin, loser: previous.origin });
        byName.delete(set.name); // re-insert so the order reflects the winner's position
      }
      byName.set(set.name, { origin: source.origin, script: set.script });
    }
  }
  const entries = [...byName].map(([name, { origin, script }]) => ({
    type: 'file' as const,
    guestPath: `/run/${name}`,
    mode: RUN_SCRIPT_MODE,
    contents: Buffer.from(script),
    reason: `config set '${name}' of ${origin}`,
  }));
  return { entries, overrides };
}

function checkConfigSetName(name: string, source: RunScriptSource): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new LayoutError(`config set name '${name}' of ${source.origin} cannot be a file name under /run`, {
      code: 'E_RUN_CONFIG_SET_NAME', file: source.file,
      hint: "Rename the config set to a single path component without '/' (e.g. 'default', 'web').",
    });
  }
}
