// Forward-only migrations: SQL files applied in order, each in its own transaction, under a
// session-level advisory lock so that instances starting together apply each file once (the
// second waits for the lock, then finds everything applied).
//
// File names are `<number>_<name>.sql`. The first ones were numbered (001_schema.sql); new ones
// take a UTC timestamp (20261205174000_add_x.sql, `npm run migrate:new -- add_x`), so two
// branches adding a migration at once do not both take 002. Files are ordered by that number,
// not as strings: a timestamp is larger than any sequence number, whatever their lengths.
//
// Each applied file's sha256 is recorded; a file edited after it was applied stops the start
// (docs/migrations.md: a change to the schema is a new file, never an edit of an old one).
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Pool } from './pool.ts';

export const MIGRATIONS_DIR = path.join(import.meta.dirname, 'migrations');
// Any constant unique to this application; "conduit" in ASCII.
const LOCK_KEY = 0x636f6e64756974n;
const FILE_NAME = /^(\d+)_[\w-]+\.sql$/;

export interface MigrationResult {
  applied: string[];
  latest: string | undefined;
}

export interface MigrateOptions {
  /** The folder of SQL files; tests point it elsewhere. */
  dir?: string;
}

function sequence(file: string): bigint {
  const match = FILE_NAME.exec(file);
  if (!match?.[1]) throw new Error(`not a migration file name: ${file}`);
  return BigInt(match[1]);
}

/** Migration files in the order they apply: by their number, then by name. */
export function sortMigrations(files: readonly string[]): string[] {
  return files
    .filter((f) => FILE_NAME.test(f))
    .sort((a, b) => {
      const d = sequence(a) - sequence(b);
      return d < 0n ? -1 : d > 0n ? 1 : a < b ? -1 : a > b ? 1 : 0;
    });
}

export async function listMigrations(dir: string = MIGRATIONS_DIR): Promise<string[]> {
  return sortMigrations(await readdir(dir));
}

/**
 * The sha256 of a migration's text. Line endings are normalised first: a checkout that turns
 * LF into CRLF (Git's autocrlf on Windows) has not edited the migration.
 */
export function checksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex');
}

/**
 * The file name for a new migration made at `now`: its UTC time as YYYYMMDDHHMMSS, or one more
 * than the largest existing number if that is not larger (a clock set back), so it always
 * applies after every existing file.
 */
export function newMigrationName(name: string, now: Date, existing: readonly string[]): string {
  if (!/^[a-z0-9][a-z0-9_]*$/.test(name)) throw new Error(`a migration name is lower-case letters, digits and _, got "${name}"`);
  const stamp = BigInt(now.toISOString().replace(/\D/g, '').slice(0, 14));
  const latest = sortMigrations(existing).at(-1);
  const next = latest !== undefined && sequence(latest) >= stamp ? sequence(latest) + 1n : stamp;
  return `${next}_${name}.sql`;
}

/** Writes an empty migration file and returns its path (`npm run migrate:new -- NAME`). */
export async function createMigration(name: string, opts: MigrateOptions & { now?: Date } = {}): Promise<string> {
  const dir = opts.dir ?? MIGRATIONS_DIR;
  const file = path.join(dir, newMigrationName(name, opts.now ?? new Date(), await readdir(dir)));
  const header = `-- ${name.replace(/_/g, ' ')}: why this change, and which step of expand/contract it is (docs/migrations.md).\n\n`;
  await writeFile(file, header, { flag: 'wx' });
  return file;
}

export async function migrate(pool: Pool, opts: MigrateOptions = {}): Promise<MigrationResult> {
  const dir = opts.dir ?? MIGRATIONS_DIR;
  const files = await listMigrations(dir);
  const texts = new Map<string, string>();
  for (const file of files) texts.set(file, await readFile(path.join(dir, file), 'utf8'));
  const client = await pool.connect();
  try {
    // Migrations may legitimately run long (an index on a big table): no statement timeout.
    await client.query('set statement_timeout = 0');
    await client.query('select pg_advisory_lock($1)', [LOCK_KEY]);
    try {
      await client.query(
        `create table if not exists schema_migrations (
           version    text primary key,
           applied_at timestamptz not null default now(),
           checksum   text
         )`,
      );
      // Databases migrated before checksums were recorded have the table without the column.
      await client.query('alter table schema_migrations add column if not exists checksum text');
      const done = new Map(
        (await client.query<{ version: string; checksum: string | null }>('select version, checksum from schema_migrations')).rows.map(
          (r) => [r.version, r.checksum],
        ),
      );
      for (const [file, recorded] of done) {
        const sql = texts.get(file);
        // Applied by a newer release than this one (a rolling deploy): not ours to judge.
        if (sql === undefined) continue;
        if (recorded === null) {
          // Applied before checksums existed: the file as it is now is taken as what was applied.
          await client.query('update schema_migrations set checksum = $2 where version = $1 and checksum is null', [file, checksum(sql)]);
        } else if (recorded !== checksum(sql)) {
          throw new Error(
            `migration ${file} was changed after it was applied (recorded sha256 ${recorded}, file ${checksum(sql)}): ` +
              'restore it and put the change in a new migration (docs/migrations.md)',
          );
        }
      }
      const applied: string[] = [];
      for (const file of files) {
        if (done.has(file)) continue;
        const sql = texts.get(file) ?? '';
        await client.query('begin');
        try {
          await client.query(sql);
          await client.query('insert into schema_migrations (version, checksum) values ($1, $2)', [file, checksum(sql)]);
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
  const res = await pool.query<{ n: number }>(`select count(*) as n from schema_migrations where version = any($1::text[])`, [files]);
  return res.rows[0]?.n === files.length;
}
