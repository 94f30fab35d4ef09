// The explicit dependencies of the application: built once in main.ts (or by the test
// harness), passed to buildApp and from there to every route module. No module singletons.
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import type { Pool } from './db/pool.ts';
import { Redis } from 'ioredis';
import { createAuth, type Auth } from './http/auth.ts';
import { createPasswords, type Passwords } from './users/password.ts';

export interface AppContext {
  readonly config: Config;
  readonly db: Pool;
  readonly auth: Auth;
  readonly passwords: Passwords;
  /** Shared state for several instances (rate-limit counters); present when REDIS_URL is set. */
  readonly redis: Redis | undefined;
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

/** The one place a context is assembled, for the process entry and the test harness alike. */
export function createContext(config: Config, db: Pool, migrations: readonly string[]): AppContext {
  return {
    config,
    db,
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
  if (ctx.redis) await ctx.redis.quit().catch(() => ctx.redis?.disconnect());
}
