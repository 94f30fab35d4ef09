// The table of every variable loadConfig reads, with its default and what it does: .env.example
// is generated from it (scripts/env-example.ts) and the README's configuration table is checked
// against it (test/docs-links.test.ts), so the order here is the README's.

/** A variable loadConfig reads, as .env.example documents it (scripts/env-example.ts). */
export interface EnvVar {
  readonly name: string;
  /** The value an unset variable stands for; undefined when it has no literal one (the description says what then). */
  readonly default: string | undefined;
  readonly description: string;
}

// scripts/env-example.test.ts records which variables loadConfig really reads and fails on one
// missing here, and checks each default against the parsers: setting a variable to its
// documented default must change nothing.
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
  { name: 'DB_POOL_MAX', default: '4', description: 'database connections per process' },
  { name: 'DB_ACQUIRE_TIMEOUT_MS', default: '2000', description: 'wait for a pooled connection before failing with 503' },
  { name: 'DB_PIPELINE', default: '4', description: 'queries one pooled connection carries at once (pipelined); 1: one at a time' },
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
    default: undefined,
    description:
      'reuseport (each worker binds the port; the default on Linux) or cluster (the supervisor hands out connections; the default elsewhere)',
  },
  { name: 'CACHE', default: 'on', description: 'the response cache; off sends every read to PostgreSQL' },
  {
    name: 'HOT_PATH',
    default: 'on',
    description: 'repeats of cached reads (anonymous, and signed-in on pages with viewer flags) answered before Fastify',
  },
  { name: 'CACHE_TTL_MS', default: '60000', description: 'cache entry lifetime; bounds how long a missed invalidation shows' },
  {
    name: 'CACHE_MAX_BYTES',
    default: '67108864',
    description:
      "in-process cache bound, per process, readers' compressed copies included; unset under a memory limit (a container): an eighth of it, 8 to 64 MiB",
  },
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
  {
    name: 'HTTP_BACKLOG',
    default: '4096',
    description: 'connections the kernel queues before they are accepted (capped by net.core.somaxconn)',
  },
  {
    name: 'HTTP_LISTENERS',
    default: undefined,
    description:
      'listening sockets on the port per process (Linux, SO_REUSEPORT), so a burst of connections is accepted while busy; default 512, lower to fit a twentieth of the file-descriptor limit',
  },
  {
    name: 'HTTP_MAX_CONNECTIONS',
    default: undefined,
    description:
      'open connections per process (0: no bound); default 10000, lower to fit 80% of the file-descriptor limit and a quarter of the memory limit',
  },
  {
    name: 'HTTP_MAX_CONNECTIONS_PER_ADDRESS',
    default: undefined,
    description: 'open connections from one peer address (0: no bound); default half of HTTP_MAX_CONNECTIONS, 0 with TRUST_PROXY',
  },
  {
    name: 'HTTP_KEEP_ALIVE_UNDER_PRESSURE_MS',
    default: '5000',
    description: 'keep-alive of connections going idle while past 3/4 of HTTP_MAX_CONNECTIONS',
  },
  { name: 'SHED', default: 'on', description: 'load shedding: 503 while the event loop is saturated' },
  { name: 'SHED_MAX_EVENT_LOOP_DELAY_MS', default: '200', description: 'event-loop delay above which requests are shed' },
  { name: 'SHED_MAX_HEAP_USED_BYTES', default: '0', description: "heap used above which requests are shed (0: no bound but V8's)" },
  { name: 'SHED_MAX_IN_FLIGHT', default: '256', description: 'requests admitted at once per process (0: no bound)' },
  {
    name: 'SHED_QUEUE_TIMEOUT_MS',
    default: '2000',
    description: 'how long a request past SHED_MAX_IN_FLIGHT waits for a place before its 503 (0: 503 at once)',
  },
  { name: 'RATE_LIMIT', default: 'on', description: 'per-IP rate limits; off for load tests from one address' },
  { name: 'RATE_LIMIT_MAX', default: '6000', description: 'requests per IP per window, all routes' },
  { name: 'RATE_LIMIT_LOGIN_MAX', default: '20', description: 'login attempts per IP and email per window' },
  { name: 'RATE_LIMIT_REGISTER_MAX', default: '100', description: 'registrations per IP per window' },
  { name: 'RATE_LIMIT_WINDOW_MS', default: '60000', description: 'the rate-limit window' },
  {
    name: 'RATE_LIMIT_PASSWORD_MAX',
    default: '30',
    description: 'password checks (logins and registrations together) per IP per RATE_LIMIT_PASSWORD_WINDOW_MS',
  },
  { name: 'RATE_LIMIT_PASSWORD_WINDOW_MS', default: '5000', description: 'the window of RATE_LIMIT_PASSWORD_MAX' },
  { name: 'RATE_LIMIT_PREFIX', default: 'conduit:ratelimit:', description: 'Redis key prefix of the rate-limit counters' },
  { name: 'TRUST_PROXY', default: 'off', description: 'off, a hop count, or addresses/CIDRs of trusted proxies (X-Forwarded-For)' },
  { name: 'CACHE_REDIS', default: undefined, description: 'the Redis cache tier: on or off (unset: on when REDIS_URL is set)' },
  { name: 'CACHE_REDIS_PREFIX', default: 'conduit:cache:', description: 'key prefix and bus channel of the Redis cache tier' },
  { name: 'CACHE_REDIS_TIMEOUT_MS', default: '150', description: 'Redis cache calls fail fast after this' },
  {
    name: 'UV_THREADPOOL_SIZE',
    default: undefined,
    description: 'libuv threads (Argon2, zlib streams, fs) (unset: the CPUs the process may use, at least 2)',
  },
  {
    name: 'HEAP_GROWING_PERCENT',
    default: undefined,
    description:
      "percent the old generation may grow by after a full collection, 1-300 (unset: 40 on a heap limit of 1 GB or more, else V8's own; 0: V8 picks 10-300)",
  },
  {
    name: 'STARTUP_GC',
    default: 'true',
    description:
      'one full, memory-reducing collection after start-up, before listening: gives back the young generation start-up grew (about 20 MB of RSS at rest)',
  },
  { name: 'ARGON2_CONCURRENCY', default: undefined, description: 'password hashes at once (unset: UV_THREADPOOL_SIZE, at least 4)' },
  { name: 'ARGON2_QUEUE', default: undefined, description: 'password hashes allowed to wait (unset: 2 x ARGON2_CONCURRENCY)' },
  {
    name: 'ARGON2_PER_CLIENT',
    default: undefined,
    description: 'password hashes one client address may have running or waiting, past it 429 (unset: ARGON2_CONCURRENCY; 0: no bound)',
  },
  { name: 'ARGON2_MAX_WAIT_MS', default: '1000', description: 'longest wait for a hashing slot before 503' },
  {
    name: 'METRICS_PORT',
    default: undefined,
    description:
      'GET /metrics and the admin endpoints on this port instead of on PORT; api: on PORT (unset: 9464 when NODE_ENV=production, else on PORT)',
  },
  {
    name: 'METRICS_SNAPSHOT_MS',
    default: '1000',
    description: 'GET /metrics on PORT is rendered at most once per this many ms (0: every scrape)',
  },
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
