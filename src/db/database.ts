// Where the database comes from: DATABASE_URL, or an embedded PostgreSQL in the data directory.
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Config } from '../config.ts';
import { embeddedServerUrl, startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded.ts';

export interface DatabaseSource {
  readonly url: string;
  /** Present when this process started the server (and must stop it last). */
  readonly embedded: EmbeddedPostgresHandle | undefined;
}

export interface OpenOptions {
  /**
   * Use the embedded server already running on the data directory (`npm start`'s) instead of
   * failing to start a second one on it (PostgreSQL locks its data directory). For tools that
   * run beside the service: `npm run seed`.
   */
  reuseRunning?: boolean;
}

const EMBEDDED_DB = 'conduit';

export async function openDatabase(config: Config, log: (msg: string) => void, opts: OpenOptions = {}): Promise<DatabaseSource> {
  if (config.databaseUrl) return { url: config.databaseUrl.expose(), embedded: undefined };
  const dir = path.join(config.dataDir, 'pg');
  if (opts.reuseRunning) {
    const running = await runningEmbedded(dir, config.embeddedPgPort);
    if (running) {
      log(`using the embedded PostgreSQL already running in ${dir} on 127.0.0.1:${running.port}`);
      await ensureDatabase(running.url, EMBEDDED_DB);
      return { url: withDatabase(running.url, EMBEDDED_DB), embedded: undefined };
    }
  }
  log(`starting embedded PostgreSQL in ${dir} on 127.0.0.1:${config.embeddedPgPort}`);
  const embedded = await startEmbeddedPostgres({ dir, port: config.embeddedPgPort });
  try {
    await ensureDatabase(embedded.url, EMBEDDED_DB);
  } catch (err) {
    await embedded.stop();
    throw err;
  }
  return { url: withDatabase(embedded.url, EMBEDDED_DB), embedded };
}

function withDatabase(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * The server running on `dir`, if one is: PostgreSQL writes `postmaster.pid` (pid, data
 * directory, start time, port, ...) while it runs. Its port is the one to use (the service may
 * have been started with another EMBEDDED_PG_PORT); it counts as running only if it answers
 * there with this data directory. A stale file (a crash) or an unreadable one falls back to the
 * configured port.
 */
async function runningEmbedded(dir: string, configuredPort: number): Promise<{ url: string; port: number } | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(dir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const filePort = Number(lines[3]);
  const port = Number.isInteger(filePort) && filePort > 0 ? filePort : configuredPort;
  const url = embeddedServerUrl(port);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const res = await client.query<{ dir: string }>(`select current_setting('data_directory') as dir`);
    const same = (await realpath(res.rows[0]?.dir ?? '').catch(() => '')) === (await realpath(dir));
    return same ? { url, port } : undefined;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
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
