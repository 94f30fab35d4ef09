// scripts/instructions-per-request.ts end to end, briefly: docs/memory.md's choice of V8's heap
// settings rests on its counts, so it must run the service under callgrind, count only the
// measured requests (not the warm-up, the start or the shutdown) and report every configuration.
// Needs valgrind (.ci/run installs it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';

const SCRIPT = path.join(import.meta.dirname, '..', '..', 'scripts', 'instructions-per-request.ts');

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Its own process group: a run past the timeout is killed with everything it started.
    const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 420_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A table row's cells after its name ("| default | 0.291 | 1.000 | ..."). */
function row(table: string, name: string): number[] {
  const line = table.split('\n').find((l) => l.startsWith(`| ${name} |`));
  assert.ok(line, `no row "${name}" in:\n${table}`);
  return line.split('|').slice(2, -1).map(Number);
}

describe('scripts/instructions-per-request.ts', { timeout: 480_000 }, () => {
  test('counts the measured requests of each configuration under callgrind, and nothing else', async () => {
    const few = await run(['--scenario', 'list', '--configs', 'default,semi-space-16', '--requests', '100', '--warmup', '200']);
    assert.equal(few.code, 0, few.stderr.slice(-3000));
    const [perRequest, ratio] = row(few.stdout, 'default');
    // A list page replayed from the cache is tens of thousands of instructions, a start of the
    // service billions: counted from the start, 100 requests would be tens of millions each.
    assert.ok(perRequest! > 0.005 && perRequest! < 5, `default: ${perRequest} M instructions per request`);
    assert.equal(ratio, 1);
    const [other] = row(few.stdout, 'semi-space-16');
    assert.ok(other! > 0.005 && other! < 5, `semi-space-16: ${other} M instructions per request`);
    // Three times the requests, the same warm-up: the same work per request. Had the window also
    // held the warm-up's 200 requests, or any fixed cost, 100 requests would show about twice
    // what 300 do.
    const more = await run(['--scenario', 'list', '--configs', 'default', '--requests', '300', '--warmup', '200']);
    assert.equal(more.code, 0, more.stderr.slice(-3000));
    const [perRequestOf300] = row(more.stdout, 'default');
    const drift = perRequest! / perRequestOf300!;
    assert.ok(drift > 0.67 && drift < 1.5, `100 requests: ${perRequest} M each, 300: ${perRequestOf300} M each`);
  });

  test('refuses a configuration it cannot run', async () => {
    const bad = await run(['--configs', 'default,external-pg']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /external-pg is not a configuration on the embedded database/);
  });
});
