// Migrations run at every start, possibly by several instances at once (advisory lock).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createDatabase } from '../../test/harness.ts';
import { isMigrated, listMigrations, migrate } from './migrate.ts';
import { createPool, type Pool } from './pool.ts';

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function emptyDatabase(): Promise<Pool> {
  const db = await createDatabase({ empty: true });
  const pool = createPool(db.url, { dbPoolMax: 4, dbAcquireTimeoutMs: 10_000 });
  cleanup.push(async () => {
    await pool.end();
    await db.drop();
  });
  return pool;
}

async function schemaSummary(pool: Pool) {
  const tables = await pool.query<{ table_name: string }>(
    `select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
  );
  const indexes = await pool.query<{ indexname: string }>(`select indexname from pg_indexes where schemaname = 'public' order by indexname`);
  const versions = await pool.query<{ version: string }>('select version from schema_migrations order by version');
  return { tables: tables.rows.map((r) => r.table_name), indexes: indexes.rows.map((r) => r.indexname), versions: versions.rows.map((r) => r.version) };
}

test('migrating an empty database creates the schema and records every migration', async () => {
  const pool = await emptyDatabase();
  const files = await listMigrations();
  const result = await migrate(pool);
  assert.deepEqual(result.applied, files);
  assert.equal(await isMigrated(pool, files), true);
  const summary = await schemaSummary(pool);
  for (const table of ['users', 'follows', 'articles', 'tags', 'article_tags', 'favorites', 'comments', 'schema_migrations']) {
    assert.ok(summary.tables.includes(table), table);
  }
  assert.deepEqual(summary.versions, files);
});

test('migrating twice applies nothing the second time and changes nothing', async () => {
  const pool = await emptyDatabase();
  await migrate(pool);
  const before = await schemaSummary(pool);
  const again = await migrate(pool);
  assert.deepEqual(again.applied, []);
  assert.deepEqual(await schemaSummary(pool), before);
});

test('two instances migrating the same database at once leave one correct schema', async () => {
  const db = await createDatabase({ empty: true });
  const a = createPool(db.url, { dbPoolMax: 2, dbAcquireTimeoutMs: 10_000 });
  const b = createPool(db.url, { dbPoolMax: 2, dbAcquireTimeoutMs: 10_000 });
  cleanup.push(async () => {
    await a.end();
    await b.end();
    await db.drop();
  });
  const files = await listMigrations();
  const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
  // Exactly one of them applied the files; the other waited on the lock and found them applied.
  assert.deepEqual([...ra.applied, ...rb.applied], files);
  assert.deepEqual((await schemaSummary(a)).versions, files);
});

test('an unmigrated database is reported as not migrated', async () => {
  const pool = await emptyDatabase();
  await pool.query('create table schema_migrations (version text primary key, applied_at timestamptz not null default now())');
  assert.equal(await isMigrated(pool, await listMigrations()), false);
});
