// Request deadlines that reach the database. Each request runs inside a scope holding the moment
// its REQUEST_TIMEOUT_MS runs out; a pooled connection checked out inside that scope arms a timer
// for the time left, and cancels its running statement in PostgreSQL when it fires (a real
// CancelRequest, so the server stops working, not just the client waiting). The request then
// fails with 504.
//
// A deadline, not an AbortSignal.timeout() per request, which this used first: every request,
// cached hits that never touch the database included, then made a signal and a timer that fired
// REQUEST_TIMEOUT_MS later anyway, building a DOMException for a request long answered (3% of a
// cached read's CPU in `npm run profile -- --scenario list`). Now only a checkout pays for a timer,
// and clears it on release.
import { AsyncLocalStorage } from 'node:async_hooks';
import net from 'node:net';
import type pg from 'pg';
import { AppError } from '../http/errors.ts';

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

export function deadlineExceeded(timeoutMs: number): AppError {
  return new AppError(504, { request: ['timed out'] }, { cause: new Error(`deadline of ${timeoutMs} ms exceeded`), retryAfter: 1 });
}

interface BackendKey {
  host: string;
  port: number;
  processID: number;
  secretKey: number;
}

/**
 * PostgreSQL's CancelRequest: a new connection that sends the backend's pid and secret key and
 * closes (protocol 3.0, "Canceling Requests in Progress"). No authentication is involved.
 */
export function sendCancel(client: pg.PoolClient): Promise<void> {
  const key = client as unknown as BackendKey;
  return new Promise((resolve) => {
    const socket = net.connect(key.port, key.host, () => {
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(80877102, 4);
      packet.writeInt32BE(key.processID, 8);
      packet.writeInt32BE(key.secretKey, 12);
      socket.end(packet);
    });
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
}

/**
 * Ties a checked-out client to the current request's deadline. Returns the function to call on
 * release; it says whether the client must be destroyed: a cancel that was sent may arrive after
 * the statement ended, and must not hit the next request's statement on a reused connection.
 */
export function watchDeadline(client: pg.PoolClient, scope: RequestScope): () => boolean {
  let cancelled = false;
  const timer = setTimeout(
    () => {
      cancelled = true;
      void sendCancel(client);
    },
    Math.max(0, scope.deadline - performance.now()),
  );
  return () => {
    clearTimeout(timer);
    return cancelled;
  };
}
