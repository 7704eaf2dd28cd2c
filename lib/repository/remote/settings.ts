// Which remote, where, and whether the network may be used at all — normalised once from the
// options, the environment and config.yaml, with Capstan's precedence (capstan-behaviour.md §2.5).
import { RepositoryError } from '../../errors.js';
import type { EventSink } from '../../events.js';
import { readCapstanConfig } from '../config.js';
import { capstanRoot } from '../root.js';
import type { HttpSettings } from './http.js';

export const DEFAULT_RELEASES_URL = 'https://api.github.com/repos/cloudius-systems/osv/releases';
export const DEFAULT_S3_URL = 'https://mikelangelo-capstan.s3.amazonaws.com/';

/** Options every API that may touch a remote repository takes. */
export interface RemoteOptions {
  /** Capstan root (default $CAPSTAN_ROOT, else ~/.capstan). */
  root?: string | undefined;
  /** `github` (default, Capstan's default): OSv's GitHub releases; `s3`: an S3-style bucket (Capstan `--s3`). */
  remote?: 'github' | 's3' | undefined;
  /** Releases API endpoint. Default $CAPSTAN_RELEASES_URL, else OSv's. */
  releasesUrl?: string | undefined;
  /** `any` (walk all releases, newest first), `latest`, or a tag (`v0.57.0`). Default $CAPSTAN_RELEASE_TAG, else config.yaml `release_tag`, else `any`. */
  releaseTag?: string | undefined;
  /** S3-style base URL (Capstan `-u`). Default config.yaml `repo_url`, else $CAPSTAN_REPO_URL, else Capstan's bucket. */
  repoUrl?: string | undefined;
  /** Forbid any network access (default $CAPSTAN_OFFLINE). What is missing is then an error that says so. */
  offline?: boolean | undefined;
  /** Token for the GitHub API (default $GITHUB_TOKEN): 5000 requests an hour instead of 60. */
  githubToken?: string | undefined;
  /** Timeouts and retries. */
  http?: HttpSettings | undefined;
  /** Environment to read CAPSTAN_* and GITHUB_TOKEN from (default process.env). Proxies always come from process.env. */
  env?: NodeJS.ProcessEnv | undefined;
  /** Machine-readable events (downloads, pulls). */
  events?: EventSink | undefined;
  /** No log lines, no progress bar. */
  silent?: boolean | undefined;
}

export interface RemoteSettings {
  root: string;
  kind: 'github' | 's3';
  releasesUrl: string;
  releaseTag: string;
  repoUrl: string;
  offline: boolean;
  githubToken: string | undefined;
  http: HttpSettings;
  events: EventSink | undefined;
  silent: boolean;
}

const TRUE = /^(1|true|yes|on)$/i;

export function remoteSettings(options: RemoteOptions = {}): RemoteSettings {
  const env = options.env ?? process.env;
  const root = capstanRoot(options.root, env);
  const config = readCapstanConfig(root);
  const kind = options.remote ?? 'github';
  if (kind !== 'github' && kind !== 's3') {
    throw new RepositoryError(`unknown remote "${String(kind)}"`, { code: 'E_OPTIONS', hint: 'Use "github" (OSv releases) or "s3".' });
  }
  const releasesUrl = checkUrl(options.releasesUrl ?? nonEmpty(env.CAPSTAN_RELEASES_URL) ?? DEFAULT_RELEASES_URL, 'releasesUrl / CAPSTAN_RELEASES_URL').replace(/\/+$/, '');
  // Capstan: -u, then config.yaml, then the environment (so a config per CAPSTAN_ROOT wins).
  let repoUrl = checkUrl(options.repoUrl ?? config.repoUrl ?? nonEmpty(env.CAPSTAN_REPO_URL) ?? DEFAULT_S3_URL, 'repoUrl / repo_url / CAPSTAN_REPO_URL');
  if (!repoUrl.endsWith('/')) repoUrl += '/';
  const releaseTag = options.releaseTag ?? nonEmpty(env.CAPSTAN_RELEASE_TAG) ?? config.releaseTag ?? 'any';
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(releaseTag)) {
    throw new RepositoryError(`bad release tag "${releaseTag}"`, { code: 'E_OPTIONS', hint: 'Use "any", "latest" or a tag such as "v0.57.0".' });
  }
  return {
    root, kind, releasesUrl, releaseTag, repoUrl,
    offline: options.offline ?? TRUE.test(env.CAPSTAN_OFFLINE ?? ''),
    githubToken: options.githubToken ?? nonEmpty(env.GITHUB_TOKEN),
    http: options.http ?? {},
    events: options.events,
    silent: options.silent ?? false,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
}

function checkUrl(value: string, what: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RepositoryError(`${what} is not a URL: "${value}"`, { code: 'E_OPTIONS', hint: 'Give an absolute http:// or https:// URL.' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RepositoryError(`${what} must be http:// or https://, not ${url.protocol}`, { code: 'E_OPTIONS' });
  }
  return value;
}
