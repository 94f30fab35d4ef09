// scripts/hot-path-ratio.ts end to end, briefly (one round of a second): the figures
// docs/caching.md "The hot path" cites come from it, so it must run, report every row, and stop
// everything it started. Needs wrk (.ci/run installs it) and, for --pin, taskset and two CPUs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

const SCRIPT = path.join(import.meta.dirname, '..', '..', 'scripts', 'hot-path-ratio.ts');

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SCRIPT, '--scenario', 'list', '--rounds', '1', '--duration', '1', '--warmup', '1', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The number in a table row's given column ("| hot path (default) | 0.81 × | ..."). */
function cell(table: string, row: string, column: number): number {
  const line = table.split('\n').find((l) => l.startsWith(`| ${row} |`));
  assert.ok(line, `no row "${row}" in:\n${table}`);
  return Number.parseFloat(line.split('|')[column + 1]!);
}

describe('scripts/hot-path-ratio.ts', { timeout: 300_000 }, () => {
  test('side by side: a ratio to the platform for the service with and without the hot path', async () => {
    const { code, stdout, stderr } = await run([]);
    assert.equal(code, 0, stderr.slice(-3000));
    for (const row of ['hot path (default)', 'HOT_PATH=off']) {
      const ratio = cell(stdout, row, 1);
      assert.ok(ratio > 0 && ratio < 5, `${row}: ${ratio}`);
    }
  });

  // --pin needs two CPUs and taskset (util-linux); the CI machine has both.
  const cantPin = os.availableParallelism() < 2 ? 'one CPU' : spawnSync('taskset', ['--version']).error ? 'no taskset' : false;
  test(
    "--pin: peak and CPU ratios, latency at the asked fraction of peak for all three servers, the machine's stalls",
    { skip: cantPin },
    async () => {
      const { code, stdout, stderr } = await run(['--pin', '--latency-at', '0.2']);
      assert.equal(code, 0, stderr.slice(-3000));
      assert.match(stdout, /each server alone on CPU 1/);
      const [ratios, latencies] = stdout.split(/Latency at 0\.2 × of each server's own peak/);
      assert.ok(latencies !== undefined, stdout);
      for (const row of ['hot path (default)', 'HOT_PATH=off']) {
        for (const column of [1, 3]) assert.ok(cell(ratios!, row, column) > 0, `${row}, column ${column}`);
      }
      for (const row of ['platform (bare node:http)', 'hot path (default)', 'HOT_PATH=off']) {
        const p50 = cell(latencies, row, 1);
        const p99 = cell(latencies, row, 3);
        assert.ok(p50 > 0 && p99 >= p50, `${row}: p50 ${p50}, p99 ${p99}`);
      }
      assert.match(stdout, /kept from running for up to \d+\.\d ms, \d+ times over 1 ms; kept from running/);
      // Every round's line on stderr names the server's CPU time per response.
      assert.equal(stderr.match(/µs CPU per response/g)?.length, 3);
    },
  );
});
