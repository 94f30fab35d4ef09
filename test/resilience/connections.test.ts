// Many clients at once against the real process (src/main.ts), as `npm start` runs its build:
//   - the listen backlog is HTTP_BACKLOG in every worker mode (Node's 511 made 1,000 clients
//     connecting at once retry their SYNs after 1 s and 3 s);
//   - 1,000 connections opened at once are all answered, none left waiting for seconds;
//   - one address holding thousands of connections leaves another address, and /readyz, answered.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/db/embedded.ts';
import { createDatabase, TEST_JWT_SECRET } from '../harness.ts';
import { hold, sample, type Held } from '../held.ts';
import { startService, type Service } from '../service.ts';
import { wrkPath } from '../../bench/wrk.ts';

let database: Awaited<ReturnType<typeof createDatabase>>;
let env: Record<string, string>;
before(async () => {
  database = await createDatabase();
  env = { DATABASE_URL: database.url, JWT_SECRET: TEST_JWT_SECRET, RATE_LIMIT: 'off' };
});
after(async () => {
  await database?.drop();
});

/** The accept queue's length (ss's Send-Q) of each socket listening on a port. */
function backlogsOf(port: number): number[] {
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .map((line) => Number(line.trim().split(/\s+/)[2]));
}

const somaxconn = () => Number(execFileSync('cat', ['/proc/sys/net/core/somaxconn'], { encoding: 'utf8' }));

describe('the listening sockets', () => {
  // HTTP_LISTENERS sockets in each process that binds the port itself; the supervisor's one in
  // cluster mode, where it accepts for the workers.
  const modes: [Record<string, string>, number][] = [
    [{ WORKERS: '1' }, 8],
    [{ WORKERS: '2', WORKERS_MODE: 'cluster' }, 1],
    [{ WORKERS: '2', WORKERS_MODE: 'reuseport' }, 16],
  ];
  for (const [workers, sockets] of modes) {
    test(`${sockets} with HTTP_LISTENERS=8 and ${JSON.stringify(workers)}, each with the backlog HTTP_BACKLOG (capped by net.core.somaxconn)`, async () => {
      const port = await freePort();
      const s = await startService({ ...env, ...workers, PORT: String(port), HTTP_BACKLOG: '1000', HTTP_LISTENERS: '8' });
      try {
        // Ready is when one process answers; the other worker may still be binding its sockets.
        for (let i = 0; i < 100 && backlogsOf(port).length < sockets; i++) await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(backlogsOf(port), Array<number>(sockets).fill(Math.min(1000, somaxconn())));
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

  test('1,000 connections opened at once onto a process busy serving 300 others are all answered within 2 s', async () => {
    // Node accepts one connection per listening socket per turn of its event loop, and each turn
    // here serves wrk's 300 busy connections: with one socket (HTTP_LISTENERS=1) the crowd came
    // in a few at a time and its last connection waited 7 s; with the default 512, 0.4-0.5 s.
    assert.ok(wrkPath(), 'this test loads the process with wrk (apt-get install wrk)');
    const load = spawn('wrk', ['-t1', '-c300', '-d8s', `${s.url}/healthz`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let report = '';
    load.stdout.on('data', (d: Buffer) => (report += d.toString()));
    const done = once(load, 'exit');
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const crowd = await hold(s.port, 1000, { waitMs: 20_000 });
      opened.push(crowd);
      assert.equal(crowd.answered, 1000);
      assert.ok(crowd.slowestMs < 2000, `slowest first answer: ${Math.round(crowd.slowestMs)} ms`);
      crowd.close();
    } finally {
      load.kill('SIGINT');
      await done;
    }
    assert.match(report, /Requests\/sec/, 'wrk kept the process busy throughout');
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
