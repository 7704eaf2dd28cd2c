// Stream contents for capstan.src({read: true, buffer: false}): a Readable that opens its file
// only when something first reads it, so a tree of thousands of files holds no descriptors
// until a plugin (or writeImage's read-ahead) gets to each one; it closes at its end or when
// destroyed.
import { close, open, read } from 'node:fs';
import { Readable } from 'node:stream';
import { SourceError } from '../errors.js';

const CHUNK = 64 * 1024;

export function lazyFileStream(file: string): Readable {
  let fd: number | undefined;
  let opening = false;
  let gone = false;
  let position = 0;
  const stream: Readable = new Readable({
    highWaterMark: CHUNK,
    read() {
      const next = () => {
        const buffer = Buffer.allocUnsafe(CHUNK);
        read(fd!, buffer, 0, CHUNK, position, (error, n) => {
          if (error) return stream.destroy(readError(file, error));
          if (n === 0) return void stream.push(null);
          position += n;
          // A short last read: copy it, so a 1 KiB file does not pin a 64 KiB buffer.
          stream.push(n === CHUNK ? buffer : Buffer.from(buffer.subarray(0, n)));
        });
      };
      if (fd !== undefined) return next();
      if (opening) return;
      opening = true;
      open(file, 'r', (error, opened) => {
        if (error) return stream.destroy(readError(file, error));
        if (gone) return close(opened, () => {});
        fd = opened;
        next();
      });
    },
    destroy(error, callback) {
      gone = true;
      if (fd === undefined) return callback(error);
      const f = fd;
      fd = undefined;
      close(f, () => callback(error));
    },
  });
  return stream;
}

function readError(file: string, error: NodeJS.ErrnoException): SourceError {
  return new SourceError(`could not read the file: ${error.message}`, {
    code: error.code === 'EACCES' ? 'E_SRC_UNREADABLE' : 'E_SRC_READ', file, cause: error,
    hint: error.code === 'ENOENT' ? 'It was removed after capstan.src listed it: do not change the source folder during the build.' : 'Check that the file is readable.',
  });
}
