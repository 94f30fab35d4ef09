// The explicit dependencies of the application: built once in main.ts (or by the test
// harness), passed to buildApp and from there to every route module. No module singletons.
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import type { Pool } from './db/pool.ts';
import { Redis } from 'ioredis';
import { PgInvalidationBus, type InvalidationBus } from './cache/bus.ts';
import { ResponseCache } from './cache/response-cache.ts';
import { createAuth, type Auth } from './http/auth.ts';
import { createPasswords, type Passwords } from './users/password.ts';

export interface AppContext {
  readonly config: Config;
  readonly db: Pool;
  readonly auth: Auth;
  readonly passwords: Passwords;
  /** Shared state for several instances (rate-limit counters); present when REDIS_URL is set. */
  readonly redis: Redis | undefined;
  /** The response cache; undefined with CACHE=off. */
  readonly cache: ResponseCache | undefined;
  /** Carries invalidations to the other processes sharing the database. */
  readonly bus: InvalidationBus | undefined;
  /**
   * Drops cached responses built from these tags, here at once and in the other processes via
   * the bus. Writers await it before answering, so their next read is fresh.
   */
  invalidate(tags: readonly string[]): Promise<void>;
  /** Migration files this build expects to be applied (readiness checks them). */
  readonly migrations: readonly string[];
  /** Flipped by the process entry on SIGTERM: /readyz answers 503 while in-flight work drains. */
  readonly lifecycle: { draining: boolean };
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

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
  const cache = config.cache
    ? new ResponseCache({
        ttlMs: config.cacheTtlMs,
        maxBytes: config.cacheMaxBytes,
        compression: config.compression,
        compressionThresholdBytes: config.compressionThresholdBytes,
      })
    : undefined;
  let bus: PgInvalidationBus | undefined;
  if (cache) {
    bus = new PgInvalidationBus({ url: databaseUrl, db, cache, log });
    await bus.start();
  }
  return {
    config,
    db,
    cache,
    bus,
    invalidate: async (tags) => {
      if (!cache) return;
      cache.invalidate(tags);
      await bus?.publish(tags);
    },
    auth: createAuth(config),
    passwords: createPasswords({
      concurrency: config.argon2Concurrency,
      queue: config.argon2Queue,
      maxWaitMs: config.argon2MaxWaitMs,
    }),
    redis: config.redisUrl ? createRedis(config.redisUrl.expose()) : undefined,
    migrations,
    lifecycle: { draining: false },
  };
}

function createRedis(url: string): Redis {
  return new Redis(url, {
    // Fail fast while Redis is away instead of queueing commands: every user of Redis here has
    // a fallback (rate limits skip, caches go to the database), and a queue would only add latency.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
}

/** Closes what createContext opened, in reverse order (the pool belongs to the caller). */
export async function closeContext(ctx: AppContext): Promise<void> {
  await ctx.bus?.close();
  if (ctx.redis) await ctx.redis.quit().catch(() => ctx.redis?.disconnect());
}
