// Comments checked like code: every file path a comment in src/, scripts/, bench/ or test/ names
// exists, every section of a Markdown file it quotes is a heading there, and no comment tells the
// code's history (an earlier value, an earlier behaviour) instead of why it is as it is. A file moved or
// a heading renamed fails here, naming the comment, instead of leaving a pointer to nowhere.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const ROOT = path.join(import.meta.dirname, '..');
const CHECKED = ['src', 'scripts', 'bench', 'test'];
// Not in a checkout: what the service, the tests and the bench write, and the tools' folders.
const SKIPPED = ['node_modules', '.git', '.data', '.scratch', 'bench/results', 'test-output', 'profiles'];
// The project's brief, next to the repository (../shared/), which comments quote by name.
const EXTERNAL_DOCS = new Set(['SPEC.md', 'STYLE.md', 'DESIGN.md']);
// A named file: these extensions, or any path under a top-level folder of the repository.
const FILE = /\.(?:ts|mts|mjs|cjs|js|json|md|ya?ml|sql|sh|svg|html|css|txt|toml|cpuprofile|pprof)$/;

interface Comment {
  readonly line: number;
  readonly text: string;
}

/** Every comment of a TypeScript file, with the line it starts on; strings and regexps are not comments. */
export function commentsOf(file: string, text: string): Comment[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = new Map<number, Comment>();
  const add = (pos: number, end: number) => {
    if (!found.has(pos)) found.set(pos, { line: source.getLineAndCharacterOfPosition(pos).line + 1, text: text.slice(pos, end) });
  };
  const visit = (node: ts.Node) => {
    ts.forEachLeadingCommentRange(text, node.getFullStart(), add);
    ts.forEachTrailingCommentRange(text, node.getEnd(), add);
    for (const child of node.getChildren(source)) visit(child);
  };
  visit(source);
  return [...found.values()].sort((a, b) => a.line - b.line);
}

/** The words of a comment that may name a file, with the line each is on. URLs and globs are not. */
export function namedPaths(comment: Comment): { line: number; name: string }[] {
  const names: { line: number; name: string }[] = [];
  comment.text.split('\n').forEach((text, i) => {
    for (const [word] of text.replace(/\b[a-z][a-z0-9+.-]*:\/\/\S*/gi, ' ').matchAll(/[^\s`'"()<>[\]{},;|]+/g)) {
      const name = word
        .replace(/[.:!?]+$/, '')
        .replace(/(?::\d+)+$|#.*$/, '')
        .replace(/[.:!?]+$/, '');
      if (/[*?]/.test(name) || name.startsWith('/') || name.includes('$')) continue;
      if (name.includes('/') ? /[\w-]/.test(name) : /^[\w.-]+\.(?:ts|mts|mjs)$|^[A-Z][A-Z0-9_-]*\.md$/.test(name))
        names.push({ line: comment.line + i, name });
    }
  });
  return names;
}

/** Quoted sections of the repository's Markdown files: README "Configuration", docs/caching.md "The hot path". */
export function namedSections(comment: Comment): { line: number; file: string; section: string }[] {
  const sections: { line: number; file: string; section: string }[] = [];
  const lines = comment.text.split('\n');
  // A quote may wrap onto the next comment line: join each line with the one after it.
  lines.forEach((text, i) => {
    const joined = `${text} ${(lines[i + 1] ?? '').replace(/^\s*(?:\/\/|\*)?\s*/, '')}`;
    for (const m of joined.matchAll(/(?<![\w/.-])((?:docs\/)?[\w-]+\.md|README)[,:]?\s+"([^"]+)"/g)) {
      if (m.index < text.length) sections.push({ line: comment.line + i, file: m[1] === 'README' ? 'README.md' : m[1]!, section: m[2]! });
    }
  });
  return sections;
}

// History in a comment: what the code was or did before, which the next change makes false. The
// passive "is used to" says what a thing is for and is not history; after a bare noun the two
// read alike, so write "a key that is used to sign" there.
const HISTORY = [
  /\((?:was|were)\b[^)]*\)/i,
  /\b(?:before|after|since|until) this change\b/i,
  /\bformerly\b/i,
  /\b(?:an|the|a) (?:earlier|previous|older|old) version\b/i,
  /(?<!\b(?:is|are|be|been|being|was|were|get|gets|got|it's|that's)\s+(?:\w+ly\s+)?)\bused to\b/i,
];

export function historyIn(comment: Comment): { line: number; phrase: string }[] {
  const found: { line: number; phrase: string }[] = [];
  comment.text.split('\n').forEach((text, i) => {
    for (const pattern of HISTORY) {
      const m = pattern.exec(text);
      if (m) found.push({ line: comment.line + i, phrase: m[0] });
    }
  });
  return found;
}

function filesUnder(root: string, dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (SKIPPED.includes(rel) || entry.name === 'node_modules') continue;
    if (entry.isDirectory()) filesUnder(root, rel, out);
    else out.push(rel);
  }
  return out;
}

function headings(root: string, file: string): string[] {
  return [...readFileSync(path.join(root, file), 'utf8').matchAll(/^#+\s+(.*)$/gm)].map((m) => m[1]!.trim().toLowerCase());
}

/**
 * Where `name`, named in `file`, points: it must exist relative to the repository's root, to the
 * file's folder, or to src/ (src/ files name each other from there: `cache/bus.ts`). A path whose
 * first folder is none of those (`fastify/lib/server.js`, `text/html`) names something outside
 * the repository and is not checked; neither is a `../` path that leaves it.
 */
function problemWithPath(root: string, file: string, name: string, basenames: Set<string>): string | undefined {
  if (!name.includes('/')) {
    if (name.endsWith('.md')) return existsSync(path.join(root, name)) || EXTERNAL_DOCS.has(name) ? undefined : name;
    return basenames.has(name) ? undefined : name;
  }
  const dir = path.dirname(file);
  if (name.startsWith('./') || name.startsWith('../')) {
    const bases = name.startsWith('./') ? [dir, '.'] : [dir];
    const inside = bases.map((b) => path.normalize(path.join(b, name))).filter((p) => !p.startsWith('..'));
    if (inside.length === 0 || !FILE.test(name) || EXTERNAL_DOCS.has(path.basename(name))) return undefined;
    return inside.some((p) => existsSync(path.join(root, p))) ? undefined : name;
  }
  if (SKIPPED.some((s) => name.startsWith(`${s}/`))) return undefined;
  const first = name.split('/')[0]!;
  const bases = FILE.test(name) ? ['.', dir, 'src'] : ['.'];
  const claimed = bases.filter((b) => existsSync(path.join(root, b, first)));
  if (claimed.length === 0) return undefined;
  return claimed.some((b) => existsSync(path.join(root, b, name))) ? undefined : name;
}

/** Each comment under `root` that names a file or section that does not exist, or tells history. */
export function commentProblems(root: string): string[] {
  const all = filesUnder(root, '');
  const basenames = new Set(all.map((f) => path.basename(f)));
  const problems: string[] = [];
  for (const file of all.filter((f) => CHECKED.includes(f.split('/')[0]!) && /\.m?ts$/.test(f))) {
    for (const comment of commentsOf(file, readFileSync(path.join(root, file), 'utf8'))) {
      for (const { line, name } of namedPaths(comment)) {
        const missing = problemWithPath(root, file, name, basenames);
        if (missing !== undefined) problems.push(`${file}:${line}: names ${missing}, which does not exist`);
      }
      for (const { line, file: doc, section } of namedSections(comment)) {
        if (!existsSync(path.join(root, doc))) continue;
        const wanted = section.toLowerCase();
        if (!headings(root, doc).some((h) => h === wanted || h.startsWith(`${wanted} `) || h.startsWith(`${wanted}:`)))
          problems.push(`${file}:${line}: names ${doc} "${section}", which has no such heading`);
      }
      for (const { line, phrase } of historyIn(comment)) problems.push(`${file}:${line}: tells history ("${phrase}"): say why instead`);
    }
  }
  return problems;
}

test('every path and section a comment names exists, and no comment tells history', () => {
  const problems = commentProblems(ROOT);
  assert.deepEqual(problems, [], `${problems.length} comments to fix:\n${problems.join('\n')}`);
});

test('the check finds a planted bad path, section and history, and nothing else', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'comments-'));
  try {
    for (const dir of ['src/cache', 'src/http', 'test/timing', 'docs', 'node_modules/fastify/lib'])
      mkdirSync(path.join(root, dir), { recursive: true });
    for (const file of ['src/cache/bus.ts', 'src/http/errors.ts', 'test/timing/timeouts.test.ts', 'node_modules/fastify/lib/server.js'])
      writeFileSync(path.join(root, file), '');
    writeFileSync(path.join(root, 'README.md'), '# Conduit\n## Configuration\n');
    writeFileSync(path.join(root, 'docs/caching.md'), '# Caching\n## The hot path\n');
    writeFileSync(
      path.join(root, 'src/http/planted.ts'),
      [
        '// Fine: test/timing/timeouts.test.ts, cache/bus.ts, errors.ts, ./errors.ts, README.md, SPEC.md, docs/,',
        '// README "Configuration", docs/caching.md "The hot path", fastify/lib/server.js, text/html,',
        '// https://example.org/docs/gone.md, src/**/*.test.ts, test/*.test.ts, ../shared/SPEC.md, a key that is used to sign.',
        "const s = '// test/http/not-a-comment.test.ts';",
        '/* Bad: test/http/timeouts.test.ts and http/gone.ts',
        ' * and gone.ts, and docs/caching.md "Profiling" and BENCHMARKS.md. */',
        'export const n = 1; // the window (was a fixed minute), src/cache/hot-path.ts:12.',
        '// Every miss used to reach the database. An earlier version cached nothing.',
      ].join('\n'),
    );
    assert.deepEqual(commentProblems(root), [
      'src/http/planted.ts:5: names test/http/timeouts.test.ts, which does not exist',
      'src/http/planted.ts:5: names http/gone.ts, which does not exist',
      'src/http/planted.ts:6: names gone.ts, which does not exist',
      'src/http/planted.ts:6: names BENCHMARKS.md, which does not exist',
      'src/http/planted.ts:6: names docs/caching.md "Profiling", which has no such heading',
      'src/http/planted.ts:7: names src/cache/hot-path.ts, which does not exist',
      'src/http/planted.ts:7: tells history ("(was a fixed minute)"): say why instead',
      'src/http/planted.ts:8: tells history ("An earlier version"): say why instead',
      'src/http/planted.ts:8: tells history ("used to"): say why instead',
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
