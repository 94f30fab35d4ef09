// Prometheus metrics (prom-client), served at GET /metrics (or on METRICS_PORT, metrics-server.ts).
//
// Per request: one histogram observation (route template, method, status class), made by the
// request pipeline (http/pipeline.ts), which also keeps the in-flight count. Everything else is read when Prometheus scrapes, through
// collect() callbacks over counters the service keeps anyway (the pool's counts, the cache's
// stats, the pipeline's and the hashing limiter's refusals): it costs nothing per request.
//
// Labels stay low-cardinality: route templates (`/api/articles/:slug`), never raw URLs, user ids
// or usernames; unmatched URLs share the route label "unmatched".
//
// docs/observability.md "Metrics" lists every metric and the queries that answer the usual questions.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { processMetrics } from './process-metrics.ts';
import type { Replays } from '../cache/hot-path.ts';
import type { App, AppContext } from '../context.ts';
import type { Pool } from '../db/pool.ts';
import { NEVER_SHED } from '../http/load-shedding.ts';
import type { Connections } from '../http/connections.ts';
import type { Pipeline } from '../http/pipeline.ts';
import { registerAdmissionMetrics } from './admission-metrics.ts';
import { snapshotted } from './snapshot.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's metrics (telemetry/metrics.ts). */
    metrics: Metrics;
  }
}

export interface Metrics {
  /** The app's own metrics (requests, pool, cache, refusals). */
  readonly registry: Registry;
  readonly contentType: string;
  /** The whole exposition: process-wide metrics, then the app's. */
  render(): Promise<string>;
}

/**
 * Request durations of a service whose cached reads take well under a millisecond and whose
 * uncached ones a few: fine buckets below 10 ms, then coarse ones up to the 2.5 s beyond which
 * only timeouts (REQUEST_TIMEOUT_MS) live.
 */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Waits for a pooled connection: zero when the pool has an idle one, up to DB_ACQUIRE_TIMEOUT_MS. */
export const ACQUIRE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
// ---------------------------------------------------------------------------------------------

type Child = { observe(value: number): void };

const STATUS_CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/**
 * The request duration histogram, which the request pipeline (http/pipeline.ts) observes for
 * every request it answers, replayed or routed; made before the app, in the app's registry.
 */
export class RequestMetrics {
  readonly registry = new Registry();
  /** Refusals counted by status (a route's own rate limit answers 429 too). */
  readonly refused = { rateLimited: 0, timedOut: 0 };
  readonly #duration = new Histogram({
    name: 'http_server_request_duration_seconds',
    help: 'Time from the first byte of a request to the end of its response, by route template, method and status class. _count is the request rate; status_class="5xx" the errors.',
    labelNames: ['method', 'route', 'status_class'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  // Children by method, then route, then status class, made once: observe() on a child skips
  // the label validation a labelled observe() does per call, and no key string is built.
  readonly #children = new Map<string, Map<string, Child[]>>();

  observe(method: string, route: string, status: number, seconds: number): void {
    let byRoute = this.#children.get(method);
    if (!byRoute) this.#children.set(method, (byRoute = new Map<string, Child[]>()));
    let byClass = byRoute.get(route);
    if (!byClass) byRoute.set(route, (byClass = []));
    const cls = Math.min(5, Math.max(1, Math.floor(status / 100)));
    (byClass[cls] ??= this.#duration.labels({ method, route, status_class: STATUS_CLASSES[cls]! })).observe(seconds);
    if (status === 429) this.refused.rateLimited++;
    else if (status === 504) this.refused.timedOut++;
  }
}

export interface MetricsSources {
  /** Serve GET /metrics here (false with METRICS_PORT: main.ts serves it there). */
  route: boolean;
  requests: RequestMetrics;
  pipeline: Pipeline;
  replays: Replays | undefined;
  connections: Connections;
}

export function registerMetrics(app: App, ctx: AppContext, { route, requests, pipeline, replays, connections }: MetricsSources): Metrics {
  // Start the process-wide collectors (the event-loop monitor among them) with the app, not at
  // the first scrape, so that scrape already has something to report.
  processMetrics();
  const registry = requests.registry;
  const registers = [registry];
  const refused = requests.refused;

  new Gauge({
    name: 'http_server_active_requests',
    help: 'Requests received and not yet answered.',
    registers,
    collect() {
      this.set(pipeline.stats.inFlight);
    },
  });

  // --- Refusals -------------------------------------------------------------------------------
  new Counter({
    name: 'conduit_requests_refused_total',
    help: 'Requests answered without doing their work: shed under overload (503), over a rate limit (429), out of time (504), no password-hashing slot (503).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      this.inc({ reason: 'shed' }, pipeline.stats.shed);
      this.inc({ reason: 'rate_limited' }, refused.rateLimited);
      this.inc({ reason: 'timed_out' }, refused.timedOut);
      this.inc({ reason: 'password_hashing_busy' }, ctx.passwords.limiter.rejected);
    },
  });

  // --- Database pool --------------------------------------------------------------------------
  registerPoolMetrics(ctx.db, registers);
  registerAdmissionMetrics(connections, pipeline, registers);

  // --- Response cache -------------------------------------------------------------------------
  const cache = ctx.cache;
  if (cache) {
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    /** A counter by `result`, read from the cache's own counts at scrape time. */
    const byResult = (name: string, help: string, read: () => Record<string, number>) =>
      new Counter({
        name,
        help,
        labelNames: ['result'],
        registers,
        collect() {
          this.reset();
          for (const [result, n] of Object.entries(read())) this.inc({ result }, n);
        },
      });
    byResult(
      'conduit_cache_requests_total',
      'Response-cache lookups by result: hit, miss (loaded from the database), coalesced (joined a load in flight).',
      () => ({
        hit: cache.stats.hits,
        miss: cache.stats.misses,
        coalesced: cache.stats.coalesced,
      }),
    );
    byResult(
      'conduit_cache_viewer_copies_total',
      "Compressed pages with a signed-in viewer's flags set, by result: hit (sent as kept), miss (compressed, and kept within the cache's bound).",
      () => ({ hit: cache.stats.copyHits, miss: cache.stats.copyMisses }),
    );
    // The shared Redis tier (REDIS_URL): consulted on an in-process miss. Errors include
    // timeouts (CACHE_REDIS_TIMEOUT_MS) and calls skipped while Redis is down; each one is a
    // request that went to PostgreSQL instead.
    if (ctx.config.cacheRedis) {
      byResult(
        'conduit_cache_redis_requests_total',
        'Redis cache-tier lookups after an in-process miss, by result: hit, miss, error (timed out or Redis down: served from PostgreSQL).',
        () => ({
          hit: cache.stats.redisHits,
          miss: cache.stats.redisMisses,
          error: cache.stats.redisErrors,
        }),
      );
      counter('conduit_cache_redis_stores_total', 'Entries written to the Redis cache tier.', () => cache.stats.redisStores);
    }
    // Hits answered by the hot path (cache/hot-path.ts), before Fastify: a part of the hits above.
    counter(
      'conduit_cache_replayed_total',
      'Cache hits answered by the hot path (a repeat of a cached read, before the framework); included in conduit_cache_requests_total{result="hit"}.',
      () => replays?.stats.replayed ?? 0,
    );
    counter(
      'conduit_cache_evictions_total',
      'Entries evicted to stay within CACHE_MAX_BYTES (not expiries or invalidations).',
      () => cache.stats.evictions,
    );
    counter(
      'conduit_cache_invalidations_total',
      'Tags invalidated by writes, here and from other processes.',
      () => cache.stats.invalidations,
    );
    counter(
      'conduit_cache_raced_loads_total',
      'Loads answered but not stored because a write invalidated them meanwhile.',
      () => cache.stats.raced,
    );
    new Gauge({
      name: 'conduit_cache_entries',
      help: 'Entries in the response cache.',
      registers,
      collect() {
        this.set(cache.size);
      },
    });
    new Gauge({
      name: 'conduit_cache_size_bytes',
      help: 'Bytes the response cache counts against CACHE_MAX_BYTES.',
      registers,
      collect() {
        this.set(cache.bytes);
      },
    });
  }

  const contentType = registry.contentType;
  const render = async () => `${await processMetrics().metrics()}\n${await registry.metrics()}`;
  if (route) {
    const renders = new Counter({
      name: 'conduit_metrics_renders_total',
      help: 'Renders of GET /metrics on the API port: at most one per METRICS_SNAPSHOT_MS, however many scrapes.',
      registers,
    });
    const snapshot = snapshotted(() => {
      renders.inc();
      return render();
    }, ctx.config.metricsSnapshotMs);
    app.get(
      '/metrics',
      {
        config: NEVER_SHED,
        schema: {
          summary: 'Prometheus metrics, in the text exposition format (here unless METRICS_PORT is set)',
          tags: ['Operations'],
          response: { 200: { description: 'The metrics', content: { 'text/plain': { schema: { type: 'string' } } } } },
        },
      },
      async (_request, reply) => {
        return reply.type(contentType).send(await snapshot());
      },
    );
  }
  const metrics: Metrics = {
    registry,
    contentType,
    render,
  };
  app.decorate('metrics', metrics);
  return metrics;
}

const poolInstrumented = new WeakSet<Pool>();

/** Connections by state and the wait for one (every checkout, pool.query included: db/pool.ts). */
function registerPoolMetrics(db: Pool, registers: Registry[]): void {
  new Gauge({
    name: 'db_client_connection_count',
    help: 'Connections of the pool by state: idle, or used by a request.',
    labelNames: ['state'],
    registers,
    collect() {
      this.set({ state: 'idle' }, db.idleCount);
      this.set({ state: 'used' }, db.totalCount - db.idleCount);
    },
  });
  new Gauge({
    name: 'db_client_connection_max',
    help: 'The most connections the pool opens (DB_POOL_MAX).',
    registers,
    collect() {
      this.set(db.max);
    },
  });
  new Gauge({
    name: 'db_client_connection_pending_requests',
    help: 'Requests waiting for a connection (the pool is exhausted while this is above zero).',
    registers,
    collect() {
      this.set(db.waitingCount);
    },
  });
  const wait = new Histogram({
    name: 'db_client_connection_wait_time_seconds',
    help: 'Time to get a connection from the pool (pool acquire), successful or not.',
    buckets: ACQUIRE_BUCKETS,
    registers,
  });
  const failures = new Counter({
    name: 'db_client_connection_failures_total',
    help: 'Pool acquires that failed: timed out waiting (DB_ACQUIRE_TIMEOUT_MS) or could not connect.',
    registers,
  });
  // A pool serves one app; a second app on the same pool (not done here) keeps the first's timing.
  if (poolInstrumented.has(db)) return;
  poolInstrumented.add(db);
  db.observeAcquire((waitMs, err) => {
    wait.observe(waitMs / 1000);
    if (err) failures.inc();
  });
}
