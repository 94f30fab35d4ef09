// `npm run profile` end to end, kept short: a small data set, one second of warm-up, two of
// profile, on the test run's PostgreSQL server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

test('the profile command writes CPU and allocation flame graphs that name Conduit’s own functions', async () => {
  const out = await mkdtemp(path.join(tmpdir(), 'conduit-profile-test-'));
  try {
    const server = process.env.CONDUIT_TEST_SERVER_URL;
    assert.ok(server, 'run with the test global setup');
    const args = ['scripts/profile.ts', '--scenario', 'read-anon', '--duration', '2', '--warmup', '1', '--connections', '8'];
    // CACHE=off: every read runs the article code and its SQL, not only the cache's bytes.
    args.push('--users', '30', '--articles', '200', '--pg-url', server, '--out', out, '--set', 'CACHE=off');
    const { stdout } = await promisify(execFile)(process.execPath, args, {
      cwd: ROOT,
      timeout: 180_000,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    });
    assert.match(stdout, /throughput \d+ req\/s/);

    const cpuSvg = await readFile(path.join(out, 'cpu.svg'), 'utf8');
    assert.ok(cpuSvg.startsWith('<?xml') && cpuSvg.trimEnd().endsWith('</svg>'));
    assert.ok((await stat(path.join(out, 'cpu.svg'))).size > 10_000, 'a real graph, not an empty one');
    assert.match(cpuSvg, /\(src\/articles\/[\w.]+\.ts:\d+\)/, 'names a function of src/articles');
    const cpu = JSON.parse(await readFile(path.join(out, 'cpu.cpuprofile'), 'utf8')) as { nodes: unknown[] };
    assert.ok(cpu.nodes.length > 100);
    assert.match(await readFile(path.join(out, 'cpu.folded'), 'utf8'), /^.+ \d+$/m);

    const heapSvg = await readFile(path.join(out, 'heap.svg'), 'utf8');
    assert.ok(heapSvg.includes('MiB'));
    assert.match(await readFile(path.join(out, 'summary.txt'), 'utf8'), /top functions by self CPU time:\n.+%/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
