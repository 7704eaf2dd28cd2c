// Fixed-size allocation units (VMDK grains, VDI blocks) appended to an image file in the order
// they are first filled, with a map from virtual unit to physical slot. It is the data half of
// the sparse writers; each format keeps its own tables and header. Like the qcow2 writer:
//   - a unit is allocated only when it receives non-zero bytes, so a sparse source stays sparse;
//   - the unit being filled is kept in memory, a partial write to an earlier unit reads it back;
//   - new units are gathered into batches written synchronously (see Qcow2Writer.flushPending);
//     every write is blocking, so the writers built on this offer writeSync (the composer then
//     adds small files without a promise each, as for qcow2 and raw).
// Slot i lives at byte `dataStart + i · unitSize`. shiftFront() moves the first slots to the end
// so that metadata whose size is only known at the end (it grows with the virtual size) can take
// the room before the data, as VMware, VirtualBox and QEMU lay these formats out.
import { writeSync, writevSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { readExactlySync } from './qcow2.js';

interface Unit { index: number; data: Buffer; dirty: boolean }

export class UnitAllocator {
  readonly unitSize: number;
  /** Byte offset of slot 0 in the file. */
  dataStart: number;
  private readonly fh: FileHandle;
  private readonly batchUnits: number;
  private readonly zero: Buffer;
  private readonly slotOf = new Map<number, number>();
  private virtualOf: number[] = [];
  private current: Unit | undefined;
  private pending: Buffer[] = [];
  private pendingFirstSlot = 0;
  private readonly spare: Buffer[] = [];
  /** One past the highest virtual byte written. */
  highestWrite = 0;

  constructor(fh: FileHandle, unitSize: number, dataStart: number, batchBytes = 1024 * 1024) {
    this.fh = fh;
    this.unitSize = unitSize;
    this.dataStart = dataStart;
    this.batchUnits = Math.max(1, Math.floor(batchBytes / unitSize));
    this.zero = Buffer.alloc(unitSize);
  }

  /** Number of allocated slots. */
  get slots(): number { return this.virtualOf.length; }

  /** The slot holding virtual unit `index`, if allocated. */
  slot(index: number): number | undefined { return this.slotOf.get(index); }

  /** [virtual unit, slot] for every allocated unit. */
  entries(): IterableIterator<[number, number]> { return this.slotOf.entries(); }

  /** Writes `data` at virtual `offset`, before it returns. */
  writeSync(offset: number, data: Uint8Array): void {
    const u = this.unitSize;
    let pos = offset;
    let from = 0;
    while (from < data.length) {
      const index = Math.floor(pos / u);
      const within = pos - index * u;
      const n = Math.min(u - within, data.length - from);
      const unit = this.unit(index, within === 0 && n === u);
      unit.data.set(data.subarray(from, from + n), within);
      unit.dirty = true;
      pos += n;
      from += n;
    }
    if (pos > this.highestWrite) this.highestWrite = pos;
  }

  /** Writes the unit in memory and every gathered batch to the file. */
  flush(): void {
    this.evict();
    this.flushPending();
  }

  /**
   * Makes room for `k` units before the data: the first `k` slots move to the end, every other
   * slot keeps its bytes in place and its number drops by `k`, and dataStart advances by `k`
   * units. No gap is left between slots (VirtualBox appends new blocks after the count of
   * allocated ones). Call flush() first.
   */
  async shiftFront(k: number): Promise<void> {
    if (k <= 0) return;
    const u = this.unitSize;
    const n = this.slots;
    const moved = Math.min(k, n);
    const base = Math.max(n - k, 0); // new number of the first moved slot
    const newStart = this.dataStart + k * u;
    const buffer = Buffer.allocUnsafe(u);
    for (let j = 0; j < moved; j++) {
      await this.fh.read(buffer, 0, u, this.dataStart + j * u);
      await this.fh.write(buffer, 0, u, newStart + (base + j) * u);
    }
    this.virtualOf = this.virtualOf.slice(moved).concat(this.virtualOf.slice(0, moved));
    this.slotOf.clear();
    this.virtualOf.forEach((v, s) => this.slotOf.set(v, s));
    this.dataStart = newStart;
  }

  private unit(index: number, whole: boolean): Unit {
    if (this.current?.index === index) return this.current;
    this.evict();
    const data = this.spare.pop() ?? Buffer.allocUnsafe(this.unitSize);
    if (!whole) {
      const slot = this.slotOf.get(index);
      if (slot === undefined) data.fill(0);
      else this.readSlot(slot, data);
    }
    this.current = { index, data, dirty: false };
    return this.current;
  }

  private readSlot(slot: number, into: Buffer): void {
    const inPending = slot - this.pendingFirstSlot;
    if (this.pending.length > 0 && inPending >= 0 && inPending < this.pending.length) {
      this.pending[inPending]!.copy(into);
      return;
    }
    readExactlySync(this.fh.fd, into.subarray(0, this.unitSize), this.dataStart + slot * this.unitSize);
  }

  private evict(): void {
    const cur = this.current;
    this.current = undefined;
    if (!cur?.dirty) { if (cur) this.release(cur.data); return; }
    const slot = this.slotOf.get(cur.index);
    if (slot !== undefined) {
      const inPending = slot - this.pendingFirstSlot;
      if (this.pending.length > 0 && inPending >= 0 && inPending < this.pending.length) {
        this.release(this.pending[inPending]!);
        this.pending[inPending] = cur.data;
      } else {
        writeAll(this.fh.fd, cur.data, this.dataStart + slot * this.unitSize);
        this.release(cur.data);
      }
      return;
    }
    if (cur.data.equals(this.zero)) { this.release(cur.data); return; } // reads as zeros unallocated
    const newSlot = this.virtualOf.length;
    this.virtualOf.push(cur.index);
    this.slotOf.set(cur.index, newSlot);
    if (this.pending.length === 0) this.pendingFirstSlot = newSlot;
    this.pending.push(cur.data);
    if (this.pending.length >= this.batchUnits) this.flushPending();
  }

  private flushPending(): void {
    if (this.pending.length === 0) return;
    const buffers = this.pending;
    this.pending = [];
    writevSync(this.fh.fd, buffers, this.dataStart + this.pendingFirstSlot * this.unitSize);
    for (const b of buffers) this.release(b);
  }

  private release(buffer: Buffer): void {
    if (this.spare.length < 2 * this.batchUnits) this.spare.push(buffer);
  }
}

/** Writes all of `data` at `position` (a blocking write may write less than asked). */
function writeAll(fd: number, data: Buffer, position: number): void {
  for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done, position + done);
}
