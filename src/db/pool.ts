// The connection pool and the two helpers every repository uses. Repositories are plain
// functions whose first parameter is a `Queryable`; a function that needs a transaction takes
// a `PoolClient` inside `inTransaction`, so its type says so.
import pg from 'pg';
import type { Config } from '../config.ts';
import { Canceller, DeadlineExceeded, expired, requestScope, watchDeadline, type RequestScope } from './deadline.ts';
import { PreparingClient } from './prepared.ts';

export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void;

/**
 * Told of every checkout (`connect`, which `query` goes through too): how long it waited for a
 * connection, in milliseconds, and the error if it got none.
 */
export type AcquireObserver = (waitMs: number, err: unknown) => void;

/**
 * A pg.Pool whose connections honour the current request's deadline (see deadline.ts), and that
 * reports each checkout's wait to its observers (telemetry/metrics.ts). Both `pool.query` and
 * `pool.connect` go through `connect`, so every statement is covered.
 */
export class Pool extends pg.Pool {
  readonly #canceller: Canceller;
  readonly #observers = new Set<AcquireObserver>();

  constructor(config: pg.PoolConfig & { connectionString: string }) {
    super(config);
    this.#canceller = new Canceller(config.connectionString);
  }

  /** Calls `observer` after every checkout from now on; returns the function that stops it. */
  observeAcquire(observer: AcquireObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  // pg-pool's own `query` calls connect with a callback; transactions call it for a promise.
  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    const scope = requestScope.getStore();
    if (!scope && this.#observers.size === 0) return callback ? super.connect(callback) : super.connect();
    const checkedOut = this.#observed(performance.now(), scope ? this.#connectWithin(scope) : super.connect());
    if (!callback) return checkedOut;
    checkedOut.then(
      (client) => callback(undefined, client, (err) => client.release(err as Error | undefined)),
      (err: Error) => callback(err, undefined, () => undefined),
    );
  }

  override end(): Promise<void>;
  override end(callback: () => void): void;
  override end(callback?: () => void): Promise<void> | void {
    const ended = Promise.all([super.end(), this.#canceller.end()]).then(() => undefined);
    if (!callback) return ended;
    void ended.then(callback, callback);
  }

  #observed(started: number, checkedOut: Promise<pg.PoolClient>): Promise<pg.PoolClient> {
    if (this.#observers.size === 0) return checkedOut;
    const observe = (err: unknown) => {
      const waitMs = performance.now() - started;
      for (const observer of this.#observers) observer(waitMs, err);
    };
    return checkedOut.then(
      (client) => {
        observe(undefined);
        return client;
      },
      (err: unknown) => {
        observe(err);
        throw err;
      },
    );
  }

  async #connectWithin(scope: RequestScope): Promise<pg.PoolClient> {
    if (expired(scope)) throw new DeadlineExceeded(scope.timeoutMs);
    const client = await super.connect();
    const learning = this.#canceller.learn(client);
    if (learning) await learning;
    if (expired(scope)) {
      client.release();
      throw new DeadlineExceeded(scope.timeoutMs);
    }
    const unwatch = watchDeadline(client, scope, this.#canceller);
    const release = client.release.bind(client);
    client.release = (err?: Error | boolean) => {
      client.release = release;
      // A cancelled connection is closed rather than reused (a late cancel must not hit the
      // next request's statement).
      return release(unwatch() ? new Error('statement cancelled at the request deadline') : err);
    };
    return client;
  }
}

// int8 (bigint ids, count(*)) come back as strings by default; every id and count here fits
// in a double by a wide margin, and the API wants numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
// int8[] (oid 1016, absent from pg's builtins enum): arrays of ids, numbers like the scalars.
const INT8_ARRAY = 1016 as Parameters<typeof pg.types.getTypeParser>[0];
const parseInt8Array = pg.types.getTypeParser(INT8_ARRAY) as (v: string) => string[];
pg.types.setTypeParser(INT8_ARRAY, (v: string) => parseInt8Array(v).map(Number));

export function createPool(
  connectionString: string,
  config: Pick<Config, 'dbPoolMax' | 'dbAcquireTimeoutMs'> & Partial<Pick<Config, 'requestTimeoutMs' | 'dbPrepare'>>,
): Pool {
  const deadline = config.requestTimeoutMs ?? 0;
  const pool = new Pool({
    connectionString,
    max: config.dbPoolMax,
    // pg calls this connectionTimeoutMillis, but it bounds the wait for a free pooled client
    // as well as the TCP connect: the acquire timeout.
    connectionTimeoutMillis: config.dbAcquireTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: 'conduit',
    // Every parameterised statement prepared once per connection, and planned once: generic
    // plans, held to the indexes by src/db/indexes.test.ts (prepared.ts says why).
    ...(config.dbPrepare === false ? {} : { Client: PreparingClient, options: '-c plan_cache_mode=force_generic_plan' }),
    // The server-side backstop for the request deadline: if a cancel is lost, PostgreSQL
    // still stops the statement, well after the deadline (the cancel is the normal path).
    ...(deadline > 0 ? { statement_timeout: 2 * deadline + 1000 } : {}),
  });
  // pg-pool listens for 'error' only on idle clients. A checked-out client whose server goes
  // away (PostgreSQL stopped or restarted mid-request) emits 'error' with no listener: an
  // uncaught exception that shut the whole process down on the first database outage under
  // load (test/resilience/faults.test.ts). The error also fails the client's queries, so the
  // request still answers 503 and the client is discarded on release; nothing else to do here.
  pool.on('connect', (client) => client.on('error', () => undefined));
  // The same for an idle client, which pg-pool reports as the pool's own 'error' event: a server
  // that ends an idle connection (a restart, `drop database ... with (force)`) must not be an
  // uncaught exception in a process that forgot to listen (the migration tests' pools, CI on the
  // external server). The pool discards the client and opens another on demand; main.ts adds a
  // listener that logs it.
  pool.on('error', () => undefined);
  return pool;
}

export async function inTransaction<T>(pool: Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A client whose rollback failed is in an unknown state: destroy it instead of pooling it.
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
