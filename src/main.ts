// The process entry, and the only place that listens: config -> database -> migrations -> app ->
// listen, then a graceful shutdown on SIGTERM/SIGINT in the reverse order.
import './runtime.ts';
import closeWithGrace from 'close-with-grace';
import { pino } from 'pino';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { closeContext, createContext } from './context.ts';
import { openDatabase } from './db/database.ts';
import { listMigrations, migrate } from './db/migrate.ts';
import { createPool } from './db/pool.ts';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

const config = readConfig();
const log = pino({
  level: config.logLevel,
  // Belt and braces: handlers never log these, and if a future change does, they are masked.
  redact: {
    paths: ['req.headers.authorization', 'headers.authorization', '*.password', '*.token', 'user.password', 'user.token'],
    censor: '[redacted]',
  },
  ...(config.nodeEnv === 'development' && process.stdout.isTTY ? { transport: { target: 'pino-pretty' } } : {}),
});

const source = await openDatabase(config, (msg) => log.info(msg));
const db = createPool(source.url, config);
// An idle client whose server goes away emits 'error'; unhandled, that would crash the process.
db.on('error', (err) => log.warn({ err }, 'idle database connection failed'));

const { applied } = await migrate(db);
log.info({ applied }, applied.length ? 'migrations applied' : 'schema up to date');

const ctx = await createContext({ config, db, databaseUrl: source.url, migrations: await listMigrations(), log });
const app = await buildApp(ctx, { logger: log });

closeWithGrace({ delay: config.shutdownTimeoutMs, logger: { error: (m: string) => log.error(m) } }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'fatal error, shutting down');
  else log.info({ signal }, 'shutting down: draining in-flight requests');
  ctx.lifecycle.draining = true;
  // Behind a load balancer, keep serving while /readyz says 503 so the balancer stops routing
  // here before the listener closes (Kubernetes: endpoints are removed asynchronously).
  if (config.shutdownDelayMs > 0 && !err) await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
  // Stops accepting, answers 503 to requests that arrive meanwhile, waits for in-flight ones.
  // Keep-alive connections that go idle after their last response would hold close() open
  // until their idle timeout: close them as they become idle.
  const closing = app.close();
  const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
  await closing;
  clearInterval(sweep);
  await closeContext(ctx);
  await db.end();
  await source.embedded?.stop();
  log.info('shutdown complete');
  if (err) throw err;
});

await app.listen({ host: config.host, port: config.port });
