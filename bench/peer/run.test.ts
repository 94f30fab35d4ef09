// Peer mode end to end, small and short: a Conduit instance in this process plays the peer (a
// RealWorld API at a URL, on its own database), the harness seeds it and its own Conduit through
// their APIs, measures both in alternating rounds and writes the side-by-side table.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { createDatabase, createTestAppOn, type TestApp } from '../../test/harness.ts';
import type { PeerResults } from './table.ts';

const RUN = path.join(import.meta.dirname, '..', 'run.ts');

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

describe('npm run bench -- --peer', { timeout: 240_000 }, () => {
  let peer: TestApp | undefined;
  let database: Awaited<ReturnType<typeof createDatabase>> | undefined;
  let out: string | undefined;
  after(async () => {
    await peer?.close();
    await database?.drop();
    if (out) await rm(out, { recursive: true, force: true });
  });

  test('seeds both through their APIs, measures them in rounds, writes the table with ratios and costs', async () => {
    const server = process.env.CONDUIT_TEST_SERVER_URL!;
    database = await createDatabase();
    peer = await createTestAppOn(database.url, { CACHE: 'off' });
    await peer.app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(peer.app.server.address() as AddressInfo).port}`;
    out = await mkdtemp(path.join(os.tmpdir(), 'conduit-bench-peer-test-'));
    const args = [
      RUN,
      '--peer',
      `twin=${url}`,
      '--peer-database',
      `twin=${database.url}`,
      '--peer-pg',
      server,
      '--configs',
      'cache-off',
      '--scenarios',
      'write,list',
      '--rounds',
      '2',
      '--equal-load',
      '50',
      '--duration',
      '0.5',
      '--warmup',
      '0.3',
      '--connections',
      '4',
      '--loadgen',
      'autocannon',
      '--users',
      '6',
      '--articles',
      '24',
      '--comments',
      '10',
      '--favorites',
      '20',
      '--follows',
      '10',
      '--tags',
      '6',
      '--token-users',
      '3',
      '--out',
      out,
    ];
    // The peer answers from this process's event loop: the harness runs as a child, not awaited synchronously.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const timer = setTimeout(() => child.kill('SIGKILL'), 200_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    assert.equal(code, 0, stderr);

    const r = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as PeerResults;
    assert.equal(r.mode, 'peer');
    assert.equal(r.ok, true, r.failures.join('\n'));
    assert.deepEqual(
      r.targets.map((t) => `${t.name}:${t.kind}`),
      ['twin:peer', 'Conduit cache-off:conduit'],
    );
    assert.equal(r.targets[1]!.database?.includes('bench_peer_'), true);
    assert.deepEqual(
      r.cells.map((c) => `${c.scenario}/${c.target}`),
      ['list/twin', 'list/Conduit cache-off', 'write/twin', 'write/Conduit cache-off'],
      'writes last',
    );
    assert.equal(r.rounds.length, 8);
    assert.deepEqual(
      r.rounds.filter((x) => x.scenario === 'list').map((x) => `${x.round}:${x.target}`),
      ['1:twin', '1:Conduit cache-off', '2:Conduit cache-off', '2:twin'],
      'alternating, the order rotated',
    );
    for (const c of r.cells) {
      assert.equal(c.rounds, 2);
      assert.ok(c.requestsPerSec > 0 && c.p99Ms >= c.p50Ms, `${c.scenario}/${c.target}`);
      assert.equal(c.errors + c.non2xx, 0);
      assert.ok(c.ratio !== null && c.ratio > 0);
      if (c.target === 'twin') assert.equal(c.ratio, 1);
    }
    // Conduit's pid is the harness's own child; the twin's is found from the port (this process).
    const conduit = r.cells.find((c) => c.target === 'Conduit cache-off' && c.scenario === 'list')!;
    assert.ok(conduit.cpuUsPerResponse! > 0);
    assert.equal(r.targets[0]!.pid, process.pid);
    const preload = (await query<{ v: string }>(server, "select current_setting('shared_preload_libraries') as v"))[0]!.v;
    if (preload.includes('pg_stat_statements')) {
      // Cache off: every list request reaches PostgreSQL, on both.
      for (const c of r.cells.filter((x) => x.scenario === 'list')) assert.ok(c.pgCallsPerRequest! >= 1 && c.pgUsPerRequest! > 0, c.target);
    } else {
      assert.ok(
        r.notes.some((n) =>
          /pg_stat_statements not available on .* \(add shared_preload_libraries = 'pg_stat_statements' and restart\)/.test(n),
        ),
        r.notes.join('\n'),
      );
      assert.ok(r.cells.every((c) => c.pgUsPerRequest === null));
    }

    // At equal load: each scenario's rate is half its slower target's median, and both were paced at it.
    const e = r.equalLoad!;
    assert.equal(e.percent, 50);
    for (const { name, rate } of e.scenarios) {
      const slowest = Math.min(...r.cells.filter((c) => c.scenario === name).map((c) => c.requestsPerSec));
      assert.equal(rate, Math.max(1, Math.round(slowest / 2)), name);
      for (const c of e.cells.filter((x) => x.scenario === name)) {
        assert.equal(c.rounds, 2);
        assert.equal(c.errors + c.non2xx, 0);
        assert.ok(Math.abs(c.requestsPerSec - rate) <= rate * 0.05 + 2, `${name}/${c.target}: ${c.requestsPerSec} req/s paced at ${rate}`);
      }
    }
    assert.deepEqual(
      e.scenarios.map((x) => x.name),
      ['list', 'write'],
    );
    assert.equal(r.rounds.length, 8, 'the closed-loop rounds kept apart');

    const md = await readFile(path.join(out, 'summary.md'), 'utf8');
    assert.match(
      md,
      /## At equal load\n\n.*\n\n\| scenario \| twin \| Conduit cache-off \|\n\|---\|--:\|--:\|\n\| list<br>[\d,]+ req\/s \| p50 \*\*/,
    );
    const table = md.indexOf('| scenario | twin | Conduit cache-off |');
    assert.ok(table > 0, md);
    assert.ok(md.lastIndexOf('bench/run.ts --peer twin=', table) > 0, 'the command above the table');
    assert.match(
      md,
      /^\| list \| \*\*[\d,]+\*\* req\/s \(1\.00×\)<br>p50 [\d.]+ \/ p99 [\d.]+ ms<br>CPU [\d.,]+ µs\/resp<br>PG .*\| \*\*[\d,]+\*\* req\/s \(\d+\.\d\d×\)/m,
    );
    assert.deepEqual(
      await query(server, "select datname from pg_database where datname like 'bench\\_peer\\_%'"),
      [],
      "Conduit's throwaway databases are dropped",
    );
  });
});
