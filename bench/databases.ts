// Throwaway databases for a run. Each PostgreSQL server a run uses (an embedded one the harness
// starts in a temp dir, or the machine's own) gets a template database, migrated and seeded
// once; every measured run then gets a fresh copy of it (`create database .. template ..`), so
// writes of one run never change what the next one reads, and every configuration starts from
// the same rows. Everything is dropped or deleted at the end.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Queryable } from '../src/db/pool.ts';
import { seed, type SeedOptions, type SeedSummary } from '../scripts/seed.ts';
import type { DatabaseKind } from './configs.ts';
import type { Catalog } from './scenarios.ts';

export interface SeededUser {
  id: number;
  username: string;
  email: string;
  ownSlugs: string[];
}

export interface RunDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export interface DatabaseServer {
  kind: DatabaseKind;
  /** e.g. "18.1". */
  version: string;
  /** The seeded template: read-only once seeded. */
  templateUrl: string;
  seedSummary: SeedSummary;
  catalog: Catalog;
  /** Users to log in as (the token pool and the login scenario), spread over all ids. */
  users: SeededUser[];
  /** The postmaster's pid, for CPU sampling (undefined when it cannot be read). */
  postmasterPid: number | undefined;
  /** A fresh copy of the template for one measured run. */
  createRunDatabase(): Promise<RunDatabase>;
  /** The server processes serving connections to `database` (for --nice on a server the harness did not start). */
  backendPids(database: string): Promise<number[]>;
  /** Drops every database this run created; stops the server if the harness started it. */
  close(): Promise<void>;
}

export interface OpenOptions {
  seed: Partial<SeedOptions>;
  /** How many users to pick for the token pool / login. */
  poolUsers: number;
  log: (line: string) => void;
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function admin<T>(serverUrl: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Starts an embedded PostgreSQL in a temp dir (durable settings, as `npm start` runs it). */
export async function openEmbedded(opts: OpenOptions): Promise<DatabaseServer> {
  const tmp = await mkdtemp(path.join(tmpdir(), 'conduit-bench-'));
  // As root, PostgreSQL runs as the `postgres` user: it must be able to enter the directory.
  await chmod(tmp, 0o755);
  const dir = path.join(tmp, 'pg');
  opts.log(`starting an embedded PostgreSQL in ${dir}`);
  let handle: Awaited<ReturnType<typeof startEmbeddedPostgres>>;
  try {
    handle = await startEmbeddedPostgres({ dir, port: await freePort(), preload: ['pg_stat_statements'] });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  try {
    // Planning is most of a short query's cost when every call is planned: count it too.
    await admin(handle.url, async (c) => {
      await c.query('alter system set pg_stat_statements.track_planning = on');
      await c.query('select pg_reload_conf()');
    });
  } catch (err) {
    await handle.stop().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const pidText = await readFile(path.join(dir, 'postmaster.pid'), 'utf8').catch(() => '');
  return prepare('embedded', handle.url, Number(pidText.split('\n')[0]) || undefined, opts, async () => {
    await handle.stop();
    await rm(tmp, { recursive: true, force: true });
  });
}

/** A fresh database on an existing server; undefined (after a message) when it cannot be reached. */
export async function openExternal(serverUrl: string, opts: OpenOptions): Promise<DatabaseServer | undefined> {
  try {
    await admin(serverUrl, (c) => c.query('select 1'));
  } catch (err) {
    opts.log(`cannot reach PostgreSQL at ${redact(serverUrl)}: ${(err as Error).message}`);
    return undefined;
  }
  let pid: number | undefined;
  try {
    const dir = await admin(serverUrl, (c) => c.query<{ data_directory: string }>('show data_directory'));
    pid = Number((await readFile(path.join(dir.rows[0]!.data_directory, 'postmaster.pid'), 'utf8')).split('\n')[0]) || undefined;
  } catch {
    pid = undefined; // not a superuser, or another machine's server: no database CPU figures
  }
  return prepare('external', serverUrl, pid, opts, async () => undefined);
}

export function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

async function prepare(
  kind: DatabaseKind,
  serverUrl: string,
  postmasterPid: number | undefined,
  opts: OpenOptions,
  stopServer: () => Promise<void>,
): Promise<DatabaseServer> {
  const template = `bench_${randomBytes(5).toString('hex')}`;
  const created: string[] = [];
  const dropAll = async () => {
    await admin(serverUrl, async (c) => {
      for (const name of [...created].reverse()) await c.query(`drop database if exists ${name} with (force)`);
    });
    created.length = 0;
  };
  try {
    await admin(serverUrl, (c) => c.query(`create database ${template}`));
    created.push(template);
    const templateUrl = withDatabase(serverUrl, template);
    const pool = createPool(templateUrl, { dbPoolMax: 2, dbAcquireTimeoutMs: 30_000 });
    let seedSummary: SeedSummary;
    let catalog: Catalog;
    let users: SeededUser[];
    try {
      await migrate(pool);
      seedSummary = await seed(pool, { ...opts.seed, reset: false }, (line) => opts.log(`seed (${kind}): ${line}`));
      ({ catalog, users } = await readCatalog(pool, opts.poolUsers));
    } finally {
      await pool.end();
    }
    const version = await admin(serverUrl, (c) => c.query<{ v: string }>("select current_setting('server_version') as v")).then(
      (r) => r.rows[0]!.v,
    );
    let runs = 0;
    return {
      kind,
      version,
      templateUrl,
      seedSummary,
      catalog,
      users,
      postmasterPid,
      createRunDatabase: async () => {
        const name = `${template}_r${++runs}`;
        await admin(serverUrl, (c) => c.query(`create database ${name} template ${template}`));
        created.push(name);
        return {
          name,
          url: withDatabase(serverUrl, name),
          drop: async () => {
            await admin(serverUrl, (c) => c.query(`drop database if exists ${name} with (force)`));
            const i = created.indexOf(name);
            if (i !== -1) created.splice(i, 1);
          },
        };
      },
      backendPids: async (database: string) =>
        (
          await admin(serverUrl, (c) => c.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [database]))
        ).rows.map((r) => r.pid),
      close: async () => {
        try {
          await dropAll();
        } finally {
          await stopServer();
        }
      },
    };
  } catch (err) {
    await dropAll().catch(() => undefined);
    await stopServer().catch(() => undefined);
    throw err;
  }
}

/** What the scenarios draw from, read back from the seeded rows (never guessed from the generator). */
async function readCatalog(pool: Queryable, poolUsers: number): Promise<{ catalog: Catalog; users: SeededUser[] }> {
  const articles = await pool.query<{ slug: string; author: string }>(
    'select a.slug, u.username as author from articles a join users u on u.id = a.author_id order by a.created_at desc, a.id desc',
  );
  const tags = await pool.query<{ name: string; uses: number }>(
    'select t.name, count(at.article_id)::int as uses from tags t left join article_tags at on at.tag_id = t.id group by t.name order by t.name',
  );
  const all = await pool.query<{ id: number; username: string; email: string }>('select id, username, email from users order by id');
  // A pseudo-random but fixed sample of favorites, so heavy favoriters come up more often.
  const favoriters = await pool.query<{ username: string }>(
    `select u.username from favorites f join users u on u.id = f.user_id
      order by md5(f.user_id || ':' || f.article_id) limit 5000`,
  );
  const n = all.rows.length;
  const k = Math.min(poolUsers, n);
  const picked = Array.from({ length: k }, (_, i) => all.rows[Math.floor((i * n) / k)]!);
  const own = await pool.query<{ author_id: number; slug: string }>(
    'select author_id, slug from articles where author_id = any($1::bigint[]) order by id',
    [picked.map((u) => u.id)],
  );
  const slugsBy = new Map<number, string[]>();
  for (const r of own.rows) {
    const list = slugsBy.get(r.author_id);
    if (list) list.push(r.slug);
    else slugsBy.set(r.author_id, [r.slug]);
  }
  return {
    catalog: {
      articles: articles.rows,
      tags: tags.rows,
      usernames: all.rows.map((u) => u.username),
      favoriters: favoriters.rows.map((r) => r.username),
    },
    users: picked.map((u) => ({ ...u, ownSlugs: slugsBy.get(u.id) ?? [] })),
  };
}
