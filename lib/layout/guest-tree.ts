// Bookkeeping of which guest paths are taken, by what, at which layer: enough to find
// clashes, skeleton entries still missing and folders nobody provided, without holding any
// file contents (a 2 GB tree only costs its path strings here).
import { APP_LAYER } from '../carrier.js';
import { parentDirectories } from './guest-path.js';
import type { GuestEntryType } from './types.js';

export interface GuestClaim {
  type: GuestEntryType;
  layer: number;
  /** Who claimed it: a host path, `package osv.nginx`, `ROFS skeleton`… */
  source: string;
}

export type ClaimOutcome =
  /** First claim on the path, or a higher/equal layer replacing a lower one. */
  | { kind: 'new' | 'overrides'; previous?: GuestClaim | undefined }
  /** The same folder again at the same layer: nothing new, the entry may be dropped. */
  | { kind: 'duplicate-directory'; previous: GuestClaim }
  /** Two application entries want the same path: an error for the caller to report. */
  | { kind: 'app-clash'; previous: GuestClaim }
  /** A lower layer arriving after a higher one: the image keeps the higher one. */
  | { kind: 'shadowed'; previous: GuestClaim };

export class GuestTree {
  private readonly claims = new Map<string, GuestClaim>();
  private readonly parents = new Set<string>();

  has(guestPath: string): boolean {
    return this.claims.has(guestPath);
  }

  get(guestPath: string): GuestClaim | undefined {
    return this.claims.get(guestPath);
  }

  /**
   * Records `claim` on `guestPath` and says how it relates to what was there. With
   * `winsTies`, an equal layer replaces the previous claim instead of clashing (the /run
   * scripts, which Capstan writes over application files).
   */
  claim(guestPath: string, claim: GuestClaim, options: { winsTies?: boolean } = {}): ClaimOutcome {
    this.addParents(guestPath);
    const previous = this.claims.get(guestPath);
    if (!previous) {
      this.claims.set(guestPath, claim);
      return { kind: 'new' };
    }
    if (previous.layer === claim.layer && previous.type === 'directory' && claim.type === 'directory') {
      return { kind: 'duplicate-directory', previous };
    }
    if (previous.layer === APP_LAYER && claim.layer === APP_LAYER && !options.winsTies) return { kind: 'app-clash', previous };
    if (claim.layer < previous.layer) return { kind: 'shadowed', previous };
    this.claims.set(guestPath, claim);
    return { kind: 'overrides', previous };
  }

  /**
   * Records the folders above `guestPath`, innermost first, stopping at the first one already
   * known (its own parents were recorded with it): a tree of n files costs O(n), not O(n·depth²).
   */
  private addParents(guestPath: string): void {
    if (guestPath.includes('//') || guestPath.endsWith('/')) { // not normalised: the general rule
      for (const dir of parentDirectories(guestPath)) this.parents.add(dir);
      return;
    }
    for (let end = guestPath.lastIndexOf('/'); end > 0; end = guestPath.lastIndexOf('/', end - 1)) {
      const dir = guestPath.slice(0, end);
      if (this.parents.has(dir)) return;
      this.parents.add(dir);
    }
  }

  /** Folders some path lies below but that no entry provides, sorted (parents first). */
  impliedDirectories(): string[] {
    return [...this.parents].filter((dir) => !this.claims.has(dir)).sort();
  }

  /**
   * Paths lying below something that is not a folder (a file or symlink claimed at a parent):
   * ROFS cannot hold them as laid out.
   */
  nonDirectoryParents(): Array<{ parent: string; claim: GuestClaim }> {
    const out: Array<{ parent: string; claim: GuestClaim }> = [];
    for (const dir of this.parents) {
      const claim = this.claims.get(dir);
      if (claim && claim.type !== 'directory') out.push({ parent: dir, claim });
    }
    return out.sort((a, b) => a.parent.localeCompare(b.parent));
  }
}
