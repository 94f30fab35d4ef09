// The connection pool and the two helpers every repository uses. Repositories are plain
// functions whose first parameter is a `Queryable`; a function that needs a transaction takes
// a `PoolClient` inside `inTransaction`, so its type says so.
import pg from 'pg';
import type { Config } from '../config.ts';

export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;
export type Pool = pg.Pool;

// int8 (bigint ids, count(*)) come back as strings by default; every id and count here fits
// in a double by a wide margin, and the API wants numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function createPool(connectionString: string, config: Pick<Config, 'dbPoolMax' | 'dbAcquireTimeoutMs'>): Pool {
  return new pg.Pool({
    connectionString,
    max: config.dbPoolMax,
    // pg calls this connectionTimeoutMillis, but it bounds the wait for a free pooled client
    // as well as the TCP connect: the acquire timeout.
    connectionTimeoutMillis: config.dbAcquireTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: 'conduit',
  });
}

export async function inTransaction<T>(pool: Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A client whose rollback failed is in an unknown state: destroy it instead of pooling it.
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
