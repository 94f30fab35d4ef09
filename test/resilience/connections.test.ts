// Many clients at once against the real process (src/main.ts), as `npm start` runs it:
//   - the listen backlog is HTTP_BACKLOG in every worker mode (Node's 511 made 1,000 clients
//     connecting at once retry their SYNs after 1 s and 3 s);
//   - 1,000 connections opened at once are all answered, none left waiting for seconds;
//   - one address holding thousands of connections leaves another address, and /readyz, answered.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/db/embedded.ts';
import { createDatabase, TEST_JWT_SECRET } from '../harness.ts';
import { hold, sample, type Held } from '../held.ts';
import { startService, type Service } from '../service.ts';

let database: Awaited<ReturnType<typeof createDatabase>>;
let env: Record<string, string>;
before(async () => {
  database = await createDatabase();
  env = { DATABASE_URL: database.url, JWT_SECRET: TEST_JWT_SECRET, RATE_LIMIT: 'off' };
});
after(async () => {
  await database?.drop();
});

/** The accept queue's length as the kernel reports it for a listening port (ss's Send-Q). */
function backlogOf(port: number): number {
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  const fields = out.trim().split(/\s+/);
  return Number(fields[2]);
}

const somaxconn = () => Number(execFileSync('cat', ['/proc/sys/net/core/somaxconn'], { encoding: 'utf8' }));

describe('the listen backlog', () => {
  const modes: Record<string, string>[] = [
    { WORKERS: '1' },
    { WORKERS: '2', WORKERS_MODE: 'cluster' },
    { WORKERS: '2', WORKERS_MODE: 'reuseport' },
  ];
  for (const workers of modes) {
    test(`is HTTP_BACKLOG (capped by net.core.somaxconn) with ${JSON.stringify(workers)}`, async () => {
      const port = await freePort();
      const s = await startService({ ...env, ...workers, PORT: String(port), HTTP_BACKLOG: '1000' });
      try {
        assert.equal(backlogOf(port), Math.min(1000, somaxconn()));
      } finally {
        await s.stop();
      }
    });
  }
});

describe('thousands of connections', () => {
  let s: Service;
  const opened: Held[] = [];
  before(async () => {
    s = await startService({ ...env, HTTP_MAX_CONNECTIONS: '4000' });
  });
  after(async () => {
    for (const h of opened) h.close();
    await s?.stop();
  });

  test('1,000 connections opened at once, while the process is busy, are all answered, none waiting for seconds', async () => {
    // Stopped for 300 ms, as a long GC pause or a burst of work would: the connections wait in
    // the kernel's accept queue. Past its length the kernel drops their SYNs, which the clients
    // retry after 1 s (then 3 s): with Node's default backlog, 511, about half of them did.
    s.proc.kill('SIGSTOP');
    const crowding = hold(s.port, 1000, { waitMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300));
    s.proc.kill('SIGCONT');
    const crowd = await crowding;
    opened.push(crowd);
    assert.equal(crowd.answered, 1000);
    assert.ok(crowd.slowestMs < 1000, `slowest first answer: ${Math.round(crowd.slowestMs)} ms`);
    crowd.close();
  });

  test('one address holding connections up to its bound leaves another address and /readyz answered', async () => {
    // The default per-address bound: half of HTTP_MAX_CONNECTIONS.
    const flood = await hold(s.port, 3000, { from: '127.0.0.2', waitMs: 30_000 });
    opened.push(flood);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(flood.open(), 2000, 'the flooding address keeps its bound of connections, no more');
    const other = await hold(s.port, 500, { from: '127.0.0.3', waitMs: 20_000 });
    opened.push(other);
    assert.equal(other.answered, 500, 'every connection from the other address is answered');
    const ready = await fetch(`${s.url}/readyz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.ok(sample(metrics, 'conduit_http_connections') <= 4000);
    assert.ok(sample(metrics, 'conduit_http_idle_connections_closed_total{reason="room"}') >= 1000);
  });
});
