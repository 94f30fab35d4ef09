// Every parameterised statement is prepared once per connection, on the real server: what the
// connection holds is read back from pg_prepared_statements on that same connection.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';

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

test('statements without parameters are not prepared', async () => {
  await t.db.query('select 12345 as unprepared');
  await t.db.query('select $1::int * 2 as doubled', [21]);

  const statements = (await preparedOnTheConnection()).map((p) => p.statement);
  assert.ok(!statements.some((s) => s.includes('12345')), 'a statement without parameters was prepared');
  assert.ok(
    statements.some((s) => s.includes('as doubled')),
    'a statement with parameters was not prepared: this test would not see one',
  );
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
