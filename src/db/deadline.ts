// Request deadlines that reach the database. Each request runs inside a scope holding the moment
// its REQUEST_TIMEOUT_MS runs out; a pooled connection checked out inside that scope arms a timer
// for the time left, and cancels its running statement in PostgreSQL when it fires, so the server
// stops working, not just the client waiting. The request then fails with 504 (http/errors.ts
// maps `DeadlineExceeded` and PostgreSQL's query_canceled to it).
//
// A deadline, not an AbortSignal.timeout() per request: that would make a signal and a timer for
// every request, cached hits that never touch the database included, firing REQUEST_TIMEOUT_MS
// later anyway and building a DOMException for a request long answered (3% of a cached read's
// CPU in `npm run profile -- --scenario list`). Here only a checkout pays for a timer, and clears
// it on release.
//
// The cancel is PostgreSQL's own pg_cancel_backend(pid), sent on a connection of its own: each
// pooled connection learns its backend's pid once (`select pg_backend_pid()`, on its first
// checkout inside a request), so later checkouts cost nothing more than the timer.
// docs/database.md "Request deadlines" has the measurement.
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';

export interface RequestScope {
  /** performance.now() at which the request's time is up. */
  readonly deadline: number;
  readonly timeoutMs: number;
}

/** The request's time is up. */
export function expired(scope: RequestScope): boolean {
  return performance.now() >= scope.deadline;
}

export const requestScope = new AsyncLocalStorage<RequestScope>();

/** The request's time ran out before (or while) it got a connection. */
export class DeadlineExceeded extends Error {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`deadline of ${timeoutMs} ms exceeded`);
    this.name = 'DeadlineExceeded';
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Cancels the statement running on a pooled connection with pg_cancel_backend, from a pool of
 * its own (one connection, opened on the first cancel and closed when idle): the request pool is
 * often exhausted exactly when deadlines fire. pg_cancel_backend needs the same role as the
 * backend it signals, which the two pools share.
 */
export class Canceller {
  readonly #pids = new WeakMap<pg.ClientBase, Promise<number | undefined>>();
  readonly #connectionString: string;
  #pool: pg.Pool | undefined;
  #ended = false;

  constructor(connectionString: string) {
    this.#connectionString = connectionString;
  }

  /**
   * Learns the connection's backend pid, once: the first time it is checked out inside a request
   * scope, before it is handed over (so no other statement runs on it meanwhile). Returns what
   * to await then; undefined once it is known.
   */
  learn(client: pg.ClientBase): Promise<unknown> | undefined {
    if (this.#pids.has(client)) return undefined;
    const pid = client.query<{ pid: number }>('select pg_backend_pid() as pid').then(
      (res) => res.rows[0]?.pid,
      () => undefined,
    );
    this.#pids.set(client, pid);
    return pid;
  }

  /** Cancels whatever the connection runs now; never rejects (the server-side timeout is the backstop). */
  async cancel(client: pg.ClientBase): Promise<void> {
    const pid = await this.#pids.get(client);
    if (pid === undefined || this.#ended) return;
    this.#pool ??= this.#open();
    await this.#pool.query('select pg_cancel_backend($1)', [pid]).catch(() => undefined);
  }

  async end(): Promise<void> {
    this.#ended = true;
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.end();
  }

  #open(): pg.Pool {
    const pool = new pg.Pool({
      connectionString: this.#connectionString,
      max: 1,
      // A cancel that cannot be sent within a second is left to the statement_timeout backstop
      // (pool.ts): waiting longer would only hold the request's answer further past its deadline.
      connectionTimeoutMillis: 1000,
      idleTimeoutMillis: 5000,
      allowExitOnIdle: true,
      application_name: 'conduit-cancel',
    });
    pool.on('error', () => undefined);
    return pool;
  }
}

/**
 * Ties a checked-out client to the current request's deadline. Returns the function to call on
 * release; it says whether the client must be destroyed: a cancel that was sent may arrive after
 * the statement ended, and must not hit the next request's statement on a reused connection.
 */
export function watchDeadline(client: pg.PoolClient, scope: RequestScope, canceller: Canceller): () => boolean {
  let cancelled = false;
  const timer = setTimeout(
    () => {
      cancelled = true;
      void canceller.cancel(client);
    },
    Math.max(0, scope.deadline - performance.now()),
  );
  return () => {
    clearTimeout(timer);
    return cancelled;
  };
}
