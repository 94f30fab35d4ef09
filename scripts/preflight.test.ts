// The preload every npm script passes first (scripts/preflight.mjs): the Node version gate, then .env.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
// @ts-expect-error: plain JavaScript without types, on purpose (it must load on any Node).
import { checkNode, minimumOf } from './preflight.mjs';

const check = checkNode as (version: string, range: string) => string | undefined;
const root = path.join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
};

test('an older Node gets one line naming the version needed and the one running', () => {
  assert.deepEqual(minimumOf('>=24.7.0 <25'), [24, 7, 0]);
  assert.equal(check('20.20.2', '>=24.7.0 <25'), 'conduit needs Node >= 24.7 (this is v20.20.2)');
  assert.equal(check('24.6.9', '>=24.7.0 <25'), 'conduit needs Node >= 24.7 (this is v24.6.9)');
  assert.equal(check('22.18.0', pkg.engines.node), 'conduit needs Node >= 24.7 (this is v22.18.0)');
  assert.equal(check('18.0.0', '>=24.7.3'), 'conduit needs Node >= 24.7.3 (this is v18.0.0)');
});

test('Node 24.7 and later pass, the engines upper bound included (npm warns about that one)', () => {
  for (const version of ['24.7.0', '24.22.3', '25.0.0', '26.1.0']) assert.equal(check(version, '>=24.7.0 <25'), undefined, version);
  assert.equal(check(process.versions.node, pkg.engines.node), undefined);
});

test('runs first in every npm script that starts Node on TypeScript, and lets this Node through', () => {
  for (const [name, script] of Object.entries(pkg.scripts)) {
    // `node --test` scripts: an older Node stops at their flags before any preload runs;
    // `npm test` passes the gate first (pretest).
    if (!/\bnode\b/.test(script) || !/\.ts\b/.test(script) || /\bnode --test\b/.test(script)) continue;
    // A preload, or a run of its own first where a watcher would wait for changes after the refusal.
    assert.match(
      script,
      /^node (--\S+ )*--import \.\/scripts\/preflight\.mjs |^node scripts\/preflight\.mjs && /,
      `npm run ${name}: ${script}`,
    );
  }
  assert.equal(pkg.scripts.pretest, 'node scripts/preflight.mjs');
  // End to end under the current Node: the preload passes and the program runs.
  const res = spawnSync(process.execPath, ['--import', './scripts/preflight.mjs', '-e', 'console.log("ran")'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stdout, 'ran\n');
  assert.equal(res.stderr, '');
});

test('refuses, before the program loads, under a Node it is told is older', () => {
  // process.versions cannot be assigned: a preload ahead of the gate redefines it.
  const fake = "Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '20.20.2' } });";
  const res = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(fake)}`, '--import', './scripts/preflight.mjs', '-e', 'console.log("ran")'],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  assert.equal(res.status, 1);
  assert.equal(res.stdout, '', 'the program never ran');
  assert.equal(res.stderr, 'conduit needs Node >= 24.7 (this is v20.20.2)\n');
});

test('loads .env from the working directory before the program, a variable already set winning', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'conduit-preflight-'));
  try {
    await writeFile(path.join(dir, '.env'), 'CONDUIT_FROM_FILE=file\nCONDUIT_SET_TWICE=file\n');
    const gate = path.join(root, 'scripts', 'preflight.mjs');
    const print = 'console.log(process.env.CONDUIT_FROM_FILE, process.env.CONDUIT_SET_TWICE)';
    const res = spawnSync(process.execPath, ['--import', gate, '-e', print], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CONDUIT_SET_TWICE: 'environment' },
    });
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stdout, 'file environment\n');
    // And without a .env nothing is read and nothing is said.
    const none = spawnSync(process.execPath, ['--import', gate, '-e', print], { cwd: tmpdir(), encoding: 'utf8' });
    assert.equal(none.stderr, '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
