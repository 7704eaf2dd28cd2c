// Reading vinyl contents that are streams. Node streams and vinyl-fs 4's streamx contents
// both work through events; one reader here so every step reads them the same way.

/** The part of a Node or streamx readable we rely on. */
export interface EventStream {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off?(event: string, listener: (...args: any[]) => void): unknown;
  removeListener?(event: string, listener: (...args: any[]) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/**
 * The chunks of a content stream, read through its events with pause/resume backpressure.
 * Not `for await` on the stream itself: vinyl-fs 4's lazy streamx contents (buffer: false)
 * emit 'end' but their async iterator never finishes, which would hang the build.
 */
export async function* contentChunks(stream: EventStream, add: (n: number) => void = () => {}): AsyncGenerator<Uint8Array | string> {
  const queue: (Uint8Array | string)[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => { const w = wake; wake = undefined; w?.(); };
  const onData = (chunk: Uint8Array | string) => { queue.push(chunk); if (queue.length >= 4) stream.pause(); notify(); };
  const onEnd = () => { ended = true; notify(); };
  const onError = (error: unknown) => { failure = error ?? new Error('the content stream failed'); notify(); };
  const onClose = () => { if (!ended && failure === undefined) failure = new Error('the content stream closed before its end'); notify(); };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', onClose);
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        if (queue.length === 0) stream.resume();
        add(chunk.length);
        yield chunk;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (ended) return;
      await new Promise<void>((resolve) => { wake = resolve; });
    }
  } finally {
    const off = (e: string, l: (...args: any[]) => void) => (stream.off ?? stream.removeListener)?.call(stream, e, l);
    off('data', onData);
    off('end', onEnd);
    off('error', onError);
    off('close', onClose);
  }
}
