// `npm run profile` end to end, kept short: a small data set, one second of warm-up, two of
// profile, on the test run's PostgreSQL server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { parseProfileArgs, profiledEnv } from '../../scripts/profile.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

test('the profile command writes CPU and allocation profiles, V8’s and pprof’s, that name Conduit’s own functions', async () => {
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

    const cpu = JSON.parse(await readFile(path.join(out, 'cpu.cpuprofile'), 'utf8')) as { nodes: unknown[] };
    assert.ok(cpu.nodes.length > 100);
    const cpuPprof = Profile.decode(gunzipSync(await readFile(path.join(out, 'cpu.pb.gz'))));
    const files = new Set(cpuPprof.function.map((f) => cpuPprof.stringTable.strings[Number(f.filename)]));
    assert.ok(
      [...files].some((f) => /\/src\/articles\/[\w.]+\.ts$/.test(f ?? '')),
      'names a function of src/articles',
    );
    assert.ok(cpuPprof.sample.length > 100, `${cpuPprof.sample.length} stacks`);

    const heapPprof = Profile.decode(gunzipSync(await readFile(path.join(out, 'heap.pb.gz'))));
    assert.ok(heapPprof.sample.reduce((n, x) => n + Number(x.value[0]), 0) > 1024 * 1024, 'over a MiB allocated');
    assert.ok(JSON.parse(await readFile(path.join(out, 'heap.heapprofile'), 'utf8')).head);
    const summary = await readFile(path.join(out, 'summary.txt'), 'utf8');
    assert.match(summary, /top functions by self CPU time:\n.+%/);
    assert.match(summary, /top functions by bytes allocated:\n.+%.+(MiB|KiB)/);
    assert.match(summary, /V8's heap, peak committed MB over the window: new [\d.]+, old [\d.]+/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('--promoted asks for the promoted view of the allocation profile', () => {
  const promoted = parseProfileArgs(['--scenario', 'mixed', '--promoted']);
  const all = parseProfileArgs(['--scenario', 'mixed']);
  assert.ok(promoted !== 'help' && all !== 'help');
  assert.equal(promoted.promoted, true);
  assert.equal(all.promoted, false);
});

test("the profiled service keeps src/runtime.env's NODE_OPTIONS (the young generation's size) unless --set replaces it", () => {
  assert.equal(profiledEnv('postgres://x', '/tmp/w', 'token', {}).NODE_OPTIONS, undefined);
  assert.equal(
    profiledEnv('postgres://x', '/tmp/w', 'token', { NODE_OPTIONS: '--max-semi-space-size=16' }).NODE_OPTIONS,
    '--max-semi-space-size=16',
  );
});
