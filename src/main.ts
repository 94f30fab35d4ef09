// The process entry, and the only place that listens: config -> database -> migrations -> app ->
// listen, then a graceful shutdown on SIGTERM/SIGINT in the reverse order.
//
// With WORKERS=N (N > 1) this process becomes a supervisor: it owns the database (starting the
// embedded one if needed) and the migrations, then runs N worker processes that serve HTTP on
// the same port, restarts any that die, and on SIGTERM drains them before stopping the database.
import './runtime.ts';
import cluster from 'node:cluster';
import closeWithGrace from 'close-with-grace';
import { pino, type Logger } from 'pino';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { closeContext, createContext } from './context.ts';
import { openDatabase, type DatabaseSource } from './db/database.ts';
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

function createLogger(config: Config): Logger {
  return pino({
    level: config.logLevel,
    // Belt and braces: handlers never log these, and if a future change does, they are masked.
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.password', '*.token', 'user.password', 'user.token'],
      censor: '[redacted]',
    },
    ...(cluster.isWorker ? { base: { pid: process.pid, worker: cluster.worker?.id } } : {}),
    ...(config.nodeEnv === 'development' && process.stdout.isTTY ? { transport: { target: 'pino-pretty' } } : {}),
  });
}

async function migrateOnce(url: string, config: Config, log: Logger): Promise<void> {
  const pool = createPool(url, { ...config, dbPoolMax: 1 });
  try {
    const { applied } = await migrate(pool);
    log.info({ applied }, applied.length ? 'migrations applied' : 'schema up to date');
  } finally {
    await pool.end();
  }
}

/** One process serving HTTP: alone (WORKERS=1) or as a worker of the supervisor. */
async function serve(config: Config, log: Logger, source: DatabaseSource, runMigrations: boolean): Promise<void> {
  if (runMigrations) await migrateOnce(source.url, config, log);
  const db = createPool(source.url, config);
  // An idle client whose server goes away emits 'error'; unhandled, that would crash the process.
  db.on('error', (err) => log.warn({ err }, 'idle database connection failed'));
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

  // reuseport: every worker binds the port itself and the kernel spreads connections; cluster:
  // the supervisor accepts and hands connections to workers round-robin.
  const own = cluster.isWorker && config.workersMode === 'reuseport';
  await app.listen({ host: config.host, port: config.port, ...(own ? { exclusive: true, reusePort: true } : {}) });
}

/** WORKERS > 1: owns the database and the workers' lifecycle; serves nothing itself. */
async function supervise(config: Config, log: Logger): Promise<void> {
  const source = await openDatabase(config, (msg) => log.info(msg));
  await migrateOnce(source.url, config, log);
  let stopping = false;
  const env = { DATABASE_URL: source.url, CONDUIT_WORKER: '1' };
  const fork = () => cluster.fork(env);
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    // A worker that died is replaced; a short pause keeps a crash loop from spinning.
    log.error({ worker: worker.id, code, signal }, 'worker exited unexpectedly; starting a new one');
    setTimeout(fork, 500).unref();
  });
  for (let i = 0; i < config.workers; i++) fork();
  log.info({ workers: config.workers, mode: config.workersMode }, 'supervisor started');

  closeWithGrace({ delay: config.shutdownTimeoutMs, logger: { error: (m: string) => log.error(m) } }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'supervisor failed, shutting down');
    stopping = true;
    log.info({ signal }, 'stopping workers');
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            w.process.kill('SIGTERM');
          }),
      ),
    );
    await source.embedded?.stop();
    log.info('shutdown complete');
    if (err) throw err;
  });
}

const config = readConfig();
const log = createLogger(config);
if (config.workers > 1 && cluster.isPrimary) {
  await supervise(config, log);
} else {
  // A worker's DATABASE_URL comes from the supervisor, which already migrated.
  const source = await openDatabase(config, (msg) => log.info(msg));
  await serve(config, log, source, !cluster.isWorker);
}
