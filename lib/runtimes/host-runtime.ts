// Runtimes taken from the host: what a manifest asks for (a request) and what goes into the
// image for it (the files). fetchPackages adds them as one package, after every other package,
// so an image's own files still win; under a Capstan runtime package's name when it stands in
// for one (so `base: <package>:<set>` inheritance finds its config set).
import type { ClosureEntry } from '../host/closure.js';
import type { TreeEntry } from '../host/tree.js';
import type { RunConfig } from '../manifest/types.js';
import { javaRuntimeFiles, type JavaRuntimeRequest } from './java.js';
import { nodeRuntimeFiles, type NodeRuntimeRequest } from './node.js';
import { pythonRuntimeFiles, type PythonRuntimeRequest } from './python.js';

/** What a manifest asks of a host runtime. */
export type HostRuntimeRequest = NodeRuntimeRequest | JavaRuntimeRequest | PythonRuntimeRequest;

export interface HostRuntimeFiles {
  /** `Node.js v20.20.2 from the host`, for the log and the package's title. */
  title: string;
  version: string;
  /** The program on the host. */
  binary: string;
  /** Folders of the runtime taken whole (a JDK, a standard library), file by file. */
  tree: TreeEntry[];
  /** Programs at their guest paths and every library they need. */
  closure: ClosureEntry[];
  /** Small files the runtime's OSv settings need. */
  generated: { guestPath: string; contents: Buffer; mode: number }[];
  /** Things worth a warning (dangling links left out, libraries the host lacks). */
  notes: string[];
  /** The config sets Capstan's runtime package would have (`node` for node-4.4.5). */
  run: RunConfig;
}

export function hostRuntimeFiles(request: HostRuntimeRequest): HostRuntimeFiles {
  switch (request.kind) {
    case 'node': {
      const files = nodeRuntimeFiles(request);
      return { ...files, tree: [], notes: [], title: `Node.js ${files.version} from the host` };
    }
    case 'java': {
      const files = javaRuntimeFiles(request);
      return { ...files, title: `Java ${files.version} from the host${request.modules?.length ? ` (jlink: ${request.modules.join(', ')})` : ''}` };
    }
    case 'python': {
      const files = pythonRuntimeFiles(request);
      return { ...files, title: `Python ${files.version} from the host` };
    }
  }
}
