// The pool's own reports and the deadline's cancel, on the test server: every checkout is told to
// its observers with its wait (the metrics' db_client_connection_wait_time_seconds and
// db_client_connection_failures_total read them), and a statement still running at its request's
// deadline is stopped in PostgreSQL by pg_cancel_backend from the cancelling pool.
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

test('observers hear of every checkout, query included, with its wait and its error', async () => {
  const seen: { waitMs: number; err: unknown }[] = [];
  const stop = pool.observeAcquire((waitMs, err) => seen.push({ waitMs, err }));
  try {
    await pool.query('select 1');
    const held = await pool.connect();
    const waiting = pool.query('select 1');
    await sleep(50);
    held.release();
    await waiting;
    // The pool (max 1) stays busy past the acquire timeout: that checkout fails.
    const busy = await pool.connect();
    await assert.rejects(pool.query('select 1'), /timeout exceeded when trying to connect/);
    busy.release();
    // Inside a request whose time is up: refused before it waits, and reported as failed.
    await assert.rejects(
      requestScope.run({ deadline: performance.now() - 1, timeoutMs: 10 }, () => pool.query('select 1')),
      DeadlineExceeded,
    );
  } finally {
    stop();
  }
  assert.equal(seen.length, 6);
  assert.deepEqual(
    seen.map((s) => s.err !== undefined),
    [false, false, false, false, true, true],
  );
  assert.ok(seen[2]!.waitMs >= 45, `the query that waited for the held connection: ${seen[2]!.waitMs} ms`);
  assert.ok(seen[4]!.waitMs >= 190, `the checkout that timed out: ${seen[4]!.waitMs} ms`);
  // Stopped observers hear nothing more.
  await pool.query('select 1');
  assert.equal(seen.length, 6);
});

test("a statement running at its request's deadline is cancelled in PostgreSQL with pg_cancel_backend", async () => {
  const started = performance.now();
  await assert.rejects(
    requestScope.run({ deadline: performance.now() + 300, timeoutMs: 300 }, () => pool.query('select pg_sleep(30)')),
    (err: Error & { code?: string }) => err.code === '57014',
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 5000, `cancelled at the deadline, after ${elapsed.toFixed(0)} ms`);
  // The cancelled connection is closed, not reused; the pool serves the next statement.
  assert.deepEqual((await pool.query<{ one: number }>('select 1 as one')).rows, [{ one: 1 }]);
});
