// REQUEST_TIMEOUT_MS reaches PostgreSQL: the statement is cancelled there, the client gets 504,
// and the pool is healthy afterwards.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Client, createTestApp, databaseUrl, type TestApp } from '../../test/harness.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp({ REQUEST_TIMEOUT_MS: '1500', DB_POOL_MAX: '3' });
  api = new Client(t.app);
});
after(() => t.close());

async function activeConduitQueries(): Promise<{ query: string; state: string }[]> {
  const res = await t.db.query<{ query: string; state: string }>(
    `select query, state from pg_stat_activity
      where datname = current_database() and application_name = 'conduit' and pid <> pg_backend_pid() and state = 'active'`,
  );
  return res.rows;
}

test('a statement still running at the deadline is cancelled in PostgreSQL and the client gets 504', async () => {
  const author = await api.register();
  await api.createArticle(author.token, { title: 'Locked out' });
  const dbName = new URL(t.config.databaseUrl!.expose()).pathname.slice(1);
  const locker = new pg.Client({ connectionString: databaseUrl(dbName) });
  await locker.connect();
  try {
    // Any read of articles now waits on the lock: a query that would run forever.
    await locker.query('begin');
    await locker.query('lock table articles in access exclusive mode');
    const started = performance.now();
    const res = await api.get('/api/articles');
    const elapsed = performance.now() - started;

    assert.equal(res.status, 504);
    assert.deepEqual(res.body, { errors: { request: ['timed out'] } });
    assert.equal(res.headers['retry-after'], '1');
    assert.ok(elapsed >= 1490 && elapsed < 3000, `answered at the deadline, took ${elapsed.toFixed(0)} ms`);
    // Cancelled on the server, not merely abandoned by the client: nothing of ours still runs.
    let active = await activeConduitQueries();
    for (let i = 0; i < 20 && active.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      active = await activeConduitQueries();
    }
    assert.deepEqual(active, []);
  } finally {
    await locker.query('rollback');
    await locker.end();
  }
});

test('after deadlines the pool is healthy: requests succeed on every connection', async () => {
  const results = await Promise.all(Array.from({ length: 10 }, () => api.get('/api/articles')));
  assert.deepEqual(
    results.map((r) => r.status),
    Array(10).fill(200),
  );
  assert.ok(t.db.totalCount <= 3);
  assert.equal(t.db.waitingCount, 0);
});

test('a request inside its budget is untouched by the deadline', async () => {
  const u = await api.register();
  const res = await api.get('/api/user', { token: u.token });
  assert.equal(res.status, 200);
});
