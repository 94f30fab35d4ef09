// Forward-only migrations: numbered SQL files applied in order, each in its own transaction,
// under a session-level advisory lock so that instances starting together apply each file once
// (the second waits for the lock, then finds everything applied).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Pool } from './pool.ts';

const MIGRATIONS_DIR = path.join(import.meta.dirname, 'migrations');
// Any constant unique to this application; "conduit" in ASCII.
const LOCK_KEY = 0x636f6e64756974n;

export interface MigrationResult {
  applied: string[];
  latest: string | undefined;
}

export async function listMigrations(): Promise<string[]> {
  return (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d+_[\w-]+\.sql$/.test(f)).sort();
}

export async function migrate(pool: Pool): Promise<MigrationResult> {
  const files = await listMigrations();
  const client = await pool.connect();
  try {
    // Migrations may legitimately run long (an index on a big table): no statement timeout.
    await client.query('set statement_timeout = 0');
    await client.query('select pg_advisory_lock($1)', [LOCK_KEY]);
    try {
      await client.query(
        `create table if not exists schema_migrations (
           version    text primary key,
           applied_at timestamptz not null default now()
         )`,
      );
      const done = new Set(
        (await client.query<{ version: string }>('select version from schema_migrations')).rows.map((r) => r.version),
      );
      const applied: string[] = [];
      for (const file of files) {
        if (done.has(file)) continue;
        const sql = await readFile(path.join(MIGRATIONS_DIR, file), 'utf8');
        await client.query('begin');
        try {
          await client.query(sql);
          await client.query('insert into schema_migrations (version) values ($1)', [file]);
          await client.query('commit');
        } catch (err) {
          await client.query('rollback');
          throw new Error(`migration ${file} failed`, { cause: err });
        }
        applied.push(file);
      }
      return { applied, latest: files.at(-1) };
    } finally {
      await client.query('select pg_advisory_unlock($1)', [LOCK_KEY]);
      await client.query('reset statement_timeout');
    }
  } finally {
    client.release();
  }
}

/** True when every migration file shipped with this build has been applied. */
export async function isMigrated(pool: Pool, files: readonly string[]): Promise<boolean> {
  const res = await pool.query<{ n: number }>(
    `select count(*) as n from schema_migrations where version = any($1::text[])`,
    [files],
  );
  return res.rows[0]?.n === files.length;
}
