// Runs once for `npm test`, before any test file: one PostgreSQL server for the whole run (the
// embedded one, or TEST_DATABASE_URL's), with a migrated template database. Each test file then
// gets a fresh database copied from the template (test/harness.ts): isolated, and fast.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';

let embedded: EmbeddedPostgresHandle | undefined;
let tmp: string | undefined;
let serverUrl: string;
const template = `conduit_template_${process.pid}`;

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export async function globalSetup(): Promise<void> {
  const external = process.env.TEST_DATABASE_URL;
  if (external) {
    serverUrl = external;
  } else {
    tmp = await mkdtemp(path.join(tmpdir(), 'conduit-test-'));
    // The server runs as the `postgres` user when the tests run as root: it must reach the dir.
    await chmod(tmp, 0o755);
    embedded = await startEmbeddedPostgres({ dir: path.join(tmp, 'pg'), port: await freePort(), ephemeral: true });
    serverUrl = embedded.url;
  }
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${template}`);
    await admin.query(`create database ${template}`);
  } finally {
    await admin.end();
  }
  const pool = createPool(withDatabase(serverUrl, template), { dbPoolMax: 2, dbAcquireTimeoutMs: 10_000 });
  try {
    await migrate(pool);
  } finally {
    await pool.end();
  }
  process.env.CONDUIT_TEST_SERVER_URL = serverUrl;
  process.env.CONDUIT_TEST_TEMPLATE = template;
}

export async function globalTeardown(): Promise<void> {
  if (embedded) {
    await embedded.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    return;
  }
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${template} with (force)`);
  } finally {
    await admin.end();
  }
}
