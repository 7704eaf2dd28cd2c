// A ZFS vdev label built by hand, as the tests' stand-in builder writes it: the XDR nvlist
// layout (pairs of encoded size, decoded size, name, type, count, value; big-endian, 4-byte
// aligned) and an uberblock (magic 0x00bab10c, little-endian) at 128 KiB, so the host-side
// check (lib/image/zfs-label.ts) has something real-shaped to read. The decoder is also checked
// against a pool OSv's own builder wrote (test/zfs-real.test.ts).

const DATA_TYPE_UINT64 = 8;
const DATA_TYPE_STRING = 9;
const DATA_TYPE_NVLIST = 19;

function xdrString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const out = Buffer.alloc(4 + ((bytes.length + 3) & ~3));
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

function pair(name: string, type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  const typeCount = Buffer.alloc(8);
  typeCount.writeUInt32BE(type, 0);
  typeCount.writeUInt32BE(1, 4);
  const body = Buffer.concat([xdrString(name), typeCount, value]);
  head.writeUInt32BE(8 + body.length, 0);
  head.writeUInt32BE(8 + body.length, 4); // decoded size: not read by our decoder
  return Buffer.concat([head, body]);
}

const u64 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(v); return b; };

/** The XDR nvlist of a label: version, name, state, txg, pool_guid, then a nested vdev_tree (where our decoder stops). */
export function encodeLabelNvlist(f: { name: string; state: bigint; txg: bigint; version?: bigint }): Buffer {
  return Buffer.concat([
    Buffer.from([1, 1, 0, 0]), Buffer.alloc(4), u64(1n).subarray(4), // header, nvl_version 0, nvflag 1
    pair('version', DATA_TYPE_UINT64, u64(f.version ?? 5000n)),
    pair('name', DATA_TYPE_STRING, xdrString(f.name)),
    pair('state', DATA_TYPE_UINT64, u64(f.state)),
    pair('txg', DATA_TYPE_UINT64, u64(f.txg)),
    pair('pool_guid', DATA_TYPE_UINT64, u64(0x1234n)),
    pair('vdev_tree', DATA_TYPE_NVLIST, Buffer.alloc(16)),
    Buffer.alloc(8), // end of list
  ]);
}

/** A whole 256 KiB label. */
export function encodeZfsLabel(f: { name: string; state: bigint; txg: bigint }): Buffer {
  const label = Buffer.alloc(256 * 1024);
  encodeLabelNvlist(f).copy(label, 16 * 1024);
  const ub = 128 * 1024 + Number(f.txg % 128n) * 1024;
  label.writeBigUInt64LE(0x00bab10cn, ub);
  label.writeBigUInt64LE(5000n, ub + 8);
  label.writeBigUInt64LE(f.txg, ub + 16);
  return label;
}
