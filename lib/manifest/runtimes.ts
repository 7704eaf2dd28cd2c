// The four run.yaml runtimes, as Capstan's runtime/*.go define them: their fields, their
// validation, the config set they inherit, and the soft environment they set.
import type { RuntimeName } from './types.js';

export type FieldKind = 'string' | 'list' | 'bool';

/** Fields a config set may hold, beyond the common `env` and `base`. */
export interface RuntimeFields {
  bootcmd?: string | undefined;
  main?: string | undefined;
  args: string[];
  classpath: string[];
  xms?: string | undefined;
  xmx?: string | undefined;
  jvm_args: string[];
  node_args: string[];
  python_args: string[];
  shell?: boolean | undefined;
}

export interface RuntimeDefinition {
  name: RuntimeName;
  /** Capstan's `GetRuntimeDescription()`. */
  description: string;
  /** Packages this runtime needs (prepended to `require`). */
  dependencies: readonly string[];
  fields: Readonly<Record<string, FieldKind>>;
  /** The config set a set without `base` inherits (java/node/python). */
  defaultBase?: string | undefined;
  /** Bases that behave like defaultBase, so the runtime's env applies (`^openjdk.*` for java). */
  compatibleBase?: RegExp | undefined;
  /** Capstan's `GetYamlTemplate()` for the runtime-specific part, to the byte (its typos too). */
  template: string;
}

/** The `args` block the java, node and python templates share (as in Capstan). */
const ARGS_TEMPLATE = `
# OPTIONAL
# A list of command line args used by the application.
# Example value: args:
#                   - argument1
#                   - argument2
args:
   - <list>
`;

// Common part of the java, node and python templates (CommonRuntime.GetYamlTemplate), as
// Capstan has it: its `base` line is active (previewRuntime's commentOutBase comments it out).
const COMMON_TEMPLATE = `
# OPTIONAL
# Environment variables.
# A map of environment variables to be set when unikernel is run.
# Example value:  env:
#                    PORT: 8000
#                    HOSTNAME: www.myserver.org
env:
   <key>: <value>

# OPTIONAL
# Configuration to contextualize.
base: "<package-name>:<config_set>"
`;

export const RUNTIMES: Readonly<Record<RuntimeName, RuntimeDefinition>> = {
  native: {
    name: 'native',
    description: 'Run arbitrary command inside OSv',
    dependencies: [],
    fields: { bootcmd: 'string' },
    template: `
# REQUIRED
# Command to be executed in OSv.
# Note that package root will correspond to filesystem root (/) in OSv image.
# Example value: /usr/bin/simpleFoam.so -help
bootcmd: <command>
`,
  },
  java: {
    name: 'java',
    description: 'Run Java application',
    dependencies: ['openjdk8-zulu-compact1'],
    fields: { main: 'string', args: 'list', classpath: 'list', xms: 'string', xmx: 'string', jvm_args: 'list' },
    defaultBase: 'openjdk8-zulu-compact1:java',
    compatibleBase: /^openjdk.*/,
    template: `
# REQUIRED
# Fully classified name of the main class.
# Example value: main.Hello
main: <name>

# OPTIONAL
# A list of paths where classes and other resources can be found.
# By default, the unikernel root "/" is added to the classpath.
# Example value: classpath:
#                   - /
#                   - /src
classpath:
   - <list>

# OPTIONAL
# Initial and maximum JVM memory size.
# Example value: xms: 512m
xms: <value>
xmx: <value>

# OPTIONAL
# A list of JVM args.
# Example value: jvm_args:
#                   - -Djava.net.preferIPv4Stack=true
#                   - -Dhadoop.log.dir=/hdfs/logs
jvm_args:
   - <list>
` + ARGS_TEMPLATE + COMMON_TEMPLATE,
  },
  node: {
    name: 'node',
    description: 'Run JavaScript NodeJS 4.4.5 application',
    dependencies: ['node-4.4.5'],
    fields: { main: 'string', args: 'list', node_args: 'list', shell: 'bool' },
    defaultBase: 'node-4.4.5:node',
    compatibleBase: /^node-/,
    template: `
# REQUIRED
# Filepath of the NodeJS entrypoint (where server is defined).
# Note that package root will correspond to filesystem root (/) in OSv image.
# Example value: /server.js
main: <filepath>

# OPTIONAL
# A list of Node.js args.
# Example value: node_args:
#                   - --require module1
node_args:
   - <list>
` + ARGS_TEMPLATE + `
# OPTIONAL
# Set to true to only run node shell. Note that "main" and "args" will then be ignored.
shell: false
` + COMMON_TEMPLATE,
  },
  python: {
    name: 'python',
    description: 'Run Python 2.7 application',
    dependencies: ['python-2.7'],
    fields: { main: 'string', args: 'list', python_args: 'list', shell: 'bool' },
    defaultBase: 'python-2.7:python',
    compatibleBase: /^python-/,
    template: `
# REQUIRED
# Filepath of the Python script.
# Note that package root will correspond to filesystem root (/) in OSv image.
# Example value: /hello-world.py
main: <filepath>

# OPTIONAL
# A list of Python args.
# Example value: node_args:
#                   - -O
python_args:
   - <list>
` + ARGS_TEMPLATE + COMMON_TEMPLATE,
  },
};

/** In Capstan's order (SupportedRuntimes). */
export const RUNTIME_NAMES: readonly RuntimeName[] = ['native', 'node', 'java', 'python'];

export function isRuntimeName(value: string): value is RuntimeName {
  return Object.hasOwn(RUNTIMES, value);
}

/** A problem found by validation, with the key it is about (for the position). */
export interface RuntimeProblem {
  code: string;
  key: string | undefined;
  problem: string;
  hint: string;
}

/** Capstan's `Validate()` per runtime, minus the common env/base checks (done by the parser). */
export function validateRuntimeFields(runtime: RuntimeName, f: RuntimeFields, base: string | undefined, env: Record<string, string>): RuntimeProblem | undefined {
  const given = (keys: Array<keyof RuntimeFields>) => keys.filter((k) => {
    const v = f[k];
    return Array.isArray(v) ? v.length > 0 : k === 'shell' ? v === true : Boolean(v);
  });
  switch (runtime) {
    case 'native':
      if (!base && !f.bootcmd) {
        return { code: 'E_RUN_YAML_BOOTCMD_MISSING', key: undefined, problem: "'bootcmd' must be provided", hint: 'Add `bootcmd: /path/to/app.so args` (the command OSv runs), or `base: <package>:<config_set>` to inherit one.' };
      }
      return undefined;
    case 'java': {
      if (!base || RUNTIMES.java.compatibleBase!.test(packageOf(base))) {
        if (!f.main) return { code: 'E_RUN_YAML_MAIN_MISSING', key: undefined, problem: "'main' must be provided", hint: 'Add `main: com.example.Main` (a class name) or `main: /app.jar`.' };
        return undefined;
      }
      const bad = given(['xms', 'xmx', 'classpath', 'jvm_args', 'main', 'args']);
      if (bad.length) return { code: 'E_RUN_YAML_BASE_CONFLICT', key: bad[0], problem: `incompatible arguments specified [xms,xmx,classpath,jvm_args,main,args] for custom 'base' (found ${bad.join(', ')})`, hint: `A non-openjdk base provides the whole boot command; remove ${bad.join(', ')} or the base.` };
      return undefined;
    }
    case 'node':
    case 'python': {
      const argsKey = runtime === 'node' ? 'node_args' : 'python_args';
      if (base) {
        const bad = given(['shell', argsKey, 'main', 'args']);
        if (bad.length) return { code: 'E_RUN_YAML_BASE_CONFLICT', key: bad[0], problem: `incompatible arguments specified [shell,${argsKey},main,args] for custom 'base' (found ${bad.join(', ')})`, hint: `The base provides the whole boot command; remove ${bad.join(', ')} or the base.` };
      } else if (f.shell) {
        const bad = given(['main', 'args']);
        if (bad.length) return { code: 'E_RUN_YAML_SHELL_CONFLICT', key: bad[0], problem: 'incompatible arguments specified [main,args] for shell=true', hint: 'A shell runs the interpreter alone; remove main/args or set shell: false.' };
        if (env.MAIN || env.ARGS) return { code: 'E_RUN_YAML_SHELL_CONFLICT', key: 'env', problem: "incompatible 'env' keys specified [MAIN,ARGS] for shell=true", hint: 'Remove MAIN and ARGS from env, or set shell: false.' };
      } else if (!f.main) {
        return { code: 'E_RUN_YAML_MAIN_MISSING', key: undefined, problem: "'main' must be provided", hint: `Add \`main: ${runtime === 'node' ? '/server.js' : '/app.py'}\`, or \`shell: true\` for an interactive interpreter.` };
      }
      return undefined;
    }
  }
}

/**
 * The runtime's part of the boot command (Capstan's GetBootCmd before BuildBootCmd): the config
 * set inherited, and the soft env defaults, in Capstan's order. Empty values are not set
 * (setDefaultEnv skips them), except the shell's MAIN/ARGS which are forced.
 */
export function runtimeDerivation(runtime: RuntimeName, f: RuntimeFields, base: string | undefined): { base: string | undefined; defaults: Array<[string, string]>; forced: Array<[string, string]> } {
  const def = RUNTIMES[runtime];
  const effectiveBase = base || def.defaultBase;
  // Runtime env only makes sense for the runtime's own package (Capstan: isCompatibleBase).
  const compatible = !base || (def.compatibleBase?.test(packageOf(base)) ?? false);
  if (!compatible) return { base: effectiveBase, defaults: [], forced: [] };
  switch (runtime) {
    case 'native':
      return { base: effectiveBase, defaults: [], forced: [] };
    case 'java': {
      const classpath = f.classpath.length ? f.classpath : ['/'];
      const jvmArgs = [...f.jvm_args];
      if (f.main?.endsWith('.jar') && !jvmArgs.includes('-jar')) jvmArgs.push('-jar');
      return {
        base: effectiveBase,
        defaults: [
          ['XMS', f.xms ?? ''],
          ['XMX', f.xmx ?? ''],
          ['CLASSPATH', classpath.join(':')],
          // runscript cannot pass an empty variable as a parameter: Capstan sets a dummy value.
          ['JVM_ARGS', jvmArgs.length ? jvmArgs.join(' ') : '-Dx=y'],
          ['MAIN', f.main ?? ''],
          ['ARGS', f.args.join(' ')],
        ],
        forced: [],
      };
    }
    case 'node':
    case 'python': {
      const interpreterArgs = runtime === 'node' ? f.node_args : f.python_args;
      const placeholder = runtime === 'node' ? '--' : '-O';
      const argsKey = runtime === 'node' ? 'NODE_ARGS' : 'PYTHON_ARGS';
      const defaults: Array<[string, string]> = [[argsKey, interpreterArgs.length ? interpreterArgs.join(' ') : placeholder]];
      if (f.shell) return { base: effectiveBase, defaults, forced: [['MAIN', runtime === 'node' ? '' : '-'], ['ARGS', '']] };
      defaults.push(['MAIN', f.main ?? ''], ['ARGS', f.args.join(' ')]);
      return { base: effectiveBase, defaults, forced: [] };
    }
  }
}

export function packageOf(base: string): string {
  const i = base.indexOf(':');
  return i < 0 ? base : base.slice(0, i);
}
