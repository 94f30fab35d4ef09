// The process entry, and the only place that listens: config -> database -> migrations -> app ->
// listen, then a graceful shutdown on SIGTERM/SIGINT in the reverse order.
//
// With WORKERS=N (N > 1) this process becomes a supervisor: it owns the database (starting the
// embedded one if needed) and the migrations, then runs N worker processes that serve HTTP on
// the same port, restarts any that die, and on SIGTERM drains them before stopping the database.
import { collectStartupGarbage } from './runtime.ts';
import cluster from 'node:cluster';
import closeWithGrace from 'close-with-grace';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { buildApp } from './app.ts';
import { loadConfigOrExit, type Config } from './config.ts';
import { closeContext, createContext } from './app-context.ts';
import { openDatabase, type DatabaseSource } from './db/database.ts';
import { freePort } from './db/embedded.ts';
import { listMigrations, migrate } from './db/migrate.ts';
import { createPool } from './db/pool.ts';
import { listenMore, type ExtraListeners } from './http/listeners.ts';
import { fillUsernameSkeletons } from './users/users.repository.ts';
import { createLogger } from './telemetry/logging.ts';
import { adminServer } from './telemetry/admin.ts';
import {
  clusterMetrics,
  serveMetricsToSupervisor,
  startMetricsServer,
  supervisorAdmin,
  type MetricsServer,
} from './telemetry/metrics-server.ts';
import { installProfileSignal } from './telemetry/profiler.ts';
import { shutdownTracing, tracingActive } from './telemetry/spans.ts';

// close-with-grace shuts down on SIGUSR2 too (nodemon's restart signal); here it takes profiles.
const PROFILE_SIGNAL: ['SIGUSR2'] = ['SIGUSR2'];

async function migrateOnce(url: string, config: Config, log: Logger): Promise<void> {
  const pool = createPool(url, { ...config, dbPoolMax: 1 });
  try {
    const { applied } = await migrate(pool);
    log.info({ applied }, applied.length ? 'migrations applied' : 'schema up to date');
    const skeletons = await fillUsernameSkeletons(pool);
    if (skeletons.filled + skeletons.lookAlikes > 0) log.info(skeletons, 'username skeletons filled');
  } finally {
    await pool.end();
  }
}

/** One process serving HTTP: alone (WORKERS=1) or as a worker of the supervisor. */
async function serve(config: Config, log: Logger, source: DatabaseSource, runMigrations: boolean): Promise<void> {
  if (runMigrations) await migrateOnce(source.url, config, log);
  // HTTP_LISTENERS: the sockets on the port besides Fastify's own (http/listeners.ts).
  let extra: ExtraListeners | undefined;
  const db = createPool(source.url, config);
  const ctx = await createContext({ config, db, databaseUrl: source.url, migrations: await listMigrations(), log });
  const app = await buildApp(ctx, { logger: log });
  // SIGUSR2: CPU and allocation profiles of the next PROFILE_SECONDS into PROFILE_DIR.
  installProfileSignal({ dir: config.profileDir, seconds: config.profileSeconds, log });
  // METRICS_PORT: /metrics and the admin endpoints there instead of on PORT; a worker's metrics
  // go to the supervisor's port.
  let metricsServer: MetricsServer | undefined;
  const admin = config.metricsPort !== undefined && !cluster.isWorker ? await adminServer(ctx) : undefined;
  if (config.metricsPort !== undefined) {
    if (cluster.isWorker) serveMetricsToSupervisor(app.metrics);
    else
      metricsServer = await startMetricsServer({
        host: config.host,
        port: config.metricsPort,
        contentType: app.metrics.contentType,
        render: () => app.metrics.render(),
        other: admin?.handle,
      });
    if (metricsServer) log.info({ port: metricsServer.port }, `metrics at http://${config.host}:${metricsServer.port}/metrics`);
  }

  closeWithGrace(
    { delay: config.shutdownTimeoutMs, logger: { error: (m: string) => log.error(m) }, skip: PROFILE_SIGNAL },
    async ({ signal, err }) => {
      if (err) log.error({ err }, 'fatal error, shutting down');
      else log.info({ signal }, 'shutting down: draining in-flight requests');
      ctx.lifecycle.draining = true;
      // Behind a load balancer, keep serving while /readyz says 503 so the balancer stops routing
      // here before the listener closes (Kubernetes: endpoints are removed asynchronously).
      if (config.shutdownDelayMs > 0 && !err) await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
      // Stops accepting, answers 503 to requests that arrive meanwhile, waits for in-flight ones.
      // Keep-alive connections that go idle after their last response would hold close() open
      // until their idle timeout: close them as they become idle.
      const closing = Promise.all([app.close(), extra?.close()]);
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      await closing;
      clearInterval(sweep);
      await metricsServer?.close();
      await admin?.close();
      await closeContext(ctx);
      // The spans of the last requests are still in the exporter's buffer.
      await shutdownTracing();
      await db.end();
      await source.embedded?.stop();
      log.info('shutdown complete');
      if (err) throw err;
    },
  );

  // Start-up's garbage and the young generation it grew, given back before the first request.
  if (config.startupGc) {
    await app.ready();
    collectStartupGarbage();
  }
  // reuseport: every worker binds the port itself and the kernel spreads connections; cluster:
  // the supervisor accepts on its one socket and hands connections to workers round-robin. A
  // process that binds the port itself binds HTTP_LISTENERS sockets to it.
  const own = !cluster.isWorker || config.workersMode === 'reuseport';
  const sockets = own ? config.httpListeners : 1;
  await app.listen({
    host: config.host,
    port: config.port,
    backlog: config.httpBacklog,
    ...(cluster.isWorker && own ? { exclusive: true } : {}),
    ...(own && (cluster.isWorker || sockets > 1) ? { reusePort: true } : {}),
  });
  if (sockets > 1) {
    // The address the server bound: a host name such as localhost may have resolved to several,
    // and Fastify bound its other addresses on sockets of their own, without SO_REUSEPORT.
    const { address, port } = app.server.address() as AddressInfo;
    // Without them the process still serves, accepting a burst more slowly: a warning, not a stop.
    extra = await listenMore(app.server, { host: address, port, backlog: config.httpBacklog, count: sockets - 1 }).catch((err: unknown) => {
      log.warn({ err, sockets }, 'HTTP_LISTENERS: could not bind the extra listening sockets; serving on one');
      return undefined;
    });
  }
}

/** WORKERS > 1: owns the database and the workers' lifecycle; serves nothing itself. */
async function supervise(config: Config, log: Logger): Promise<void> {
  const source = await openDatabase(config, (msg) => log.info(msg));
  await migrateOnce(source.url, config, log);
  let stopping = false;
  // PORT=0 asks for any free port; with reuseport every worker would be given a different one,
  // so one is chosen here for all of them.
  const port = config.port === 0 && config.workersMode === 'reuseport' ? await freePort(config.host) : config.port;
  const env = { DATABASE_URL: source.url, CONDUIT_WORKER: '1', PORT: String(port) };
  const fork = () => cluster.fork(env);
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    // A worker that died is replaced; a short pause keeps a crash loop from spinning.
    log.error({ worker: worker.id, code, signal }, 'worker exited unexpectedly; starting a new one');
    setTimeout(fork, 500).unref();
  });
  for (let i = 0; i < config.workers; i++) fork();
  log.info({ workers: config.workers, mode: config.workersMode }, 'supervisor started');
  // Profiles are per process: SIGUSR2 to the supervisor profiles every worker.
  process.on('SIGUSR2', () => {
    for (const w of Object.values(cluster.workers ?? {})) if (w && !w.isDead()) w.process.kill('SIGUSR2');
  });
  // The cluster's metrics, summed over the workers (telemetry/metrics-server.ts).
  let metricsServer: MetricsServer | undefined;
  if (config.metricsPort !== undefined) {
    const other = config.adminToken ? supervisorAdmin : undefined;
    metricsServer = await startMetricsServer({ host: config.host, port: config.metricsPort, ...clusterMetrics(), other });
    log.info({ port: metricsServer.port }, `cluster metrics at http://${config.host}:${metricsServer.port}/metrics`);
  }

  closeWithGrace(
    { delay: config.shutdownTimeoutMs, logger: { error: (m: string) => log.error(m) }, skip: PROFILE_SIGNAL },
    async ({ signal, err }) => {
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
      await metricsServer?.close();
      await source.embedded?.stop();
      log.info('shutdown complete');
      if (err) throw err;
    },
  );
}

const config = loadConfigOrExit();
const log = createLogger(config);
if (config.tracing.enabled && !tracingActive()) {
  // The SDK's hooks must be in place before pg is imported: only a preload can do that.
  log.warn(
    'an OTLP endpoint is set but tracing is not running: start with the tracing module preloaded (`node --import ./dist/src/telemetry/tracing.js dist/src/main.js`, as npm start does)',
  );
}
if (config.workers > 1 && cluster.isPrimary) {
  await supervise(config, log);
} else {
  // A worker's DATABASE_URL comes from the supervisor, which already migrated.
  const source = await openDatabase(config, (msg) => log.info(msg));
  await serve(config, log, source, !cluster.isWorker);
}
