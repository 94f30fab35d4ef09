// Where the database comes from: DATABASE_URL, or an embedded PostgreSQL in the data directory.
import path from 'node:path';
import pg from 'pg';
import type { Config } from '../config.ts';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded.ts';

export interface DatabaseSource {
  readonly url: string;
  /** Present when this process started the server (and must stop it last). */
  readonly embedded: EmbeddedPostgresHandle | undefined;
}

const EMBEDDED_DB = 'conduit';

export async function openDatabase(config: Config, log: (msg: string) => void): Promise<DatabaseSource> {
  if (config.databaseUrl) return { url: config.databaseUrl.expose(), embedded: undefined };
  const dir = path.join(config.dataDir, 'pg');
  log(`starting embedded PostgreSQL in ${dir} on 127.0.0.1:${config.embeddedPgPort}`);
  const embedded = await startEmbeddedPostgres({ dir, port: config.embeddedPgPort });
  try {
    await ensureDatabase(embedded.url, EMBEDDED_DB);
  } catch (err) {
    await embedded.stop();
    throw err;
  }
  const url = new URL(embedded.url);
  url.pathname = `/${EMBEDDED_DB}`;
  return { url: url.toString(), embedded };
}

/** Create the database on first start; later starts find it. */
export async function ensureDatabase(serverUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) await client.query(`create database ${pg.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}
