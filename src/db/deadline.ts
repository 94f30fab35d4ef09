// Request deadlines that reach the database. Each request runs inside a scope holding the moment
// its REQUEST_TIMEOUT_MS runs out; a statement sent inside that scope arms a timer for the time
// left, and is cancelled when it fires (pool.ts): withdrawn if it is still waiting for a
// connection, cancelled in PostgreSQL if it runs, so the server stops working, not just the client
// waiting. The request then fails with 504 (http/errors.ts maps `DeadlineExceeded` and
// PostgreSQL's query_canceled to it).
//
// A deadline, not an AbortSignal.timeout() per request: that would make a signal and a timer for
// every request, cached hits that never touch the database included, firing REQUEST_TIMEOUT_MS
// later anyway and building a DOMException for a request long answered (3% of a cached read's
// CPU in `npm run profile -- --scenario list`). Here only a statement pays for a timer, and
// clears it when it settles. docs/database.md "Request deadlines".
import { AsyncLocalStorage } from 'node:async_hooks';

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
