// The pool's own reports and the deadline's cancel, on the test server: every query is told to
// its observers with its wait for a connection (the metrics' db_client_connection_wait_time_seconds
// and db_client_connection_failures_total read them), and a statement still running at its
// request's deadline is cancelled in PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDatabase } from '../../test/harness.ts';
import { DeadlineExceeded, requestScope } from './deadline.ts';
import { createPool, type Pool } from './pool.ts';

let database: Awaited<ReturnType<typeof createDatabase>>;
let pool: Pool;
before(async () => {
  database = await createDatabase({ empty: true });
  pool = createPool(database.url, { dbPoolMax: 1, dbAcquireTimeoutMs: 200, requestTimeoutMs: 60_000 });
});
after(async () => {
  await pool.end();
  await database.drop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('observers hear of every query with its wait for a connection, and of the acquire timeout as a failure', async () => {
  const seen: { waitMs: number; err: unknown }[] = [];
  const stop = pool.observeAcquire((waitMs, err) => seen.push({ waitMs, err }));
  try {
    await pool.query('select 1');
    // The pool's one connection reserved: the next query waits for it.
    const held = await pool.connect();
    const waiting = pool.query('select 1');
    await sleep(50);
    held.release();
    await waiting;
    // Reserved past the acquire timeout: that query fails without being sent.
    const busy = await pool.connect();
    await assert.rejects(pool.query('select 1'), (err: Error & { code?: string }) => err.code === 'QUEUE_TIMEOUT');
    busy.release();
    // Inside a request whose time is up: refused before it is sent or waits.
    await assert.rejects(
      requestScope.run({ deadline: performance.now() - 1, timeoutMs: 10 }, () => pool.query('select 1')),
      DeadlineExceeded,
    );
  } finally {
    stop();
  }
  assert.deepEqual(
    seen.map((s) => s.err !== undefined),
    [false, false, true],
  );
  assert.ok(seen[1]!.waitMs >= 45, `the query that waited for the held connection: ${seen[1]!.waitMs} ms`);
  assert.ok(seen[2]!.waitMs >= 190, `the query that timed out: ${seen[2]!.waitMs} ms`);
  // Stopped observers hear nothing more.
  await pool.query('select 1');
  assert.equal(seen.length, 3);
});

test("a statement running at its request's deadline is cancelled in PostgreSQL", async () => {
  const started = performance.now();
  await assert.rejects(
    requestScope.run({ deadline: performance.now() + 300, timeoutMs: 300 }, () => pool.query('select pg_sleep(30)')),
    (err: Error & { code?: string }) => err.code === '57014',
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 5000, `cancelled at the deadline, after ${elapsed.toFixed(0)} ms`);
  // Nothing of ours still runs in PostgreSQL, and the pool serves the next statement.
  const running = await pool.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity where query like 'select pg_sleep(30)%' and state = 'active'`,
  );
  assert.equal(running.rows[0]!.n, 0);
  assert.deepEqual((await pool.query<{ one: number }>('select 1 as one')).rows, [{ one: 1 }]);
});

test('a query waiting for a connection at its deadline is withdrawn, never sent', async () => {
  const held = await pool.connect();
  try {
    const started = performance.now();
    await assert.rejects(
      requestScope.run({ deadline: performance.now() + 100, timeoutMs: 100 }, () => pool.query('select 1')),
      (err: Error & { code?: string }) => err.code === '57014',
    );
    assert.ok(performance.now() - started < 190, 'rejected at the deadline, before the acquire timeout');
  } finally {
    held.release();
  }
});

test('int8 and int8[] come back as numbers, and undefined is sent as null', async () => {
  const res = await pool.query<{ n: number; ids: number[]; none: null }>('select $1::int8 as n, $2::int8[] as ids, $3::text as none', [
    7,
    [1, 2],
    undefined,
  ]);
  assert.deepEqual(res.rows, [{ n: 7, ids: [1, 2], none: null }]);
});
