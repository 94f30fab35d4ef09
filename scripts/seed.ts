// `npm run seed`: deterministic demo data, sized by flags, for trying the API and for the
// benchmarks. The same flags give the same rows, byte for byte (see seed.data.ts), except the
// salt of the one password hash every seeded user shares.
//
//   npm run seed -- --users 1000 --articles 10000 [--comments N] [--favorites N] [--tags N]
//                   [--follows N] [--seed N] [--reset] [--json]
//
// Without DATABASE_URL it uses the embedded PostgreSQL of DATA_DIR: the one `npm start` is
// running, if it is (found by its postmaster.pid), else it starts it as `npm start` does. Data is
// added to what the database holds (ids after the ones in use, names in use suffixed: see
// seed.place.ts); `--reset` empties the tables first. Afterwards every running instance is told
// to drop its cache (cache/bus.ts publishDropAll). Every seeded user logs in with SEED_PASSWORD.
import { createHash, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { publishDropAll } from '../src/cache/bus.ts';
import { publishDropAllRedis, redisInvalidationChannel } from '../src/cache/redis-bus.ts';
import { ConfigError, loadConfig, type Config } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool, type Queryable } from '../src/db/pool.ts';
import { hashPassword } from '../src/users/password.ts';
import { EPOCH, generate, type Dataset } from './seed.data.ts';
import { newTagNames, place, type Occupied } from './seed.place.ts';

export const SEED_PASSWORD = 'password123';

export interface SeedOptions {
  users: number;
  articles: number;
  comments: number;
  favorites: number;
  tags: number;
  follows: number;
  /** PRNG seed, 0 to 2^32-1. */
  seed: number;
  /** Empty the tables first; without it the data is added to what is there (seed.place.ts). */
  reset: boolean;
}

export interface SeedSummary {
  seed: number;
  users: number;
  articles: number;
  tags: number;
  articleTags: number;
  comments: number;
  favorites: number;
  follows: number;
  /** Every seeded user's password. */
  password: string;
  /** A few accounts to log in with (the first users by id). */
  sampleUsers: { username: string; email: string }[];
  /** The data set's fixed "now": timestamps fall in the year before it. */
  epoch: string;
  /** md5 over every seeded row (see datasetChecksum): equal checksums, equal data. */
  checksum: string;
  elapsedMs: number;
}

/** A refusal the user can fix (non-empty database, inconsistent flags): exit 1 with the message. */
export class SeedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SeedError';
  }
}

const MAX_COUNT = 50_000_000;

/** Fills in the defaults that depend on other flags, checks the combination, caps what cannot fit. */
export function resolveOptions(given: Partial<SeedOptions> = {}): SeedOptions {
  const users = given.users ?? 1000;
  const articles = given.articles ?? 10_000;
  const o: SeedOptions = {
    users,
    articles,
    comments: given.comments ?? 5 * articles,
    favorites: given.favorites ?? 2 * articles,
    tags: given.tags ?? 100,
    // Each user follows ten others on average, if there are ten others.
    follows: given.follows ?? Math.min(10 * users, users * (users - 1)),
    seed: given.seed ?? 1,
    reset: given.reset ?? false,
  };
  for (const key of ['users', 'articles', 'comments', 'favorites', 'tags', 'follows'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 0 || o[key] > MAX_COUNT)
      throw new SeedError(`--${key} must be an integer from 0 to ${MAX_COUNT}`);
  }
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) throw new SeedError('--seed must be an integer from 0 to 4294967295');
  if (o.articles > 0 && o.users === 0) throw new SeedError('--articles needs at least one user (--users)');
  if (o.comments > 0 && o.articles === 0) throw new SeedError('--comments needs at least one article (--articles)');
  return o;
}

export function parseSeedArgs(argv: readonly string[]): { options: SeedOptions; json: boolean; help: boolean } {
  const counts = ['users', 'articles', 'comments', 'favorites', 'tags', 'follows', 'seed'] as const;
  let values: ReturnType<typeof parse>['values'];
  function parse(args: string[]) {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        ...(Object.fromEntries(counts.map((k) => [k, { type: 'string' as const }])) as Record<(typeof counts)[number], { type: 'string' }>),
        reset: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  }
  try {
    values = parse([...argv]).values;
  } catch (err) {
    throw new SeedError((err as Error).message);
  }
  const given: Partial<SeedOptions> = { reset: values.reset ?? false };
  for (const key of counts) {
    const raw = values[key];
    if (raw === undefined) continue;
    if (!/^\d+$/.test(raw)) throw new SeedError(`--${key} must be a non-negative integer, got "${raw}"`);
    given[key] = Number(raw);
  }
  return { options: resolveOptions(given), json: values.json ?? false, help: values.help ?? false };
}

const TABLES = ['users', 'follows', 'tags', 'articles', 'article_tags', 'favorites', 'comments'] as const;

/**
 * Seeds the database behind `pool` (migrated already) in one transaction, then vacuums and
 * analyzes the tables: the planner knows their sizes before the first request, and the visibility
 * map is set as autovacuum would leave it, so plans match a database in steady state.
 */
export async function seed(
  pool: Pool,
  given: Partial<SeedOptions> = {},
  log: (line: string) => void = () => undefined,
): Promise<SeedSummary> {
  const started = performance.now();
  const o = resolveOptions(given);
  const since = () => `${((performance.now() - started) / 1000).toFixed(1)}s`;

  log(
    `seed ${o.seed}: generating ${o.users} users, ${o.articles} articles, ${o.comments} comments, ` +
      `${o.favorites} favorites, ${o.follows} follows, ${o.tags} tags`,
  );
  const data = generate(o);
  // One hash for everybody: Argon2 costs ~50 ms on purpose, which is 50 s for 1000 users.
  const passwordHash = await hashPassword(SEED_PASSWORD);
  log(`generated in ${since()}`);

  let placed: Dataset;
  if (o.reset) {
    placed = await pool.transaction(async (client) => {
      await client.query(`truncate ${TABLES.join(', ')} restart identity cascade`);
      return fill(client, data, await reserve(client, data), passwordHash, (line) => log(`${line} (${since()})`));
    });
  } else {
    // The ids first, in a short transaction of their own: the running service's writes wait
    // for it only a moment, and go on after the reserved ranges while the rows go in.
    const occupied = await pool.transaction((client) => reserve(client, data));
    if (occupied.base.users > 0 || occupied.tags.size > 0) {
      log(
        `adding to the data there: ids after users ${occupied.base.users}, articles ${occupied.base.articles}, comments ${occupied.base.comments}`,
      );
    }
    placed = await pool.transaction((client) => fill(client, data, occupied, passwordHash, (line) => log(`${line} (${since()})`)));
  }
  log(`committed (${since()})`);
  // Every table vacuumed before any is analyzed. With `vacuum (analyze) <tables>`, the tables
  // vacuumed after the first ANALYZE's commit kept pages that were not all-visible on the test
  // cluster (asynchronous commits) once users grew a column, so index-only scans became
  // sequential ones (db/indexes.test.ts). Likely why: an unflushed asynchronous commit in the
  // seed's commit-log group holds back the seed rows' hint bits. VACUUM itself commits nothing.
  await pool.query(`vacuum ${TABLES.join(', ')}`);
  await pool.query(`analyze ${TABLES.join(', ')}`);
  log(`vacuumed and analyzed (${since()})`);
  const checksum = await datasetChecksum(pool);
  const elapsedMs = Math.round(performance.now() - started);
  log(`seeded in ${(elapsedMs / 1000).toFixed(1)}s`);
  return {
    seed: o.seed,
    users: placed.users.length,
    articles: data.articles.length,
    tags: data.tags.length,
    articleTags: data.articles.reduce((n, a) => n + a.tagIds.length, 0),
    comments: data.comments.length,
    favorites: data.favorites.length,
    follows: data.follows.length,
    password: SEED_PASSWORD,
    sampleUsers: placed.users.slice(0, 3).map((u) => ({ username: u.username, email: u.email })),
    epoch: new Date(EPOCH).toISOString(),
    checksum,
    elapsedMs,
  };
}

/** Places the data set after what `occupied` holds and inserts it; returns the rows as inserted. */
async function fill(
  client: Queryable,
  data: Dataset,
  occupied: Occupied,
  passwordHash: string,
  log: (line: string) => void,
): Promise<Dataset> {
  // Flush the commit before it returns even where the server runs with synchronous_commit=off
  // (the test cluster does): until the commit record is on disk no hint bits can be set, so the
  // VACUUM below could not mark the pages all-visible and the plans would differ.
  await client.query('set local synchronous_commit = on');
  const placed = place(data, occupied);
  const tags = newTagNames(data, occupied).map((name) => ({ id: 0, name }));
  for (const [i, tag] of tags.entries()) tag.id = occupied.base.tags + i + 1;
  await insertAll(client, placed, tags, passwordHash, log);
  return placed;
}

/**
 * What the database holds (names to avoid, ids to go after) and, for each table, a range of
 * ids reserved for the data set: the identity is moved past it, so the service's own inserts
 * (the API may be writing meanwhile) never take an id the seed is about to insert. The table
 * locks (SHARE ROW EXCLUSIVE: reads go on, writes wait) hold until this transaction commits.
 * The names are read whole: a seed brings as much data into memory anyway.
 */
async function reserve(client: Queryable, data: Dataset): Promise<Occupied> {
  await client.query('lock table users, articles, comments, tags in share row exclusive mode');
  const users = await client.query<{ username: string; email: string }>('select username, lower(email) as email from users');
  const slugs = await client.query<{ slug: string }>('select slug from articles');
  const tags = await client.query<{ id: number; name: string }>('select id, name from tags');
  const occupied: Occupied = {
    base: { users: 0, articles: 0, comments: 0, tags: 0 },
    usernames: new Set(users.rows.map((r) => r.username)),
    emails: new Set(users.rows.map((r) => r.email)),
    slugs: new Set(slugs.rows.map((r) => r.slug)),
    tags: new Map(tags.rows.map((r) => [r.name, r.id])),
  };
  const counts = {
    users: data.users.length,
    articles: data.articles.length,
    comments: data.comments.length,
    tags: newTagNames(data, occupied).length,
  };
  for (const table of ['users', 'articles', 'comments', 'tags'] as const) {
    // Past every id in the table and every id its identity handed out (a row since deleted, an
    // insert rolled back); pg_sequence_last_value is null before the first (or after a restart).
    const res = await client.query<{ base: number }>(
      `select greatest((select coalesce(max(id), 0) from ${table}),
                       coalesce(pg_sequence_last_value(pg_get_serial_sequence('${table}', 'id')::regclass), 0))::bigint as base`,
    );
    occupied.base[table] = res.rows[0]!.base;
    if (counts[table] > 0) {
      await client.query(`select setval(pg_get_serial_sequence('${table}', 'id'), $1)`, [occupied.base[table] + counts[table]]);
    }
  }
  return occupied;
}

const iso = (ms: number) => new Date(ms).toISOString();

async function insertAll(
  client: Queryable,
  d: Dataset,
  newTags: { id: number; name: string }[],
  passwordHash: string,
  log: (line: string) => void,
): Promise<void> {
  await insert(client, log, 'users', d.users, {
    id: ['bigint', (u) => u.id],
    username: ['text', (u) => u.username],
    email: ['text', (u) => u.email],
    password_hash: ['text', () => passwordHash],
    bio: ['text', (u) => u.bio],
    image: ['text', (u) => u.image],
    created_at: ['timestamptz', (u) => iso(u.createdAt)],
    updated_at: ['timestamptz', (u) => iso(u.updatedAt)],
  });
  await insert(client, log, 'follows', d.follows, {
    follower_id: ['bigint', (f) => f.followerId],
    followee_id: ['bigint', (f) => f.followeeId],
    created_at: ['timestamptz', (f) => iso(f.createdAt)],
  });
  await insert(client, log, 'tags', newTags, {
    id: ['integer', (t) => t.id],
    name: ['text', (t) => t.name],
  });
  await insert(client, log, 'articles', d.articles, {
    id: ['bigint', (a) => a.id],
    slug: ['text', (a) => a.slug],
    title: ['text', (a) => a.title],
    description: ['text', (a) => a.description],
    body: ['text', (a) => a.body],
    author_id: ['bigint', (a) => a.authorId],
    favorites_count: ['integer', (a) => a.favoritesCount],
    created_at: ['timestamptz', (a) => iso(a.createdAt)],
    updated_at: ['timestamptz', (a) => iso(a.updatedAt)],
  });
  await insert(
    client,
    log,
    'article_tags',
    d.articles.flatMap((a) => a.tagIds.map((tagId) => ({ articleId: a.id, tagId }))),
    {
      article_id: ['bigint', (t) => t.articleId],
      tag_id: ['integer', (t) => t.tagId],
    },
  );
  await insert(client, log, 'favorites', d.favorites, {
    user_id: ['bigint', (f) => f.userId],
    article_id: ['bigint', (f) => f.articleId],
    created_at: ['timestamptz', (f) => iso(f.createdAt)],
  });
  await insert(client, log, 'comments', d.comments, {
    id: ['bigint', (c) => c.id],
    article_id: ['bigint', (c) => c.articleId],
    author_id: ['bigint', (c) => c.authorId],
    body: ['text', (c) => c.body],
    created_at: ['timestamptz', (c) => iso(c.createdAt)],
    updated_at: ['timestamptz', (c) => iso(c.updatedAt)],
  });
  // The identities were moved past these ids before (reserve).
}

type Columns<T> = Record<string, readonly [type: string, value: (row: T) => unknown]>;

// Rows per statement: large enough that round trips do not matter, small enough to keep each
// message a few MB and to report progress.
const BATCH = 5000;

/** Multi-row insert: one array parameter per column, `unnest`ed into rows, BATCH rows at a time. */
async function insert<T>(
  client: Queryable,
  log: (line: string) => void,
  table: string,
  rows: readonly T[],
  columns: Columns<T>,
): Promise<void> {
  const names = Object.keys(columns);
  const specs = Object.values(columns);
  // Explicit ids into `generated always` identity columns need the override.
  const overriding = 'id' in columns ? 'overriding system value' : '';
  const text = `insert into ${table} (${names.join(', ')}) ${overriding}
    select * from unnest(${specs.map(([type], i) => `$${i + 1}::${type}[]`).join(', ')})`;
  for (let start = 0; start < rows.length; start += BATCH) {
    const batch = rows.slice(start, start + BATCH);
    await client.query(
      text,
      specs.map(([, value]) => batch.map(value)),
    );
    if (rows.length > BATCH) log(`${table}: ${Math.min(start + BATCH, rows.length)}/${rows.length}`);
  }
  if (rows.length <= BATCH) log(`${table}: ${rows.length}`);
}

/**
 * md5 of each seeded table's rows (as row literals, where NULL differs from any text), in key
 * order, with timestamps as epoch numbers (so the session's TimeZone and DateStyle cannot change
 * them). Password hashes are left out: they are salted afresh on every run.
 */
export async function tableChecksums(db: Queryable): Promise<Record<(typeof TABLES)[number], string>> {
  const ts = (col: string) => `extract(epoch from ${col})`;
  const rows: Record<(typeof TABLES)[number], [columns: string, order: string]> = {
    users: [`id, username, email, bio, image, ${ts('created_at')}, ${ts('updated_at')}`, 'id'],
    follows: [`follower_id, followee_id, ${ts('created_at')}`, 'follower_id, followee_id'],
    tags: ['id, name', 'id'],
    articles: [`id, slug, title, description, body, author_id, favorites_count, ${ts('created_at')}, ${ts('updated_at')}`, 'id'],
    article_tags: ['article_id, tag_id', 'article_id, tag_id'],
    favorites: [`user_id, article_id, ${ts('created_at')}`, 'user_id, article_id'],
    comments: [`id, article_id, author_id, body, ${ts('created_at')}, ${ts('updated_at')}`, 'id'],
  };
  const select = TABLES.map((t) => {
    const [columns, order] = rows[t];
    return `(select md5(coalesce(string_agg(row(${columns})::text, E'\\n' order by ${order}), '')) from ${t}) as ${t}`;
  });
  const res = await db.query<Record<(typeof TABLES)[number], string>>(`select ${select.join(', ')}`);
  return res.rows[0]!;
}

/** One md5 over tableChecksums: equal checksums, equal data. */
export async function datasetChecksum(db: Queryable): Promise<string> {
  const tables = await tableChecksums(db);
  return createHash('md5')
    .update(TABLES.map((t) => tables[t]).join(''))
    .digest('hex');
}

// ---------------------------------------------------------------------------------------------
// The command.

const USAGE = `usage: npm run seed -- [--users N] [--articles N] [--comments N] [--favorites N] [--tags N]
                       [--follows N] [--seed N] [--reset] [--json]
  --users      users to create (default 1000)
  --articles   articles (default 10000)
  --comments   comments (default 5 x articles)
  --favorites  favorites (default 2 x articles, at most users x articles)
  --tags       tags (default 100)
  --follows    follows (default 10 x users, at most users x (users - 1))
  --seed       PRNG seed (default 1): the same flags give the same data
  --reset      delete all users, articles, comments, tags, favorites and follows first
               (without it the data is added: names in use get a suffix, ids go after theirs)
  --json       print the summary as JSON on stdout
Uses DATABASE_URL, or the embedded PostgreSQL in DATA_DIR (./.data): the running one of
\`npm start\` if there is one, else it starts it.
Every seeded user's password is "${SEED_PASSWORD}".`;

/**
 * The running service's caches hold responses built before these rows existed (an empty list,
 * a 404 for a slug): every instance drops its cache, over the bus it listens on.
 */
async function dropCaches(pool: Pool, config: Config, log: (line: string) => void): Promise<void> {
  const origin = `seed-${randomUUID()}`;
  await publishDropAll(pool, origin);
  if (config.cache && config.redisUrl) {
    const redis = new Redis(config.redisUrl.expose(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      await publishDropAllRedis(redis, redisInvalidationChannel(config.cacheRedisPrefix), origin);
    } catch (err) {
      log(
        `could not tell the instances on Redis to drop their caches (${(err as Error).message}); cached responses expire within CACHE_TTL_MS`,
      );
    } finally {
      redis.disconnect();
    }
  }
  log('told running instances to drop their caches');
}

async function main(): Promise<void> {
  const log = (line: string) => void process.stderr.write(`${line}\n`);
  let args: ReturnType<typeof parseSeedArgs>;
  let config: ReturnType<typeof loadConfig>;
  try {
    args = parseSeedArgs(process.argv.slice(2));
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof SeedError || err instanceof ConfigError)) throw err;
    log(`${err.message}\n\n${USAGE}`);
    process.exitCode = err instanceof SeedError ? 2 : 1;
    return;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }

  const source = await openDatabase(config, log, { reuseRunning: true }).catch((err: unknown) => {
    throw new Error('could not start the embedded PostgreSQL (another server on EMBEDDED_PG_PORT? set DATABASE_URL to use yours)', {
      cause: err,
    });
  });
  const pool = createPool(source.url, config);
  try {
    const { applied } = await migrate(pool);
    if (applied.length) log(`migrations applied: ${applied.join(', ')}`);
    const summary = await seed(pool, args.options, log);
    await dropCaches(pool, config, log);
    if (args.json) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      process.stdout.write(
        `Seeded ${summary.users} users, ${summary.articles} articles, ${summary.comments} comments, ` +
          `${summary.favorites} favorites, ${summary.follows} follows, ${summary.tags} tags ` +
          `in ${(summary.elapsedMs / 1000).toFixed(1)}s (seed ${summary.seed}, checksum ${summary.checksum}).\n` +
          `Log in as any user with password "${summary.password}", e.g. ${summary.sampleUsers[0]?.email ?? '(no users)'}.\n`,
      );
    }
  } catch (err) {
    if (!(err instanceof SeedError)) throw err;
    log(err.message);
    process.exitCode = 1;
  } finally {
    await pool.end();
    await source.embedded?.stop();
  }
}

if (import.meta.main) await main();
