// Every parameterised statement is prepared once per connection, on the real server: what the
// connection holds is read back from pg_prepared_statements on that same connection.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';
import { plannedPerCall } from './prepared.ts';

let t: TestApp;
let api: Client;
before(async () => {
  // One connection: every request and every check below uses the same one.
  t = await createTestApp({ DB_POOL_MAX: '1', CACHE: 'off' });
  api = new Client(t.app);
});
after(() => t.close());

interface Prepared {
  name: string;
  statement: string;
  runs: number;
}

async function preparedOnTheConnection(): Promise<Prepared[]> {
  const res = await t.db.query<Prepared>(
    'select name, statement, (generic_plans + custom_plans)::int as runs from pg_prepared_statements order by name',
  );
  return res.rows;
}

test('a parameterised statement is parsed once per connection and then only executed', async () => {
  const text = 'select $1::int + 1 as n';
  for (const n of [1, 2, 3]) assert.equal((await t.db.query<{ n: number }>(text, [n])).rows[0]!.n, n + 1);

  const mine = (await preparedOnTheConnection()).filter((p) => p.statement === text);
  assert.deepEqual(
    mine.map((p) => p.runs),
    [3],
  );
});

test('the article read is prepared on the connection and reused by every later read', async () => {
  const author = await api.register();
  const article = await api.createArticle(author.token, { title: 'Prepared once' });
  const before = await preparedOnTheConnection();
  for (let i = 0; i < 4; i++) assert.equal((await api.get(`/api/articles/${article.slug}`)).status, 200);

  const after = await preparedOnTheConnection();
  const read = after.find((p) => /where a\.slug = \$1/.test(p.statement));
  assert.ok(read, `the article read is not among the prepared statements:\n${after.map((p) => p.statement).join('\n---\n')}`);
  const earlier = before.find((p) => p.name === read.name)?.runs ?? 0;
  assert.equal(read.runs - earlier, 4);
  // Nothing else was prepared for those four reads: no statement text made per request.
  assert.equal(after.length - before.length, earlier === 0 ? 1 : 0);
});

test('statements without parameters and statements planned per call are not prepared', async () => {
  const planned = 'select $1::int * 2 as doubled, $2::bigint as nothing';
  assert.deepEqual((await t.db.query<{ doubled: number }>(plannedPerCall(planned, [21, null]))).rows[0], { doubled: 42, nothing: null });
  await t.db.query('select 12345 as unprepared');

  const statements = (await preparedOnTheConnection()).map((p) => p.statement);
  assert.ok(!statements.some((s) => s.includes('as doubled')), 'the statement planned per call was prepared');
  assert.ok(!statements.some((s) => s.includes('12345')), 'a statement without parameters was prepared');
});

test('a statement planned per call takes integers and null only: nothing else can reach its text', () => {
  assert.equal(plannedPerCall('select $1, $2, $10', [1, null, 3, 4, 5, 6, 7, 8, 9, -10]), 'select 1, null, -10');
  for (const bad of ['1; drop table users', 1.5, '1', true, undefined, 2 ** 60]) {
    assert.throws(() => plannedPerCall('select $1', [bad]), TypeError, String(bad));
  }
});

test('the pool plans each prepared statement once: its connections keep generic plans', async () => {
  const res = await t.db.query<{ plan_cache_mode: string }>('show plan_cache_mode');
  assert.equal(res.rows[0]!.plan_cache_mode, 'force_generic_plan');
});

test('with DB_PREPARE=off (a pooler that cannot follow prepared statements) nothing is prepared', async () => {
  const off = await createTestApp({ DB_POOL_MAX: '1', CACHE: 'off', DB_PREPARE: 'off' });
  try {
    const author = await new Client(off.app).register();
    assert.equal((await new Client(off.app).get(`/api/profiles/${author.username}`)).status, 200);
    const res = await off.db.query<{ n: number }>('select count(*)::int as n from pg_prepared_statements');
    assert.equal(res.rows[0]!.n, 0);
  } finally {
    await off.close();
  }
});
