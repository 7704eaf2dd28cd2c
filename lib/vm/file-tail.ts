// Following a growing file (a detached VM's console and QEMU log): QEMU writes them itself,
// so we poll; fs.watch misses appends on some file systems.
import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export class FileTail {
  private offset = 0;
  private fd: number | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly file: string, private readonly onText: (text: string) => void, intervalMs = 50) {
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  /** Reads whatever was appended since the last poll. */
  poll(): void {
    try {
      this.fd ??= openSync(this.file, 'r');
    } catch {
      return; // not created yet
    }
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, this.offset);
      if (n <= 0) break;
      this.offset += n;
      const text = this.decoder.write(buf.subarray(0, n));
      if (text) this.onText(text);
    }
  }

  /** Lets the process exit while we still follow the file. */
  unref(): void { this.timer.unref(); }

  close(): void {
    clearInterval(this.timer);
    this.poll();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
