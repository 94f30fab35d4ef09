// The explicit dependencies of the application: built once in main.ts (or by the test
// harness), passed to buildApp and from there to every route module. No module singletons.
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import type { Pool } from './db/pool.ts';
import type { Auth } from './http/auth.ts';

export interface AppContext {
  readonly config: Config;
  readonly db: Pool;
  readonly auth: Auth;
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
