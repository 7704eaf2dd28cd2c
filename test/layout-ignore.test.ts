// .capstanignore semantics (capstan-behaviour.md §2.4), case by case as Capstan's
// core/capstanignore.go matches them, plus the folder-skipping the collect walk adds.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LayoutError } from '../lib/errors.js';
import {
  CAPSTAN_DEFAULT_IGNORES, capstanignoreToRegExpSource, compileIgnore, isIgnored, matchIgnoreRule, parseCapstanignore,
} from '../lib/layout/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/layout/${name}`, import.meta.url));

// [pattern, path, ignored?] — a single path tested on its own, as Capstan's IsIgnored does.
const table: Array<[string, string, boolean]> = [
  // root anchoring
  ['/myfile.txt', '/myfile.txt', true],
  ['/myfile.txt', '/myfolder/myfile.txt', false],
  ['/myfolder/myfile.txt', '/myfile.txt', false],
  ['/myfolder/myfile.txt', '/myfolder/myfile.txt', true],
  ['/myfolder', '/myfolder2', false],
  ['/subfolder/*', '/myfolder/subfolder/myfile.txt', false],
  // * is one level
  ['/*.txt', '/myfile.txt', true],
  ['/*.txt', '/myfolder/myfile.txt', false],
  ['/myfolder/*.txt', '/myfile.txt', false],
  ['/myfolder/*.txt', '/myfolder/myfile.txt', true],
  ['/myfolder/*.txt', '/myfolder/subfolder/myfile.txt', false],
  // . is a literal dot
  ['/myfolder/*.txt', '/myfolder/myfileXtxt', false],
  // /**/ is any depth (and, as in Capstan, also glues onto the name: /**/file.txt matches myfile.txt)
  ['/**/file.txt', '/myfile.txt', true],
  ['/**/file.txt', '/myfolder/myfile.txt', true],
  ['/**/file.txt', '/myfolder/subfolder/myfile.txt', true],
  ['/**/*.txt', '/myfile.txt', true],
  ['/**/*.txt', '/myfolder/subfolder/myfile.txt', true],
  ['/**/*.txt', '/myfolder/subfolder/myfile.md', false],
  // /d/* is everything beneath d, at any depth, but not d itself
  ['/myfolder/*', '/myfolder/myfile.txt', true],
  ['/myfolder/*', '/myfolder', false],
  ['/myfolder/*', '/myfolder/subfolder/myfile.txt', true],
  ['/myfolder/*', '/myfolder/subfolder', true],
  ['/myfolder/*', '/myfolder2', false],
  ['/myfolder/subfolder/*', '/myfolder/subfolder', false],
  ['/myfolder/subfolder/*', '/myfolder', false],
  ['/myfolder/*/*', '/myfolder', false],
  ['/myfolder/*/*', '/myfolder/subfolder', false],
  ['/myfolder/*/*', '/myfolder/subfolder/myfile.txt', true],
];

for (const [pattern, path, expected] of table) {
  test(`pattern ${pattern} ${expected ? 'ignores' : 'keeps'} ${path}`, (t) => {
    const matcher = compileIgnore([pattern], { defaults: false });
    t.is(matchIgnoreRule(matcher, path) !== undefined, expected);
  });
}

test('the rewrite into a regular expression is Capstan\'s', (t) => {
  t.is(capstanignoreToRegExpSource('/myfolder/*.txt'), '^/myfolder/[^/]*\\.txt$');
  t.is(capstanignoreToRegExpSource('/**/*.txt'), '^.*[^/]*\\.txt$');
  t.is(capstanignoreToRegExpSource('/build/*'), '^/build/.*$');
  t.is(capstanignoreToRegExpSource('^/already$'), '^/already$');
});

test('built-in patterns: /meta/*, /mpm-pkg, /.git, /.capstanignore, /.gitignore, /volumes', (t) => {
  t.deepEqual([...CAPSTAN_DEFAULT_IGNORES], ['/meta/*', '/mpm-pkg', '/.git', '/.capstanignore', '/.gitignore', '/volumes']);
  const matcher = compileIgnore([]);
  for (const p of ['/meta/package.yaml', '/meta/run.yaml', '/mpm-pkg', '/mpm-pkg/x.so', '/.git', '/.git/HEAD', '/.capstanignore', '/.gitignore', '/volumes', '/volumes/vol1']) {
    t.truthy(isIgnored(matcher, p), p);
  }
  // /meta/* keeps the folder itself (the layout step drops /meta separately, as Capstan's walk does)
  t.falsy(isIgnored(matcher, '/meta'));
  t.falsy(isIgnored(matcher, '/src/.git'));
  t.falsy(isIgnored(matcher, '/.github/workflow.yml'));
  t.falsy(compileIgnore([], { defaults: false }).rules.length);
});

test('a matched folder takes its whole subtree with it', (t) => {
  const matcher = compileIgnore(['/docs', '/**/node_modules'], { defaults: false });
  t.deepEqual(isIgnored(matcher, '/docs/a/b/c.md'), { pattern: '/docs', matchedPath: '/docs', builtIn: false });
  t.is(isIgnored(matcher, '/web/node_modules/x/index.js')?.matchedPath, '/web/node_modules');
  t.falsy(isIgnored(matcher, '/docsite/index.html'));
});

test('/meta is rejected, /meta/* and /meta/ are accepted', (t) => {
  const error = t.throws(() => compileIgnore(['/meta']), { instanceOf: LayoutError });
  t.is(error?.code, 'E_IGNORE_META');
  t.regex(error?.message ?? '', /'\/meta' is not allowed/);
  t.notThrows(() => compileIgnore(['/meta/*', '/meta/']));
});

test('.capstanignore parsing: trims, skips blanks and comments, keeps positions', (t) => {
  const text = readFileSync(fixture('bad-ignore/.capstanignore'), 'utf8');
  t.deepEqual(parseCapstanignore(text, '.capstanignore'), [
    { pattern: '/build/*', file: '.capstanignore', line: 2, column: 1 },
    { pattern: '/src/(*.o', file: '.capstanignore', line: 4, column: 4 },
  ]);
});

test('an invalid pattern names the file, line and column', (t) => {
  const file = fixture('bad-ignore/.capstanignore');
  const error = t.throws(() => compileIgnore(parseCapstanignore(readFileSync(file, 'utf8'), file)), { instanceOf: LayoutError });
  t.is(error?.code, 'E_IGNORE_PATTERN');
  t.true(error?.message.startsWith(`${file}:4:4: ignore pattern '/src/(*.o' is not a valid pattern`));
  t.regex(error?.message ?? '', /escape characters/);
});

test('/meta in a .capstanignore points at its line', (t) => {
  const file = fixture('meta-ignore/.capstanignore');
  const error = t.throws(() => compileIgnore(parseCapstanignore(readFileSync(file, 'utf8'), file)), { instanceOf: LayoutError });
  t.is(error?.line, 2);
  t.is(error?.column, 3);
});

test('with a folder memo (as layoutFiles passes), isIgnored answers exactly as without it', (t) => {
  const matcher = compileIgnore(['/docs', '/**/node_modules', '/build/*', '/src/*.o', '/**/*.map']);
  const memo = new Map();
  const paths = [
    '/docs/a/b.md', '/docs', '/web/node_modules/x/index.js', '/web/node_modules', '/build', '/build/out/x',
    '/src/a.o', '/src/a.c', '/src/sub/a.o', '/lib/x.js.map', '/lib/x.js', '/meta', '/meta/run.yaml', '/.git/HEAD',
    '/a//b', '/a/b/', '/volumes/v', '/web/node_modules/y/z/w.js', '/docs/c.md',
  ];
  for (const p of [...paths, ...paths]) t.deepEqual(isIgnored(matcher, p, memo), isIgnored(matcher, p), p);
});
