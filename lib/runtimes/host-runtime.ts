// Runtimes taken from the host: what a manifest asks for (a request) and what goes into the
// image for it (the files). fetchPackages adds them as one package, after every other package,
// so an image's own files still win; under a Capstan runtime package's name when it stands in
// for one (so `base: <package>:<set>` inheritance finds its config set).
import type { ClosureEntry } from '../host/closure.js';
import type { RunConfig } from '../manifest/types.js';
import { nodeRuntimeFiles, type NodeRuntimeRequest } from './node.js';

/** What a manifest asks of a host runtime. */
export type HostRuntimeRequest = NodeRuntimeRequest;

export interface HostRuntimeFiles {
  /** `Node.js v20.20.2 from the host`, for the log and the package's title. */
  title: string;
  version: string;
  /** The program on the host. */
  binary: string;
  /** The program at its guest path and every library it needs. */
  closure: ClosureEntry[];
  /** Small files the runtime's OSv settings need. */
  generated: { guestPath: string; contents: Buffer; mode: number }[];
  /** The config sets Capstan's runtime package would have (`node` for node-4.4.5). */
  run: RunConfig;
}

export function hostRuntimeFiles(request: HostRuntimeRequest): HostRuntimeFiles {
  switch (request.kind) {
    case 'node': {
      const files = nodeRuntimeFiles(request);
      return { ...files, title: `Node.js ${files.version} from the host` };
    }
  }
}
