// Migrations run at every start, possibly by several instances at once (advisory lock).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { createDatabase } from '../../test/harness.ts';
import {
  checksum,
  createMigration,
  isMigrated,
  listMigrations,
  migrate,
  MIGRATIONS_DIR,
  newMigrationName,
  sortMigrations,
} from './migrate.ts';
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
  const indexes = await pool.query<{ indexname: string }>(
    `select indexname from pg_indexes where schemaname = 'public' order by indexname`,
  );
  const versions = await pool.query<{ version: string }>('select version from schema_migrations order by version');
  return {
    tables: tables.rows.map((r) => r.table_name),
    indexes: indexes.rows.map((r) => r.indexname),
    versions: versions.rows.map((r) => r.version),
  };
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

/** A migrations folder of its own: the shipped files plus the test's, which it may then edit. */
async function migrationsDir(extra: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'conduit-migrations-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  for (const f of await listMigrations()) await copyFile(path.join(MIGRATIONS_DIR, f), path.join(dir, f));
  for (const [f, sql] of Object.entries(extra)) await writeFile(path.join(dir, f), sql);
  return dir;
}

test('a new migration is named by its UTC time and sorts after every numbered and timestamped file', () => {
  const now = new Date('2026-12-05T17:40:00.123Z');
  assert.equal(newMigrationName('add_bio_index', now, ['001_schema.sql', '002_feed.sql']), '20261205174000_add_bio_index.sql');
  // A clock behind the newest file still yields a later name.
  assert.equal(newMigrationName('later', now, ['001_schema.sql', '20270101000000_future.sql']), '20270101000001_later.sql');
  assert.throws(() => newMigrationName('Bad Name', now, []), /lower-case letters/);
  // By number, not as strings: as strings "300_c" would sort after "2026…".
  assert.deepEqual(sortMigrations(['20261205174000_d.sql', '300_c.sql', 'README.md', '002_b.sql', '001_schema.sql', '002_a.sql']), [
    '001_schema.sql',
    '002_a.sql',
    '002_b.sql',
    '300_c.sql',
    '20261205174000_d.sql',
  ]);
});

test('npm run migrate:new creates an empty migration that lists after the existing ones', async () => {
  const dir = await migrationsDir({ '002_parallel.sql': 'select 1;\n' });
  const run = promisify(execFile);
  const { stdout } = await run(process.execPath, [
    path.join(import.meta.dirname, '../../scripts/migrate-new.ts'),
    '--dir',
    dir,
    'add_widgets',
  ]);
  const created = path.basename(stdout.trim());
  assert.match(created, /^\d{14}_add_widgets\.sql$/);
  const files = await listMigrations(dir);
  assert.equal(files.at(-1), created);
  assert.deepEqual(files.slice(0, -1), [...(await listMigrations()), '002_parallel.sql'].sort());
  assert.match(await readFile(path.join(dir, created), 'utf8'), /^-- add widgets: /);
  // Made twice in the same second, the second one still sorts after the first.
  const second = path.basename(await createMigration('more_widgets', { dir, now: new Date() }));
  assert.equal((await listMigrations(dir)).at(-1), second);
});

test('numbered and timestamped migrations apply in number order, each with its sha256 recorded', async () => {
  // Each file depends on the one before: applied out of order, one of them fails.
  const extra = {
    '20261205174000_widgets_b.sql': 'alter table widgets add column b int;\n',
    '002_widgets.sql': 'create table widgets (id int);\n',
    '003_widgets_a.sql': 'alter table widgets add column a int;\n',
  };
  const dir = await migrationsDir(extra);
  const pool = await emptyDatabase();
  const { applied } = await migrate(pool, { dir });
  // The project's own migrations are applied among them; the fixture's keep their number order.
  assert.deepEqual(
    applied.filter((v) => v in extra),
    ['002_widgets.sql', '003_widgets_a.sql', '20261205174000_widgets_b.sql'],
  );
  const rows = (await pool.query<{ version: string; checksum: string }>('select version, checksum from schema_migrations')).rows;
  assert.equal(rows.length, applied.length);
  for (const row of rows) assert.equal(row.checksum, checksum(await readFile(path.join(dir, row.version), 'utf8')), row.version);
  assert.match(rows[0]?.checksum ?? '', /^[0-9a-f]{64}$/);
});

test('an applied migration edited afterwards stops migrating with an error naming the file, and nothing new is applied', async () => {
  const dir = await migrationsDir({ '002_widgets.sql': 'create table widgets (id int);\n' });
  const pool = await emptyDatabase();
  await migrate(pool, { dir });
  await writeFile(path.join(dir, '002_widgets.sql'), 'create table widgets (id bigint);\n');
  await writeFile(path.join(dir, '003_gadgets.sql'), 'create table gadgets (id int);\n');
  await assert.rejects(migrate(pool, { dir }), /migration 002_widgets\.sql was changed after it was applied/);
  const versions = (await pool.query<{ version: string }>('select version from schema_migrations')).rows.map((r) => r.version);
  assert.ok(!versions.includes('003_gadgets.sql'));
  // The lock was released: restoring the file lets the next start through.
  await writeFile(path.join(dir, '002_widgets.sql'), 'create table widgets (id int);\n');
  assert.deepEqual((await migrate(pool, { dir })).applied, ['003_gadgets.sql']);
});

test('a line-ending change (LF to CRLF) is not an edit', async () => {
  const dir = await migrationsDir({ '002_widgets.sql': 'create table widgets (id int);\nselect 1;\n' });
  const pool = await emptyDatabase();
  await migrate(pool, { dir });
  await writeFile(path.join(dir, '002_widgets.sql'), 'create table widgets (id int);\r\nselect 1;\r\n');
  assert.deepEqual((await migrate(pool, { dir })).applied, []);
});

test('a database migrated before checksums existed gets the column and its checksums filled, not refused', async () => {
  const pool = await emptyDatabase();
  const files = await listMigrations();
  // The table as earlier releases created it, with every shipped file applied.
  await pool.query('create table schema_migrations (version text primary key, applied_at timestamptz not null default now())');
  for (const f of files) {
    await pool.query(await readFile(path.join(MIGRATIONS_DIR, f), 'utf8'));
    await pool.query('insert into schema_migrations (version) values ($1)', [f]);
  }
  const result = await migrate(pool);
  assert.deepEqual(result.applied, []);
  const rows = (
    await pool.query<{ version: string; checksum: string | null }>('select version, checksum from schema_migrations order by version')
  ).rows;
  for (const row of rows) assert.equal(row.checksum, checksum(await readFile(path.join(MIGRATIONS_DIR, row.version), 'utf8')), row.version);
  // From now on an edit is caught.
  const dir = await migrationsDir();
  const first = files[0] ?? '';
  await writeFile(path.join(dir, first), `${await readFile(path.join(dir, first), 'utf8')}\n-- edited\n`);
  await assert.rejects(migrate(pool, { dir }), new RegExp(`migration ${first.replace('.', '\\.')} was changed`));
});

test('a migration applied by a newer release, absent from this one, is left alone', async () => {
  const dir = await migrationsDir({ '002_widgets.sql': 'create table widgets (id int);\n' });
  const pool = await emptyDatabase();
  await migrate(pool, { dir });
  await rm(path.join(dir, '002_widgets.sql'));
  assert.deepEqual((await migrate(pool, { dir })).applied, []);
});
