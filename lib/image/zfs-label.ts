// Reading a ZFS vdev label from the host, to check what the OSv ZFS builder left on the disk
// (we never write ZFS ourselves). A vdev carries four 256 KiB labels, two at its start and two
// at its end; each has 8 KiB blank, 8 KiB boot header, a 112 KiB XDR-encoded nvlist of pool
// facts (name, state, txg, …) and 128 KiB of uberblocks (magic 0x00bab10c, little- or
// big-endian). We decode the nvlist's leading scalar pairs only: the ones we check come
// before the nested vdev tree.
import type { DiskImageReader } from './disk.js';

export const ZFS_LABEL_SIZE = 256 * 1024;
const NVLIST_OFFSET = 16 * 1024;
const NVLIST_SIZE = 112 * 1024;
const UBERBLOCK_OFFSET = 128 * 1024;
const UBERBLOCK_AREA = 128 * 1024;
const UBERBLOCK_MAGIC = 0x00bab10cn;

/** pool_state_t. */
export const POOL_STATES = ['active', 'exported', 'destroyed', 'spare', 'l2cache', 'uninitialized', 'unavailable', 'potentially-active'] as const;
export type PoolState = (typeof POOL_STATES)[number] | `unknown (${number})`;

export interface ZfsLabel {
  /** Pool name (`osv`). */
  name?: string | undefined;
  state?: PoolState | undefined;
  /** Last transaction group written to the label. */
  txg?: bigint | undefined;
  version?: bigint | undefined;
  poolGuid?: bigint | undefined;
  hostname?: string | undefined;
  /** Highest txg among the label's valid uberblocks (0n when none is valid). */
  uberblockTxg: bigint;
}

const DATA_TYPE_UINT64 = 8;
const DATA_TYPE_STRING = 9;

/** Decodes the leading scalar pairs of an XDR nvlist (stops at the first other type). */
export function decodeLabelNvlist(b: Buffer): Record<string, bigint | string> {
  const out: Record<string, bigint | string> = {};
  // nvs header: encoding (1 = XDR), endianness, 2 reserved; then nvl_version, nvl_nvflag.
  if (b.length < 12 || b[0] !== 1) return out;
  let o = 12;
  while (o + 8 <= b.length) {
    const encoded = b.readUInt32BE(o);
    if (encoded === 0) break; // end of list
    const pairEnd = o + encoded;
    if (encoded < 8 || pairEnd > b.length) break;
    let p = o + 8;
    const nameLength = b.readUInt32BE(p);
    p += 4;
    if (p + nameLength > pairEnd) break;
    const name = b.toString('utf8', p, p + nameLength);
    p += (nameLength + 3) & ~3;
    const type = b.readUInt32BE(p);
    const count = b.readUInt32BE(p + 4);
    p += 8;
    if (type === DATA_TYPE_UINT64 && count === 1 && p + 8 <= pairEnd) {
      out[name] = b.readBigUInt64BE(p);
    } else if (type === DATA_TYPE_STRING && count === 1 && p + 4 <= pairEnd) {
      const len = b.readUInt32BE(p);
      if (p + 4 + len > pairEnd) break;
      out[name] = b.toString('utf8', p + 4, p + 4 + len);
    } else {
      break;
    }
    o = pairEnd;
  }
  return out;
}

/** Highest txg of a valid uberblock in a label's uberblock area (slots of 1 KiB or more). */
function bestUberblockTxg(area: Buffer): bigint {
  let best = 0n;
  for (let o = 0; o + 24 <= area.length; o += 1024) {
    const le = area.readBigUInt64LE(o);
    const be = area.readBigUInt64BE(o);
    const txg = le === UBERBLOCK_MAGIC ? area.readBigUInt64LE(o + 16) : be === UBERBLOCK_MAGIC ? area.readBigUInt64BE(o + 16) : -1n;
    if (txg > best) best = txg;
  }
  return best;
}

/** Reads label `index` (0–3) of the vdev at `start` of `size` bytes on `disk`; undefined when it holds no nvlist. */
export async function readZfsLabel(disk: DiskImageReader, start: number, size: number, index = 0): Promise<ZfsLabel | undefined> {
  const alignedSize = Math.floor(size / ZFS_LABEL_SIZE) * ZFS_LABEL_SIZE;
  const at = start + (index < 2 ? index * ZFS_LABEL_SIZE : alignedSize - (4 - index) * ZFS_LABEL_SIZE);
  const nv = decodeLabelNvlist(await disk.read(at + NVLIST_OFFSET, NVLIST_SIZE));
  if (Object.keys(nv).length === 0) return undefined;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const num = (v: unknown) => (typeof v === 'bigint' ? v : undefined);
  const stateNo = num(nv.state);
  const state: PoolState | undefined = stateNo === undefined ? undefined : POOL_STATES[Number(stateNo)] ?? `unknown (${Number(stateNo)})`;
  return {
    name: str(nv.name), state, txg: num(nv.txg), version: num(nv.version), poolGuid: num(nv.pool_guid), hostname: str(nv.hostname),
    uberblockTxg: bestUberblockTxg(await disk.read(at + UBERBLOCK_OFFSET, UBERBLOCK_AREA)),
  };
}
