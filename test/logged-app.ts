// The real application with the real logger (src/telemetry/logging.ts: level, redaction) writing
// into memory, for tests that read what the service logs. Otherwise as harness.ts's test app.
import { Writable } from 'node:stream';
import { buildApp } from '../src/app.ts';
import { loadConfig, type LogLevel } from '../src/config.ts';
import { closeContext, createContext } from '../src/app-context.ts';
import { listMigrations } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { createLogger } from '../src/telemetry/logging.ts';
import { createDatabase, TEST_JWT_SECRET, type TestApp } from './harness.ts';

export interface LoggedApp extends TestApp {
  /** Every line logged so far, parsed. */
  lines: Record<string, unknown>[];
  /** Every line logged so far, as written. */
  text(): string;
}

export async function createLoggedApp(env: Record<string, string> = {}, level: LogLevel = 'info'): Promise<LoggedApp> {
  const database = await createDatabase();
  const config = loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: TEST_JWT_SECRET,
    DATABASE_URL: database.url,
    RATE_LIMIT: 'off',
    SHED: 'off',
    LOG_LEVEL: level,
    // As in harness.ts: the shared Redis cache tier is per database.
    CACHE_REDIS_PREFIX: `conduit-test:${database.name}:cache:`,
    ...env,
  });
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  const log = createLogger(config, sink);
  const db = createPool(database.url, config);
  const ctx = await createContext({ config, db, databaseUrl: database.url, migrations: await listMigrations(), log });
  const app = await buildApp(ctx, { logger: log });
  await app.ready();
  return {
    app,
    db,
    ctx,
    config,
    lines,
    text: () => raw.join('\n'),
    close: async () => {
      await app.close();
      await closeContext(ctx);
      if (!db.ended) await db.end();
      await database.drop();
    },
  };
}
