// Reading the contents of the files writeImage consumes, in order, without waiting on each
// one: the next few stream contents (vinyl-fs `buffer: false`) are read ahead while the current
// file is written, and host files (`read: false`) are read when their turn comes.
import type Vinyl from 'vinyl';
import { BUILD_KINDS, capstanOf } from '../carrier.js';
import { contentChunks, type EventStream } from './contents.js';
import { HOST_READ_BUFFER_BYTES, hostFileChunks } from './host-file.js';

/** Stream contents being read ahead: at most this many files … */
const READ_AHEAD_FILES = 8;
/** … and this many bytes of each before the writer gets to it. */
const READ_AHEAD_BYTES = 256 * 1024;

type Chunk = Uint8Array | string;
interface Primed { chunks: Chunk[]; rest?: AsyncGenerator<Chunk> | undefined; error?: unknown }

/**
 * A vinyl whose data writeImage reads from `file.path` itself: null contents (src with
 * `read: false`) and the stat of a regular file. Vinyls that describe the build (the image,
 * the manifest, package descriptors) are never read.
 */
function readsFromHost(file: Vinyl): boolean {
  if (!file.isNull() || typeof file.stat?.isFile !== 'function' || !file.stat.isFile()) return false;
  const kind = capstanOf(file)?.kind;
  return kind !== 'image' && !(kind && BUILD_KINDS.has(kind));
}

/** One file as writeImage gets it: the vinyl, its content to read (if any), a way to drop it. */
export class AheadFile {
  readonly file: Vinyl;
  /** Its data is read from `file.path` (a `read: false` vinyl): known before anything is opened. */
  readonly hostFile: boolean;
  private readonly primed: Promise<Primed> | undefined;
  private readonly shared: Shared;
  private chunks: AsyncIterable<Chunk> | undefined;

  constructor(file: Vinyl, primed: Promise<Primed> | undefined, shared: Shared) {
    this.file = file;
    this.primed = primed;
    this.shared = shared;
    this.hostFile = !primed && readsFromHost(file);
  }

  /**
   * The chunks to write: the read-ahead of stream contents, or the host file read when its turn
   * comes; undefined for buffer and null contents. Made on first use, so a file whose data is
   * reused costs nothing.
   */
  get content(): AsyncIterable<Chunk> | undefined {
    if (this.chunks) return this.chunks;
    if (this.primed) this.chunks = replay(this.primed);
    else if (this.hostFile) this.chunks = fromHost(this.file, this.shared.scratch, this.shared.add, this.shared.pace);
    return this.chunks;
  }

  /**
   * A host file that fits in one read, as chunks read synchronously when iterated (for a
   * writer that writes each before asking for the next); undefined for any other file.
   */
  hostChunksSync(): Iterable<Buffer> | undefined {
    if (!this.hostFile || !(this.file.stat!.size <= HOST_READ_BUFFER_BYTES)) return undefined;
    return countedChunks(hostFileChunks(this.file.path, this.file.stat, this.shared.scratch), this.shared.add);
  }

  /** After a file written synchronously: lets the event loop run once 20 ms have passed (undefined when not yet). */
  pace(): Promise<void> | undefined {
    return this.shared.pace();
  }

  /** Closes what the writer did not read (a shadowed file). */
  async release(): Promise<void> {
    const stream = this.file.contents as { destroy?: () => void } | null;
    stream?.destroy?.();
    await (await this.primed)?.rest?.return(undefined);
  }
}

interface Shared { scratch: Buffer; add: (n: number) => void; pace: () => Promise<void> | undefined }

/**
 * Hands files over in order, starting to read the contents of the next few stream files
 * (vinyl-fs `buffer: false`) while the current one is written: opening and reading many small
 * files one after another is latency-bound. Memory stays bounded (files × bytes above). Host
 * files (`read: false`) are read when their turn comes, and are not held back when nothing is
 * being read ahead.
 *
 * Synchronous on purpose: the writer's own `for await` loop pushes each file and gets back
 * the one whose turn it is. An async generator here cost a promise and an iterator result per
 * file, which measured as the largest share of a watch rebuild's garbage.
 */
export class ReadAhead {
  private readonly queue: AheadFile[] = [];
  private readonly shared: Shared;

  constructor(add: (n: number) => void) {
    // One read buffer for every host file of this build: RofsBuilder.addFile writes each chunk
    // into the image before it asks for the next, and files are added one at a time.
    this.shared = { scratch: Buffer.allocUnsafe(HOST_READ_BUFFER_BYTES), add, pace: pacer() };
  }

  /** Takes the next input file; returns the file whose turn it is now, if any. */
  push(file: Vinyl): AheadFile | undefined {
    const primed = file.isStream() ? prime(contentChunks(file.contents as unknown as EventStream, this.shared.add), READ_AHEAD_BYTES) : undefined;
    const item = new AheadFile(file, primed, this.shared);
    if (!primed && this.queue.length === 0) return item;
    this.queue.push(item);
    return this.queue.length > READ_AHEAD_FILES ? this.queue.shift() : undefined;
  }

  /** At the end of the input: the next file still queued. */
  shift(): AheadFile | undefined {
    return this.queue.shift();
  }

  /** Stopped early (an error): releases the files still being read. */
  releaseAll(): void {
    for (const item of this.queue.splice(0)) void item.release();
  }
}

/**
 * A host file's data (read: false), read synchronously when the writer gets to it (see
 * host-file.ts for why); a shadowed file is never opened.
 */
async function* fromHost(file: Vinyl, scratch: Buffer, add: (n: number) => void, pace: () => Promise<void> | undefined): AsyncGenerator<Uint8Array> {
  for (const chunk of countedChunks(hostFileChunks(file.path, file.stat, scratch), add)) {
    yield chunk;
    await pace();
  }
}

function* countedChunks(chunks: Iterable<Buffer>, add: (n: number) => void): Generator<Buffer> {
  for (const chunk of chunks) {
    add(chunk.length);
    yield chunk;
  }
}

/**
 * Lets the event loop run (timers, signals, other streams) once 20 ms of blocking reads and
 * writes have passed (checked after each chunk or file): a promise then, else undefined.
 */
function pacer(): () => Promise<void> | undefined {
  let last = performance.now();
  return () => {
    if (performance.now() - last < 20) return undefined;
    return new Promise<void>((resolve) => setImmediate(() => { last = performance.now(); resolve(); }));
  };
}

async function prime(source: AsyncGenerator<Chunk>, limit: number): Promise<Primed> {
  const chunks: Chunk[] = [];
  let n = 0;
  try {
    while (n < limit) {
      const r = await source.next();
      if (r.done) return { chunks };
      chunks.push(r.value);
      n += r.value.length;
    }
    return { chunks, rest: source };
  } catch (error) {
    return { chunks, error };
  }
}

async function* replay(primed: Promise<Primed>): AsyncGenerator<Chunk> {
  const { chunks, rest, error } = await primed;
  for (const chunk of chunks) yield chunk;
  if (error !== undefined) throw error;
  if (rest) yield* rest;
}

/**
 * The same hand-over as an async iterable, for consumers that take files one by one and do not
 * count promises (collect, compose-remote): each file with its content (stream contents read
 * ahead, host files read when their turn comes) and a way to drop a shadowed one.
 */
export async function* readAhead(files: AsyncIterable<Vinyl>, add: (n: number) => void): AsyncGenerator<{ file: Vinyl; content: AsyncIterable<Chunk> | undefined; release(): Promise<void> }> {
  const ahead = new ReadAhead(add);
  try {
    for await (const file of files) {
      const item = ahead.push(file);
      if (item) yield { file: item.file, content: item.content, release: () => item.release() };
    }
    for (let item = ahead.shift(); item; item = ahead.shift()) yield { file: item.file, content: item.content, release: () => item.release() };
  } finally {
    ahead.releaseAll();
  }
}
