// Java in the manifest: a Java project with none of Capstan's files (a runnable jar, or a
// Maven/Gradle project's) becomes a `native` config set that runs it with the host's JDK, and
// Capstan's `runtime: java` (or a required openjdk package) gets the host's JDK when its package
// is missing. One of application.ts's detectors.
import type { ProjectDetector } from './application.js';
import { JAVA_GUEST_PATH, withJavaExit, type JavaRuntimeOptions, type JavaRuntimeRequest } from './java.js';
import { analyseJavaProject, JAVA_PROJECT_IGNORES, type JavaProject, type JavaProjectOptions } from './java-project.js';
import { osvWord } from './words.js';

export interface JavaManifestOptions extends JavaRuntimeOptions, JavaProjectOptions {}

/** The java command line of a project: memory, JVM options, then -jar <jar> or -cp <path> <class>, then its arguments. */
export function javaProjectCommand(project: Pick<JavaProject, 'jar' | 'mainClass' | 'classpath' | 'jvmArgs' | 'args' | 'xms' | 'xmx'>): string {
  const words = [JAVA_GUEST_PATH];
  if (project.xms) words.push(`-Xms${project.xms}`);
  if (project.xmx) words.push(`-Xmx${project.xmx}`);
  words.push(...project.jvmArgs);
  if (project.jar) words.push('-jar', project.jar);
  else words.push('-cp', project.classpath.join(':'), project.mainClass);
  words.push(...project.args);
  return words.map(osvWord).join(' ');
}

/** Only the runtime's options go into the request (the manifest JSON says what was asked). */
function runtimeRequest(root: string, options: JavaManifestOptions, capstanPackage?: string): JavaRuntimeRequest {
  const { home, trim, modules, procfs, exit } = options;
  return {
    kind: 'java', root,
    ...(home !== undefined ? { home } : {}), ...(trim !== undefined ? { trim } : {}), ...(modules !== undefined ? { modules } : {}),
    ...(procfs !== undefined ? { procfs } : {}), ...(exit !== undefined ? { exit } : {}), ...(capstanPackage ? { capstanPackage } : {}),
  };
}

export const javaDetector: ProjectDetector<JavaManifestOptions> = {
  kind: 'java',
  explicit: (options) => Boolean(options.main),
  detect(inputs, options) {
    const project = analyseJavaProject(inputs.root, options);
    if (!project) return undefined;
    const what = project.jar ? project.jar.slice(1) : project.mainClass;
    const label = `${inputs.root}/${what} (Java project)`;
    return {
      label,
      bootcmd: withJavaExit(javaProjectCommand(project), options),
      env: {},
      ignore: JAVA_PROJECT_IGNORES,
      hostRuntime: runtimeRequest(inputs.root, options),
      detected: 'java-project',
      warnings: project.notes.map((message) => ({ code: 'W_JAVA_PROJECT', file: label, message })),
    };
  },
  standIn: (root, capstanPackage, options) => runtimeRequest(root, options, capstanPackage),
  // Capstan's java runtime treats every ^openjdk package as its own (runtime/java.go javaPackages).
  standsInFor: (name) => /^openjdk/.test(name),
};
