// resolveManifest: reads the application's Capstan inputs (meta/package.yaml, meta/run.yaml,
// Capstanfile, .capstanignore) from the stream, else from disk, and emits one manifest vinyl
// first, then every file it held back, each annotated with the same manifest.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { objectTransform } from 'through2';
import Vinyl from 'vinyl';
import { annotate } from '../carrier.js';
import { toPluginError } from '../errors.js';
import { stepLogger, type LogOptions } from '../log.js';
import { contentChunks, type EventStream } from './contents.js';
import { assembleManifest, validateManifestOptions, type ManifestInputs, type ManifestOptions } from '../manifest/assemble.js';
import { hostPathKind, MANIFEST_INPUT_PATHS, readInputFile, type ManifestInputName } from '../manifest/load.js';
import type { Manifest } from '../manifest/types.js';

export interface ResolveManifestOptions extends ManifestOptions, LogOptions {
  /**
   * Package root for inputs not found in the stream. Default: the base of the first stream
   * file that is an input, else of the first file, else process.cwd().
   */
  cwd?: string | undefined;
}

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
  } catch (error) {
    throw toPluginError(error);
  }
  const { cwd, verbose, silent, ...manifestOptions } = options;
  const log = stepLogger('resolveManifest', { verbose, silent });

  return objectTransform(async function* (files: AsyncIterable<Vinyl>) {
    // Per stream, never per module: two builds in one process must not share state.
    const held: Vinyl[] = [];
    const found: Partial<Record<ManifestInputName, { file: Vinyl; text: string }>> = {};
    let firstBase: string | undefined;
    for await (const file of files) {
      held.push(file);
      firstBase ??= file.base;
      // file.relative is a path.relative() per call: only for names an input can have.
      const name = isInputName(file.path) ? INPUT_BY_RELATIVE.get(file.relative.replace(/\\/g, '/')) : undefined;
      if (name && !file.isDirectory()) {
        try {
          found[name] = { file, text: await readText(file) };
        } catch (error) {
          throw toPluginError(error, file.path);
        }
      }
    }

    let manifest: Manifest;
    try {
      const inputBase = Object.values(found)[0]?.file.base;
      const root = path.resolve(cwd ?? inputBase ?? firstBase ?? process.cwd());
      const inputs: ManifestInputs = { root };
      for (const name of Object.keys(MANIFEST_INPUT_PATHS) as ManifestInputName[]) {
        const inStream = found[name];
        inputs[name] = inStream ? { text: inStream.text, file: inStream.file.path } : await readInputFile(root, name);
      }
      manifest = assembleManifest(inputs, manifestOptions, {
        pathKind: hostPathKind,
        onWarning: (w) => log.warn(`${w.file}${w.line !== undefined ? `:${w.line}:${w.column ?? 1}` : ''}: ${w.message}${w.hint ? ` (${w.hint})` : ''}`),
      });
    } catch (error) {
      throw toPluginError(error);
    }

    // The summary comes before the files go on, so the log follows the pipeline's order.
    log.summary(summaryOf(manifest, held.length));
    yield manifestFile(manifest);
    for (const file of held) {
      annotate(file, { kind: 'app', manifest });
      if (verbose) log.detail(file.relative);
      yield file;
    }
  }) as unknown as Transform;
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

function summaryOf(m: Manifest, files: number): string {
  const parts = [
    `package ${m.package.name}${m.sources?.packageYaml ? '' : ' (no meta/package.yaml: Capstan default)'}`,
  ];
  if (m.run) parts.push(`runtime ${m.run.runtime}, config sets ${m.run.configSets.map((c) => c.name).join(', ')}`);
  if (m.capstanfile) parts.push('Capstanfile');
  parts.push(`boot "${m.bootCommand}" (${m.bootSource})`);
  parts.push(`require ${m.require.join(', ') || 'nothing'}`);
  if (m.ignore.length) parts.push(`${m.ignore.length} ignore patterns`);
  parts.push(`${files} files`);
  return parts.join('; ');
}
