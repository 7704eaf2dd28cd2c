// An existing Java project, read as a unikernel needs it: which jar runs it. A runnable jar
// (Main-Class in META-INF/MANIFEST.MF) in the project root, or in the output folder of its build
// (Maven's target/, Gradle's build/libs/); or a main class and class path given as options.
// Reads the disk; decides nothing about the image itself.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ManifestError } from '../errors.js';
import { readJarManifest } from './jar.js';

export interface JavaProjectOptions {
  /** A jar (project-relative or guest path, ending in .jar) or a main class name (`com.example.Main`). */
  main?: string | undefined;
  /** Class path for a main class, guest paths (default `/`); ignored for a jar. */
  classpath?: readonly string[] | undefined;
  /** JVM options before the main class or -jar (`-Dkey=value`, `-XX:…`). */
  jvmArgs?: readonly string[] | undefined;
  /** Arguments after the main class or jar. */
  args?: readonly string[] | undefined;
  /** `-Xms` and `-Xmx` (`256m`). Default: the JVM's own (a quarter of the guest memory at most). */
  xms?: string | undefined;
  xmx?: string | undefined;
}

export interface JavaProject {
  root: string;
  /** How it was built, when a build file says so. */
  build: 'maven' | 'gradle' | undefined;
  /** Guest path of the jar run with -jar, or undefined for a main class. */
  jar: string | undefined;
  /** The main class: the jar's Main-Class, or the option. */
  mainClass: string;
  mainSource: 'option' | 'root-jar' | 'maven' | 'gradle';
  classpath: string[];
  jvmArgs: string[];
  args: string[];
  xms: string | undefined;
  xmx: string | undefined;
  notes: string[];
}

/** Default ignores for a Java project's tree: sources and what the build leaves beside the jar. */
export const JAVA_PROJECT_IGNORES: readonly string[] = [
  '/src', '/.mvn', '/.gradle', '/gradle', '/mvnw', '/mvnw.cmd', '/gradlew', '/gradlew.bat', '/.idea', '/.vscode', '/.github', '/.settings',
  '/target/classes', '/target/test-classes', '/target/generated-sources', '/target/generated-test-sources', '/target/maven-status',
  '/target/maven-archiver', '/target/surefire-reports', '/target/failsafe-reports', '/target/site', '/target/*-sources.jar',
  '/target/*-javadoc.jar', '/target/*-tests.jar', '/target/original-*.jar',
  '/build/classes', '/build/tmp', '/build/reports', '/build/test-results', '/build/resources', '/build/generated', '/build/kotlin',
  '/build/libs/*-plain.jar', '/build/libs/*-sources.jar', '/build/libs/*-javadoc.jar',
];

const BUILD_FILES = { maven: ['pom.xml'], gradle: ['build.gradle', 'build.gradle.kts'] } as const;
/** Jars a build makes beside the runnable one. */
const NOT_RUNNABLE = /(-sources|-javadoc|-tests|-test-sources|-plain)\.jar$|^original-/;
/** Names of jars that carry their dependencies (assembly, shadow, shade). */
const FAT = /-(jar-with-dependencies|all|shaded|fat|uber|standalone)\.jar$/;

/** How the project is built, from its build file. */
export function javaBuildOf(root: string): JavaProject['build'] {
  for (const [build, files] of Object.entries(BUILD_FILES) as Array<[keyof typeof BUILD_FILES, readonly string[]]>) {
    if (files.some((f) => existsSync(path.join(root, f)))) return build;
  }
  return undefined;
}

function jarsIn(root: string, rel: string): string[] {
  let names: string[];
  try { names = readdirSync(path.join(root, rel)); } catch { return []; }
  return names.filter((n) => n.endsWith('.jar') && !NOT_RUNNABLE.test(n)).sort().map((n) => (rel ? `${rel}/${n}` : n))
    .filter((r) => { try { return statSync(path.join(root, r)).isFile(); } catch { return false; } });
}

const guestOf = (rel: string) => '/' + path.posix.normalize(rel.replace(/\\/g, '/')).replace(/^(\.\/|\/)+/, '');

/**
 * Whether `root` is a Java project (a build file, or a runnable jar in it), and how it runs.
 * Undefined when it is not one and no option names a main.
 */
export function analyseJavaProject(root: string, options: JavaProjectOptions = {}): JavaProject | undefined {
  const build = javaBuildOf(root);
  const base = {
    root, build, classpath: [...(options.classpath ?? ['/'])], jvmArgs: [...(options.jvmArgs ?? [])], args: [...(options.args ?? [])],
    xms: options.xms, xmx: options.xmx, notes: [] as string[],
  };
  if (options.main) {
    if (!options.main.endsWith('.jar')) return { ...base, jar: undefined, mainClass: options.main, mainSource: 'option' };
    const rel = options.main.replace(/^\/+/, '');
    const manifest = existsSync(path.join(root, rel)) ? readJarManifest(path.join(root, rel)) : undefined;
    if (!manifest) {
      throw new ManifestError(`${options.main} is not a jar of the project`, {
        code: 'E_JAVA_MAIN', file: path.join(root, rel), hint: 'Give a jar inside the project (java: { main: "target/app.jar" }), built first.',
      });
    }
    if (!manifest['Main-Class']) throw noMainClass(path.join(root, rel));
    return { ...base, jar: guestOf(rel), mainClass: manifest['Main-Class'], mainSource: 'option', notes: classPathNotes(root, rel, manifest) };
  }
  const places: Array<{ rel: string; source: JavaProject['mainSource'] }> = [{ rel: '', source: 'root-jar' }];
  if (build === 'maven') places.push({ rel: 'target', source: 'maven' });
  if (build === 'gradle') places.push({ rel: 'build/libs', source: 'gradle' });
  if (!build) places.push({ rel: 'target', source: 'maven' }, { rel: 'build/libs', source: 'gradle' });
  const runnable: Array<{ rel: string; source: JavaProject['mainSource']; mainClass: string; manifest: Record<string, string> }> = [];
  const seen: string[] = [];
  for (const place of places) {
    for (const rel of jarsIn(root, place.rel)) {
      seen.push(rel);
      let manifest: Record<string, string> | undefined;
      try { manifest = readJarManifest(path.join(root, rel)); } catch { continue; }
      if (manifest?.['Main-Class']) runnable.push({ rel, source: place.source, mainClass: manifest['Main-Class'], manifest });
    }
    // The root's own jars win over a build folder's, and a build's folder is read only without them.
    if (runnable.length > 0) break;
  }
  if (runnable.length === 0) {
    // Without a build file, only a runnable jar makes a folder a Java project.
    if (!build) return undefined;
    const file = path.join(root, BUILD_FILES[build][0]);
    throw new ManifestError(seen.length
      ? `no runnable jar in this Java project: ${seen.join(', ')} ${seen.length === 1 ? 'has' : 'have'} no Main-Class in META-INF/MANIFEST.MF`
      : `this ${build === 'maven' ? 'Maven' : 'Gradle'} project has no jar yet (${build === 'maven' ? 'target/' : 'build/libs/'} is empty)`, {
      code: 'E_JAVA_MAIN', file,
      hint: build === 'maven'
        ? 'Build it first (mvn package) with a Main-Class (maven-jar-plugin <mainClass>, or the assembly/shade plugin), or name the main: java: { main: "com.example.Main", classpath: ["/target/classes"] }.'
        : "Build it first (gradle build) with a Main-Class (jar { manifest { attributes 'Main-Class': … } }, or the shadow plugin), or name the main: java: { main: 'com.example.Main' }.",
    });
  }
  let chosen = runnable[0]!;
  if (runnable.length > 1) {
    const fat = runnable.filter((r) => FAT.test(r.rel));
    if (fat.length !== 1) {
      throw new ManifestError(`several runnable jars: ${runnable.map((r) => r.rel).join(', ')}`, {
        code: 'E_JAVA_MAIN', file: path.join(root, path.dirname(runnable[0]!.rel)),
        hint: `Name the one to run: java: { main: "${runnable[0]!.rel}" }.`,
      });
    }
    chosen = fat[0]!;
  }
  return { ...base, jar: guestOf(chosen.rel), mainClass: chosen.mainClass, mainSource: chosen.source, notes: classPathNotes(root, chosen.rel, chosen.manifest) };
}

function noMainClass(file: string): ManifestError {
  return new ManifestError('has no Main-Class in META-INF/MANIFEST.MF, so java -jar cannot run it', {
    code: 'E_JAVA_MAIN', file, hint: 'Make it runnable (jar --main-class …, or the build plugin\'s mainClass), or name the class: java: { main: "com.example.Main", classpath: ["/app.jar"] }.',
  });
}

/** The jar's Class-Path entries (relative to its folder) that are not there. */
function classPathNotes(root: string, rel: string, manifest: Record<string, string>): string[] {
  const notes: string[] = [];
  for (const entry of (manifest['Class-Path'] ?? '').split(/\s+/).filter(Boolean)) {
    if (/^[a-z]+:/i.test(entry) && !entry.startsWith('file:')) continue;
    const target = path.join(root, path.dirname(rel), decodeURIComponent(entry.replace(/^file:/, '')));
    if (!existsSync(target)) notes.push(`${rel} names ${entry} in its Class-Path, which is not in the project: classes from it will be missing`);
  }
  return notes;
}
