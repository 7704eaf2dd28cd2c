// layoutFiles: gives every file its place in the guest (capstan.guestPath, capstan.layer),
// leaves out what Capstan leaves out (.capstanignore, meta/, files outside a Capstanfile's
// rootfs/files), and adds what the image needs besides: /run/<config_set> scripts, the ROFS
// skeleton and folders nobody provided. Files stream through in arrival order; only their
// guest paths are remembered, so the generated entries can be decided at the end. The
// per-build state is LayoutRun (layout-run.ts); this file is the stream adapter.
import type { Transform } from 'node:stream';
import { LayoutError, toPluginError } from '../errors.js';
import { stepLogger, type LogOptions } from '../log.js';
import { compileIgnore } from '../layout/index.js';
import { LayoutRun, type LayoutSettings } from '../layout/run.js';
import { stepStream } from '../vinyl/step-stream.js';

export interface LayoutFilesOptions extends LogOptions {
  /**
   * Extra ignore patterns in .capstanignore syntax, applied to application files together with
   * the manifest's (`.capstanignore`) and Capstan's built-in ones. Default: none.
   */
  ignore?: readonly string[] | undefined;
  /** Add the ROFS skeleton entries (fstab, hosts, mnttab, mount points) nothing else provides. Default true. */
  skeleton?: boolean | undefined;
  /** Turn `..`-relative symlink targets into absolute guest paths, as Capstan does. Default true. */
  rewriteSymlinks?: boolean | undefined;
}

export function layoutFiles(options: LayoutFilesOptions = {}): Transform {
  const settings = normaliseOptions(options);
  const log = stepLogger('layoutFiles', options);
  log.start();
  const layout = new LayoutRun(settings, log);
  return stepStream({
    each(file, push) {
      const placed = layout.accept(file);
      if (placed) push(placed);
    },
    async end(push) {
      for (const file of await layout.finish()) push(file);
    },
  });
}

function normaliseOptions(options: LayoutFilesOptions): LayoutSettings {
  try {
    if (options === null || typeof options !== 'object') {
      throw new LayoutError('layoutFiles options must be an object', { code: 'E_LAYOUT_OPTIONS', hint: 'Call layoutFiles() or layoutFiles({ignore: [...]}).' });
    }
    const ignore = options.ignore ?? [];
    if (!Array.isArray(ignore) || ignore.some((p) => typeof p !== 'string')) {
      throw new LayoutError('layoutFiles option `ignore` must be an array of strings', {
        code: 'E_LAYOUT_OPTIONS', hint: "Pass patterns in .capstanignore syntax, e.g. {ignore: ['/test', '/**/*.map']}.",
      });
    }
    for (const name of ['skeleton', 'rewriteSymlinks'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'boolean') {
        throw new LayoutError(`layoutFiles option \`${name}\` must be true or false`, { code: 'E_LAYOUT_OPTIONS' });
      }
    }
    const sources = ignore.map((pattern, i) => ({ pattern, file: `layoutFiles option ignore[${i}]` }));
    compileIgnore(sources, { defaults: false }); // reject '/meta' and bad patterns now, not mid-build
    return { ignore: sources, skeleton: options.skeleton ?? true, rewriteSymlinks: options.rewriteSymlinks ?? true };
  } catch (error) {
    throw toPluginError(error);
  }
}

