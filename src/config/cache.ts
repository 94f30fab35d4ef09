// The response cache: the in-process tier, the Redis tier behind it, and the hot path that replays
// cached anonymous reads.
import os from 'node:os';
import { bool, int, keyPrefix, secretUrl, str, type Env, type Secret } from './parse.ts';

const MiB = 1024 * 1024;

/**
 * The memory limit this process runs under (a container's cgroup limit, which Node reads as
 * process.constrainedMemory()), or undefined when there is none below the machine's memory.
 */
export function memoryLimit(): number | undefined {
  const limit = process.constrainedMemory();
  return limit > 0 && limit < os.totalmem() ? limit : undefined;
}

/**
 * CACHE_MAX_BYTES when it is not set: an eighth of the memory limit, between 8 and 64 MiB; 64 MiB
 * without a limit. Measured (docs/memory.md): under load a process needs about 150 MB besides the
 * cache (the Node binary's code, V8's heap, garbage awaiting collection), so in a 256 MiB
 * container 32 MiB of cache leaves room for bursts; 64 MiB holds every list page, article and
 * profile the benchmark reads from its 10,000 articles several times over (it fills 15 to 17 MB).
 */
export function defaultCacheMaxBytes(limit: number | undefined): number {
  if (limit === undefined) return 64 * MiB;
  return Math.min(64 * MiB, Math.max(8 * MiB, Math.floor(limit / 8 / MiB) * MiB));
}

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

export function cacheConfig(env: Env, limit: number | undefined = memoryLimit()): CacheConfig {
  return {
    cache: bool(env, 'CACHE', true),
    // HOT_PATH=off sends every request through Fastify's whole pipeline (for comparison, or to
    // rule the hot path out); with CACHE=off there is nothing to replay.
    hotPath: bool(env, 'HOT_PATH', true),
    // Invalidation keeps entries correct; the TTL only bounds how long a missed invalidation
    // (the bus was down) can show: a minute.
    cacheTtlMs: int(env, 'CACHE_TTL_MS', 60_000, 1, 86_400_000),
    // Per process, counted as the entries really hold (src/cache/response-cache.ts).
    cacheMaxBytes: int(env, 'CACHE_MAX_BYTES', defaultCacheMaxBytes(limit), 1024, 16 * 1024 * MiB),
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
