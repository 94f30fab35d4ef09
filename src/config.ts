// The one place that reads the environment. Every setting is parsed and validated once at start;
// a bad value stops the process with a message naming the variable. The result is frozen and
// passed explicitly (see context.ts): nothing else reads process.env.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** A value that must never reach a log line or a response: it prints as [redacted]. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  expose(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret([redacted])';
  }
}

export type NodeEnv = 'development' | 'production' | 'test';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly nodeEnv: NodeEnv;
  readonly host: string;
  readonly port: number;
  /** External PostgreSQL; when absent an embedded PostgreSQL is started in `dataDir`. */
  readonly databaseUrl: Secret | undefined;
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly dbPoolMax: number;
  readonly dbAcquireTimeoutMs: number;
  /** Each parameterised statement prepared once per connection (src/db/prepared.ts). */
  readonly dbPrepare: boolean;
  readonly jwtSecret: Secret;
  readonly jwtTtlSeconds: number;
  readonly logLevel: LogLevel;
  readonly bodyLimitBytes: number;
  readonly shutdownTimeoutMs: number;
  readonly shutdownDelayMs: number;
  readonly corsOrigins: readonly string[] | '*';
  readonly requestTimeoutMs: number;
  readonly workers: number;
  readonly workersMode: 'cluster' | 'reuseport';
  readonly cache: boolean;
  /** Repeats of anonymous cached reads answered before Fastify (cache/hot-path.ts). */
  readonly hotPath: boolean;
  readonly cacheTtlMs: number;
  readonly cacheMaxBytes: number;
  readonly redisUrl: Secret | undefined;
  readonly cacheRedis: boolean;
  readonly cacheRedisPrefix: string;
  readonly cacheRedisTimeoutMs: number;
  readonly compression: boolean;
  readonly compressionThresholdBytes: number;
  readonly httpKeepAliveTimeoutMs: number;
  readonly httpHeadersTimeoutMs: number;
  readonly httpRequestTimeoutMs: number;
  readonly shed: boolean;
  readonly shedMaxEventLoopDelayMs: number;
  readonly shedMaxHeapUsedBytes: number;
  readonly shedMaxInFlight: number;
  readonly rateLimit: boolean;
  readonly rateLimitMax: number;
  readonly rateLimitLoginMax: number;
  readonly rateLimitRegisterMax: number;
  readonly rateLimitWindowMs: number;
  readonly rateLimitPrefix: string;
  readonly trustProxy: false | number | readonly string[];
  readonly uvThreadpoolSize: number;
  readonly argon2Concurrency: number;
  readonly argon2Queue: number;
  readonly argon2MaxWaitMs: number;
  /** A separate port for GET /metrics (then not served on PORT); undefined: on PORT. */
  readonly metricsPort: number | undefined;
  /** Enables the admin endpoints (on-demand profiles); undefined: they do not exist. */
  readonly adminToken: Secret | undefined;
  /** Where a profile taken on SIGUSR2 is written. */
  readonly profileDir: string;
  /** How long a profile taken on SIGUSR2 runs. */
  readonly profileSeconds: number;
  readonly tracing: TracingSettings;
}

export type TracesSampler =
  'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

/**
 * OpenTelemetry tracing, from the standard OTEL_* variables. src/telemetry/tracing.ts reads the
 * same settings before anything else is loaded (it runs under `node --import`, before main.ts).
 */
export interface TracingSettings {
  /** Spans are recorded and exported: an OTLP endpoint is set and nothing turns tracing off. */
  readonly enabled: boolean;
  readonly serviceName: string;
  readonly sampler: TracesSampler;
  /** The ratio for the *traceidratio samplers, 0..1. */
  readonly samplerRatio: number;
  /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT (the exporter reads them itself). */
  readonly endpoint: string | undefined;
  /** The batch span processor (OTEL_BSP_*): the SDK package used here does not read them itself. */
  readonly batch: BatchSettings;
}

export interface BatchSettings {
  /** OTEL_BSP_SCHEDULE_DELAY: the longest a finished span waits before it is exported, ms. */
  readonly scheduledDelayMillis: number;
  /** OTEL_BSP_EXPORT_TIMEOUT: an export that takes longer is abandoned, ms. */
  readonly exportTimeoutMillis: number;
  /** OTEL_BSP_MAX_QUEUE_SIZE: finished spans kept while waiting; beyond it they are dropped. */
  readonly maxQueueSize: number;
  /** OTEL_BSP_MAX_EXPORT_BATCH_SIZE: spans per export; a full batch is exported at once. */
  readonly maxExportBatchSize: number;
}

export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = str(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['on', 'true', '1', 'yes'].includes(raw)) return true;
  if (['off', 'false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(name, `must be on or off, got "${raw}"`);
}

function keyPrefix(env: Env, name: string, fallback: string): string {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (raw.length > 100 || /\s/.test(raw)) throw new ConfigError(name, `must be up to 100 characters without spaces, got "${raw}"`);
  return raw;
}

/** off, a number of proxy hops, or the proxies' addresses/CIDRs (proxy-addr's names allowed). */
function trustProxy(env: Env): false | number | readonly string[] {
  const raw = str(env, 'TRUST_PROXY');
  if (raw === undefined || raw.toLowerCase() === 'off') return false;
  if (/^\d+$/.test(raw)) return int(env, 'TRUST_PROXY', 0, 1, 100);
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  for (const e of entries) {
    const [addr, bits, extra] = e.split('/');
    const named = ['loopback', 'linklocal', 'uniquelocal'].includes(e);
    if (!named && (extra !== undefined || net.isIP(addr ?? '') === 0 || (bits !== undefined && !/^\d{1,3}$/.test(bits)))) {
      throw new ConfigError('TRUST_PROXY', `must be off, a hop count, or a comma-separated list of addresses/CIDRs, got "${e}"`);
    }
  }
  return Object.freeze(entries);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

/** A connection URL with one of the given schemes; secret because it may carry a password. */
function secretUrl(env: Env, name: string, schemes: readonly string[]): Secret | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a URL');
  }
  if (!schemes.includes(url.protocol.slice(0, -1))) {
    throw new ConfigError(name, `must be a ${schemes.map((p) => `${p}://`).join(' or ')} URL, got ${url.protocol}//`);
  }
  return new Secret(raw);
}

/**
 * JWT_SECRET is mandatory in production. In development a random secret is made once and kept in
 * the data directory, so tokens survive restarts without anybody having to invent a secret.
 */
function jwtSecret(env: Env, nodeEnv: NodeEnv, dataDir: string): Secret {
  const raw = str(env, 'JWT_SECRET');
  if (raw !== undefined) {
    if (raw.length < 32) throw new ConfigError('JWT_SECRET', 'must be at least 32 characters');
    return new Secret(raw);
  }
  if (nodeEnv === 'production') throw new ConfigError('JWT_SECRET', 'is required when NODE_ENV=production');
  const file = path.join(dataDir, 'jwt-secret');
  try {
    const kept = readFileSync(file, 'utf8').trim();
    if (kept.length >= 32) return new Secret(kept);
  } catch {
    // not created yet
  }
  const fresh = randomBytes(48).toString('base64url');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, fresh + '\n', { mode: 0o600 });
  return new Secret(fresh);
}

function corsOrigins(env: Env): readonly string[] | '*' {
  const raw = str(env, 'CORS_ORIGINS');
  if (raw === undefined || raw === '*') return '*';
  const origins = raw
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const o of origins) {
    try {
      new URL(o);
    } catch {
      throw new ConfigError('CORS_ORIGINS', `must be "*" or a comma-separated list of origins, got "${o}"`);
    }
  }
  return Object.freeze(origins);
}

const SAMPLERS: readonly TracesSampler[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

function otlpEndpoint(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(name, `must be an http:// or https:// URL, got ${url.protocol}//`);
  return raw;
}

/** The standard OTEL_* variables this service honours, validated (see TracingSettings). */
export function tracingSettings(env: Env = process.env): TracingSettings {
  const endpoint = otlpEndpoint(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? otlpEndpoint(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  // The one exporter installed speaks OTLP over HTTP with protobuf bodies (every collector and
  // most backends accept it); saying another protocol must fail loudly, not export nothing.
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const protocol = str(env, name);
    if (protocol !== undefined && protocol !== 'http/protobuf')
      throw new ConfigError(name, `must be http/protobuf (the exporter this build has), got "${protocol}"`);
  }
  const exporter = oneOf<'otlp' | 'none'>(env, 'OTEL_TRACES_EXPORTER', ['otlp', 'none'], 'otlp');
  const disabled = bool(env, 'OTEL_SDK_DISABLED', false);
  const ratio = str(env, 'OTEL_TRACES_SAMPLER_ARG');
  const samplerRatio = ratio === undefined ? 1 : Number(ratio);
  if (!Number.isFinite(samplerRatio) || samplerRatio < 0 || samplerRatio > 1) {
    throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', `must be a ratio between 0 and 1, got "${ratio}"`);
  }
  return Object.freeze({
    enabled: endpoint !== undefined && exporter === 'otlp' && !disabled,
    serviceName: str(env, 'OTEL_SERVICE_NAME') ?? 'conduit',
    // The specification's default: follow the caller's decision, record every root trace. A
    // busy deployment sets parentbased_traceidratio with a ratio (README "Observability").
    sampler: oneOf<TracesSampler>(env, 'OTEL_TRACES_SAMPLER', SAMPLERS, 'parentbased_always_on'),
    samplerRatio,
    endpoint,
    batch: batchSettings(env),
  });
}

/** The specification's OTEL_BSP_* variables, with its defaults. */
function batchSettings(env: Env): BatchSettings {
  const maxQueueSize = int(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 2048, 1, 1_000_000);
  const maxExportBatchSize = int(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512, 1, 1_000_000);
  // The specification: the batch must not be larger than the queue.
  if (maxExportBatchSize > maxQueueSize)
    throw new ConfigError(
      'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
      `must not exceed OTEL_BSP_MAX_QUEUE_SIZE (${maxQueueSize}), got ${maxExportBatchSize}`,
    );
  return Object.freeze({
    scheduledDelayMillis: int(env, 'OTEL_BSP_SCHEDULE_DELAY', 5000, 0, 86_400_000),
    exportTimeoutMillis: int(env, 'OTEL_BSP_EXPORT_TIMEOUT', 30_000, 0, 86_400_000),
    maxQueueSize,
    maxExportBatchSize,
  });
}

function adminToken(env: Env): Secret | undefined {
  const raw = str(env, 'ADMIN_TOKEN');
  if (raw === undefined) return undefined;
  // It guards endpoints that stop the world for seconds (heap snapshots): not guessable.
  if (raw.length < 32) throw new ConfigError('ADMIN_TOKEN', 'must be at least 32 characters');
  return new Secret(raw);
}

export function loadConfig(env: Env = process.env): Config {
  // libuv's default; src/runtime.ts applies it before the threadpool starts.
  const uvThreadpoolSize = int(env, 'UV_THREADPOOL_SIZE', 4, 1, 1024);
  const nodeEnv = oneOf<NodeEnv>(env, 'NODE_ENV', ['development', 'production', 'test'], 'development');
  const dataDir = path.resolve(str(env, 'DATA_DIR') ?? '.data');
  return Object.freeze({
    nodeEnv,
    // Loopback by default: a developer's `npm start` should not be reachable from the network.
    // Containers set HOST=0.0.0.0.
    host: str(env, 'HOST') ?? '127.0.0.1',
    port: int(env, 'PORT', 3000, 0, 65535),
    databaseUrl: secretUrl(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    dataDir,
    // An unusual port so the embedded server never collides with a system PostgreSQL on 5432.
    embeddedPgPort: int(env, 'EMBEDDED_PG_PORT', 54329, 1, 65535),
    // PostgreSQL does its best work with few connections per core; 10 per process keeps two
    // cores busy with headroom for a second process (WORKERS) under max_connections=100.
    dbPoolMax: int(env, 'DB_POOL_MAX', 10, 1, 1000),
    // Waiting longer than this for a connection means the pool is saturated: fail fast (503).
    dbAcquireTimeoutMs: int(env, 'DB_ACQUIRE_TIMEOUT_MS', 2000, 1, 600_000),
    // Prepared once per connection: PostgreSQL parses and plans each statement once, not per
    // call. Off only behind a pooler that cannot follow protocol-level prepared statements
    // (PgBouncer before 1.21, or without max_prepared_statements, in transaction mode): docs/database.md.
    dbPrepare: bool(env, 'DB_PREPARE', true),
    jwtSecret: jwtSecret(env, nodeEnv, dataDir),
    // A week: long enough for the RealWorld front ends, which have no refresh flow.
    jwtTtlSeconds: int(env, 'JWT_TTL_SECONDS', 7 * 24 * 3600, 60, 365 * 24 * 3600),
    logLevel: oneOf<LogLevel>(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    // Articles are Markdown; 1 MiB is far above any real one and small enough to bound memory.
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    // Below Kubernetes' default 30 s terminationGracePeriodSeconds.
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    // Time between SIGTERM and closing the listener, with /readyz failing, so load balancers
    // stop sending new requests first. 0 locally; deployments behind a balancer set ~5 s.
    shutdownDelayMs: int(env, 'SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    corsOrigins: corsOrigins(env),
    // Every request has this budget; a statement still running at the deadline is cancelled in
    // PostgreSQL and the client gets 504. Healthy requests take milliseconds (BENCHMARKS.md);
    // 5 s is far past them and well under load balancers' 30-60 s timeouts. 0 turns it off.
    requestTimeoutMs: int(env, 'REQUEST_TIMEOUT_MS', 5000, 0, 600_000),
    // Processes serving HTTP on this machine. 1: this process serves (the right default on 2
    // cores, where PostgreSQL needs a core too; BENCHMARKS.md measures 2).
    workers: int(env, 'WORKERS', 1, 1, 256),
    workersMode: oneOf<'cluster' | 'reuseport'>(env, 'WORKERS_MODE', ['cluster', 'reuseport'], 'cluster'),
    cache: bool(env, 'CACHE', true),
    // HOT_PATH=off sends every request through Fastify's whole pipeline (for comparison, or to
    // rule the hot path out); with CACHE=off there is nothing to replay.
    hotPath: bool(env, 'HOT_PATH', true),
    // Invalidation keeps entries correct; the TTL only bounds how long a missed invalidation
    // (the bus was down) can show: a minute.
    cacheTtlMs: int(env, 'CACHE_TTL_MS', 60_000, 1, 86_400_000),
    // Per process. 64 MiB holds every list page, article and profile of the benchmark dataset
    // (10,000 articles) with room to spare, well inside a 256 MiB container.
    cacheMaxBytes: int(env, 'CACHE_MAX_BYTES', 64 * 1024 * 1024, 1024, 16 * 1024 * 1024 * 1024),
    redisUrl: secretUrl(env, 'REDIS_URL', ['redis', 'rediss']),
    // The shared cache tier behind the in-process one (cache/redis-tier.ts): on whenever there is
    // a Redis, since it is what lets a new or restarted instance start warm. Off keeps Redis for
    // the invalidation bus and the rate limits only.
    cacheRedis: bool(env, 'CACHE_REDIS', str(env, 'REDIS_URL') !== undefined),
    // Namespace of the cache's keys and of its invalidation channel: deployments (or test runs)
    // sharing one Redis but not one database must not share cache entries.
    cacheRedisPrefix: keyPrefix(env, 'CACHE_REDIS_PREFIX', 'conduit:cache:'),
    // A Redis cache hit takes well under a millisecond; past this the call has failed and the
    // request goes to PostgreSQL (where a miss costs a few milliseconds anyway). Below the rate
    // limiter's 250 ms: the cache is never worth waiting for.
    cacheRedisTimeoutMs: int(env, 'CACHE_REDIS_TIMEOUT_MS', 150, 1, 60_000),
    compression: bool(env, 'COMPRESSION', true),
    compressionThresholdBytes: int(env, 'COMPRESSION_THRESHOLD_BYTES', 1024, 0, 1024 * 1024),
    // Longer than the idle timeout of common load balancers (AWS ALB: 60 s), so the balancer,
    // not Node, closes idle connections: otherwise it may send a request on a socket Node is
    // closing and answer its client 502. 72 s is Fastify's default for that reason.
    httpKeepAliveTimeoutMs: int(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000, 3_600_000),
    // Time to receive a request's headers, counted from its first byte (from the accept for a
    // new connection's first request); a keep-alive connection idle between requests is not
    // counted, so this can stay well below the keep-alive timeout (Node >= 18, measured in
    // test/http/timeouts.test.ts): bounds slowloris, silent connections included.
    httpHeadersTimeoutMs: int(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
    // Time to receive a whole request (headers and body): bounds slow uploads.
    httpRequestTimeoutMs: int(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 600_000),
    shed: bool(env, 'SHED', true),
    // A saturated loop shows as event-loop delay: every timer fires this late, every request
    // waits this long before its handler runs. See BENCHMARKS.md for the load test behind it.
    shedMaxEventLoopDelayMs: int(env, 'SHED_MAX_EVENT_LOOP_DELAY_MS', 200, 0, 60_000),
    // 0: no heap threshold (V8's own limit applies).
    shedMaxHeapUsedBytes: int(env, 'SHED_MAX_HEAP_USED_BYTES', 0, 0, Number.MAX_SAFE_INTEGER),
    // Requests admitted at once per process; past it, 503 at the door. At a cached read's ~13,000
    // requests/s per process, 256 in flight is ~20 ms of queue; a request that needs the database
    // waits for the pool (DB_POOL_MAX, DB_ACQUIRE_TIMEOUT_MS) long before 256 pile up. 0: no bound.
    shedMaxInFlight: int(env, 'SHED_MAX_IN_FLIGHT', 256, 0, 1_000_000),
    rateLimit: bool(env, 'RATE_LIMIT', true),
    // Per client IP per minute across all routes: generous (a busy front end makes a few
    // requests per second), there to stop one client from taking the whole service.
    rateLimitMax: int(env, 'RATE_LIMIT_MAX', 6000, 1, 100_000_000),
    // Login attempts per minute per IP and email: slows password guessing to a crawl while a
    // user who mistypes a few times is never blocked.
    rateLimitLoginMax: int(env, 'RATE_LIMIT_LOGIN_MAX', 20, 1, 100_000_000),
    // Registrations per minute per IP: enough for a conformance suite run from one machine.
    rateLimitRegisterMax: int(env, 'RATE_LIMIT_REGISTER_MAX', 100, 1, 100_000_000),
    // The window every limit above counts in. A minute: long enough that a guesser is slowed to
    // a crawl, short enough that a locked-out user retries soon. Tests set ~1 s to see it reset.
    rateLimitWindowMs: int(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1000, 24 * 3600 * 1000),
    // Namespace of the counters in Redis: deployments sharing one Redis (staging and production,
    // or parallel test runs) set different prefixes so they do not count each other's requests.
    rateLimitPrefix: keyPrefix(env, 'RATE_LIMIT_PREFIX', 'conduit:ratelimit:'),
    // Which X-Forwarded-For hops to believe for the client address (rate limits key on it).
    // Off by default: a service reached directly must not let clients pick their own address
    // and dodge the limits. Behind a load balancer set the hop count (1) or its addresses;
    // otherwise every client has the balancer's address and shares one set of limits.
    trustProxy: trustProxy(env),
    uvThreadpoolSize,
    // Argon2 runs on the threadpool: more hashes at once than threads only queue inside libuv,
    // where nothing bounds them. One permit per thread; a short queue absorbs bursts.
    argon2Concurrency: int(env, 'ARGON2_CONCURRENCY', uvThreadpoolSize, 1, 1024),
    argon2Queue: int(env, 'ARGON2_QUEUE', 2 * uvThreadpoolSize, 0, 100_000),
    argon2MaxWaitMs: int(env, 'ARGON2_MAX_WAIT_MS', 1000, 1, 60_000),
    // Unset: /metrics is served on PORT, next to the API (what `npm start` users expect). Set
    // it when the API port is public, so only the scraper reaches the metrics; with WORKERS > 1
    // the supervisor serves the whole cluster's metrics there (README "Metrics").
    metricsPort: str(env, 'METRICS_PORT') === undefined ? undefined : int(env, 'METRICS_PORT', 0, 0, 65535),
    // Unset by default: the profiling endpoints stop the world (heap snapshots) and must not
    // exist unless an operator asked for them.
    adminToken: adminToken(env),
    profileDir: path.resolve(str(env, 'PROFILE_DIR') ?? path.join(dataDir, 'profiles')),
    // Ten seconds of samples show any path that takes over 1% of the CPU (about 100 samples at
    // V8's 1 ms sampling interval), short enough to take while the problem is happening.
    profileSeconds: int(env, 'PROFILE_SECONDS', 10, 1, 600),
    tracing: tracingSettings(env),
  });
}

/** For process entries: a bad setting prints its message and exits 1 instead of a stack trace. */
export function loadConfigOrExit(): Config {
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

/** A variable loadConfig reads, as .env.example documents it (scripts/env-example.ts). */
export interface EnvVar {
  readonly name: string;
  /** The value an unset variable stands for; undefined when it has no literal one (the description says what then). */
  readonly default: string | undefined;
  readonly description: string;
}

// Every variable above, in the README's order. scripts/env-example.test.ts records which ones
// loadConfig really reads and fails on one missing here, and checks each default against the
// parsers: setting a variable to its documented default must change nothing.
export const ENV_VARS: readonly EnvVar[] = [
  { name: 'NODE_ENV', default: 'development', description: 'development, production or test' },
  {
    name: 'HOST',
    default: '127.0.0.1',
    description: 'listen address; loopback so a local start is not reachable from the network (containers set 0.0.0.0)',
  },
  { name: 'PORT', default: '3000', description: 'listen port (0: any free port)' },
  {
    name: 'DATABASE_URL',
    default: undefined,
    description: 'postgres://user:password@host:5432/db of an external PostgreSQL; unset: start the embedded one in DATA_DIR',
  },
  { name: 'DATA_DIR', default: '.data', description: 'embedded PostgreSQL cluster (pg/) and the development JWT secret' },
  { name: 'EMBEDDED_PG_PORT', default: '54329', description: 'port of the embedded PostgreSQL (loopback only)' },
  { name: 'DB_POOL_MAX', default: '10', description: 'database connections per process' },
  { name: 'DB_ACQUIRE_TIMEOUT_MS', default: '2000', description: 'wait for a pooled connection before failing with 503' },
  {
    name: 'DB_PREPARE',
    default: 'on',
    description: 'prepare each statement once per connection; off only behind a pooler that cannot (docs/database.md)',
  },
  {
    name: 'JWT_SECRET',
    default: undefined,
    description:
      'HS256 key, at least 32 characters; required when NODE_ENV=production (unset in development: generated once into DATA_DIR/jwt-secret)',
  },
  { name: 'JWT_TTL_SECONDS', default: '604800', description: 'token lifetime (7 days)' },
  { name: 'LOG_LEVEL', default: 'info', description: 'fatal, error, warn, info, debug, trace or silent' },
  { name: 'BODY_LIMIT_BYTES', default: '1048576', description: 'request body limit; larger bodies get 413' },
  { name: 'CORS_ORIGINS', default: '*', description: '* or a comma-separated list of allowed origins' },
  { name: 'SHUTDOWN_TIMEOUT_MS', default: '10000', description: 'hard bound on graceful shutdown' },
  {
    name: 'SHUTDOWN_DELAY_MS',
    default: '0',
    description: 'after SIGTERM, keep serving with /readyz at 503 this long (about 5000 behind a load balancer)',
  },
  { name: 'WORKERS', default: '1', description: 'HTTP worker processes; more than 1 runs a supervisor' },
  {
    name: 'WORKERS_MODE',
    default: 'cluster',
    description: 'cluster (the supervisor hands out connections) or reuseport (each worker binds the port)',
  },
  { name: 'CACHE', default: 'on', description: 'the response cache; off sends every read to PostgreSQL' },
  { name: 'HOT_PATH', default: 'on', description: 'repeats of anonymous cached reads answered before Fastify' },
  { name: 'CACHE_TTL_MS', default: '60000', description: 'cache entry lifetime; bounds how long a missed invalidation shows' },
  { name: 'CACHE_MAX_BYTES', default: '67108864', description: 'in-process cache bound, per process' },
  {
    name: 'REDIS_URL',
    default: undefined,
    description: 'redis://host:6379: shared rate limits, cache tier and invalidation bus; unset: none',
  },
  {
    name: 'REQUEST_TIMEOUT_MS',
    default: '5000',
    description: 'per-request deadline; the running statement is cancelled and the client gets 504 (0: off)',
  },
  { name: 'COMPRESSION', default: 'on', description: 'zstd, gzip or brotli by Accept-Encoding' },
  { name: 'COMPRESSION_THRESHOLD_BYTES', default: '1024', description: 'smaller bodies are sent uncompressed' },
  { name: 'HTTP_KEEP_ALIVE_TIMEOUT_MS', default: '72000', description: "idle keep-alive connections; above load balancers' 60 s" },
  { name: 'HTTP_HEADERS_TIMEOUT_MS', default: '10000', description: "time to receive a request's headers (slowloris bound)" },
  { name: 'HTTP_REQUEST_TIMEOUT_MS', default: '30000', description: 'time to receive a whole request' },
  { name: 'SHED', default: 'on', description: 'load shedding: 503 while the event loop is saturated' },
  { name: 'SHED_MAX_EVENT_LOOP_DELAY_MS', default: '200', description: 'event-loop delay above which requests are shed' },
  { name: 'SHED_MAX_HEAP_USED_BYTES', default: '0', description: "heap used above which requests are shed (0: no bound but V8's)" },
  { name: 'SHED_MAX_IN_FLIGHT', default: '256', description: 'requests admitted at once per process (0: no bound)' },
  { name: 'RATE_LIMIT', default: 'on', description: 'per-IP rate limits; off for load tests from one address' },
  { name: 'RATE_LIMIT_MAX', default: '6000', description: 'requests per IP per window, all routes' },
  { name: 'RATE_LIMIT_LOGIN_MAX', default: '20', description: 'login attempts per IP and email per window' },
  { name: 'RATE_LIMIT_REGISTER_MAX', default: '100', description: 'registrations per IP per window' },
  { name: 'RATE_LIMIT_WINDOW_MS', default: '60000', description: 'the rate-limit window' },
  { name: 'RATE_LIMIT_PREFIX', default: 'conduit:ratelimit:', description: 'Redis key prefix of the rate-limit counters' },
  { name: 'TRUST_PROXY', default: 'off', description: 'off, a hop count, or addresses/CIDRs of trusted proxies (X-Forwarded-For)' },
  { name: 'CACHE_REDIS', default: undefined, description: 'the Redis cache tier: on or off (unset: on when REDIS_URL is set)' },
  { name: 'CACHE_REDIS_PREFIX', default: 'conduit:cache:', description: 'key prefix and bus channel of the Redis cache tier' },
  { name: 'CACHE_REDIS_TIMEOUT_MS', default: '150', description: 'Redis cache calls fail fast after this' },
  { name: 'UV_THREADPOOL_SIZE', default: '4', description: 'libuv threads (Argon2, zlib streams, fs)' },
  { name: 'ARGON2_CONCURRENCY', default: undefined, description: 'password hashes at once (unset: UV_THREADPOOL_SIZE)' },
  { name: 'ARGON2_QUEUE', default: undefined, description: 'password hashes allowed to wait (unset: 2 x UV_THREADPOOL_SIZE)' },
  { name: 'ARGON2_MAX_WAIT_MS', default: '1000', description: 'longest wait for a hashing slot before 503' },
  { name: 'METRICS_PORT', default: undefined, description: 'serve GET /metrics on this port instead of on PORT (unset: on PORT)' },
  {
    name: 'ADMIN_TOKEN',
    default: undefined,
    description: 'at least 32 characters; enables the profiling endpoints (unset: they do not exist)',
  },
  { name: 'PROFILE_DIR', default: undefined, description: 'where SIGUSR2 profiles and heap snapshots go (unset: DATA_DIR/profiles)' },
  { name: 'PROFILE_SECONDS', default: '10', description: 'length of a SIGUSR2 profile' },
  {
    name: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    default: undefined,
    description: 'OTLP/HTTP collector, e.g. http://127.0.0.1:4318; set: tracing on (unset: off)',
  },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', default: undefined, description: 'the full traces URL, instead of the one above' },
  { name: 'OTEL_EXPORTER_OTLP_PROTOCOL', default: 'http/protobuf', description: 'the only protocol this build exports' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', default: 'http/protobuf', description: 'the same, for traces only' },
  { name: 'OTEL_TRACES_EXPORTER', default: 'otlp', description: 'none: tracing off although an endpoint is set' },
  { name: 'OTEL_SDK_DISABLED', default: 'false', description: 'true: tracing off' },
  {
    name: 'OTEL_TRACES_SAMPLER',
    default: 'parentbased_always_on',
    description: 'always_on, always_off, traceidratio or their parentbased_ forms',
  },
  { name: 'OTEL_TRACES_SAMPLER_ARG', default: '1', description: 'the ratio (0-1) of the traceidratio samplers' },
  { name: 'OTEL_SERVICE_NAME', default: 'conduit', description: "the spans' service.name" },
  { name: 'OTEL_BSP_SCHEDULE_DELAY', default: '5000', description: 'a finished span is exported within this many ms' },
  { name: 'OTEL_BSP_EXPORT_TIMEOUT', default: '30000', description: 'an export taking longer is abandoned (ms)' },
  { name: 'OTEL_BSP_MAX_QUEUE_SIZE', default: '2048', description: 'finished spans kept while waiting; beyond it they are dropped' },
  { name: 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', default: '512', description: 'spans per export' },
];
