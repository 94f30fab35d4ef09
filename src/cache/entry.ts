// The response cache's types, shared by the cache (response-cache.ts), its Redis tier
// (redis-tier.ts), the hot path and the route-facing helper (cached-read.ts).
import type { Encoding } from '../lib/encodings.ts';
import type { CacheTag } from './tags.ts';

export type { Encoding } from '../lib/encodings.ts';

/** The articles and authors a body shows, in the order of its `"favorited"` and `"following"` keys. */
export interface FlagIds {
  readonly articles: readonly number[];
  readonly authors: readonly number[];
}

export interface Entry<T> {
  readonly data: T;
  readonly body: Buffer;
  readonly etag: string;
  readonly tags: readonly string[];
  readonly variants: Map<Encoding, Buffer>;
}

export interface CacheStats {
  hits: number;
  misses: number;
  coalesced: number;
  evictions: number;
  invalidations: number;
  /** Loads whose result was not stored because a tag was invalidated meanwhile. */
  raced: number;
  /** Compressed variants and copies made (once per entry or copy and encoding; a hit makes none). */
  compressions: number;
  /** Signed-in viewers' compressed copies (ResponseCache.sendFlagged): sent as kept, and made. */
  copyHits: number;
  copyMisses: number;
  /** Shared tier (Redis): in-process misses answered by it, not answered by it, entries it took. */
  redisHits: number;
  redisMisses: number;
  redisStores: number;
  /** Shared tier calls that failed or were skipped (Redis unreachable or stuck). */
  redisErrors: number;
}

/**
 * A cache shared by every process (cache/redis-tier.ts), behind the in-process one. `read`
 * answers undefined when the tier cannot be used (the load goes to the database and is not
 * stored there), else a ticket for `store` and the entry if the tier has a valid one. `store`
 * must refuse an entry whose load started before an invalidation of one of its tags.
 */
export type SharedRead = { ticket: unknown; entry?: Entry<unknown>; ttlMs?: number } | undefined;

export interface SharedTier {
  read(key: string): Promise<SharedRead>;
  /** Whether it was stored; never rejects. Callers do not wait for it. */
  store(key: string, entry: Entry<unknown>, ticket: unknown): Promise<boolean>;
  /**
   * Drops the entries built from these tags, for every process; never throws. False when that
   * may not have happened (Redis unreachable): the bus then tells the others not to trust the
   * tier until its epoch has moved (`distrust`).
   */
  invalidate(tags: readonly string[]): Promise<boolean>;
  /** Another process could not invalidate: stop using the tier until the epoch has moved. */
  distrust(): void;
  /** Drops every entry (tests; an operator's reset). */
  reset(): Promise<void>;
  close(): void;
}

export interface CacheOptions {
  ttlMs: number;
  maxBytes: number;
  compression: boolean;
  compressionThresholdBytes: number;
  /** The tier shared by every process behind this one (REDIS_URL with CACHE_REDIS on). */
  shared?: SharedTier | undefined;
  /** The counts this cache keeps, when a shared tier counts into the same ones. */
  stats?: CacheStats;
}

export function emptyCacheStats(): CacheStats {
  return {
    hits: 0,
    misses: 0,
    coalesced: 0,
    evictions: 0,
    invalidations: 0,
    raced: 0,
    compressions: 0,
    copyHits: 0,
    copyMisses: 0,
    redisHits: 0,
    redisMisses: 0,
    redisStores: 0,
    redisErrors: 0,
  };
}

export interface Loaded<T> {
  data: T;
  /** What the data was built from, made with `tag` (cache/tags.ts). */
  tags: readonly CacheTag[];
}

/** A route declared with cachedGet (cache/cached-read.ts): what the coherence test enumerates. */
export interface DeclaredRoute {
  readonly method: 'GET';
  /** The route's template, as registered (`/api/articles/:slug`). */
  readonly url: string;
  /** Whether the viewer's favorited/following flags go on top of the stored anonymous bytes. */
  readonly viewerFlags: boolean;
  /** Requests this route answered with the cache on, anonymous and signed in. */
  readonly served: { anonymous: number; viewer: number };
}
