// A guest's console as lines, for QEMU (stdout or a console file) and libvirt (a console
// volume) alike: text in, whole lines out (a trailing CR dropped), the last few kept for error
// messages, and the readiness marker looked for in each line — and, when it is text or a
// pattern, in a line still being written, since prompts and banners often end without a newline.

/** What decides that a VM is ready: a substring, a pattern, or a predicate over console lines. */
export type ReadyMarker = string | RegExp | ((line: string) => boolean);

export function matchesMarker(marker: ReadyMarker, text: string): boolean {
  if (typeof marker === 'string') return text.includes(marker);
  if (marker instanceof RegExp) { marker.lastIndex = 0; return marker.test(text); }
  return marker(text);
}

export interface ConsoleLinesOptions {
  /** The readiness marker; without one the first line makes the VM ready. */
  ready: ReadyMarker | undefined;
  /** Each whole line, in order. */
  onLine: (line: string) => void;
  /** Called once, when the marker is seen. */
  onReady: () => void;
  /** How many recent lines to keep (default 50). */
  keep?: number | undefined;
}

export class ConsoleLines {
  /** The last lines, oldest first. */
  readonly recent: string[] = [];
  private partial = '';
  private seen = false;
  private readonly o: ConsoleLinesOptions;
  private readonly keep: number;

  constructor(options: ConsoleLinesOptions) {
    this.o = options;
    this.keep = options.keep ?? 50;
  }

  /** Decoded console text, in any pieces. */
  write(text: string): void {
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      this.line(line);
    }
    const marker = this.o.ready;
    if (this.partial && !this.seen && marker !== undefined && typeof marker !== 'function' && matchesMarker(marker, this.partial)) this.markReady();
  }

  /** The console ended: what is left is its last line, even without a newline. */
  end(): void {
    const rest = this.partial.replace(/\r?\n?$/, '');
    this.partial = '';
    if (rest) this.line(rest);
  }

  /** A new run on the same console (QEMU relaunched): a half-written line is dropped. */
  reset(): void {
    this.partial = '';
  }

  private line(line: string): void {
    this.recent.push(line);
    if (this.recent.length > this.keep) this.recent.shift();
    this.o.onLine(line);
    if (!this.seen && (this.o.ready === undefined || matchesMarker(this.o.ready, line))) this.markReady();
  }

  private markReady(): void {
    this.seen = true;
    this.o.onReady();
  }
}
