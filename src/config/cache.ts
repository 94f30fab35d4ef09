// The response cache: the in-process tier, the Redis tier behind it, and the hot path that replays
// cached anonymous reads.
import { bool, int, keyPrefix, secretUrl, str, type Env, type Secret } from './parse.ts';

export interface CacheConfig {
  readonly cache: boolean;
  /** Repeats of anonymous cached reads answered before Fastify (src/cache/hot-path.ts). */
  readonly hotPath: boolean;
  readonly cacheTtlMs: number;
  readonly cacheMaxBytes: number;
  /** Redis, for the cache tier, its invalidation bus and the rate limits' counters. */
  readonly redisUrl: Secret | undefined;
  readonly cacheRedis: boolean;
  readonly cacheRedisPrefix: string;
  readonly cacheRedisTimeoutMs: number;
}

export function cacheConfig(env: Env): CacheConfig {
  return {
    cache: bool(env, 'CACHE', true),
    // HOT_PATH=off sends every request through Fastify's whole pipeline (for comparison, or to
    // rule the hot path out); with CACHE=off there is nothing to replay.
    hotPath: bool(env, 'HOT_PATH', true),
    // Invalidation keeps entries correct; the TTL only bounds how long a missed invalidation
    // (the bus was down) can show: a minute.
    cacheTtlMs: int(env, 'CACHE_TTL_MS', 60_000, 1, 86_400_000),
    // Per process. 64 MiB holds every list page, article and profile of the benchmark dataset
    // (10,000 articles) with room to spare, well inside a 256 MiB container.
    cacheMaxBytes: int(env, 'CACHE_MAX_BYTES', 64 * 1024 * 1024, 1024, 16 * 1024 * 1024 * 1024),
    redisUrl: secretUrl(env, 'REDIS_URL', ['redis', 'rediss']),
    // The shared cache tier behind the in-process one (src/cache/redis-tier.ts): on whenever
    // there is a Redis, since it is what lets a new or restarted instance start warm. Off keeps
    // Redis for the invalidation bus and the rate limits only.
    cacheRedis: bool(env, 'CACHE_REDIS', str(env, 'REDIS_URL') !== undefined),
    // Namespace of the cache's keys and of its invalidation channel: deployments (or test runs)
    // sharing one Redis but not one database must not share cache entries.
    cacheRedisPrefix: keyPrefix(env, 'CACHE_REDIS_PREFIX', 'conduit:cache:'),
    // A Redis cache hit takes well under a millisecond; past this the call has failed and the
    // request goes to PostgreSQL (where a miss costs a few milliseconds anyway). Below the rate
    // limiter's 250 ms: the cache is never worth waiting for.
    cacheRedisTimeoutMs: int(env, 'CACHE_REDIS_TIMEOUT_MS', 150, 1, 60_000),
  };
}
