// Layout cases compared with what Capstan's `package compose` (cmd/package.go CollectPackage +
// CollectDirectoryContents, util/rofs.go) or `build` (cmd/build.go UploadFiles) would put in
// the image. Expected listings were derived by hand from that code: `dir <mode>`,
// `file <mode> <contents>`, `link <target>`. The ROFS skeleton is off here (Capstan has none).
import test from 'ava';
import type Vinyl from 'vinyl';
import type { Manifest } from '../lib/manifest/types.js';
import { layoutFiles } from '../lib/steps/layout-files.js';
import { runSteps } from './helpers/streams.js';
import {
  APP_ROOT, appFiles, imageListing, manifestOf, manifestVinyl, packageFiles, runOf, type Spec,
} from './fixtures/layout/builders.js';

interface Case {
  title: string;
  manifest: Partial<Manifest>;
  packages?: Array<{ name: string; files: Record<string, Spec>; sets?: Array<[string, string]> }>;
  app: Record<string, Spec>;
  expected: Record<string, string>;
}

const exe = (contents: string): Spec => ({ contents, mode: 0o755 });
const dir: Spec = { dir: true };

// osv.bootstrap as shipped in the v0.57.0 release (member list of osv.bootstrap.mpm.x86_64).
const bootstrap: Record<string, Spec> = {
  dev: dir, etc: dir, 'etc/fstab': 'zfs fstab', 'etc/hosts': '127.0.0.1 localhost osv.local\n',
  'etc/mnttab': { link: '../proc/mounts' }, 'libenviron.so': exe('E'), 'libzfs.so': exe('Z'),
  meta: dir, 'meta/package.yaml': 'name: osv.bootstrap', proc: dir, sys: dir, tmp: dir, tools: dir,
  'tools/cpiod.so': exe('C'), usr: dir, 'usr/lib': dir, 'usr/lib/libgcc_s.so.1': exe('G'),
};
const bootstrapImage: Record<string, string> = {
  '/dev': 'dir 755', '/etc': 'dir 755', '/etc/fstab': 'file 644 zfs fstab', '/etc/hosts': 'file 644 127.0.0.1 localhost osv.local\n',
  '/etc/mnttab': 'link /proc/mounts', '/libenviron.so': 'file 755 E', '/libzfs.so': 'file 755 Z', '/proc': 'dir 755',
  '/sys': 'dir 755', '/tmp': 'dir 755', '/tools': 'dir 755', '/tools/cpiod.so': 'file 755 C', '/usr': 'dir 755',
  '/usr/lib': 'dir 755', '/usr/lib/libgcc_s.so.1': 'file 755 G',
};

const cases: Case[] = [
  {
    title: 'native hello app on osv.bootstrap: packages, app files, /run/default, no /meta',
    manifest: { run: runOf(['default', '/hello.so']) },
    packages: [{ name: 'osv.bootstrap', files: bootstrap }],
    app: { meta: dir, 'meta/package.yaml': 'name: hello', 'meta/run.yaml': 'runtime: native', 'hello.so': exe('ELF') },
    expected: { ...bootstrapImage, '/hello.so': 'file 755 ELF', '/run': 'dir 755', '/run/default': 'file 700 /hello.so' },
  },
  {
    title: "built-in ignores: .git, .gitignore, .capstanignore, mpm-pkg, volumes, meta/* (and the /meta folder)",
    manifest: {},
    app: {
      '.git': dir, '.git/HEAD': 'ref', '.gitignore': 'x', '.capstanignore': '/x', 'mpm-pkg': dir, 'mpm-pkg/old.so': 'o',
      volumes: dir, 'volumes/vol1': 'disk', meta: dir, 'meta/README.md': 'r', 'app.so': 'A', 'src/.git': 'kept: not at the root',
    },
    expected: { '/app.so': 'file 644 A', '/run': 'dir 755', '/src': 'dir 755', '/src/.git': 'file 644 kept: not at the root' },
  },
  {
    title: '/build/* keeps the build folder empty; /*.log only at the root',
    manifest: { ignore: ['/build/*', '/*.log'] },
    app: { build: dir, 'build/a.o': 'o', 'build/obj': dir, 'build/obj/b.o': 'o', 'app.log': 'l', 'logs': dir, 'logs/x.log': 'x', 'app.so': 'A' },
    expected: { '/app.so': 'file 644 A', '/build': 'dir 755', '/logs': 'dir 755', '/logs/x.log': 'file 644 x', '/run': 'dir 755' },
  },
  {
    title: '/docs skips the folder with its contents; /**/*.txt at any depth',
    manifest: { ignore: ['/docs', '/**/*.txt'] },
    app: { docs: dir, 'docs/api': dir, 'docs/api/index.html': 'h', 'notes.txt': 'n', 'lib/deep/readme.txt': 'r', 'lib/deep/x.so': 'x', 'docsite/i.html': 'i' },
    expected: {
      '/docsite': 'dir 755', '/docsite/i.html': 'file 644 i', '/lib': 'dir 755', '/lib/deep': 'dir 755', '/lib/deep/x.so': 'file 644 x', '/run': 'dir 755',
    },
  },
  {
    title: 'application files override package files',
    manifest: {},
    packages: [{ name: 'osv.bootstrap', files: bootstrap }],
    app: { 'etc/hosts': '10.0.0.2 app\n', 'tools/cpiod.so': exe('mine') },
    expected: { ...bootstrapImage, '/etc/hosts': 'file 644 10.0.0.2 app\n', '/tools/cpiod.so': 'file 755 mine', '/run': 'dir 755' },
  },
  {
    title: 'later packages overwrite earlier ones (resolution order)',
    manifest: {},
    packages: [
      { name: 'osv.libz', files: { 'usr/lib/libz.so.1': 'libz 1.2', 'usr/lib/a': 'libz' } },
      { name: 'osv.python3x', files: { 'usr/lib/libz.so.1': 'libz from python', 'usr/lib/b': 'py' } },
    ],
    app: {},
    expected: {
      '/run': 'dir 755', '/usr': 'dir 755', '/usr/lib': 'dir 755', '/usr/lib/a': 'file 644 libz', '/usr/lib/b': 'file 644 py',
      '/usr/lib/libz.so.1': 'file 644 libz from python',
    },
  },
  {
    title: '/run: every config set of every package and the app; later wins; scripts replace app files',
    manifest: { run: runOf(['default', '--env=PORT?=8000 /app.so'], ['cli', 'app cli']) },
    packages: [
      { name: 'osv.httpserver-api', files: {}, sets: [['httpserver', '/libhttpserver-api.so &!'], ['cli', 'server cli']] },
      { name: 'osv.cli', files: {}, sets: [['cli', '/cli/cli.so']] },
    ],
    app: { run: dir, 'run/httpserver': 'stale copy' },
    expected: {
      '/run': 'dir 755', '/run/cli': 'file 700 app cli', '/run/default': 'file 700 --env=PORT?=8000 /app.so',
      '/run/httpserver': 'file 700 /libhttpserver-api.so &!',
    },
  },
  {
    title: 'symlinks stay links; ..-relative targets resolve to absolute guest paths, plain relative ones stay',
    manifest: {},
    packages: [{ name: 'osv.openjdk', files: { 'usr/lib/jvm/java': { link: 'jdk-11' }, 'usr/lib/jvm/jdk-11/bin/java': exe('J'), 'usr/bin/java': { link: '../lib/jvm/java/bin/java' } } }],
    app: { 'etc/mnttab': { link: '../proc/mounts' }, 'lib/libssl.so': { link: 'libssl.so.3' }, 'lib/libssl.so.3': 'ssl' },
    expected: {
      '/etc': 'dir 755', '/etc/mnttab': 'link /proc/mounts', '/lib': 'dir 755', '/lib/libssl.so': 'link libssl.so.3', '/lib/libssl.so.3': 'file 644 ssl',
      '/run': 'dir 755', '/usr': 'dir 755', '/usr/bin': 'dir 755', '/usr/bin/java': 'link /usr/lib/jvm/java/bin/java', '/usr/lib': 'dir 755',
      '/usr/lib/jvm': 'dir 755', '/usr/lib/jvm/java': 'link jdk-11', '/usr/lib/jvm/jdk-11': 'dir 755', '/usr/lib/jvm/jdk-11/bin': 'dir 755',
      '/usr/lib/jvm/jdk-11/bin/java': 'file 755 J',
    },
  },
  {
    title: 'permission bits travel as they are (executables, private files, sticky folders)',
    manifest: {},
    app: { 'bin/tool': exe('T'), 'secret.key': { contents: 'k', mode: 0o600 }, shared: { dir: true, mode: 0o1777 }, 'shared/x': 'x' },
    expected: { '/bin': 'dir 755', '/bin/tool': 'file 755 T', '/run': 'dir 755', '/secret.key': 'file 600 k', '/shared': 'dir 1777', '/shared/x': 'file 644 x' },
  },
  {
    title: 'Capstanfile build: only rootfs (mirrored to /) and the files map; no /run folder',
    manifest: {
      capstanfile: {
        cmdline: '/java.so -jar /app/app.jar',
        files: { '/app/app.jar': `${APP_ROOT}/build/app.jar`, '/tools/hello.so': `${APP_ROOT}/hello.so` },
        rootfs: `${APP_ROOT}/ROOTFS`,
      },
    },
    app: {
      Capstanfile: 'cmdline: x', 'src/Main.java': 'class', 'build/app.jar': 'JAR', 'hello.so': exe('H'),
      ROOTFS: dir, 'ROOTFS/etc': dir, 'ROOTFS/etc/app.conf': 'conf', 'ROOTFS/usr/lib/libx.so': 'x',
    },
    expected: {
      '/app': 'dir 755', '/app/app.jar': 'file 644 JAR', '/etc': 'dir 755', '/etc/app.conf': 'file 644 conf', '/tools': 'dir 755',
      '/tools/hello.so': 'file 755 H', '/usr': 'dir 755', '/usr/lib': 'dir 755', '/usr/lib/libx.so': 'file 644 x',
    },
  },
];

for (const c of cases) {
  test(`like Capstan: ${c.title}`, async (t) => {
    const m = manifestOf(c.manifest);
    const input: Vinyl[] = [manifestVinyl(m)];
    for (const [layer, p] of (c.packages ?? []).entries()) input.push(...packageFiles(m, p.name, layer, p.files, p.sets));
    input.push(...appFiles(m, c.app));
    const out = await runSteps(input, layoutFiles({ skeleton: false }));
    t.deepEqual(imageListing(out), c.expected);
  });
}

test('divergence from Capstan, on purpose: absolute symlink targets stay verbatim', async (t) => {
  // Capstan's filepath.Join(linkdir, "/proc/mounts") would store /etc/proc/mounts.
  const m = manifestOf();
  const out = await runSteps(appFiles(m, { 'etc/mnttab': { link: '/proc/mounts' } }), layoutFiles({ skeleton: false }));
  t.is(imageListing(out)['/etc/mnttab'], 'link /proc/mounts');
});

test('divergence from Capstan, on purpose: /metadata.txt is kept (Capstan drops every path starting with "/meta")', async (t) => {
  const m = manifestOf();
  const input = appFiles(m, { 'metadata.txt': 'm', 'meta/run.yaml': 'r' });
  const out = await runSteps(input, layoutFiles({ skeleton: false }));
  t.deepEqual(Object.keys(imageListing(out)), ['/metadata.txt', '/run']);
});
