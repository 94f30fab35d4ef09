// The layer rules of .dependency-cruiser.cjs (docs/architecture.md), run by `npm run lint` over
// src/, fire on the imports they forbid: each fixture tree below is cruised with the project's
// own config, and every forbidden import in it must be reported under its rule.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.join(import.meta.dirname, '..');
const CLI = path.join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

const TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    noEmit: true,
  },
  include: ['src'],
};

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

/** Writes the files into a fresh directory and cruises its src/ with the project's rules. */
function cruise(files: Record<string, string>): Violation[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'conduit-layers-'));
  try {
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG));
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    const run = spawnSync(process.execPath, [CLI, 'src', '--config', CONFIG, '--output-type', 'json'], { cwd: dir, encoding: 'utf8' });
    assert.ok(run.stdout, `dependency-cruiser printed nothing: ${run.stderr}`);
    const result = JSON.parse(run.stdout) as { summary: { violations: Violation[] } };
    return result.summary.violations;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const found = (violations: Violation[]) => violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();

test('an import from a lower layer into a higher one, or around a cycle, is reported by its rule', () => {
  const violations = cruise({
    'src/config.ts': `import type { E } from './http/errors.ts';\nexport type Config = E;\n`,
    'src/http/errors.ts': `export class E extends Error {}\n`,
    'src/http/auth.ts': `import type { AppContext } from '../context.ts';\nexport type A = AppContext;\n`,
    'src/db/deadline.ts': `import { E } from '../http/errors.ts';\nexport const deadlineError = E;\n`,
    'src/db/pool.ts': `import type { R } from '../articles/repo.ts';\nexport type Pool = R;\n`,
    'src/context.ts': `import { E } from './http/errors.ts';\nexport interface AppContext { e: E }\n`,
    'src/lib/a.ts': `import type { B } from './b.ts';\nexport type A = { b?: B };\n`,
    'src/lib/b.ts': `import type { A } from './a.ts';\nexport type B = { a?: A };\n`,
    'src/cache/flags.ts': `import type { R } from '../articles/repo.ts';\nexport type F = R;\n`,
    'src/cache/hot-path.ts': `import type { O } from './other.ts';\nexport type H = { o?: O };\n`,
    'src/cache/other.ts': `import type { H } from './hot-path.ts';\nexport type O = { h?: H };\n`,
    'src/articles/repo.ts': `import type { Built } from '../app-context.ts';\nexport type R = Built;\n`,
    'src/app-context.ts': `import type { App } from './app.ts';\nexport type Built = App;\n`,
    'src/app.ts': `export type App = number;\n`,
  });
  // A cycle is reported once, from one of its imports.
  assert.deepEqual(
    found(violations),
    [
      'context-types-only: src/context.ts -> src/http/errors.ts',
      'db-imports-only-foundation: src/db/deadline.ts -> src/http/errors.ts',
      'db-imports-only-foundation: src/db/pool.ts -> src/articles/repo.ts',
      'foundation-imports-nothing-above: src/config.ts -> src/http/errors.ts',
      'http-kit-below-resources: src/http/auth.ts -> src/context.ts',
      'no-circular: src/cache/hot-path.ts -> src/cache/other.ts',
      'no-circular: src/lib/a.ts -> src/lib/b.ts',
      'only-main-above-app: src/app-context.ts -> src/app.ts',
      'resources-below-composition: src/articles/repo.ts -> src/app-context.ts',
      'adapters-import-no-resource: src/cache/flags.ts -> src/articles/repo.ts',
    ].sort(),
  );
});
