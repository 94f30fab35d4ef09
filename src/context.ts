// The explicit dependencies of the application, as types: built once by src/app-context.ts (for
// main.ts and the test harness), passed to buildApp and from there to every route module. No
// module singletons. Types only (the layer rule in .dependency-cruiser.cjs holds it to that), so
// any module can name the context without depending on how it is built.
import type { Redis } from 'ioredis';
import type { InvalidationBus } from './cache/bus.ts';
import type { ResponseCache } from './cache/response-cache.ts';
import type { Config } from './config.ts';
import type { Pool } from './db/pool.ts';
import type { CacheTag } from './cache/tags.ts';
import type { Auth } from './http/auth.ts';
import type { Passwords } from './users/password.ts';

export type { App } from './http/app-type.ts';
export type { Passwords };

export interface AppContext {
  readonly config: Config;
  readonly db: Pool;
  readonly auth: Auth;
  readonly passwords: Passwords;
  /**
   * Shared state for several instances (rate-limit counters; the cache's bus and shared tier
   * use duplicates of it); present when REDIS_URL is set.
   */
  readonly redis: Redis | undefined;
  /** The response cache; undefined with CACHE=off. */
  readonly cache: ResponseCache | undefined;
  /** Carries invalidations to the other processes: Redis pub/sub with REDIS_URL, else LISTEN/NOTIFY. */
  readonly bus: InvalidationBus | undefined;
  /**
   * Drops cached responses built from these tags (made with `tag`, cache/tags.ts), here at once
   * and in the other processes via the bus. Writers await it before answering, so their next read is fresh.
   */
  invalidate(tags: readonly CacheTag[]): Promise<void>;
  /** Migration files this build expects to be applied (readiness checks them). */
  readonly migrations: readonly string[];
  /** Flipped by the process entry on SIGTERM: /readyz answers 503 while in-flight work drains. */
  readonly lifecycle: { draining: boolean };
}
