// Capstan's `config print`: the settings in effect — the root, the S3 repository URL (with
// Capstan's precedence: -u, then config.yaml, then $CAPSTAN_REPO_URL), whether KVM is disabled
// and the aio type (the environment over config.yaml, as Capstan's code does), and the
// .capstanignore patterns of a folder with the ones Capstan always adds.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CAPSTAN_DEFAULT_IGNORES } from '../layout/ignore.js';
import { collectCapstanignorePatterns } from '../manifest/capstanignore.js';
import { readCapstanConfig } from '../repository/config.js';
import { capstanRoot } from '../repository/root.js';
import { remoteSettings } from '../repository/remote/settings.js';

export interface CapstanConfiguration {
  root: string;
  repoUrl: string;
  disableKvm: boolean;
  qemuAioType: string;
  /** The folder's .capstanignore patterns (in file order), then Capstan's built-in ones. */
  ignore: string[];
  /** The .capstanignore read, when there is one. */
  capstanignore?: string | undefined;
  /** Why that .capstanignore could not be used (then `ignore` is empty), as Capstan prints it in place of the patterns. */
  capstanignoreError?: Error | undefined;
}

export interface ConfigurationOptions {
  root?: string | undefined;
  /** Capstan's `-u`. */
  repoUrl?: string | undefined;
  /** The folder whose .capstanignore is shown. Default process.cwd(). */
  cwd?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
}

export async function capstanConfiguration(options: ConfigurationOptions = {}): Promise<CapstanConfiguration> {
  const env = options.env ?? process.env;
  const root = capstanRoot(options.root, env);
  const config = readCapstanConfig(root);
  const { repoUrl } = remoteSettings({ root, repoUrl: options.repoUrl, env, remote: 's3' });
  // Capstan: strconv.ParseBool of the variable, when it parses, wins over config.yaml.
  const envKvm = env.CAPSTAN_DISABLE_KVM;
  const disableKvm = envKvm !== undefined && /^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$/.test(envKvm)
    ? /^(1|t|T|TRUE|true|True)$/.test(envKvm)
    : config.disableKvm ?? false;
  const qemuAioType = env.CAPSTAN_QEMU_AIO_TYPE || config.qemuAioType || 'threads';
  const file = path.join(path.resolve(options.cwd ?? process.cwd()), '.capstanignore');
  let patterns: string[] = [];
  let capstanignore: string | undefined;
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text !== undefined) {
    capstanignore = file;
    try {
      patterns = collectCapstanignorePatterns(text, file);
    } catch (error) {
      // Capstan prints the error where the patterns would be, and the rest of the settings.
      return { root, repoUrl, disableKvm, qemuAioType, ignore: [], capstanignore, capstanignoreError: error as Error };
    }
  }
  return { root, repoUrl, disableKvm, qemuAioType, ignore: [...patterns, ...CAPSTAN_DEFAULT_IGNORES], capstanignore };
}
