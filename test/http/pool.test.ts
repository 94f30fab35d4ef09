// Pool exhaustion over a real socket (src/db/pool.ts, DB_POOL_MAX and DB_ACQUIRE_TIMEOUT_MS):
// when every connection is held, an extra request fails fast with 503 + Retry-After in the error
// shape instead of queueing without bound, and the service recovers once connections free up.
// DB_PIPELINE=1: a connection is held by one statement (with more, DB_PIPELINE statements per
// connection must be waiting before the next one waits for a connection: the pipelined test).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Client, createTestApp, databaseUrl, type TestApp } from '../harness.ts';
import { json, listen, request, sleep } from './socket.ts';

let t: TestApp;
let url: string;
let token: string;
let locker: pg.Client;
before(async () => {
  t = await createTestApp({ DB_POOL_MAX: '2', DB_ACQUIRE_TIMEOUT_MS: '300', DB_PIPELINE: '1' });
  // The acquire timeout bounds opening a connection too, which can take longer than 300 ms on a
  // machine busy with other test files: open both before the test, retrying.
  for (let i = 0; ; i++) {
    try {
      await Promise.all([t.db.query('select pg_sleep(0.05)'), t.db.query('select pg_sleep(0.05)')]);
      break;
    } catch (err) {
      if (i === 20) throw err;
    }
  }
  token = (await new Client(t.app).register()).token;
  url = await listen(t);
  const dbName = new URL(t.config.databaseUrl!.expose()).pathname.slice(1);
  locker = new pg.Client({ connectionString: databaseUrl(dbName) });
  await locker.connect();
});
after(async () => {
  await locker?.end();
  await t?.close();
});

// GET /api/user reads the users table on every request (no cache in front of it).
const me = () => request(`${url}/api/user`, { headers: { authorization: `Token ${token}` } });

/** Our statements waiting for a lock in PostgreSQL. */
async function lockWaiters(on: pg.Client = locker): Promise<number> {
  // Inside the locker's transaction pg_stat_activity is a snapshot taken at its first read.
  await on.query('select pg_stat_clear_snapshot()');
  const res = await on.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'conduit' and wait_event_type = 'Lock'`,
  );
  return res.rows[0]!.n;
}

test('with both connections held, a third request gets 503 + Retry-After within the acquire timeout, and all recover', async (ctx) => {
  await locker.query('begin');
  await locker.query('lock table users in access exclusive mode');
  // Two requests each take a connection and wait on the lock: the pool (max 2) is exhausted.
  const blocked = Promise.all([me(), me()]);
  try {
    // Both are waiting on the lock in PostgreSQL, each on its own pooled connection.
    for (let i = 0; i < 100 && (await lockWaiters()) < 2; i++) await sleep(50);
    assert.equal(await lockWaiters(), 2);
    assert.equal(t.db.totalCount, 2);
    assert.equal(t.db.idleCount, 0);

    const started = performance.now();
    const res = await me();
    const elapsed = performance.now() - started;
    ctx.diagnostic(`pool exhausted: 503 after ${elapsed.toFixed(0)} ms`);

    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '1');
    assert.deepEqual(json(res), { errors: { database: ['is unavailable, retry later'] } });
    // The 300 ms acquire timeout, plus slack for a machine busy with other test files.
    assert.ok(elapsed >= 290 && elapsed < 1000, `answered after ${elapsed.toFixed(0)} ms`);
  } finally {
    await locker.query('rollback');
  }

  // The held requests were only waiting: they complete normally once the lock goes.
  const held = await blocked;
  assert.deepEqual(
    held.map((r) => r.status),
    [200, 200],
  );

  const recovered = await Promise.all([
    ...Array.from({ length: 8 }, () => me()),
    request(`${url}/api/articles`),
    request(`${url}/api/tags`),
    request(`${url}/readyz`),
  ]);
  assert.deepEqual(
    recovered.map((r) => r.status),
    Array(recovered.length).fill(200),
  );
  assert.equal(t.db.waitingCount, 0);
  assert.ok(t.db.totalCount <= 2);
});

test('requests beyond the pool that wait less than the acquire timeout are served, not refused', async () => {
  // Six at once on two connections: each waits a few milliseconds, far under 300 ms.
  const results = await Promise.all(Array.from({ length: 6 }, () => me()));
  assert.deepEqual(
    results.map((r) => r.status),
    Array(6).fill(200),
  );
  assert.equal(t.db.waitingCount, 0);
});

test('with DB_PIPELINE=2, four statements wait on two connections before a fifth request is refused 503', async () => {
  const piped = await createTestApp({ DB_POOL_MAX: '2', DB_ACQUIRE_TIMEOUT_MS: '300', DB_PIPELINE: '2' });
  try {
    const pipedUrl = await listen(piped);
    const pipedToken = (await new Client(piped.app).register()).token;
    const read = () => request(`${pipedUrl}/api/user`, { headers: { authorization: `Token ${pipedToken}` } });
    const dbName = new URL(piped.config.databaseUrl!.expose()).pathname.slice(1);
    const lock = new pg.Client({ connectionString: databaseUrl(dbName) });
    await lock.connect();
    try {
      await lock.query('begin');
      await lock.query('lock table users in access exclusive mode');
      const blocked = Promise.all([read(), read(), read(), read()]);
      // Two run (waiting on the lock), two are pipelined behind them; none waits for a connection.
      for (let i = 0; i < 100 && (await lockWaiters(lock)) < 2; i++) await sleep(20);
      await sleep(100);
      assert.equal(piped.db.waitingCount, 0);
      const res = await read();
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '1');
      await lock.query('rollback');
      assert.deepEqual(
        (await blocked).map((r) => r.status),
        [200, 200, 200, 200],
      );
    } finally {
      await lock.end();
    }
  } finally {
    await piped.close();
  }
});
