// The hot path: a repeat of a read that the router answered from the response cache is answered
// again, by the request pipeline's replay branch (http/pipeline.ts), with the same bytes and the
// same headers, without going through Fastify; for a signed-in reader, with their flags set.
//
// Why: on a cached hit the service's own work is small (a map lookup, the stored bytes), and
// what is left is Fastify's per-request work (routing, hook runners, request and reply objects,
// a child logger), which by itself held a cached read to about half of what Node can serve
// (docs/caching.md "The hot path"). Why it is safe:
//   - Nothing is decided here. Only a request the router has already answered is replayed:
//     same method, raw URL and Accept-Encoding, so the same routing, validation, cache key and
//     encoding; its status and headers are the ones the router sent, recorded as they went out.
//   - The bytes are the cache entry's, and only while that entry is still the cache's current one
//     for its key: an invalidation (a write, here or in another process), an expiry or an
//     eviction ends every replay of it. A write's invalidation runs before the write is
//     answered, so the writer's next read is fresh here as through the router.
//   - Whatever could make the answer differ goes to the router: anything but GET, an Origin
//     (CORS), a conditional request, a request body, a missing Host, a request tracing samples or
//     continues, and every request the pipeline refuses.
//   - A token is answered here only where the router would answer it from memory too: a route
//     that writes a viewer's flags over the bytes everyone reads (cachedGet's `flags`) or that
//     has no auth hook (everyone's bytes), a token the auth hooks would accept without the
//     database (Auth.knownViewer), and the viewer's sets held by the cache (viewer-flags.ts).
//     Their flags are set as the router sets them (the copy sendFlagged kept), or the bytes go as
//     they are when none shows. Anything else (a bad or unknown token, a key not checked within
//     USER_EXISTS_TTL_MS, sets not loaded, a copy not kept) goes to the router, which answers
//     401, or looks up, loads and compresses.
//   - A signed-in reader's answer is recorded only from such a route, and replayed to an
//     anonymous request only once an anonymous request was answered so: a route that refuses
//     anonymous readers never has its bytes replayed to one. A reader's copy is recorded for its
//     headers: the entry's own bytes are replayed only once the router has sent them.
//   - Admission and observation are the pipeline's, before and after either branch: a replay is
//     counted against the rate limit, in flight, in the metrics and in the log like any request.
//   - Only what was sent as noted is recorded: a body changed on its way out (by a hook after the
//     cache, say a compression the cache's negotiation did not pick) is not replayed.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cachedAnswer } from './answer.ts';
import type { Encoding, Entry, FlagIds } from './entry.ts';
import type { ResponseCache } from './response-cache.ts';
import { heldViewerSets, viewerOffsets } from './viewer-flags.ts';

type HeaderValue = string | number | string[] | undefined;

/** One answer to replay. */
export interface Replay {
  readonly entry: Entry<unknown>;
  /** Header names and values, alternating, as res.writeHead takes them (content-length included). */
  readonly headers: readonly string[];
  readonly body: Buffer;
  /** The route template, for the metrics and the log line. */
  readonly route: string;
  /** Cache entries it answers from: the page, and a signed-in reader's sets. */
  readonly hits: 1 | 2;
  /** A reader's kept compressed copy (ResponseCache.keptCopy), counted when sent. */
  readonly copyHit?: true;
}

/** What the router sent for one URL and Accept-Encoding, as recorded. */
interface Recorded {
  readonly entry: Entry<unknown>;
  readonly route: string;
  readonly encoding: Encoding | undefined;
  /** A signed-in reader gets the entry's bytes with their flags at these ids (none: as they are); CachedAnswer. */
  readonly flagIds: FlagIds | undefined;
  /** The entry's own bytes as sent to a reader none of whose flags they show; undefined while only a copy was seen. */
  readonly plain: Replay | undefined;
  /** `plain` was sent to an anonymous request: anonymous requests may have it. */
  readonly anonymous: boolean;
  /** With flagIds: what a signed-in reader is answered with. */
  readonly viewers: ForViewers | undefined;
}

interface ForViewers {
  /** `plain`, for a signed-in reader none of whose flags it shows (their sets read: two hits). */
  readonly same: Replay | undefined;
  /**
   * For a copy with flags set: the headers as ResponseCache.sendFlagged sends them, which are the
   * plain ones but the ETag (a copy is not the entry), and where in them Content-Length's value is.
   */
  readonly copyHeaders: readonly string[];
  readonly lengthAt: number;
}

export interface ReplaysOptions {
  /** One per URL and Accept-Encoding seen (below). */
  maxReplays?: number;
  /**
   * The user a request's token names, when known without the database (Auth.knownViewer);
   * without it, every request with a token goes to the router.
   */
  viewerOf?: (req: IncomingMessage) => number | undefined;
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

/** Whether a request may be replayed (and recorded): nothing in it but a token could change the answer. */
export function replayable(req: IncomingMessage): boolean {
  const h = req.headers;
  return (
    req.method === 'GET' &&
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

function forViewers(headers: readonly string[], plain: Replay | undefined): ForViewers {
  const copyHeaders: string[] = [];
  let lengthAt = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === 'etag') continue;
    if (name === 'content-length') lengthAt = copyHeaders.length + 1;
    copyHeaders.push(name, headers[i + 1]!);
  }
  return { same: plain && { ...plain, hits: 2 }, copyHeaders, lengthAt };
}

export class Replays {
  readonly #cache: ResponseCache;
  readonly #max: number;
  readonly #viewerOf: ((req: IncomingMessage) => number | undefined) | undefined;
  // Insertion-ordered: past #max the oldest replay goes (it is rebuilt on its URL's next hit).
  readonly #replays = new Map<string, Recorded>();
  // Each entry's replays: dropped when the cache lets the entry go, so a replay never keeps an
  // entry (its bytes) alive past the cache's own bound (CACHE_MAX_BYTES).
  readonly #byEntry = new Map<Entry<unknown>, Set<string>>();
  readonly stats = { replayed: 0 };

  /**
   * `maxReplays`: one per URL and Accept-Encoding seen; 10,000 covers the benchmark's 2,131
   * distinct anonymous reads several times over, at about 1.6 KB each, headers and key (the bytes
   * are the cache's; docs/memory.md "Results").
   */
  constructor(cache: ResponseCache, { maxReplays = 10_000, viewerOf }: ReplaysOptions = {}) {
    this.#cache = cache;
    this.#max = maxReplays;
    this.#viewerOf = viewerOf;
    cache.onDispose((entry) => {
      const keys = this.#byEntry.get(entry);
      if (keys === undefined) return;
      this.#byEntry.delete(entry);
      for (const key of keys) if (this.#replays.get(key)?.entry === entry) this.#replays.delete(key);
    });
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

  /**
   * Records what the router sent for a replayable request answered from the cache. The headers
   * are asked for only then: copying them is measurable on every other response.
   */
  record(req: IncomingMessage, status: number, headersSent: () => Record<string, HeaderValue>, route: string): void {
    const answer = cachedAnswer(req);
    if (answer === undefined) return;
    const { entry, body, encoding, flagIds, copy } = answer;
    const anonymous = req.headers.authorization === undefined;
    // A signed-in reader's answer is everyone's only where the route sends everyone the same bytes.
    if (!anonymous && flagIds === undefined) return;
    // An entry the cache did not keep (a load that raced a write) is never replayed.
    if (status !== 200 || !replayable(req) || !this.#cache.isCurrent(entry)) return;
    const key = replayKey(req);
    if (key.length > MAX_KEY_LENGTH) return;
    const earlier = this.#replays.get(key);
    const same = earlier?.entry === entry ? earlier : undefined;
    // Nothing new: a copy's headers are known once anything of the entry was recorded, its own
    // bytes once they were (for anonymous readers once an anonymous one had them).
    if (same !== undefined && (copy || (same.plain !== undefined && (same.anonymous || !anonymous)))) return;
    const headers = headersSent();
    // The body as noted is the body that went out: not compressed (or recompressed) on the way.
    if (headers['content-encoding'] !== encoding || Number(headers['content-length']) !== body.length) return;
    const flat: string[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined || NOT_REPLAYED.has(name)) continue;
      if (Array.isArray(value)) for (const v of value) flat.push(name, v);
      else flat.push(name, String(value));
    }
    const plain: Replay | undefined = copy ? undefined : { entry, headers: flat, body, route, hits: 1 };
    this.#drop(key);
    this.#replays.set(key, {
      entry,
      route,
      encoding,
      flagIds,
      plain,
      anonymous: plain !== undefined && (anonymous || same?.anonymous === true),
      viewers: flagIds && forViewers(flat, plain),
    });
    let keys = this.#byEntry.get(entry);
    if (keys === undefined) this.#byEntry.set(entry, (keys = new Set()));
    keys.add(key);
    if (this.#replays.size > this.#max) this.#drop(this.#replays.keys().next().value!);
  }

  /** The replay for `req`, if it may be answered with one: replayable, and its entry still current. */
  find(req: IncomingMessage): Replay | undefined {
    if (!replayable(req)) return undefined;
    const key = replayKey(req);
    const recorded = this.#replays.get(key);
    if (recorded === undefined) return undefined;
    if (!this.#cache.isCurrent(recorded.entry)) {
      this.#drop(key);
      return undefined;
    }
    if (req.headers.authorization === undefined) return recorded.anonymous ? recorded.plain : undefined;
    return this.#forViewer(req, recorded);
  }

  /**
   * A signed-in reader's answer, as cachedGet makes it, when everything it needs is in memory.
   * Nothing is compressed here: a copy not kept yet is made by the router (under pressure, a
   * replay must cost less than the refusal it replaces).
   */
  #forViewer(req: IncomingMessage, recorded: Recorded): Replay | undefined {
    const { flagIds: ids, viewers, entry, encoding } = recorded;
    if (ids === undefined || viewers === undefined || this.#viewerOf === undefined) return undefined;
    const viewer = this.#viewerOf(req);
    if (viewer === undefined) return undefined;
    // A page showing no article or author has nothing of the reader's: the router reads no sets.
    if (ids.articles.length === 0 && ids.authors.length === 0) return recorded.plain;
    const sets = heldViewerSets(this.#cache, viewer);
    if (sets === undefined) return undefined;
    const changed = viewerOffsets(entry.body, ids, sets);
    // The bytes and the declared ids disagree: the router loads this viewer's response, and logs it.
    if (changed === undefined) return undefined;
    if (changed.length === 0) return viewers.same;
    const body =
      encoding === undefined ? this.#cache.flaggedCopy(entry, undefined, changed) : this.#cache.keptCopy(entry, encoding, changed);
    if (body === undefined) return undefined;
    const headers = [...viewers.copyHeaders];
    headers[viewers.lengthAt] = String(body.length);
    return { entry, headers, body, route: recorded.route, hits: 2, ...(encoding !== undefined && { copyHit: true }) };
  }

  /** Writes the replay: a cache hit, answered. */
  answer(replay: Replay, res: ServerResponse): void {
    this.stats.replayed++;
    this.#cache.stats.hits += replay.hits;
    if (replay.copyHit) this.#cache.stats.copyHits++;
    res.writeHead(200, replay.headers as string[]);
    res.end(replay.body);
  }
}
