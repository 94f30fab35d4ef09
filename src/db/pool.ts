// The request pool, on postgres.js, and the one interface every repository uses. Repositories are
// plain functions whose first parameter is a `Queryable`: `query(text, values)` with `$n`
// parameters, answering `{ rows, rowCount }`.
//
// Why postgres.js for requests (docs/database.md has the measurements): it prepares each
// statement once per connection and learns what it takes and returns once for the whole pool,
// and it pipelines queries on busy connections. On the article read that is 17-20 µs of the
// service's CPU per query against 55-60 for node-postgres with named statements, and less
// PostgreSQL CPU too (fewer wake-ups). The migrations and the LISTEN/NOTIFY bus stay on pg: one
// connection each, nothing on the hot path.
//
// What the service keeps from before, and where:
//   - the request deadline reaches PostgreSQL: a statement still queued or running when its
//     request's time is up is cancelled (postgres.js's cancel: withdrawn if not sent, otherwise
//     the protocol's CancelRequest, and the connection closed if that goes unanswered), 504;
//   - the acquire timeout: a query that finds every connection carrying DB_PIPELINE queries waits
//     at most DB_ACQUIRE_TIMEOUT_MS (postgres.js's queue_timeout), then 503 with Retry-After;
//   - pool metrics (telemetry/metrics.ts: connections by state from `sql.stats`, the wait and the
//     failures from the `postgres:query` diagnostics channel) and a span per query
//     (telemetry/sdk.ts, from the same channel);
//   - DB_PREPARE=off for a pooler that cannot follow prepared statements.
//
// Every statement with parameters is prepared once per connection, as SQLx's statement cache
// does: sent with its whole text, a statement is parsed and planned again on every call, four
// fifths of PostgreSQL's work on the article read (pgbench on that statement: 7.7k tps with
// `-M extended`, 41k with `-M prepared`). Statements without parameters (`begin`, `select 1`, a
// migration) go on the simple protocol: one message, nothing to plan worth keeping.
//
// Generic plans: left to itself (plan_cache_mode = auto), PostgreSQL keeps planning a statement
// for its values whenever the generic plan's estimate looks costlier. For the list statements it
// always does (an unknown LIMIT is estimated as a tenth of the table): 110-120 µs of planning per
// call, a fifth of their time, for the plan a generic one matches block for block. So the
// connections run with plan_cache_mode = force_generic_plan, and src/db/indexes.test.ts holds the
// generic plan of every list, feed, filter, article, comment, profile and login statement to its
// indexes and to the blocks the plan for its values reads. Where one shape's best plan depends on
// its values, the statement takes another shape (the feed: articles.listing.ts feedPage).
import dc from 'node:diagnostics_channel';
import postgres from 'postgres';
import type { Config } from '../config.ts';
import { DEFAULT_DB_PIPELINE } from '../config/database.ts';
import { DeadlineExceeded, requestScope } from './deadline.ts';

export interface QueryResult<R> {
  rows: R[];
  /** Rows returned, or changed by an insert, update or delete. */
  rowCount: number | null;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rows are typed by each caller
type AnyRow = any;

export interface Queryable {
  query<R = AnyRow>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>>;
}

/** One connection taken out of the pool (`connect`): statements run on it in order, until `release`. */
export interface PoolClient extends Queryable {
  release(): void;
}

/**
 * Told of every query: how long it waited for a connection, in milliseconds, and the error if it
 * got none (the acquire timeout, a connection that could not be opened).
 */
export type AcquireObserver = (waitMs: number, err: unknown) => void;

// int8 (bigint ids, count(*)) and int8[] as numbers: every id and count here fits in a double by a
// wide margin, and the API wants numbers. postgres.js parses an array with its element's parser.
const INT8 = 20;
const int8: postgres.PostgresType<number> = {
  to: INT8,
  from: [INT8],
  serialize: (v: number) => String(v),
  parse: (v: string) => Number(v),
};

// Errors that mean "no connection was had", for the failures counter (not a statement's own error).
const ACQUIRE_FAILED = new Set([
  'QUEUE_TIMEOUT',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'ECONNREFUSED',
  'ENOTFOUND',
]);

interface QueryTraceFields {
  database: string | null;
  queued: number;
  sent: number | null;
  error?: unknown;
}

export interface PoolOptions
  extends Pick<Config, 'dbPoolMax' | 'dbAcquireTimeoutMs'>, Partial<Pick<Config, 'requestTimeoutMs' | 'dbPrepare' | 'dbPipeline'>> {
  /** application_name of the connections (pg_stat_activity); default 'conduit'. */
  applicationName?: string;
}

export class Pool implements Queryable {
  readonly max: number;
  readonly #sql: postgres.Sql<{ int8: number }>;
  readonly #prepare: boolean;
  readonly #database: string;
  readonly #observers = new Set<AcquireObserver>();
  #ended = false;

  constructor(connectionString: string, options: PoolOptions) {
    const deadline = options.requestTimeoutMs ?? 0;
    const prepare = options.dbPrepare !== false;
    this.max = options.dbPoolMax;
    this.#prepare = prepare;
    this.#database = decodeURIComponent(new URL(connectionString).pathname.slice(1));
    this.#sql = postgres(connectionString, {
      max: options.dbPoolMax,
      max_pipeline: options.dbPipeline ?? DEFAULT_DB_PIPELINE,
      prepare,
      queue_timeout: options.dbAcquireTimeoutMs / 1000,
      connect_timeout: Math.max(1, options.dbAcquireTimeoutMs / 1000),
      idle_timeout: 30,
      // Reconnecting after PostgreSQL comes back: at most a second apart. The driver's default
      // grows to 20 s, and after a 3 s restart under load the first 200 came 3.5 s after the
      // server accepted connections again (test/resilience/faults.test.ts).
      backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 1),
      types: { int8 },
      // node-postgres sent undefined as null; a repository never means anything else by it.
      transform: { undefined: null },
      onnotice: () => undefined,
      connection: {
        application_name: options.applicationName ?? 'conduit',
        // Generic plans for prepared statements (above), held to the indexes by src/db/indexes.test.ts.
        ...(prepare ? { plan_cache_mode: 'force_generic_plan' } : {}),
        // The server-side backstop for the request deadline: if a cancel is lost, PostgreSQL
        // still stops the statement, well after the deadline (the cancel is the normal path).
        ...(deadline > 0 ? { statement_timeout: 2 * deadline + 1000 } : {}),
      },
    });
  }

  query<R = AnyRow>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
    return run<R>(this.#sql, text, values, this.#prepare);
  }

  /** A connection of its own until `release()`: statements that must share one (a session lock, a transaction). */
  async connect(): Promise<PoolClient> {
    const reserved = await this.#sql.reserve();
    return { ...this.#on(reserved), release: () => reserved.release() };
  }

  /** `work` inside one transaction on one connection: committed if it resolves, rolled back if it throws. */
  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#sql.begin((tx) => work(this.#on(tx)));
  }

  /** The repositories' interface on one reserved connection or transaction. */
  #on(sql: Target): Queryable {
    const prepare = this.#prepare;
    return { query: <R>(text: string, values?: readonly unknown[]) => run<R>(sql, text, values, prepare) };
  }

  /** Connections open, and of those idle (no query in flight, not reserved). */
  get totalCount(): number {
    return this.#sql.stats.connections;
  }
  get idleCount(): number {
    return this.#sql.stats.idle;
  }
  /** Queries waiting for a connection. */
  get waitingCount(): number {
    return this.#sql.stats.waiting;
  }
  get ended(): boolean {
    return this.#ended;
  }

  /** Calls `observer` after every query from now on; returns the function that stops it. */
  observeAcquire(observer: AcquireObserver): () => void {
    this.#observers.add(observer);
    watch(this);
    return () => {
      this.#observers.delete(observer);
      if (this.#observers.size === 0) unwatch(this);
    };
  }

  /** Called by the diagnostics subscriber below for every query this pool's database settles. */
  observe(trace: QueryTraceFields): void {
    if (trace.database !== this.#database) return;
    const failed = trace.error !== undefined && ACQUIRE_FAILED.has((trace.error as { code?: string }).code ?? '') ? trace.error : undefined;
    const waitMs = (trace.sent ?? performance.now()) - trace.queued;
    for (const observer of this.#observers) observer(waitMs, failed);
  }

  async end(): Promise<void> {
    this.#ended = true;
    unwatch(this);
    await this.#sql.end({ timeout: 5 });
  }
}

// Pools whose observers want each query's wait. The diagnostics channel carries no pool of its
// own, so each pool takes the queries of its database: one request pool per process, as the
// service has (the bus and migrations are on pg and publish nothing here).
// Subscribed only while some pool is watched: with a subscriber, postgres.js builds a trace
// context for every query.
const watched = new Set<Pool>();
const QUERY_SETTLED = 'tracing:postgres:query:asyncEnd';
const onQuerySettled = (message: unknown) => {
  for (const pool of watched) pool.observe(message as QueryTraceFields);
};
function watch(pool: Pool): void {
  if (watched.size === 0) dc.subscribe(QUERY_SETTLED, onQuerySettled);
  watched.add(pool);
}
function unwatch(pool: Pool): void {
  if (watched.delete(pool) && watched.size === 0) dc.unsubscribe(QUERY_SETTLED, onQuerySettled);
}

type Target = postgres.Sql<{ int8: number }> | postgres.ReservedSql<{ int8: number }> | postgres.TransactionSql<{ int8: number }>;

async function run<R>(sql: Target, text: string, values: readonly unknown[] | undefined, prepare: boolean): Promise<QueryResult<R>> {
  // Without parameters: the simple protocol (one message; `begin`, a migration's several statements).
  const scope = requestScope.getStore();
  const left = scope ? scope.deadline - performance.now() : Infinity;
  if (scope && left <= 0) throw new DeadlineExceeded(scope.timeoutMs);
  const query = values && values.length > 0 ? sql.unsafe(text, values as postgres.ParameterOrJSON<never>[], { prepare }) : sql.unsafe(text);
  let rows: postgres.RowList<postgres.Row[]>;
  if (scope) {
    // One timer per statement inside a request, none for cached reads (deadline.ts says why).
    const timer = setTimeout(() => void query.cancel(), left);
    try {
      rows = await query;
    } finally {
      clearTimeout(timer);
    }
  } else {
    rows = await query;
  }
  // A plain array: the driver's result is an Array subclass carrying the command and columns, which
  // is not what a cached row list or a strict comparison should hold.
  return { rows: Array.from(rows) as R[], rowCount: rows.count ?? rows.length };
}

export function createPool(connectionString: string, options: PoolOptions): Pool {
  return new Pool(connectionString, options);
}

/**
 * The SQLSTATE and the constraint of a database error, from either driver: postgres.js (the
 * request pool) names the constraint `constraint_name`, pg (bus, migrations) `constraint`.
 */
export function databaseError(err: unknown): { code: string; constraint: string | undefined } | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as Error & { code?: unknown; constraint_name?: unknown; constraint?: unknown; severity?: unknown };
  if (typeof e.code !== 'string' || e.severity === undefined) return undefined;
  const constraint =
    typeof e.constraint_name === 'string' ? e.constraint_name : typeof e.constraint === 'string' ? e.constraint : undefined;
  return { code: e.code, constraint };
}
