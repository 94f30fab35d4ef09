// The in-process response cache. An entry is one viewer-independent response: its data (for
// applying per-viewer flags), its JSON bytes as sent to an anonymous client, a strong ETag, and
// compressed variants made once on first demand. On an anonymous hit nothing is serialized or
// compressed: the stored bytes are written as they are.
//
// Routes do not call it directly: they declare their cached reads with cachedGet
// (cache/cached-read.ts), which owns the get, the anonymous send and the viewer's flags.
//
// Correctness rests on tags (cache/tags.ts). Every entry names what it was built from
// (`article:12`, `user:3`, `list:all`, ...); every write invalidates the tags it changes, in this
// process at once and in the others through the bus. A load that raced with an invalidation of one of its tags is
// answered but not stored, so an entry can never be older than the last invalidation it missed.
//
// A signed-in viewer whose flags show on a page gets a copy of the entry's bytes with them set
// (cache/flag-bytes.ts). Its compressed bytes are kept too, by what they are made of (the
// entry's ETag, the encoding and which flags are set), within an eighth of the bound: a viewer
// who reads the page again, or another with the same flags on it, is not compressed for again
// (sendFlagged).
//
// With REDIS_URL a shared tier (cache/redis-tier.ts) sits behind this one: an in-process miss
// asks it before the database, and what the database returns is stored in both.
import { Negotiator } from '@fastify/accept-negotiator';
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ownBytes, ownUtf8 } from '../lib/bytes.ts';
import { compressBody, ENCODING_PREFERENCE } from '../lib/encodings.ts';
import { noteCachedAnswer } from './answer.ts';
import { setFlags } from './flag-bytes.ts';

import {
  emptyCacheStats,
  type CacheOptions,
  type CacheStats,
  type DeclaredRoute,
  type Encoding,
  type Entry,
  type FlagIds,
  type Loaded,
  type SharedTier,
} from './entry.ts';
import type { CacheTag } from './tags.ts';

export type { CacheOptions, CacheStats, DeclaredRoute, Encoding, Entry, Loaded, SharedRead, SharedTier } from './entry.ts';

// The same order as the compression plugin's, so a hit and a miss pick the same encoding.
const ENCODINGS: Encoding[] = [...ENCODING_PREFERENCE];

/**
 * Accept-Encoding as @fastify/compress reads it before negotiating: lower-cased, with `*` and
 * `x-gzip` as gzip. So a hit and a miss pick the same encoding; and the negotiator alone answers
 * `*` with its first encoding, even one the client refused (`zstd;q=0, *` got zstd).
 */
const asThePluginReadsIt = (accept: string) => accept.toLowerCase().replace(/\*|x-gzip/g, 'gzip');

/**
 * If-None-Match is a list compared weakly (RFC 9110 13.1.2): `W/"x"` matches `"x"`. Proxies
 * that compress make strong ETags weak, and their clients send them back that way.
 */
function matchesAny(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return (tag.startsWith('W/') ? tag.slice(2) : tag) === etag;
  });
}

export class ResponseCache {
  /** The shared tier behind this cache, if any. */
  readonly shared: SharedTier | undefined;
  readonly stats: CacheStats;
  /** The routes declared on this cache with cachedGet (cache/cached-read.ts), as registered. */
  readonly routes: DeclaredRoute[] = [];
  readonly #opts: CacheOptions;
  readonly #lru: LRUCache<string, Entry<unknown>>;
  // Compressed per-viewer copies (sendFlagged), keyed by what their bytes are made of, so none is
  // ever stale: a changed entry has another ETag, changed flags another key. The LRU and the TTL
  // only bound the memory.
  readonly #copies: LRUCache<string, Buffer>;
  readonly #byTag = new Map<string, Set<string>>();
  readonly #disposed: ((entry: Entry<unknown>) => void)[] = [];
  readonly #inflight = new Map<string, Promise<Entry<unknown> | undefined>>();
  // Each stored entry's key, for isCurrent (entries from the shared tier are stored here too).
  readonly #keys = new WeakMap<Entry<unknown>, string>();
  // Its cache is by Accept-Encoding value, which clients choose: bounded, or ever-different
  // values would grow it without end.
  readonly #negotiator = new Negotiator({ supportedValues: ENCODINGS, cache: new LRUCache<string, string>({ max: 1000 }) });
  // Invalidation clock: each invalidation gets the next number, remembered per tag, so a load
  // that started before an invalidation of one of its tags knows not to store its result.
  #clock = 0;
  readonly #invalidatedAt = new Map<string, number>();
  // Older invalidations are forgotten; a load that started before the oldest remembered one is
  // not stored (it cannot prove it missed nothing).
  #forgottenBefore = 0;
  static readonly #MAX_REMEMBERED = 100_000;

  constructor(opts: CacheOptions) {
    this.#opts = opts;
    this.shared = opts.shared;
    this.stats = opts.stats ?? emptyCacheStats();
    // The bound is the two caches' together: an eighth of it for the copies (a copy is about a
    // quarter of its page), the rest for the entries.
    const copiesBytes = Math.max(1, Math.floor(opts.maxBytes / 8));
    this.#copies = new LRUCache<string, Buffer>({
      ttl: opts.ttlMs,
      maxSize: copiesBytes,
      sizeCalculation: (copy) => Math.max(1, copy.length),
    });
    this.#lru = new LRUCache<string, Entry<unknown>>({
      ttl: opts.ttlMs,
      maxSize: Math.max(1, opts.maxBytes - copiesBytes),
      // What an entry holds, counted from the start so the bound holds once variants exist: the
      // body, and a compressed variant or two (about a quarter of the body each, made on
      // demand). Twice the body leaves room for the little an entry keeps besides (`keep` in
      // get). The bytes are in backing stores of their own (ownBytes), so this is what they
      // cost, not a share of a 64 KiB slab each.
      sizeCalculation: (entry) => Math.max(1, entry.body.length * 2),
      dispose: (entry, key, reason) => {
        if (reason === 'evict') this.stats.evictions++;
        for (const listener of this.#disposed) listener(entry);
        for (const tag of entry.tags) {
          const keys = this.#byTag.get(tag);
          keys?.delete(key);
          if (keys?.size === 0) this.#byTag.delete(tag);
        }
      },
    });
  }

  /** Tells `listener` of every entry the cache lets go (the hot path drops its replays of it). */
  onDispose(listener: (entry: Entry<unknown>) => void): void {
    this.#disposed.push(listener);
  }

  get size(): number {
    return this.#lru.size;
  }
  /** What the entries and the kept copies hold together (the bound is CacheOptions.maxBytes). */
  get bytes(): number {
    return this.#lru.calculatedSize + this.#copies.calculatedSize;
  }

  /**
   * The entry for `key`, loading it on a miss. Concurrent misses for one key share one load
   * (single flight). `load` returns undefined for "not found", which is not cached.
   * `keep` picks what the entry holds of the loaded data besides its bytes (all of it by
   * default): a route whose bytes are its response keeps only what it reads back (its flag
   * ids), so the decoded rows are garbage as soon as they are serialized.
   */
  async get<T, K = T>(
    key: string,
    load: () => Promise<Loaded<T> | undefined>,
    serialize: (data: T) => string | Buffer | ArrayBuffer,
    keep?: (data: T) => K,
  ): Promise<Entry<K> | undefined> {
    const hit = this.#lru.get(key) as Entry<K> | undefined;
    if (hit) {
      this.stats.hits++;
      return hit;
    }
    const pending = this.#inflight.get(key) as Promise<Entry<K> | undefined> | undefined;
    if (pending) {
      this.stats.coalesced++;
      return pending;
    }
    this.stats.misses++;
    const started = this.#clock;
    const flightRef: { current?: Promise<Entry<K> | undefined> } = {};
    const flight: Promise<Entry<K> | undefined> = (async () => {
      try {
        // The shared tier first: another process may have loaded this already.
        const shared = this.shared && (await this.shared.read(key));
        if (shared?.entry) {
          this.stats.redisHits++;
          const entry = shared.entry as Entry<K>;
          // No longer here than it has left there: the TTL bounds an entry's age however many
          // tiers it went through (it is what bounds staleness while the bus is down).
          if (this.#stillValid(entry.tags, started)) this.#store(key, entry, shared.ttlMs);
          else this.stats.raced++;
          return entry;
        }
        if (shared) this.stats.redisMisses++;
        const loaded = await load();
        if (!loaded) return undefined;
        const serialized = serialize(loaded.data);
        const body = typeof serialized === 'string' ? ownUtf8(serialized) : ownBytes(Buffer.from(serialized as ArrayBuffer));
        const entry: Entry<K> = {
          data: keep ? keep(loaded.data) : (loaded.data as unknown as K),
          body,
          etag: `"${createHash('sha1').update(body).digest('base64url')}"`,
          tags: loaded.tags,
          variants: new Map(),
        };
        if (this.#stillValid(entry.tags, started)) {
          this.#store(key, entry);
          // In the background: the response does not wait for Redis.
          if (shared) void this.shared.store(key, entry, shared.ticket);
        } else {
          this.stats.raced++;
        }
        return entry;
      } finally {
        if ((this.#inflight.get(key) as unknown) === flightRef.current) this.#inflight.delete(key);
      }
    })();
    flightRef.current = flight;
    this.#inflight.set(key, flight);
    return flight;
  }

  #stillValid(tags: readonly string[], started: number): boolean {
    if (started < this.#forgottenBefore) return false;
    for (const tag of tags) if ((this.#invalidatedAt.get(tag) ?? -1) >= started) return false;
    return true;
  }

  #store(key: string, entry: Entry<unknown>, ttlMs?: number): void {
    this.#lru.set(key, entry, ttlMs === undefined ? undefined : { ttl: Math.max(1, Math.min(ttlMs, this.#opts.ttlMs)) });
    // set() may have evicted or rejected it (larger than the whole cache).
    if (!this.#lru.has(key)) return;
    this.#keys.set(entry, key);
    for (const tag of entry.tags) {
      let keys = this.#byTag.get(tag);
      if (!keys) this.#byTag.set(tag, (keys = new Set()));
      keys.add(key);
    }
  }

  /**
   * Whether `entry` is still what this cache answers for its key: not invalidated, expired,
   * evicted or replaced since it was stored (the hot path replays an entry only while it is).
   */
  isCurrent(entry: Entry<unknown>): boolean {
    const key = this.#keys.get(entry);
    return key !== undefined && this.#lru.get(key) === entry;
  }

  /** Drops every entry built from any of these tags. */
  invalidate(tags: readonly CacheTag[]): void {
    const now = this.#clock++;
    // A load in flight may have read the database before the write: readers arriving from now
    // on must not join it (the writer's own next read would see its write undone).
    this.#inflight.clear();
    for (const tag of tags) {
      this.stats.invalidations++;
      this.#invalidatedAt.delete(tag);
      this.#invalidatedAt.set(tag, now);
      const keys = this.#byTag.get(tag);
      if (keys) for (const key of [...keys]) this.#lru.delete(key);
    }
    // Map iteration order is insertion order: the first entries are the oldest.
    while (this.#invalidatedAt.size > ResponseCache.#MAX_REMEMBERED) {
      const [oldest, at] = this.#invalidatedAt.entries().next().value as [string, number];
      this.#invalidatedAt.delete(oldest);
      this.#forgottenBefore = Math.max(this.#forgottenBefore, at + 1);
    }
  }

  /** Drops everything: after the bus was down, invalidations may have been missed. */
  clear(): void {
    this.#forgottenBefore = ++this.#clock;
    this.#inflight.clear();
    this.#lru.clear();
    this.#byTag.clear();
    this.#invalidatedAt.clear();
  }

  /**
   * Sends the stored bytes: 304 when the client has them (If-None-Match), else the body in the
   * best encoding the client accepts, compressed once per entry and kept. `flagIds`: the route
   * writes signed-in viewers' flags over these bytes at these ids (noted for the hot path).
   */
  send(request: FastifyRequest, reply: FastifyReply, entry: Entry<unknown>, flagIds?: FlagIds): FastifyReply {
    void reply.header('etag', entry.etag);
    addVary(reply);
    const ifNoneMatch = request.headers['if-none-match'];
    if (ifNoneMatch !== undefined && (ifNoneMatch === entry.etag || matchesAny(ifNoneMatch, entry.etag))) return reply.code(304).send();
    void reply.type('application/json; charset=utf-8');
    const encoding = this.#encodingFor(request, entry.body);
    if (encoding === undefined) return reply.send(noteCachedAnswer(request, entry, entry.body, undefined, flagIds));
    let variant = entry.variants.get(encoding);
    if (!variant) {
      variant = ownBytes(compressBody(entry.body, encoding));
      entry.variants.set(encoding, variant);
      this.stats.compressions++;
    }
    return reply.header('content-encoding', encoding).send(noteCachedAnswer(request, entry, variant, encoding, flagIds));
  }

  /**
   * The entry's bytes held by this process for `key` now, without loading or waiting: undefined
   * when they are not (the caller takes the path that loads). Not counted: the caller counts a
   * hit when it answers with them.
   */
  held<T>(key: string): Entry<T> | undefined {
    return this.#lru.get(key) as Entry<T> | undefined;
  }

  /**
   * Sends the entry's bytes with the `false`s at `changed` set to true (a signed-in viewer's flags:
   * cache/flag-bytes.ts flagOffsets), without an ETag: it is not the entry. Compressed, the copy
   * is kept under the entry's ETag, the encoding and `changed`, which fix its bytes, and sent again
   * to whoever asks for the same copy in the same encoding; uncompressed, it is made per request.
   */
  sendFlagged(
    request: FastifyRequest,
    reply: FastifyReply,
    entry: Entry<unknown>,
    changed: readonly number[],
    flagIds: FlagIds,
  ): FastifyReply {
    addVary(reply);
    void reply.type('application/json; charset=utf-8');
    const encoding = this.#encodingFor(request, entry.body);
    const copy = noteCachedAnswer(request, entry, this.flaggedCopy(entry, encoding, changed), encoding, flagIds, true);
    return encoding === undefined ? reply.send(copy) : reply.header('content-encoding', encoding).send(copy);
  }

  /**
   * The entry's bytes with the `false`s at `changed` set to true, in `encoding`: compressed, kept
   * under the entry's ETag, the encoding and `changed`, which fix its bytes; uncompressed, made
   * per call. sendFlagged's body.
   */
  flaggedCopy(entry: Entry<unknown>, encoding: Encoding | undefined, changed: readonly number[]): Buffer {
    if (encoding === undefined) return setFlags(entry.body, changed);
    let compressed = this.keptCopy(entry, encoding, changed);
    if (compressed === undefined) {
      compressed = ownBytes(compressBody(setFlags(entry.body, changed), encoding));
      this.#copies.set(copyKey(entry, encoding, changed), compressed);
      this.stats.compressions++;
      this.stats.copyMisses++;
    } else {
      this.stats.copyHits++;
    }
    return compressed;
  }

  /**
   * The compressed copy flaggedCopy keeps for these, if it is kept; made by no one here and not
   * counted (the hot path, which compresses nothing, counts the hit when it sends it).
   */
  keptCopy(entry: Entry<unknown>, encoding: Encoding, changed: readonly number[]): Buffer | undefined {
    return this.#copies.get(copyKey(entry, encoding, changed));
  }

  /** The encoding to send `body` in: undefined for as it is (compression off, a small body, none accepted). */
  #encodingFor(request: FastifyRequest, body: Buffer): Encoding | undefined {
    const accept = request.headers['accept-encoding'];
    if (!this.#opts.compression || accept === undefined || body.length < this.#opts.compressionThresholdBytes) return undefined;
    const encoding = this.#negotiator.negotiate(asThePluginReadsIt(accept)) as Encoding | undefined;
    return encoding !== undefined && ENCODINGS.includes(encoding) ? encoding : undefined;
  }
}

/** What fixes a copy's bytes: the entry's body (its ETag), the encoding and the flags set. */
const copyKey = (entry: Entry<unknown>, encoding: Encoding, changed: readonly number[]) =>
  `${entry.etag}\n${encoding}\n${changed.join(',')}`;

/**
 * Adds Accept-Encoding to a Vary already set (@fastify/cors sets `Vary: Origin` when
 * CORS_ORIGINS lists origins), not in place of it: a shared cache must keep the Origin variants
 * apart too.
 */
function addVary(reply: FastifyReply): void {
  const vary = reply.getHeader('vary');
  void reply.header('vary', vary === undefined || vary === '' ? 'Accept-Encoding' : `${String(vary)}, Accept-Encoding`);
}
