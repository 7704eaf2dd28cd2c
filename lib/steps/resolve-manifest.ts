// resolveManifest: reads the application's Capstan inputs (meta/package.yaml, meta/run.yaml,
// Capstanfile, .capstanignore) from the stream, else from disk, and emits one manifest vinyl
// first, then every file, each annotated with the same manifest.
//
// The inputs may come anywhere in the stream, so files are held back until the manifest is
// known — but only up to a limit (`hold`), so memory does not grow with the tree and later
// steps start while gulp.src is still reading. Past the limit the manifest is resolved from
// what the stream gave so far and the package root on disk; an input that arrives after that
// must say the same as what was used, or the build fails (never a silently different image).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Transform } from 'node:stream';
import Vinyl from 'vinyl';
import { annotate } from '../carrier.js';
import { ManifestError, toPluginError } from '../errors.js';
import { stepLogger, type LogOptions } from '../log.js';
import { contentChunks, type EventStream } from '../vinyl/contents.js';
import { stepStream, type Push } from '../vinyl/step-stream.js';
import { validateManifestOptions, type ManifestInputs, type ManifestOptions } from '../manifest/assemble.js';
import { assembleApplication, type ApplicationOptions } from '../runtimes/application.js';
import { hostPathKind, MANIFEST_INPUT_PATHS, readInputFile, type ManifestInputName } from '../manifest/load.js';
import type { Manifest } from '../manifest/types.js';
import { formatWarning, type ManifestWarning } from '../yaml/source.js';

export interface ResolveManifestOptions extends ManifestOptions, LogOptions {
  /**
   * Package root for inputs not found in the stream. Default: the base of the first stream
   * file that is an input, else of the first file, else process.cwd().
   */
  cwd?: string | undefined;
  /**
   * How much to hold back while waiting for inputs in the stream: at most `files` files and
   * `bytes` bytes of buffered contents (default 1000 files, 32 MiB). `Infinity` for both holds
   * everything until the stream ends.
   */
  hold?: { files?: number | undefined; bytes?: number | undefined } | undefined;
  /**
   * Node.js: options for a project recognised by its package.json (no meta/run.yaml, no
   * Capstanfile) and for `runtime: node` without its Capstan package; `false` turns both off.
   */
  node?: ApplicationOptions['node'];
  /** Java: options for a project recognised by its runnable jar or build file, and for `runtime: java` without its package; `false` turns both off. */
  java?: ApplicationOptions['java'];
  /** Python 3: options for a project recognised by pyproject.toml or requirements.txt, and for `runtime: python` or `osv.python3x` without their package; `false` turns both off. */
  python?: ApplicationOptions['python'];
  /** Receives each warning (repeated or unknown keys…) as data, besides the log line. */
  onWarning?: ((warning: ManifestWarning) => void) | undefined;
}

const DEFAULT_HOLD = { files: 1000, bytes: 32 * 1024 * 1024 };

export const MANIFEST_FILE_NAME = 'capstan-manifest.json';

const INPUT_BY_RELATIVE = new Map<string, ManifestInputName>(
  (Object.entries(MANIFEST_INPUT_PATHS) as Array<[ManifestInputName, string]>).map(([name, rel]) => [rel, name]),
);

/** Last names of the inputs (`package.yaml`, `Capstanfile`…). */
const INPUT_BASENAMES = [...new Set(Object.values(MANIFEST_INPUT_PATHS).map((rel) => rel.slice(rel.lastIndexOf('/') + 1)))];

function isInputName(filePath: string): boolean {
  return INPUT_BASENAMES.some((name) => filePath.endsWith(name));
}

export function resolveManifest(options: ResolveManifestOptions = {}): Transform {
  try {
    validateManifestOptions(options);
    validateHold(options.hold);
    if (options.onWarning !== undefined && typeof options.onWarning !== 'function') {
      throw new ManifestError('`onWarning` must be a function', { code: 'E_OPTION', file: 'resolveManifest options', hint: 'e.g. onWarning: (w) => warnings.push(w)' });
    }
  } catch (error) {
    throw toPluginError(error);
  }
  const { cwd, verbose, silent, hold, onWarning, ...manifestOptions } = options;
  const limits = { ...DEFAULT_HOLD, ...definedOnly(hold ?? {}) };
  const log = stepLogger('resolveManifest', { verbose, silent });

  log.start();
  // Per stream, never per module: two builds in one process must not share state.
  let held: Vinyl[] = [];
  let heldBytes = 0;
  const found: Partial<Record<ManifestInputName, { file: Vinyl; text: string }>> = {};
  let firstBase: string | undefined;
  let resolved: { manifest: Manifest; inputs: ManifestInputs } | undefined;
  let passed = 0;

  const resolve = async (early: boolean) => {
    try {
      const inputBase = Object.values(found)[0]?.file.base;
      const root = path.resolve(cwd ?? inputBase ?? firstBase ?? process.cwd());
      const inputs: ManifestInputs = { root };
      for (const name of Object.keys(MANIFEST_INPUT_PATHS) as ManifestInputName[]) {
        const inStream = found[name];
        inputs[name] = inStream ? { text: inStream.text, file: inStream.file.path } : await readInputFile(root, name);
      }
      const manifest = assembleApplication(inputs, manifestOptions, {
        pathKind: hostPathKind,
        onWarning: (w) => { log.warn(formatWarning(w)); onWarning?.(w); },
      });
      // The summary comes before the files go on, so the log follows the pipeline's order.
      log.summary(summaryOf(manifest, early ? `${held.length} files held, the rest streamed` : `${held.length} files`));
      return { manifest, inputs };
    } catch (error) {
      throw toPluginError(error);
    }
  };
  /** Resolves the manifest and sends it on, then the files held back for it. */
  const release = async (early: boolean, push: Push) => {
    resolved = await resolve(early);
    push(manifestFile(resolved.manifest));
    for (const file of held) push(pass(file, resolved.manifest));
    held = [];
  };
  const pass = (file: Vinyl, manifest: Manifest): Vinyl => {
    annotate(file, { kind: 'app', manifest });
    passed++;
    if (verbose) log.detail(file.relative);
    return file;
  };
  /** A file after its input text (if it is an input) was taken. */
  const take = (file: Vinyl, push: Push): void | Promise<void> => {
    if (resolved) return void push(pass(file, resolved.manifest));
    held.push(file);
    if (file.isBuffer()) heldBytes += file.contents.length;
    if (held.length > limits.files || heldBytes > limits.bytes) return release(true, push);
  };

  return stepStream({
    each(file, push) {
      firstBase ??= file.base;
      // file.relative is a path.relative() per call: only for names an input can have.
      const name = isInputName(file.path) ? INPUT_BY_RELATIVE.get(file.relative.replace(/\\/g, '/')) : undefined;
      if (!name || file.isDirectory()) return take(file, push);
      return readText(file).then((text) => {
        if (resolved) checkLateInput(name, file, text, resolved.inputs, passed);
        else found[name] = { file, text };
        return take(file, push);
      });
    },
    end(push) {
      if (!resolved) return release(false, push);
    },
  });
}

/**
 * An input that arrives after the manifest was resolved early: fine when it says what was
 * used (the usual case: gulp.src read the same file that was read from disk), an error when
 * it does not, since the files before it were laid out with the other manifest.
 */
function checkLateInput(name: ManifestInputName, file: Vinyl, text: string, used: ManifestInputs, passed: number): void {
  const before = used[name];
  if (before?.text === text) return;
  const rel = MANIFEST_INPUT_PATHS[name];
  throw toPluginError(new ManifestError(
    `${rel} came down the stream after ${passed} files had gone on with a manifest ${before ? `read from ${before.file}, which says something else` : `made without it (there is none in ${used.root})`}`,
    {
      code: 'E_MANIFEST_INPUT_LATE', file: file.path,
      hint: `Let the meta files come first (e.g. src(['${rel}', '**/*'], …)), or let resolveManifest wait longer: resolveManifest({hold: {files: Infinity, bytes: Infinity}}).`,
    },
  ), file.path);
}

function validateHold(hold: ResolveManifestOptions['hold']): void {
  if (hold === undefined) return;
  const ok = (v: unknown) => v === undefined || (typeof v === 'number' && v >= 0 && !Number.isNaN(v));
  if (typeof hold !== 'object' || hold === null || !ok(hold.files) || !ok(hold.bytes)) {
    throw new ManifestError('`hold` must be {files?: number, bytes?: number} with non-negative numbers', {
      code: 'E_OPTION', file: 'resolveManifest options', hint: 'e.g. hold: {files: 5000, bytes: 64 * 1024 * 1024}, or Infinity to hold everything.',
    });
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The one vinyl that carries the manifest (kind 'manifest'); its JSON is for humans and dest(). */
function manifestFile(manifest: Manifest): Vinyl {
  const file = new Vinyl({
    cwd: manifest.root,
    base: manifest.root,
    path: path.join(manifest.root, MANIFEST_FILE_NAME),
    contents: Buffer.from(JSON.stringify(manifest, null, 2) + '\n'),
  });
  annotate(file, { kind: 'manifest', manifest });
  return file;
}

/** Reads an input's text without taking it from the files that follow (stream contents are replaced). */
async function readText(file: Vinyl): Promise<string> {
  if (file.isBuffer()) return file.contents.toString('utf8');
  if (file.isStream()) {
    const chunks: Buffer[] = [];
    for await (const chunk of contentChunks(file.contents as unknown as EventStream)) chunks.push(Buffer.from(chunk));
    const data = Buffer.concat(chunks);
    file.contents = Readable.from([data]);
    return data.toString('utf8');
  }
  // Null contents (e.g. src with read:false, or a symlink): read the host file.
  return readFile(file.path, 'utf8');
}

function summaryOf(m: Manifest, files: string): string {
  const parts = [
    `package ${m.package.name}${m.sources?.packageYaml ? '' : ' (no meta/package.yaml: Capstan default)'}`,
  ];
  if (m.detected === 'node-project') {
    parts.push(`Node.js project (package.json): ${m.run?.configSets[0]?.bootcmd ?? m.bootCommand}, ${m.nodeModules?.packages ?? 0} production packages`);
  } else if (m.detected === 'java-project' || m.detected === 'python-project') {
    parts.push(`${m.run?.file ?? m.detected}: ${m.run?.configSets[0]?.bootcmd ?? m.bootCommand}`);
  } else if (m.run) parts.push(`runtime ${m.run.runtime}, config sets ${m.run.configSets.map((c) => c.name).join(', ')}`);
  if (m.capstanfile) parts.push('Capstanfile');
  parts.push(`boot "${m.bootCommand}" (${m.bootSource})`);
  parts.push(`require ${m.require.join(', ') || 'nothing'}`);
  if (m.ignore.length) parts.push(`${m.ignore.length} ignore patterns`);
  parts.push(files);
  return parts.join('; ');
}
