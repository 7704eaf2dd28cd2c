// undertaker-registry 2 ships no types: the constructor gulp's custom registries extend.
declare module 'undertaker-registry' {
  class DefaultRegistry {
    init(taker: unknown): void;
    get(name: string): unknown;
    set(name: string, fn: unknown): unknown;
    tasks(): Record<string, unknown>;
  }
  export default DefaultRegistry;
}
declare module 'glob-watcher' {
  import type { EventEmitter } from 'node:events';
  interface WatchOptions {
    cwd?: string;
    delay?: number;
    queue?: boolean;
    ignoreInitial?: boolean;
    ignored?: string | RegExp | Array<string | RegExp> | ((path: string) => boolean);
    events?: string | string[];
  }
  interface Watcher extends EventEmitter {
    close(): Promise<void> | void;
  }
  function watch(globs: string | string[], options: WatchOptions, fn: (done: (error?: unknown) => void) => unknown): Watcher;
  export default watch;
}
