// The documentation, checked like code: README.md stays short, and what README.md, docs/,
// CONTRIBUTING.md and SECURITY.md name (files, npm scripts, settings) exists.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ENV_VARS } from '../src/config.ts';

const ROOT = path.join(import.meta.dirname, '..');

async function docs(): Promise<{ file: string; text: string }[]> {
  const pages = (await readdir(path.join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  const files = ['README.md', 'CONTRIBUTING.md', 'SECURITY.md', ...pages];
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(path.join(ROOT, file), 'utf8') })));
}

/** Markdown text without its fenced code blocks (shell examples are not links). */
function prose(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '');
}

/** Relative link targets of `[text](target)`, without their #fragment; URLs and pure fragments left out. */
export function relativeLinks(text: string): string[] {
  return [...prose(text).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#'))
    .map((t) => t.split('#')[0]!);
}

/**
 * `npm run X` anywhere, and `npm X` (npm's own commands and the script shorthands) where it is a
 * command: at the start of a code span or of a line in a code block, or after `&&`, `;`, `|` or
 * `$(`. Prose such as "an npm package" is not a command.
 */
export function npmCommands(text: string): string[] {
  const runs = [...text.matchAll(/\bnpm run ([a-z][\w:-]*)/g)].map((m) => `run ${m[1]}`);
  const code = [...text.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]!).join('\n');
  const command = /(?:`|&&[ \t]*|;[ \t]*|\|[ \t]*|\$\()npm (?!run\b)([a-z][\w:-]*)/g;
  const own = [...prose(text).matchAll(command), ...code.matchAll(/(?:^[ \t]*)npm (?!run\b)([a-z][\w:-]*)/gm), ...code.matchAll(command)];
  return [...runs, ...own.map((m) => m[1]!)];
}

// npm's own commands (not scripts) the docs may name.
const NPM_BUILTINS = new Set(['install', 'ci', 'audit', 'test', 'start', 'exec']);

// Settings read by someone other than src/config.ts: Node, glibc's malloc, the OpenTelemetry exporter, and the test suites.
const EXTERNAL_VARS = new Set([
  'NODE_OPTIONS',
  'MALLOC_ARENA_MAX',
  'MALLOC_MMAP_THRESHOLD_',
  'GLIBC_TUNABLES',
  'TEST_DATABASE_URL',
  'SOAK_SECONDS',
  'SOAK_MEMORY_LIMIT',
  'FUZZ_SEED',
  'DEPLOY_TEST_PG_URL',
  'DEPLOY_TEST_REDIS_URL',
  'CHROMIUM_PATH',
  'CI',
]);
const EXTERNAL_PREFIXES = ['OTEL_'];
// ALL_CAPS tokens in backticks that are not settings: code identifiers, SQL, Dockerfile instructions.
const NOT_SETTINGS = new Set(['ENV_VARS']);

/**
 * Backtick-quoted tokens that look like a setting: `CACHE_TTL_MS`, `LOG_LEVEL=warn`, `WORKERS=1`.
 * A single word without `=` (`CACHE`, but also `LISTEN`, `HEALTHCHECK`) is too ambiguous to check.
 */
export function settingNames(text: string): string[] {
  return [...text.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`|`([A-Z][A-Z0-9]+)=[^`]*`/g)]
    .map((m) => (m[1] ?? m[2])!)
    .filter((name) => !NOT_SETTINGS.has(name));
}

test('README.md is at most 250 lines', async () => {
  const lines = (await readFile(path.join(ROOT, 'README.md'), 'utf8')).trimEnd().split('\n').length;
  assert.ok(lines <= 250, `README.md has ${lines} lines`);
});

test('every relative link in README.md, docs/, CONTRIBUTING.md and SECURITY.md points to a file that exists', async () => {
  const missing: string[] = [];
  for (const { file, text } of await docs()) {
    for (const target of relativeLinks(text)) {
      if (!existsSync(path.join(ROOT, path.dirname(file), decodeURIComponent(target)))) missing.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(missing, []);
});

test("every npm command the docs name exists (a script in package.json, or npm's own)", async () => {
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
  const unknown: string[] = [];
  for (const { file, text } of await docs()) {
    for (const cmd of npmCommands(text)) {
      const script = cmd.startsWith('run ') ? cmd.slice(4) : cmd;
      const ok = cmd.startsWith('run ')
        ? pkg.scripts[script] !== undefined
        : NPM_BUILTINS.has(cmd) && (!['test', 'start'].includes(cmd) || pkg.scripts[cmd] !== undefined);
      if (!ok) unknown.push(`${file}: npm ${cmd}`);
    }
  }
  assert.deepEqual(unknown, []);
});

test('every setting the docs name is in ENV_VARS (src/config.ts) or read by Node, OpenTelemetry or the tests', async () => {
  const known = new Set(ENV_VARS.map((v) => v.name));
  const unknown: string[] = [];
  for (const { file, text } of await docs()) {
    for (const name of settingNames(text)) {
      if (!known.has(name) && !EXTERNAL_VARS.has(name) && !EXTERNAL_PREFIXES.some((p) => name.startsWith(p)))
        unknown.push(`${file}: ${name}`);
    }
  }
  assert.deepEqual([...new Set(unknown)], []);
});

test('the README configuration table is ENV_VARS: every variable, in order, with its default and description', async () => {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `([A-Z0-9_]+)` \| (.*?) \| (.*) \|$/gm)].map((m) => ({
    name: m[1]!,
    default: m[2]!,
    description: m[3]!,
  }));
  const expected = ENV_VARS.map((v) => ({
    name: v.name,
    default: v.default === undefined ? '–' : `\`${v.default}\``,
    description: v.description,
  }));
  assert.deepEqual(rows, expected);
});

test('the checks catch what they are for', () => {
  assert.deepEqual(relativeLinks('[a](docs/x.md#y) [b](https://e.org) [c](#z)\n```\n[d](nope.md)\n```'), ['docs/x.md']);
  assert.deepEqual(npmCommands('`npm run seed -- --reset`, `npm test`, an npm package,\nnpm registry\n```sh\nnpm ci && npm start\n```\n'), [
    'run seed',
    'test',
    'ci',
    'start',
  ]);
  assert.deepEqual(settingNames('`CACHE_TTL_MS`, `LOG_LEVEL=warn`, `WORKERS=2`, `CACHE`, `Token <jwt>`, `GET`, `ENV_VARS`'), [
    'CACHE_TTL_MS',
    'LOG_LEVEL',
    'WORKERS',
  ]);
});
