// The hot path: a repeat of an anonymous read that the full pipeline answered from the response
// cache is answered again, before Fastify, with the same bytes and the same headers.
//
// Why: on a cached hit the service's own work is small (a map lookup, the stored bytes), and
// what is left is Fastify's per-request pipeline (routing, hook runners, reply objects, a child
// logger), which by itself held a cached read to half of what Node can serve
// (BENCHMARKS.md "The hot path"). Why it is safe:
//   - Nothing is decided here. Only a request the full pipeline has already answered is replayed:
//     same method, raw URL and Accept-Encoding, so the same routing, validation, cache key and
//     encoding; its status and headers are the ones that pipeline sent, recorded as they went out.
//   - The bytes are the cache entry's, and only while that entry is still the cache's current one
//     for its key: an invalidation (a write, here or in another process), an expiry or an
//     eviction ends every replay of it. A write's invalidation runs before the write is
//     answered, so the writer's next read is fresh here as in the pipeline.
//   - Whatever could make the answer differ is left to the pipeline: anything but GET, a token,
//     an Origin (CORS), a conditional request, a request body, a missing Host, a draining
//     process, an overloaded one (shedding answers 503 there), a request over its rate limit
//     (counted here, refused there), a request that tracing samples or continues.
//   - What the pipeline does for every request is done here too: the rate-limit count, the
//     request metrics, the cache-hit count and, at LOG_LEVEL=info, the request's log line.
//   - Not done here: the in-flight count (a replay is answered synchronously, or after the
//     rate-limit counter with Redis) and Fastify's own closing state: main.ts drains (the
//     pipeline answers everything, with Connection: close) before it closes the server.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../context.ts';
import type { Entry, ResponseCache } from './response-cache.ts';

const kServed = Symbol('conduit.servedFromCache');
type Served = { [kServed]: { entry: Entry<unknown>; body: Buffer } | null };

/**
 * Notes on the request that its answer is `body`, from `entry` (ResponseCache.send), for the
 * hot path to record once the response has gone out; returns `body`.
 */
export function served(request: FastifyRequest, entry: Entry<unknown>, body: Buffer): Buffer {
  // The property exists on every request (decorateServed): setting it changes no object shape.
  if (kServed in request) (request as unknown as Served)[kServed] = { entry, body };
  return body;
}

type HeaderValue = string | number | string[] | undefined;

/** One answer to replay. */
interface Replay {
  readonly entry: Entry<unknown>;
  /** Header names and values, alternating, as res.writeHead takes them (content-length included). */
  readonly headers: readonly string[];
  readonly body: Buffer;
  /** The route template, for the metrics and the log line. */
  readonly route: string;
}

/** What the rest of the service does for every request, done for a replayed one too. */
export interface HotPathHooks {
  /** True when the pipeline must answer: the process drains, sheds, or tracing samples this request. */
  pass(req: IncomingMessage): boolean;
  /** Counts the request against the rate limits; false when it is over one (the pipeline refuses it). */
  admit: ((req: IncomingMessage) => Promise<boolean>) | undefined;
  /** Counts the answered request in the metrics, and logs it when requests are logged. */
  served(req: IncomingMessage, route: string, status: number, seconds: number): void;
}

/** Headers Node writes per response itself, and the per-request ones: never replayed. */
const NOT_REPLAYED = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'traceparent', 'retry-after']);

/** Whether a request may be replayed (and recorded): nothing in it could change the answer. */
export function replayable(req: IncomingMessage): boolean {
  const h = req.headers;
  return (
    req.method === 'GET' &&
    h.authorization === undefined &&
    h.origin === undefined &&
    h['if-none-match'] === undefined &&
    h['if-modified-since'] === undefined &&
    h['content-length'] === undefined &&
    h['transfer-encoding'] === undefined &&
    h.traceparent === undefined &&
    (h.host !== undefined || req.httpVersion !== '1.1')
  );
}

const replayKey = (req: IncomingMessage) => `${req.url}\n${req.headers['accept-encoding'] ?? ''}`;

export class HotPath {
  readonly #cache: ResponseCache;
  readonly #max: number;
  // Insertion-ordered: past #max the oldest replay goes (it is rebuilt on its URL's next hit).
  readonly #replays = new Map<string, Replay>();
  // Each entry's replays: dropped when the cache lets the entry go, so a replay never keeps an
  // entry (its bytes) alive past the cache's own bound (CACHE_MAX_BYTES).
  readonly #byEntry = new Map<Entry<unknown>, Set<string>>();
  /** Set by buildApp once the rate limiter, metrics and logger exist. */
  hooks: HotPathHooks | undefined;
  readonly stats = { replayed: 0, recorded: 0 };

  constructor(cache: ResponseCache, maxReplays = 10_000) {
    this.#cache = cache;
    this.#max = maxReplays;
    cache.onDispose = (entry) => {
      const keys = this.#byEntry.get(entry);
      if (keys === undefined) return;
      this.#byEntry.delete(entry);
      for (const key of keys) if (this.#replays.get(key)?.entry === entry) this.#replays.delete(key);
    };
  }

  #drop(key: string): void {
    const replay = this.#replays.get(key);
    if (replay === undefined) return;
    this.#replays.delete(key);
    const keys = this.#byEntry.get(replay.entry);
    keys?.delete(key);
    if (keys?.size === 0) this.#byEntry.delete(replay.entry);
  }

  get size(): number {
    return this.#replays.size;
  }

  /** Records what the pipeline sent for a replayable request answered from `entry` (onResponse). */
  record(req: IncomingMessage, entry: Entry<unknown>, status: number, headers: Record<string, HeaderValue>, body: Buffer, route: string): void {
    // An entry the cache did not keep (a load that raced a write) is never replayed.
    if (status !== 200 || !replayable(req) || !this.#cache.isCurrent(entry)) return;
    const flat: string[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined || NOT_REPLAYED.has(name)) continue;
      if (Array.isArray(value)) for (const v of value) flat.push(name, String(v));
      else flat.push(name, String(value));
    }
    const key = replayKey(req);
    this.#drop(key);
    this.#replays.set(key, { entry, headers: flat, body, route });
    let keys = this.#byEntry.get(entry);
    if (keys === undefined) this.#byEntry.set(entry, (keys = new Set()));
    keys.add(key);
    this.stats.recorded++;
    if (this.#replays.size > this.#max) this.#drop(this.#replays.keys().next().value!);
  }

  /** Answers `req` from a replay, or hands it to `pipeline` (Fastify's handler). */
  handle(req: IncomingMessage, res: ServerResponse, pipeline: (req: IncomingMessage, res: ServerResponse) => void): void {
    const hooks = this.hooks;
    if (hooks === undefined || !replayable(req)) return pipeline(req, res);
    const key = replayKey(req);
    const replay = this.#replays.get(key);
    if (replay === undefined) return pipeline(req, res);
    if (!this.#cache.isCurrent(replay.entry)) {
      this.#drop(key);
      return pipeline(req, res);
    }
    if (hooks.pass(req)) return pipeline(req, res);
    const started = performance.now();
    if (hooks.admit === undefined) return this.#send(res, replay, hooks, req, started);
    hooks.admit(req).then(
      (ok) => {
        // The entry may have been invalidated while the counter was read (a Redis round trip).
        if (ok && this.#cache.isCurrent(replay.entry)) this.#send(res, replay, hooks, req, started);
        else pipeline(req, res);
      },
      () => pipeline(req, res),
    );
  }

  #send(res: ServerResponse, replay: Replay, hooks: HotPathHooks, req: IncomingMessage, started: number): void {
    this.stats.replayed++;
    this.#cache.stats.hits++;
    res.writeHead(200, replay.headers as string[]);
    res.end(replay.body);
    hooks.served(req, replay.route, 200, (performance.now() - started) / 1000);
  }
}

/**
 * After a response (buildApp's onResponse hook): records what the pipeline sent, if it was a
 * cached anonymous read (ResponseCache.send noted it). One call in an existing hook, not a hook
 * of its own: every hook is per-request work for every request.
 */
export function recordServed(hot: HotPath, request: FastifyRequest, reply: FastifyReply): void {
  const s = (request as unknown as Served)[kServed];
  if (s !== null) hot.record(request.raw, s.entry, reply.statusCode, reply.getHeaders(), s.body, request.routeOptions.url ?? 'unmatched');
}

/** Gives every request the property ResponseCache.send notes its entry in (see served()). */
export function decorateServed(app: App): void {
  app.decorateRequest(kServed, null);
}
