// Builds the application's context (src/context.ts has its type): the response cache, Redis,
// the invalidation bus, auth and password hashing, for the process entry and the test harness
// alike. The composition root's half that main.ts and test/harness.ts share; nothing below the
// app imports it (.dependency-cruiser.cjs).
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import { PgInvalidationBus, type InvalidationBus } from './cache/bus.ts';
import { RedisInvalidationBus, redisInvalidationChannel } from './cache/redis-bus.ts';
import { emptyCacheStats } from './cache/entry.ts';
import { RedisTier } from './cache/redis-tier.ts';
import { ResponseCache } from './cache/response-cache.ts';
import type { Config } from './config.ts';
import type { AppContext } from './context.ts';
import type { Pool } from './db/pool.ts';
import { createAuth } from './http/auth.ts';
import { tracingActive } from './telemetry/spans.ts';
import { TracedResponseCache, tracedPasswords } from './telemetry/traced-parts.ts';
import { createPasswords } from './users/password.ts';

export interface ContextOptions {
  config: Config;
  db: Pool;
  /** The database's URL, for the connection that listens for invalidations. */
  databaseUrl: string;
  migrations: readonly string[];
  log?: FastifyBaseLogger | undefined;
}

/** The one place a context is assembled, for the process entry and the test harness alike. */
export async function createContext({ config, db, databaseUrl, migrations, log }: ContextOptions): Promise<AppContext> {
  const passwords = createPasswords({
    concurrency: config.argon2Concurrency,
    queue: config.argon2Queue,
    maxWaitMs: config.argon2MaxWaitMs,
  });
  const redis = config.redisUrl ? await createRedis(config.redisUrl.expose()) : undefined;
  // The cache's own connection, so its command timeout (CACHE_REDIS_TIMEOUT_MS) applies to it
  // alone: the bus publishes on it (and closes it), the shared tier uses it, and the bus makes
  // its subscriber from it.
  const cacheRedis = config.cache && redis ? redis.duplicate({ commandTimeout: config.cacheRedisTimeoutMs }) : undefined;
  // One set of counts for both tiers: the shared tier counts its hits, stores and errors in it.
  const stats = emptyCacheStats();
  const cache = config.cache
    ? new (tracingActive() ? TracedResponseCache : ResponseCache)({
        ttlMs: config.cacheTtlMs,
        maxBytes: config.cacheMaxBytes,
        compression: config.compression,
        compressionThresholdBytes: config.compressionThresholdBytes,
        stats,
        shared:
          cacheRedis && config.cacheRedis
            ? new RedisTier({ redis: cacheRedis, prefix: config.cacheRedisPrefix, ttlMs: config.cacheTtlMs, stats, log })
            : undefined,
      })
    : undefined;
  let bus: InvalidationBus | undefined;
  if (cache && cacheRedis) {
    const redisBus = new RedisInvalidationBus({
      redis: cacheRedis,
      channel: redisInvalidationChannel(config.cacheRedisPrefix),
      cache,
      log,
    });
    await redisBus.start();
    bus = redisBus;
  } else if (cache) {
    const pgBus = new PgInvalidationBus({ url: databaseUrl, db, cache, log });
    await pgBus.start();
    bus = pgBus;
  }
  return {
    config,
    db,
    cache,
    bus,
    invalidate: async (tags) => {
      if (!cache) return;
      cache.invalidate(tags);
      // Redis before the bus: a process that drops its entry on the message must not find
      // the stale one in Redis when it loads again. If Redis could not be told, the message
      // says so, and the others stop using Redis until its epoch has moved.
      const sharedClean = (await cache.shared?.invalidate(tags)) ?? true;
      await bus?.publish(tags, !sharedClean);
    },
    auth: createAuth(
      config,
      async (id) => (await db.query<{ token_key: string }>('select token_key from users where id = $1', [id])).rows[0]?.token_key,
    ),
    passwords: tracingActive() ? tracedPasswords(passwords) : passwords,
    redis,
    migrations,
    lifecycle: { draining: false },
  };
}

// ioredis is loaded only when Redis is configured: its import alone holds about 9 MB of the
// process's memory (docs/memory.md "Modules loaded when used"). A dynamic import goes through the same
// loader hook as a static one, so tracing instruments it all the same (telemetry/sdk.ts).
async function createRedis(url: string): Promise<Redis> {
  const { Redis: Client } = await import('ioredis');
  const redis = new Client(url, {
    // Fail fast while Redis is away instead of queueing commands: every user of Redis here has
    // a fallback (rate limits skip, caches go to the database), and a queue would only add latency.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  // Its users work on duplicates, and each says in the log what an outage means for it; this
  // one must not print "[ioredis] Unhandled error event" on every reconnect attempt.
  redis.on('error', () => undefined);
  return redis;
}

/** Closes what createContext opened, in reverse order (the pool belongs to the caller). */
export async function closeContext(ctx: AppContext): Promise<void> {
  ctx.cache?.shared?.close();
  await ctx.bus?.close();
  if (ctx.redis) await ctx.redis.quit().catch(() => ctx.redis?.disconnect());
}
