// The one layer every request passes, before anything else runs for it and in this order:
//   1. admission: the load shedder (event loop, heap, requests in flight) and the per-address
//      rate limit may refuse it;
//   2. observation: the request is counted in flight, tracing decides once whether it gets a
//      span, and when its response is done it is counted in the duration metric and logged;
//   3. then either the replay of a cached answer (cache/hot-path.ts) or the router (Fastify).
// A refused request still goes to the router, marked with its refusal: the route decides
// whether it may be refused (the probes and /metrics never are) and the error handler renders
// it, so a refusal has the shape and headers of every other error. A replay is the same layer's
// other branch: it is admitted, counted, sampled and logged exactly as a routed request is.
//
// Why a layer in front of Fastify rather than Fastify hooks: a replay costs ~17 µs of CPU, and
// Fastify's per-request work before any hook runs (routing, request and reply objects, a child
// logger) would double it (docs/caching.md "The hot path" has the measurement).
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { NeverRefused } from './never-refused.ts';
import { Waiting } from './waiting.ts';

export const kRefusal = Symbol('conduit.refusal');
export const kSampled = Symbol('conduit.sampled');
export const kRouted = Symbol('conduit.routed');
const kStarted = Symbol('conduit.started');
const kAdmitted = Symbol('conduit.admitted');
const kReplay = Symbol('conduit.replay');

/** Why the pipeline refuses a request: the router's side renders it (app.ts). */
export interface Refusal {
  readonly status: 429 | 503;
  /** The error's key and message in the `{"errors":{...}}` body. */
  readonly key: 'request' | 'server';
  readonly reason: string;
  /** Seconds, sent as Retry-After. */
  readonly retryAfter: number;
}

declare module 'node:http' {
  interface IncomingMessage {
    [kRefusal]?: Refusal;
    /** Tracing wants a span for this request (decided once, here). */
    [kSampled]?: boolean;
    /** Fastify's request for it, once routed: its route template and logger. */
    [kRouted]?: FastifyRequest;
    [kReplay]?: Replay;
  }
  interface ServerResponse {
    [kStarted]?: number;
    /** Counted in `admitted` (not shed) until it is done. */
    [kAdmitted]?: boolean;
  }
}

/** A recorded answer the replay branch can write (cache/hot-path.ts Replays). */
export interface Replay {
  /** The route template, for the metrics and the log line. */
  readonly route: string;
}

/** The replay branch's store: the hot path (cache/hot-path.ts), given by app.ts. */
export interface ReplayStore {
  /** The replay for `req`, if it may be answered with one. */
  find(req: IncomingMessage): Replay | undefined;
  /** Writes it: the response is answered. */
  answer(replay: Replay, res: ServerResponse): void;
}

/** A count in a fixed window: how many requests it holds, and milliseconds until it resets. */
export interface Window {
  current: number;
  ttl: number;
}

/** The per-address limit every request counts against (http/rate-limit.ts). */
export interface GlobalLimit {
  readonly max: number;
  /** Counts one request from `address`; a promise when the counters are shared (Redis). */
  count(address: string): Window | Promise<Window>;
}

export interface PipelineParts {
  readonly lifecycle: { readonly draining: boolean };
  /** Why the process refuses new work now (the event loop, the heap: load-shedding.ts), or null. */
  readonly overload: (() => string | null) | undefined;
  /** Admitted requests in progress at most (SHED_MAX_IN_FLIGHT; 0: no bound). */
  readonly maxInFlight: number;
  /** How long a request past that bound waits for a place before its 503, in ms (0: 503 at once). */
  readonly waitMs: number;
  /** Requests waiting at most; more are answered 503 at once. */
  readonly maxWaiting: number;
  readonly limit: GlobalLimit | undefined;
  /** The client's address, as TRUST_PROXY says to read it. */
  clientAddress(req: IncomingMessage): string;
  /** URLs never refused nor counted: the probes, /metrics, /docs (routes with config.neverShed). */
  readonly neverRefused: NeverRefused;
  /** Tracing's decision for a request (undefined: tracing is off). */
  readonly sample: ((req: IncomingMessage) => boolean) | undefined;
  readonly replays: ReplayStore | undefined;
  /** The duration metric. */
  observe(method: string, route: string, status: number, seconds: number): void;
  /** Request lines are written at info, when the logger writes info. */
  readonly log: FastifyBaseLogger | undefined;
  /** Told when a connection has a request in progress and when it is idle again (connections.ts). */
  readonly connections: { busy(socket: Socket): void; idle(socket: Socket): void } | undefined;
}

export type Router = (req: IncomingMessage, res: ServerResponse) => void;

/** A request waiting for a place (SHED_MAX_IN_FLIGHT), since its arrival. */
interface Waiter {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly router: Router;
  readonly since: number;
}

export class Pipeline {
  readonly #parts: PipelineParts;
  readonly #logs: boolean;
  readonly #closed: (this: ServerResponse) => void;
  /**
   * inFlight: every request received and not yet done (the metric); admitted: those of them the
   * shedder let in, whose bound is SHED_MAX_IN_FLIGHT (refused ones cost little and leave fast).
   */
  readonly stats = { inFlight: 0, admitted: 0, waiting: 0, shed: 0, rateLimited: 0 };
  readonly #waiting = new Waiting<Waiter>();
  #expiry: NodeJS.Timeout | undefined;
  /** #next is running: a request it admits may finish at once (a replay) and call it again. */
  #taking = false;

  constructor(parts: PipelineParts) {
    this.#parts = parts;
    const log = parts.log as { isLevelEnabled?: (level: string) => boolean } | undefined;
    this.#logs = log?.isLevelEnabled?.('info') === true;
    // One function for every response (the response is `this`): no closure per request.
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the listener's `this` is the response
    const pipeline = this;
    this.#closed = function (this: ServerResponse) {
      pipeline.#done(this);
    };
  }

  /** The server's request listener: `router` is Fastify's. */
  handle(req: IncomingMessage, res: ServerResponse, router: Router): void {
    const parts = this.#parts;
    res[kStarted] = performance.now();
    this.stats.inFlight++;
    parts.connections?.busy(req.socket);
    if (parts.sample !== undefined) req[kSampled] = parts.sample(req);
    const exempt = parts.neverRefused.has(req.url ?? '/');
    if (!exempt) {
      const overload = parts.overload?.() ?? null;
      const full = overload === null && parts.maxInFlight > 0 && this.stats.admitted >= parts.maxInFlight;
      // A recorded answer costs less to send than a refusal (no router, no error rendering):
      // under pressure it is still sent. Only work the process would have to do waits or is refused.
      if (overload !== null || full) {
        const replay = this.#replayFor(req);
        if (replay === undefined && overload !== null) return this.#refuse(req, res, router, overload);
        if (replay === undefined) return this.#wait({ req, res, router, since: res[kStarted] });
        req[kReplay] = replay;
      }
    }
    this.#admit(req, res, router, exempt);
  }

  #admit(req: IncomingMessage, res: ServerResponse, router: Router, exempt: boolean): void {
    const parts = this.#parts;
    res[kAdmitted] = true;
    this.stats.admitted++;
    if (parts.limit === undefined || exempt) return this.#dispatch(req, res, router);
    const counting = parts.limit.count(parts.clientAddress(req));
    if (!(counting instanceof Promise)) return this.#admitted(counting, req, res, router);
    counting.then(
      (window) => {
        // The client hung up while the counter was read: there is no one to answer.
        if (res.destroyed) this.#done(res);
        else this.#admitted(window, req, res, router);
      },
      // Counters unreachable: the limit protects the service, it must not become its outage.
      () => {
        if (res.destroyed) this.#done(res);
        else this.#dispatch(req, res, router);
      },
    );
  }

  #admitted(window: Window, req: IncomingMessage, res: ServerResponse, router: Router): void {
    if (window.current > this.#parts.limit!.max) {
      this.stats.rateLimited++;
      req[kRefusal] = {
        status: 429,
        key: 'request',
        reason: 'too many requests, retry later',
        retryAfter: Math.max(1, Math.ceil(window.ttl / 1000)),
      };
      return this.#route(req, res, router);
    }
    this.#dispatch(req, res, router);
  }

  #dispatch(req: IncomingMessage, res: ServerResponse, router: Router): void {
    // Looked up again when one was found at admission: with the rate limit counted in Redis, a
    // write's invalidation or the token's expiry may have come in between.
    const replay = this.#replayFor(req);
    req[kReplay] = replay;
    if (replay === undefined) return this.#route(req, res, router);
    this.#parts.replays!.answer(replay, res);
    // Written at once: done now, with no listener to register (a replay's whole cost is a few µs).
    this.#done(res);
  }

  /** The recorded answer for `req`, if it may have one now. */
  #replayFor(req: IncomingMessage): Replay | undefined {
    const { replays, lifecycle } = this.#parts;
    // A draining process answers through the router, which asks each client to close (app.ts).
    return replays !== undefined && req[kSampled] !== true && !lifecycle.draining ? replays.find(req) : undefined;
  }

  #refuse(req: IncomingMessage, res: ServerResponse, router: Router, reason: string): void {
    this.stats.shed++;
    req[kRefusal] = { status: 503, key: 'server', reason: `is overloaded (${reason}), retry later`, retryAfter: 1 };
    this.#route(req, res, router);
  }

  /** Past SHED_MAX_IN_FLIGHT: waits for a place (waiting.ts), or is refused when none can come in time. */
  #wait(entry: Waiter): void {
    const { waitMs, maxWaiting } = this.#parts;
    if (waitMs === 0 || this.#waiting.length >= maxWaiting) return this.#refuse(entry.req, entry.res, entry.router, 'requests in flight');
    this.#waiting.push(entry);
    this.stats.waiting++;
    // Expiry is checked as places free up, and by this timer while nothing does.
    this.#expiry ??= setInterval(() => this.#next(), Math.max(10, Math.min(100, waitMs / 4))).unref();
  }

  /** Gives free places to waiting requests, oldest first; refuses those that waited too long. */
  #next(): void {
    if (this.#taking) return;
    this.#taking = true;
    const { maxInFlight, waitMs } = this.#parts;
    const expired = performance.now() - waitMs;
    for (let w = this.#waiting.peek(); w !== undefined; w = this.#waiting.peek()) {
      const gone = w.res.destroyed;
      if (!gone && w.since > expired && this.stats.admitted >= maxInFlight) break;
      this.#waiting.shift();
      this.stats.waiting--;
      // The client hung up while it waited: no one to answer.
      if (gone) this.#done(w.res);
      else if (w.since <= expired) this.#refuse(w.req, w.res, w.router, 'requests in flight');
      else this.#admit(w.req, w.res, w.router, false);
    }
    if (this.#waiting.length === 0 && this.#expiry !== undefined) {
      clearInterval(this.#expiry);
      this.#expiry = undefined;
    }
    this.#taking = false;
  }

  /** To the router; done when the response closes (finished, or the client gone). */
  #route(req: IncomingMessage, res: ServerResponse, router: Router): void {
    res.on('close', this.#closed);
    router(req, res);
  }

  #done(res: ServerResponse): void {
    this.stats.inFlight--;
    this.#parts.connections?.idle(res.req.socket);
    if (res[kAdmitted] === true) {
      this.stats.admitted--;
      if (this.#waiting.length > 0) this.#next();
    }
    // A response cut short (the client hung up) has no status to count.
    if (!res.writableEnded) return;
    const req = res.req;
    const routed = req[kRouted];
    const route = req[kReplay]?.route ?? routed?.routeOptions.url ?? 'unmatched';
    const seconds = (performance.now() - res[kStarted]!) / 1000;
    this.#parts.observe(req.method ?? 'GET', route, res.statusCode, seconds);
    if (!this.#logs) return;
    const fields = { method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 100_000) / 100 };
    // A routed request's own logger carries its id and trace ids (telemetry/http-tracing.ts).
    if (routed !== undefined) routed.log.info(fields, 'request');
    else this.#parts.log!.info({ reqId: requestId(req), ...fields }, 'request');
  }
}

/** What a request id from a client or load balancer may be: short and plain, fit for a log line. */
const PLAIN_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * The request's id: the `X-Request-Id` a load balancer sent, so one id follows the request across
 * hops, when it is short and plain; otherwise a new one (a client must not write 15 KB, or a
 * forged log line, into every line of its request). Fastify's genReqId and the replay's log line.
 */
export function requestId(req: IncomingMessage): string {
  const id = req.headers['x-request-id'];
  return typeof id === 'string' && PLAIN_ID.test(id) ? id : randomUUID();
}
