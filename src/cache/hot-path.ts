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
//   - Not done here: the in-flight count (a replay is answered at once, or after the rate-limit
//     counter: a Redis round trip with REDIS_URL) and Fastify's own closing state: main.ts
//     drains (the pipeline answers everything, with Connection: close) before it closes the server.
//   - Only what was sent as noted is recorded: a body changed on its way out (compressed by
//     @fastify/compress for an Accept-Encoding the cache's negotiation did not pick, such as
//     `x-gzip`) is not replayed.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../context.ts';
import type { Encoding, Entry, ResponseCache } from './response-cache.ts';

const kAnswer = Symbol('conduit.cachedAnswer');
type CachedAnswer = { entry: Entry<unknown>; body: Buffer; encoding: Encoding | undefined };
type Noted = { [kAnswer]: CachedAnswer | null };

/**
 * Notes on the request that its answer is `body` (in `encoding`, or as stored), from `entry`
 * (ResponseCache.send), for the hot path to record once the response has gone out; returns `body`.
 */
export function noteCachedAnswer(request: FastifyRequest, entry: Entry<unknown>, body: Buffer, encoding?: Encoding): Buffer {
  // The property exists on every request (decorateCachedAnswer): setting it changes no object shape.
  if (kAnswer in request) (request as unknown as Noted)[kAnswer] = { entry, body, encoding };
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
  /** The pipeline must answer every request now: the process drains, or sheds load. */
  busy(): boolean;
  /** Tracing wants a span for this request (decided once: the request hook is told). */
  traced(req: IncomingMessage): boolean;
  /**
   * Counts the request against the rate limits; false when it is over one (the pipeline refuses
   * it). Synchronous when the counters are in this process, a promise when they are in Redis.
   */
  admit: ((req: IncomingMessage) => boolean | Promise<boolean>) | undefined;
  /** A request counted by admit and then handed to the pipeline: it must not be counted twice. */
  counted(req: IncomingMessage): void;
  /** Counts the answered request in the metrics, and logs it when requests are logged. */
  observe(req: IncomingMessage, route: string, status: number, seconds: number): void;
  /** Something threw on the way (a bug): logged; the response is ended. */
  failed(err: unknown): void;
}

/**
 * Response headers of the pipeline that belong to one response only: Connection (close, while
 * draining) and a traceparent. (Date, Keep-Alive and Transfer-Encoding are Node's, written after
 * the headers the pipeline sets, so they are never in what is recorded.)
 */
const NOT_REPLAYED = new Set(['connection', 'traceparent']);

/**
 * Replays of longer keys (URL and Accept-Encoding) are not kept: with 10,000 replays at most, a
 * client sending ever-different long headers could otherwise hold ~160 MB (16 KiB of headers each)
 * outside CACHE_MAX_BYTES. Real URLs and Accept-Encoding values are far shorter.
 */
const MAX_KEY_LENGTH = 2048;

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
  /** Set by buildApp once the shedder, rate limiter, metrics and logger exist; until then nothing is replayed. */
  hooks: HotPathHooks | undefined;
  readonly stats = { replayed: 0 };

  /**
   * `maxReplays`: one per URL and Accept-Encoding seen; 10,000 covers the benchmark's 2,131
   * distinct anonymous reads several times over, at a few hundred bytes each (the bytes are the
   * cache's).
   */
  constructor(cache: ResponseCache, maxReplays = 10_000) {
    if (cache.onDispose !== undefined) throw new Error('this cache already has a hot path');
    this.#cache = cache;
    this.#max = maxReplays;
    cache.onDispose = (entry) => {
      const keys = this.#byEntry.get(entry);
      if (keys === undefined) return;
      this.#byEntry.delete(entry);
      for (const key of keys) if (this.#replays.get(key)?.entry === entry) this.#replays.delete(key);
    };
  }

  get size(): number {
    return this.#replays.size;
  }

  #drop(key: string): void {
    const replay = this.#replays.get(key);
    if (replay === undefined) return;
    this.#replays.delete(key);
    const keys = this.#byEntry.get(replay.entry);
    keys?.delete(key);
    if (keys?.size === 0) this.#byEntry.delete(replay.entry);
  }

  /** Records what the pipeline sent for a replayable request answered from the cache (onResponse). */
  record(req: IncomingMessage, answer: CachedAnswer, status: number, headers: Record<string, HeaderValue>, route: string): void {
    const { entry, body, encoding } = answer;
    // An entry the cache did not keep (a load that raced a write) is never replayed.
    if (status !== 200 || !replayable(req) || !this.#cache.isCurrent(entry)) return;
    // The body as noted is the body that went out: not compressed (or recompressed) on the way.
    if (headers['content-encoding'] !== encoding || Number(headers['content-length']) !== body.length) return;
    const key = replayKey(req);
    if (key.length > MAX_KEY_LENGTH) return;
    const flat: string[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined || NOT_REPLAYED.has(name)) continue;
      if (Array.isArray(value)) for (const v of value) flat.push(name, v);
      else flat.push(name, String(value));
    }
    this.#drop(key);
    this.#replays.set(key, { entry, headers: flat, body, route });
    let keys = this.#byEntry.get(entry);
    if (keys === undefined) this.#byEntry.set(entry, (keys = new Set()));
    keys.add(key);
    if (this.#replays.size > this.#max) this.#drop(this.#replays.keys().next().value!);
  }

  /** Answers `req` from a replay, or hands it to `pipeline` (Fastify's handler). */
  handle(req: IncomingMessage, res: ServerResponse, pipeline: (req: IncomingMessage, res: ServerResponse) => void): void {
    const hooks = this.hooks;
    if (hooks === undefined || !replayable(req)) return pipeline(req, res);
    const key = replayKey(req);
    const replay = this.#replays.get(key);
    if (replay === undefined) return pipeline(req, res);
    const started = performance.now();
    if (hooks.admit === undefined) return this.#answer(key, replay, req, res, hooks, pipeline, started, false);
    let counting: boolean | Promise<boolean>;
    try {
      counting = hooks.admit(req);
    } catch (err) {
      // A bug in working out the count (the client's address, say): logged, and the pipeline,
      // which counts on its own, answers.
      hooks.failed(err);
      return pipeline(req, res);
    }
    // Counted at once (the counters in this process): over the limit, the pipeline counts it
    // again and refuses it (429).
    if (counting === true) return this.#answer(key, replay, req, res, hooks, pipeline, started, true);
    if (counting === false) return pipeline(req, res);
    // No promise chained for errors: a try in each callback (a replay is one promise, not three).
    counting.then(
      (ok) => {
        try {
          // The client hung up while the counter was read: there is no one to answer.
          if (res.destroyed) return;
          // Over the limit: the pipeline counts it again and refuses it (429).
          if (!ok) return pipeline(req, res);
          this.#answer(key, replay, req, res, hooks, pipeline, started, true);
        } catch (err) {
          this.#failed(err, res, hooks);
        }
      },
      () => {
        try {
          pipeline(req, res);
        } catch (err) {
          this.#failed(err, res, hooks);
        }
      },
    );
  }

  #failed(err: unknown, res: ServerResponse, hooks: HotPathHooks): void {
    hooks.failed(err);
    res.destroy();
  }

  // The last checks, after the rate limit (a Redis round trip may have passed): the entry is
  // still current, the process still takes replays, and tracing does not want this request.
  // A request handed over after it was counted is marked so, for the pipeline's limiter.
  #answer(
    key: string,
    replay: Replay,
    req: IncomingMessage,
    res: ServerResponse,
    hooks: HotPathHooks,
    pipeline: (req: IncomingMessage, res: ServerResponse) => void,
    started: number,
    counted: boolean,
  ): void {
    const current = this.#cache.isCurrent(replay.entry);
    if (!current) this.#drop(key);
    if (!current || hooks.busy() || hooks.traced(req)) {
      if (counted) hooks.counted(req);
      return pipeline(req, res);
    }
    this.stats.replayed++;
    this.#cache.stats.hits++;
    res.writeHead(200, replay.headers as string[]);
    res.end(replay.body);
    hooks.observe(req, replay.route, 200, (performance.now() - started) / 1000);
  }
}

/**
 * After a response (buildApp's onResponse hook): records what the pipeline sent, if it was a
 * cached anonymous read (ResponseCache.send noted it). One call in an existing hook, not a hook
 * of its own: every hook is per-request work for every request.
 */
export function recordCachedAnswer(hot: HotPath, request: FastifyRequest, reply: FastifyReply): void {
  const answer = (request as unknown as Noted)[kAnswer];
  if (answer !== null) hot.record(request.raw, answer, reply.statusCode, reply.getHeaders(), request.routeOptions.url ?? 'unmatched');
}

/** Gives every request the property ResponseCache.send notes its answer in (noteCachedAnswer). */
export function decorateCachedAnswer(app: App): void {
  app.decorateRequest(kAnswer, null);
}
