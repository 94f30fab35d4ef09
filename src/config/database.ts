// PostgreSQL: where it is (an external URL, or the embedded server in DATA_DIR) and how the pool
// uses it.
import path from 'node:path';
import { bool, int, secretUrl, str, type Env, type Secret } from './parse.ts';

/** Queries one connection carries at once unless DB_PIPELINE says otherwise (src/db/pool.ts). */
export const DEFAULT_DB_PIPELINE = 4;
/** Connections per process unless DB_POOL_MAX says otherwise (the bench's pgbench takes as many). */
export const DEFAULT_DB_POOL_MAX = 4;

export interface DatabaseConfig {
  /** External PostgreSQL; when absent an embedded PostgreSQL is started in `dataDir`. */
  readonly databaseUrl: Secret | undefined;
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly dbPoolMax: number;
  readonly dbAcquireTimeoutMs: number;
  /** Each parameterised statement prepared once per connection (src/db/pool.ts). */
  readonly dbPrepare: boolean;
  /** Queries one connection carries at once (postgres.js's max_pipeline; src/db/pool.ts). */
  readonly dbPipeline: number;
}

export function databaseConfig(env: Env): DatabaseConfig {
  return {
    databaseUrl: secretUrl(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    dataDir: path.resolve(str(env, 'DATA_DIR') ?? '.data'),
    // An unusual port so the embedded server never collides with a system PostgreSQL on 5432.
    embeddedPgPort: int(env, 'EMBEDDED_PG_PORT', 54329, 1, 65535),
    // Each connection carries DB_PIPELINE queries at once, so 4 carry 16. Fewer backends wake
    // less and wait less on each other's locks and WAL flushes: against 10, about half the
    // PostgreSQL time per request and p99 on the signed-in, write and mixed loads, throughput
    // as high or higher (docs/database.md "Pool size").
    dbPoolMax: int(env, 'DB_POOL_MAX', DEFAULT_DB_POOL_MAX, 1, 1000),
    // Waiting longer than this for a connection means the pool is saturated: fail fast (503).
    dbAcquireTimeoutMs: int(env, 'DB_ACQUIRE_TIMEOUT_MS', 2000, 1, 600_000),
    // Prepared once per connection: PostgreSQL parses and plans each statement once, not per
    // call. Off only behind a pooler that cannot follow protocol-level prepared statements
    // (PgBouncer before 1.21, or without max_prepared_statements, in transaction mode): docs/database.md.
    dbPrepare: bool(env, 'DB_PREPARE', true),
    // A few queries in flight per connection cost less CPU on both sides than one (fewer writes
    // and wake-ups); more would hold more quick queries behind a slow one. docs/database.md.
    dbPipeline: int(env, 'DB_PIPELINE', DEFAULT_DB_PIPELINE, 1, 100),
  };
}
