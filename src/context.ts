// The explicit dependencies of the application: built once in main.ts (or by the test
// harness), passed to buildApp and from there to every route module. No module singletons.
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import type { Pool } from './db/pool.ts';
import { createAuth, type Auth } from './http/auth.ts';
import { createPasswords, type Passwords } from './users/password.ts';

export interface AppContext {
  readonly config: Config;
  readonly db: Pool;
  readonly auth: Auth;
  readonly passwords: Passwords;
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
    migrations,
    lifecycle: { draining: false },
  };
}
