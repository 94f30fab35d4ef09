// Which driver gives "every statement prepared once per connection" more cheaply: node-postgres
// (`pg`) unnamed (the text is parsed and planned on every call), `pg` with a `name` on each query
// (parsed once per connection), or Conduit's request pool (src/db/pool.ts: postgres.js, which
// prepares every statement with parameters and carries up to DB_PIPELINE queries per connection)
// at DB_PIPELINE 1, 4 and 16.
//
//   node scripts/driver-compare.ts [--url postgres://postgres@127.0.0.1:5432/postgres]
//                                  [--concurrency 16] [--rounds 3] [--duration 3]
//                                  [--warmup 400] [--json <file>] [--keep]
//
// It creates a scratch database (conduit_driver_compare) on that server, applies Conduit's
// migrations, seeds it in SQL (50 users, 500 articles with ~3 KB bodies, 3 of 20 tags each,
// ~2,800 favorites, 500 follows), and drops it at the end (--keep leaves it). The statements are
// Conduit's own SQL, taken from the functions that send it: (a) findArticle by slug with a viewer,
// (b) the list page with its count (listArticlesQuery, no filter, limit 20 at a random offset),
// (c) the same filtered by tag, (d) setFavorite's write, a favorite then an unfavorite of the same
// article by the same user, so the data stays as seeded. Each worker favorites its own articles,
// so every write changes something.
//
// Every client has a pool of 10 connections and is driven by --concurrency workers,
// each sending its next query when the last one answers. A round runs every statement through
// every client for --duration seconds; the clients take turns (the order rotates each round), so
// a change in the machine's load hits them all alike. For each client and statement it reports
// the median round and the range of: queries/s, the client process's CPU per query
// (process.cpuUsage(), user + system), and the server's cost per query: the CPU of the scratch
// database's backends (utime + stime from /proc/<pid>/stat, so the server must run on this
// machine) and, when the server preloads pg_stat_statements, its planning + execution time per
// call. On a shared machine the CPU per query is the steadier number; queries/s moves with the
// load. It also shows whether a prepared statement switches to a generic plan after its fifth
// execution (PostgreSQL's plan_cache_mode = auto), which is what named statements get and unnamed
// ones never do.
//
// Only a server on the loopback interface is accepted: the script creates and drops a database.
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { findArticle, setFavorite } from '../src/articles/articles.repository.ts';
import { listArticlesQuery } from '../src/articles/articles.listing.ts';
import { migrate } from '../src/db/migrate.ts';
import { captureQuery } from './capture-query.ts';
import { createPool } from '../src/db/pool.ts';

const SCRATCH_DB = 'conduit_driver_compare';
const POOL_MAX = 10;
const USERS = 50;
const ARTICLES = 500;
const TAGS = 20;
/** Users 1..READERS have seeded favorites and read; the rest write favorites (setFavorite). */
const READERS = 34;
const PAGE = 20;
// Linux reports utime/stime in USER_HZ ticks, 100 a second on every architecture Node runs on.
const TICK_US = 10_000;

type Row = Record<string, unknown>;

interface Call {
  /** Statement name for the clients that prepare. */
  name: string;
  text: string;
  values: unknown[];
}

interface Statement {
  key: string;
  label: string;
  /** The queries a worker sends in its `iteration`th turn, one after another. */
  calls(worker: number, iteration: number): Call[];
  /** Throws when a result is not what the statement should return. */
  check(rows: Row[], call: Call): void;
}

interface Client {
  key: string;
  label: string;
  /** The application_name its connections report, to tell its backends apart. */
  appName: string;
  run(call: Call): Promise<Row[]>;
  close(): Promise<void>;
}

interface Sample {
  queries: number;
  seconds: number;
  qps: number;
  clientCpuUsPerQuery: number;
  serverCpuUsPerQuery: number | null;
  pgssUsPerCall: number | null;
}

// ---------------------------------------------------------------------------------------------
// The statements: Conduit's SQL, captured from the functions that send it.

/** The text and values `send` gives to db.query (a stand-in that answers no rows). */
function sameValues(a: unknown[], b: unknown[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function statements(concurrency: number, rand: () => number): Promise<Statement[]> {
  const pick = (n: number) => Math.floor(rand() * n);
  const reader = () => 1 + pick(READERS);

  const article = await captureQuery((db) => findArticle(db, { slug: 'article-1' }, 7));
  if (!sameValues(article.values, ['article-1', 7])) throw new Error(`findArticle's parameters changed: ${JSON.stringify(article.values)}`);

  const list = listArticlesQuery({ limit: PAGE, offset: 40 }, 7);
  if (!sameValues(list.values, [7, PAGE, 40])) throw new Error(`listArticlesQuery's parameters changed: ${JSON.stringify(list.values)}`);
  const byTag = listArticlesQuery({ tag: 'tag-3', limit: PAGE, offset: 40 }, 7);
  if (!sameValues(byTag.values, [7, PAGE, 40, 'tag-3']))
    throw new Error(`listArticlesQuery's parameters changed: ${JSON.stringify(byTag.values)}`);

  const fav = await captureQuery((db) => setFavorite(db, 'article-1', 42, true));
  const unfav = await captureQuery((db) => setFavorite(db, 'article-1', 42, false));
  for (const c of [fav, unfav]) {
    if (!sameValues(c.values, ['article-1', 42])) throw new Error(`setFavorite's parameters changed: ${JSON.stringify(c.values)}`);
  }

  // Worker w writes as user READERS+1+(w mod writers) on articles w, w+concurrency, w+2·concurrency, …:
  // no two workers touch the same (user, article) pair, so each favorite inserts and each
  // unfavorite deletes.
  const writers = USERS - READERS;
  const perWorker = Math.floor(ARTICLES / concurrency);
  if (perWorker < 1) throw new Error(`--concurrency must be at most ${ARTICLES}`);

  const oneRow = (what: string) => (rows: Row[]) => {
    if (rows.length !== 1) throw new Error(`${what}: ${rows.length} rows`);
  };
  return [
    {
      key: 'article',
      label: '(a) article by slug',
      calls: () => [{ name: 'dc_article', text: article.text, values: [`article-${1 + pick(ARTICLES)}`, reader()] }],
      check: oneRow('article by slug'),
    },
    {
      key: 'list',
      label: '(b) list + count',
      calls: () => [{ name: 'dc_list', text: list.text, values: [reader(), PAGE, pick(ARTICLES - PAGE + 1)] }],
      check: (rows) => {
        if (rows.length !== PAGE || rows[0]?.total !== ARTICLES)
          throw new Error(`list: ${rows.length} rows, total ${String(rows[0]?.total)}`);
      },
    },
    {
      key: 'tag',
      label: '(c) list by tag + count',
      // Every tag is on 75 articles: an offset up to 55 gives a full page.
      calls: () => [{ name: 'dc_list_tag', text: byTag.text, values: [reader(), PAGE, pick(56), `tag-${1 + pick(TAGS)}`] }],
      check: (rows) => {
        if (rows.length !== PAGE || typeof rows[0]?.total !== 'number') throw new Error(`list by tag: ${rows.length} rows`);
      },
    },
    {
      key: 'favorite',
      label: '(d) favorite + unfavorite',
      calls: (worker, iteration) => {
        const slug = `article-${1 + worker + concurrency * (iteration % perWorker)}`;
        const user = READERS + 1 + (worker % writers);
        return [
          { name: 'dc_favorite', text: fav.text, values: [slug, user] },
          { name: 'dc_unfavorite', text: unfav.text, values: [slug, user] },
        ];
      },
      check: (rows, call) => {
        if (rows.length !== 1 || rows[0]?.changed !== true) throw new Error(`${call.name} ${JSON.stringify(call.values)} changed nothing`);
      },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// The clients.

// int8 as numbers in pg too, as Conduit's pool gives them (pool.ts).
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
const INT8_ARRAY = 1016 as Parameters<typeof pg.types.getTypeParser>[0];
const parseInt8Array = pg.types.getTypeParser(INT8_ARRAY) as (v: string) => string[];
pg.types.setTypeParser(INT8_ARRAY, (v: string) => parseInt8Array(v).map(Number));

function pgClient(url: string, named: boolean): Client {
  const key = named ? 'pg-named' : 'pg';
  const appName = `conduit-${key}`;
  const pool = new pg.Pool({
    connectionString: url,
    max: POOL_MAX,
    application_name: appName,
    // As Conduit's pool runs prepared statements (pool.ts).
    ...(named ? { options: '-c plan_cache_mode=force_generic_plan' } : {}),
  });
  pool.on('error', () => undefined);
  return {
    key,
    label: named ? 'pg, named' : 'pg, unnamed',
    appName,
    run: named
      ? async (c) => (await pool.query<Row>({ name: c.name, text: c.text, values: c.values })).rows
      : async (c) => (await pool.query<Row>(c.text, c.values)).rows,
    close: () => pool.end(),
  };
}

/** Conduit's own pool (postgres.js), carrying `pipeline` queries per connection at most (DB_PIPELINE). */
function conduitClient(url: string, pipeline: number): Client {
  const key = `conduit-p${pipeline}`;
  const pool = createPool(url, { dbPoolMax: POOL_MAX, dbAcquireTimeoutMs: 30_000, dbPipeline: pipeline, applicationName: key });
  return {
    key,
    label: `postgres.js, ${pipeline}/conn`,
    appName: key,
    run: async (c) => (await pool.query<Row>(c.text, c.values)).rows,
    close: () => pool.end(),
  };
}

// ---------------------------------------------------------------------------------------------
// The scratch database.

function assertLoopback(url: URL): void {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new Error(`refusing ${host}: this script creates and drops a database, and reads the server's /proc; use a server on 127.0.0.1`);
  }
}

async function withAdmin<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  // A server that ends the connection (a restart by someone else) fails the next query, with
  // the run; without a listener the 'error' event would end the process before the cleanup.
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

async function createScratch(admin: pg.Client, scratchUrl: string): Promise<void> {
  await admin.query(`drop database if exists ${SCRATCH_DB} with (force)`);
  await admin.query(`create database ${SCRATCH_DB}`);
  const pool = createPool(scratchUrl, { dbPoolMax: 2, dbAcquireTimeoutMs: 30_000 });
  try {
    await migrate(pool);
    await pool.query(
      `insert into users (username, email, password_hash, bio)
         select 'user-' || i, 'user-' || i || '@example.com', 'not-a-hash', 'Bio of user ' || i
           from generate_series(1, $1::int) i`,
      [USERS],
    );
    await pool.query(`insert into tags (name) select 'tag-' || i from generate_series(1, $1::int) i`, [TAGS]);
    // ~3 KB bodies of distinct text (90 md5 words), one article an hour going back in time.
    await pool.query(
      `insert into articles (slug, title, description, body, author_id, created_at, updated_at)
         select 'article-' || i, 'Article ' || i, 'About article ' || i,
                (select string_agg(md5(i || '-' || j), ' ') from generate_series(1, 90) j),
                1 + i % $2::int, now() - i * interval '1 hour', now() - i * interval '1 hour'
           from generate_series(1, $1::int) i order by i`,
      [ARTICLES, USERS],
    );
    // Three distinct tags an article (offsets 0, 3, 6 mod 20), 75 articles a tag.
    await pool.query(
      `insert into article_tags (article_id, tag_id)
         select a.id, t.id from articles a cross join generate_series(0, 2) k
           join tags t on t.name = 'tag-' || (1 + (a.id * 7 + k * 3) % $1::int)`,
      [TAGS],
    );
    // Favorites from the readers only: the writers' favorites are the write statement's.
    await pool.query(
      `insert into favorites (user_id, article_id)
         select u, a from generate_series(1, $1::int) u cross join generate_series(1, $2::int) a
          where (a * 31 + u * 17) % 6 = 0`,
      [READERS, ARTICLES],
    );
    await pool.query(`update articles a set favorites_count = (select count(*) from favorites f where f.article_id = a.id)`);
    await pool.query(
      `insert into follows (follower_id, followee_id)
         select u, 1 + (u + k * 7) % $1::int from generate_series(1, $1::int) u cross join generate_series(1, 10) k
          where 1 + (u + k * 7) % $1::int <> u
         on conflict do nothing`,
      [USERS],
    );
    await pool.query('vacuum analyze');
  } finally {
    await pool.end();
  }
}

/** A fingerprint of the data the write statement touches: equal before and after, or the run broke it. */
async function favoritesFingerprint(scratch: pg.Client): Promise<string> {
  const r = await scratch.query<{ n: string; s: string; bad: string }>(
    `select (select count(*) from favorites) as n, (select sum(favorites_count) from articles) as s,
            (select count(*) from articles a where favorites_count <> (select count(*) from favorites f where f.article_id = a.id)) as bad`,
  );
  const row = r.rows[0]!;
  return `${row.n} favorites, counters sum ${row.s}, ${row.bad} counters off`;
}

// ---------------------------------------------------------------------------------------------
// Server cost: backend CPU from /proc, pg_stat_statements when preloaded.

/** The backends of one client (the control connection is in the scratch database too). */
async function backendPids(admin: pg.Client, appName: string): Promise<number[]> {
  const r = await admin.query<{ pid: number }>(`select pid from pg_stat_activity where datname = $1 and application_name = $2`, [
    SCRATCH_DB,
    appName,
  ]);
  return r.rows.map((x) => x.pid);
}

async function cpuTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is the 3rd field, utime the 14th and stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

async function serverTicks(admin: pg.Client, appName: string): Promise<Map<number, number> | undefined> {
  const ticks = new Map<number, number>();
  for (const pid of await backendPids(admin, appName)) {
    const t = await cpuTicks(pid);
    if (t === undefined) return undefined; // not readable: the server is not on this machine, or another user's
    ticks.set(pid, t);
  }
  return ticks;
}

/** CPU µs the scratch database's backends used between two readings (a backend new since `before` counts whole). */
function serverCpuUs(before: Map<number, number>, after: Map<number, number>): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return ticks * TICK_US;
}

async function pgssAvailable(admin: pg.Client, scratch: pg.Client): Promise<boolean> {
  const r = await admin.query<{ shared_preload_libraries: string }>('show shared_preload_libraries');
  const libs = (r.rows[0]?.shared_preload_libraries ?? '').split(',').map((s) => s.trim());
  if (!libs.includes('pg_stat_statements')) return false;
  await scratch.query('create extension if not exists pg_stat_statements');
  return true;
}

/** Resets this database's entries only: the server may be shared, and others may read theirs. */
async function pgssReset(scratch: pg.Client): Promise<void> {
  await scratch.query(`select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`);
}

/**
 * Planning + execution µs per call of the statements other connections ran in the scratch
 * database. Wall-clock time in the server (planning counts only with
 * pg_stat_statements.track_planning): on a loaded machine it includes waiting for a CPU.
 */
async function pgssUsPerCall(scratch: pg.Client, calls: number): Promise<number | null> {
  const r = await scratch.query<{ calls: string | null; ms: number | null }>(
    `select sum(calls) as calls, sum(total_exec_time + total_plan_time) as ms
       from pg_stat_statements
      where dbid = (select oid from pg_database where datname = current_database())
        and query not like '%pg_stat_statements%'`,
  );
  const row = r.rows[0];
  if (!row?.ms || !row.calls) return null;
  // Only the statements measured: the few calls beyond them (none expected) are ignored.
  return (row.ms * 1000) / Math.max(calls, Number(row.calls));
}

// ---------------------------------------------------------------------------------------------
// Driving.

async function drive(client: Client, stmt: Statement, concurrency: number, until: (queries: number) => boolean): Promise<number> {
  let queries = 0;
  let stop = false;
  const worker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      for (const call of stmt.calls(w, i)) {
        stmt.check(await client.run(call), call);
        queries++;
      }
      if (until(queries)) stop = true;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return queries;
}

async function measure(
  client: Client,
  stmt: Statement,
  opts: { concurrency: number; durationMs: number; admin: pg.Client; scratch: pg.Client; pgss: boolean },
): Promise<Sample> {
  if (opts.pgss) await pgssReset(opts.scratch);
  const ticksBefore = await serverTicks(opts.admin, client.appName);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + opts.durationMs;
  const queries = await drive(client, stmt, opts.concurrency, () => performance.now() >= end);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const ticksAfter = ticksBefore && (await serverTicks(opts.admin, client.appName));
  const pgssUs = opts.pgss ? await pgssUsPerCall(opts.scratch, queries) : null;
  return {
    queries,
    seconds,
    qps: queries / seconds,
    clientCpuUsPerQuery: (cpu.user + cpu.system) / queries,
    serverCpuUsPerQuery: ticksBefore && ticksAfter ? serverCpuUs(ticksBefore, ticksAfter) / queries : null,
    pgssUsPerCall: pgssUs,
  };
}

// ---------------------------------------------------------------------------------------------
// Generic plans: what a named statement runs after its fifth execution.

interface PlanCheck {
  statement: string;
  /** After 6 executions, EXPLAIN EXECUTE shows parameters ($n) instead of values: the generic plan. */
  genericAfterSix: boolean;
  sameShape: boolean;
  generic: string[];
  custom: string[];
  /** Medians of 7 EXPLAIN ANALYZE runs: a custom plan is planned on every execution, a generic one was planned once. */
  genericPlanMs: number;
  customPlanMs: number;
  genericExecMs: number;
  customExecMs: number;
}

function planShape(lines: string[]): string[] {
  return lines
    .filter((l) => !/^(Planning|Execution) Time/.test(l.trim()))
    .map((l) =>
      l
        .replace(/\(cost=[^)]*\)/g, '')
        .replace(/\(actual[^)]*\)/g, '')
        .replace(/\$\d+|'[^']*'::\w+|\b\d+\b/g, '?')
        .trimEnd(),
    );
}

async function checkPlans(scratch: pg.Client, stmts: Statement[]): Promise<PlanCheck[]> {
  const out: PlanCheck[] = [];
  for (const stmt of stmts.filter((s) => s.key !== 'favorite')) {
    const call = stmt.calls(0, 0)[0]!;
    const args = call.values.map((v) => (typeof v === 'number' ? String(v) : `'${String(v)}'`)).join(', ');
    const explain = async (analyze: boolean) => {
      const r = await scratch.query<{ 'QUERY PLAN': string }>(
        `explain (${analyze ? 'analyze, timing off, ' : ''}costs off) execute dc_plan(${args})`,
      );
      return r.rows.map((x) => x['QUERY PLAN']);
    };
    const ms = (lines: string[], what: string) => Number(new RegExp(`${what} Time: ([\\d.]+)`).exec(lines.join('\n'))?.[1] ?? NaN);
    const medianTimes = async () => {
      const plan: number[] = [];
      const exec: number[] = [];
      for (let i = 0; i < 7; i++) {
        const lines = await explain(true);
        plan.push(ms(lines, 'Planning'));
        exec.push(ms(lines, 'Execution'));
      }
      return { plan: median(plan), exec: median(exec) };
    };
    await scratch.query(`prepare dc_plan as ${call.text}`);
    try {
      for (let i = 0; i < 6; i++) await scratch.query(`execute dc_plan(${args})`);
      const generic = await explain(false);
      const genericTimes = await medianTimes();
      await scratch.query('set plan_cache_mode = force_custom_plan');
      const custom = await explain(false);
      const customTimes = await medianTimes();
      await scratch.query('reset plan_cache_mode');
      out.push({
        statement: stmt.label,
        genericAfterSix: generic.some((l) => /\$\d/.test(l)),
        sameShape: JSON.stringify(planShape(generic)) === JSON.stringify(planShape(custom)),
        generic,
        custom,
        genericPlanMs: genericTimes.plan,
        customPlanMs: customTimes.plan,
        genericExecMs: genericTimes.exec,
        customExecMs: customTimes.exec,
      });
    } finally {
      await scratch.query('deallocate dc_plan');
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Deterministic values (mulberry32), so runs differ only in timing. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fmt(x: number | null, digits = 0): string {
  return x === null || Number.isNaN(x) ? '–' : x.toFixed(digits);
}

function cell(xs: (number | null)[], digits = 0): string {
  if (xs.some((x) => x === null)) return '–';
  const v = xs as number[];
  return `${fmt(median(v), digits)} (${fmt(Math.min(...v), digits)}–${fmt(Math.max(...v), digits)})`;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      url: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
      concurrency: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '400' },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });
  const concurrency = Number(args.concurrency);
  const rounds = Number(args.rounds);
  const durationMs = Number(args.duration) * 1000;
  const warmup = Number(args.warmup);
  const serverUrl = new URL(args.url);
  assertLoopback(serverUrl);
  const scratchUrl = new URL(serverUrl);
  scratchUrl.pathname = `/${SCRATCH_DB}`;

  await withAdmin(serverUrl.href, async (admin) => {
    const serverVersion = (await admin.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
    const t0 = performance.now();
    await createScratch(admin, scratchUrl.href);
    console.error(`seeded ${SCRATCH_DB} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const scratch = new pg.Client({ connectionString: scratchUrl.href, application_name: 'driver-compare-control' });
    scratch.on('error', () => undefined);
    await scratch.connect();
    const clients: Client[] = [
      pgClient(scratchUrl.href, false),
      pgClient(scratchUrl.href, true),
      conduitClient(scratchUrl.href, 1),
      conduitClient(scratchUrl.href, 4),
      conduitClient(scratchUrl.href, 16),
    ];
    try {
      const stmts = await statements(concurrency, prng(1));
      const before = await favoritesFingerprint(scratch);
      const pgss = await pgssAvailable(admin, scratch);
      const plans = await checkPlans(scratch, stmts);

      // Every client's results are the same rows (the same SQL, the same parsers).
      for (const stmt of stmts.filter((s) => s.key !== 'favorite')) {
        const call = stmt.calls(0, 0)[0]!;
        const results = await Promise.all(clients.map(async (c) => JSON.stringify(await c.run(call))));
        if (new Set(results).size !== 1) throw new Error(`${stmt.label}: the clients returned different rows`);
      }

      // Warm up: every connection opened, statements prepared, the JIT warm.
      for (const client of clients) {
        for (const stmt of stmts) await drive(client, stmt, concurrency, (q) => q >= warmup);
      }

      const samples = new Map<string, Sample[]>();
      const opts = { concurrency, durationMs, admin, scratch, pgss };
      for (let r = 0; r < rounds; r++) {
        for (const stmt of stmts) {
          for (let i = 0; i < clients.length; i++) {
            const client = clients[(i + r) % clients.length]!;
            const s = await measure(client, stmt, opts);
            const key = `${client.key}/${stmt.key}`;
            samples.set(key, [...(samples.get(key) ?? []), s]);
            console.error(
              `round ${r + 1}/${rounds} ${stmt.label.padEnd(26)} ${client.label.padEnd(12)} ${fmt(s.qps).padStart(6)} q/s  ` +
                `client ${fmt(s.clientCpuUsPerQuery).padStart(4)} µs/q  server ${fmt(s.serverCpuUsPerQuery).padStart(4)} µs/q`,
            );
          }
        }
      }
      const connections: Record<string, number> = {};
      for (const c of clients) connections[c.label] = (await backendPids(admin, c.appName)).length;
      const after = await favoritesFingerprint(scratch);
      if (after !== before) throw new Error(`the favorites changed: before ${before}, after ${after}`);

      const results = stmts.flatMap((stmt) =>
        clients.map((client) => {
          const s = samples.get(`${client.key}/${stmt.key}`) ?? [];
          const pick = (f: (x: Sample) => number | null) => s.map(f);
          return {
            statement: stmt.label,
            client: client.label,
            rounds: s,
            qps: pick((x) => x.qps),
            clientCpuUsPerQuery: pick((x) => x.clientCpuUsPerQuery),
            serverCpuUsPerQuery: pick((x) => x.serverCpuUsPerQuery),
            pgssUsPerCall: pick((x) => x.pgssUsPerCall),
          };
        }),
      );

      const lines = [
        `Node ${process.version}, PostgreSQL ${serverVersion}, ${os.cpus().length} CPUs (load ${os
          .loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')}), ` +
          `concurrency ${concurrency}, pool ${POOL_MAX} each, ${rounds} rounds of ${durationMs / 1000} s per client and statement. ` +
          `Median round (min–max).`,
        '',
        `| statement | client | queries/s | client CPU µs/query | server CPU µs/query |${pgss ? ' server µs/call (pg_stat_statements, wall) |' : ''}`,
        `| --- | --- | ---: | ---: | ---: |${pgss ? ' ---: |' : ''}`,
        ...results.map(
          (x) =>
            `| ${x.statement} | ${x.client} | ${cell(x.qps)} | ${cell(x.clientCpuUsPerQuery)} | ${cell(x.serverCpuUsPerQuery)} |` +
            (pgss ? ` ${cell(x.pgssUsPerCall, 1)} |` : ''),
        ),
        '',
        `Connections open at the end: ${Object.entries(connections)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}.`,
        pgss ? '' : 'pg_stat_statements: not preloaded by this server (shared_preload_libraries), so server cost is backend CPU only.',
        '',
        'Prepared statements after 6 executions (plan_cache_mode = auto) vs a custom plan:',
        '',
        '| statement | generic plan after 6 | same plan shape | planning ms generic / custom | execution ms generic / custom |',
        '| --- | --- | --- | ---: | ---: |',
        ...plans.map(
          (p) =>
            `| ${p.statement} | ${p.genericAfterSix ? 'yes' : 'no'} | ${p.sameShape ? 'yes' : 'no'} | ` +
            `${fmt(p.genericPlanMs, 3)} / ${fmt(p.customPlanMs, 3)} | ${fmt(p.genericExecMs, 3)} / ${fmt(p.customExecMs, 3)} |`,
        ),
        '',
        '(EXPLAIN ANALYZE medians of 7, timing off.)',
      ];
      console.log(lines.join('\n'));
      if (args.json) {
        await writeFile(
          args.json,
          JSON.stringify(
            {
              node: process.version,
              postgres: serverVersion,
              cpus: os.cpus().length,
              loadavg: os.loadavg(),
              concurrency,
              poolMax: POOL_MAX,
              rounds,
              durationS: durationMs / 1000,
              pgStatStatements: pgss,
              connections,
              results,
              plans,
            },
            null,
            2,
          ) + '\n',
        );
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await scratch.end();
      if (!args.keep) await admin.query(`drop database if exists ${SCRATCH_DB} with (force)`);
    }
  });
}

await main();
