// The configurations a run compares side by side: each is a name, the database it runs against
// and the environment overrides the service gets on top of the harness's base environment
// (NODE_ENV=production, JWT_SECRET, DATABASE_URL, HOST, PORT, LOG_LEVEL=warn).
//
// Adding one is one line in CONFIGS, e.g.
//   'tracing-100pct': { database: 'embedded', env: { OTEL_TRACES_SAMPLER: 'always_on' }, description: 'every request traced' },
// and `npm run bench -- --configs default,tracing-100pct` compares it with the default.
// `optIn: true` leaves it out of a run without --configs (the full run's length grows by about
// a third per configuration).
// The service ignores variables it does not know, so a configuration whose feature is not
// built yet measures the same as `default`: check the service's config.ts first.

export type DatabaseKind = 'embedded' | 'external';

export interface BenchConfig {
  /** One line for the report. */
  readonly description: string;
  /** `embedded`: a throwaway embedded PostgreSQL the harness starts; `external`: a fresh database on the machine's PostgreSQL. */
  readonly database: DatabaseKind;
  /** Environment overrides for the service process. */
  readonly env: Readonly<Record<string, string>>;
  /** Node or V8 flags on the service's command line, for those Node refuses in NODE_OPTIONS. */
  readonly nodeArgs?: readonly string[];
  /** Left out of a run without --configs (for slow or niche configurations). */
  readonly optIn?: boolean;
  /** A file the configuration needs (a library to preload); missing: the configuration is skipped, loudly. */
  readonly requires?: string;
  /** Export spans over OTLP to the harness's loopback sink (OTEL_EXPORTER_OTLP_ENDPOINT is set to it). */
  readonly otlp?: boolean;
}

export const CONFIGS: Readonly<Record<string, BenchConfig>> = {
  default: { database: 'embedded', env: {}, description: 'the defaults of `npm start`: embedded PostgreSQL, one process' },
  'external-pg': {
    database: 'external',
    env: {},
    description: "the machine's own PostgreSQL server (127.0.0.1:5432) instead of the embedded one",
  },
  'cache-off': {
    database: 'embedded',
    env: { CACHE: 'off' },
    description: 'the default without the in-process response cache: every request reaches PostgreSQL',
  },
  // The pool size before 4 was the default (docs/database.md "Pool size"), to rerun the comparison.
  'pool-10': {
    database: 'embedded',
    env: { DB_POOL_MAX: '10' },
    description: 'the default with 10 database connections instead of 4',
    optIn: true,
  },
  'cache-off-pool-10': {
    database: 'embedded',
    env: { CACHE: 'off', DB_POOL_MAX: '10' },
    description: 'the cache off and 10 database connections instead of 4',
    optIn: true,
  },
  'cache-off-pipeline-1': {
    database: 'embedded',
    env: { CACHE: 'off', DB_PIPELINE: '1' },
    description: 'the cache off and one query per database connection at a time (no pipelining)',
    optIn: true,
  },
  'hot-path-off': {
    database: 'embedded',
    env: { HOT_PATH: 'off' },
    description: "the default without the cache's hot path: every request goes through Fastify's pipeline",
    optIn: true,
  },
  'compression-off': {
    database: 'embedded',
    env: { COMPRESSION: 'off' },
    description: 'the default without response compression',
    optIn: true,
  },
  // The threshold doubled (docs/memory.md "What each compression leaves to the full collector").
  'compression-2k': {
    database: 'embedded',
    env: { COMPRESSION_THRESHOLD_BYTES: '2048' },
    description: 'bodies under 2 KiB sent uncompressed (default 1 KiB)',
    optIn: true,
  },
  'cache-off-compression-off': {
    database: 'embedded',
    env: { CACHE: 'off', COMPRESSION: 'off' },
    description: 'neither cache nor compression',
    optIn: true,
  },
  // Tracing is loaded in every configuration (the service starts as `npm start` does, with the
  // tracing module preloaded); these two give it somewhere to send spans.
  'tracing-1pct': {
    database: 'embedded',
    env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' },
    otlp: true,
    description: 'OpenTelemetry on, 1% of traces sampled and exported over OTLP to a loopback sink',
    optIn: true,
  },
  'tracing-100pct': {
    database: 'embedded',
    env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' },
    otlp: true,
    description: 'OpenTelemetry on, every trace sampled and exported over OTLP to a loopback sink',
    optIn: true,
  },
  // Load shedding (--overload compares them at twice the peak rate).
  'shed-off': {
    database: 'embedded',
    env: { SHED: 'off' },
    description: 'no load shedding: every request is admitted, however late',
    optIn: true,
  },
  'shed-50ms': {
    database: 'embedded',
    env: { SHED_MAX_EVENT_LOOP_DELAY_MS: '50' },
    description: 'load shedding from 50 ms of event-loop delay (default 200 ms)',
    optIn: true,
  },
  // The runtime knobs (`--compare`): V8's young generation, libuv's threadpool, processes.
  // The default's young generation is 8 MB semi-spaces (src/runtime.env); a configuration's own
  // NODE_OPTIONS replaces the file's.
  'semi-space-16': {
    database: 'embedded',
    env: { NODE_OPTIONS: '--max-semi-space-size=16' },
    description: 'V8 young generation semi-spaces of up to 16 MB (fewer scavenges)',
    optIn: true,
  },
  // An empty NODE_OPTIONS in the environment replaces the file's.
  'semi-space-v8': {
    database: 'embedded',
    env: { NODE_OPTIONS: '' },
    description: "V8's own young generation: src/runtime.env's bound off (64 MB semi-spaces on a host without a memory limit)",
    optIn: true,
  },
  'semi-space-32': {
    database: 'embedded',
    env: { NODE_OPTIONS: '--max-semi-space-size=32' },
    description: 'V8 young generation semi-spaces of up to 32 MB (fewer scavenges)',
    optIn: true,
  },
  'semi-space-64': {
    database: 'embedded',
    env: { NODE_OPTIONS: '--max-semi-space-size=64' },
    description: 'V8 young generation semi-spaces of up to 64 MB',
    optIn: true,
  },
  // The old generation may grow to a multiple of what survived the last full collection before
  // the next one: as V8 picks it (1.1 to 4) by default, or HEAP_GROWING_PERCENT.
  'heap-growing-20': {
    database: 'embedded',
    env: { HEAP_GROWING_PERCENT: '20' },
    description: 'the old generation grows by 20% after a full collection (HEAP_GROWING_PERCENT=20)',
    optIn: true,
  },
  'semi-space-16-heap-growing-20': {
    database: 'embedded',
    env: { NODE_OPTIONS: '--max-semi-space-size=16', HEAP_GROWING_PERCENT: '20' },
    description: 'semi-spaces of up to 16 MB and 20% old-generation growth',
    optIn: true,
  },
  // Without the memory-reducing collection after start-up (src/runtime.ts collectStartupGarbage).
  'startup-gc-off': {
    database: 'embedded',
    env: { STARTUP_GC: 'false' },
    description: 'no memory-reducing collection after start-up: the young generation keeps what start-up grew',
    optIn: true,
  },
  'heap-growing-30': {
    database: 'embedded',
    env: { HEAP_GROWING_PERCENT: '30' },
    description: 'the old generation grows by 30% after a full collection',
    optIn: true,
  },
  'heap-growing-40': {
    database: 'embedded',
    env: { HEAP_GROWING_PERCENT: '40' },
    description: 'the old generation grows by 40% after a full collection (the default on a heap limit of 1 GB or more)',
    optIn: true,
  },
  'heap-growing-50': {
    database: 'embedded',
    env: { HEAP_GROWING_PERCENT: '50' },
    description: 'the old generation grows by 50% after a full collection',
    optIn: true,
  },
  'heap-growing-100': {
    database: 'embedded',
    env: { HEAP_GROWING_PERCENT: '100' },
    description: 'the old generation grows by 100% after a full collection',
    optIn: true,
  },
  // V8's own factor on any heap (the default before a fixed factor on a heap limit of 1 GB or more).
  'heap-growing-v8': {
    database: 'embedded',
    env: { HEAP_GROWING_PERCENT: '0' },
    description: "the old generation grows by V8's own factor (4 on this service's load)",
    optIn: true,
  },
  'heap-growing-60': {
    database: 'embedded',
    env: { HEAP_GROWING_PERCENT: '60' },
    description: 'the old generation grows by 60% after a full collection (the factor V8 caps itself at for a 1 GB heap)',
    optIn: true,
  },
  // A heap limit under 2 GB caps the factor V8 picks itself: 1.6 at 1 GB (docs/memory.md "The
  // old generation's growth"). The default's fixed 40% applies from a 1 GB limit too, so this
  // differs from the default by the heap limit alone. The semi-space flag is src/runtime.env's, repeated
  // because this NODE_OPTIONS replaces the file's.
  'old-space-1024': {
    database: 'embedded',
    env: { NODE_OPTIONS: '--max-semi-space-size=8 --max-old-space-size=1024' },
    description: "a 1 GB old generation (the growth factor is the default's 40% there too)",
    optIn: true,
  },
  // V8's young-generation mark-sweep marks survivors in place instead of copying them between
  // two semi-spaces, so it needs half the young generation's memory; Node refuses the flag in
  // NODE_OPTIONS. It promoted so much more that the old generation grew far beyond what the young
  // one gave back (docs/memory.md "Collectors, allocators and threads").
  'minor-ms': {
    database: 'embedded',
    env: {},
    nodeArgs: ['--minor-ms'],
    description: "V8's young-generation mark-sweep (--minor-ms) instead of the scavenger",
    optIn: true,
  },
  // V8's tiers' machine code and its metadata (code and trusted spaces) grow under load to 12-15 MB
  // against the platform server's 4: fewer tiers, less code. Node refuses these flags in NODE_OPTIONS.
  'no-sparkplug': {
    database: 'embedded',
    env: {},
    nodeArgs: ['--no-sparkplug'],
    description: "no Sparkplug, V8's baseline compiler (bytecode goes straight to Maglev and TurboFan)",
    optIn: true,
  },
  'no-maglev': {
    database: 'embedded',
    env: {},
    nodeArgs: ['--no-maglev'],
    description: "no Maglev, V8's mid-tier optimizing compiler (TurboFan alone optimizes)",
    optIn: true,
  },
  'flush-baseline-code': {
    database: 'embedded',
    env: {},
    nodeArgs: ['--flush-baseline-code'],
    description: "Sparkplug's code is flushed, as bytecode is, when it has not run for a while",
    optIn: true,
  },
  // V8 starts a full collection when the heap reaches its limit, or when memory outside it
  // (Buffers, zlib's output) has grown by a soft limit of its own since the last one; this
  // counts the outside memory in the heap's limit instead. Node refuses the flag in NODE_OPTIONS.
  'external-in-limit': {
    database: 'embedded',
    env: {},
    nodeArgs: ['--external-memory-accounted-in-global-limit'],
    description: "memory outside V8's heap counted in its limit (--external-memory-accounted-in-global-limit)",
    optIn: true,
  },
  // V8's background threads (concurrent marking and compilation), 4 by default: each that
  // allocates gets a malloc arena of its own.
  'v8-pool-2': {
    database: 'embedded',
    env: { NODE_OPTIONS: '--max-semi-space-size=8 --v8-pool-size=2' },
    description: "two V8 background threads instead of Node's four (--v8-pool-size=2)",
    optIn: true,
  },
  // libuv's own default: four threads, whose malloc arenas each keep an Argon2 block after their
  // first hash (docs/memory.md "Password hashing").
  'threadpool-4': {
    database: 'embedded',
    env: { UV_THREADPOOL_SIZE: '4' },
    description: 'libuv threadpool of 4 (Argon2 and zlib stream work)',
    optIn: true,
  },
  'threadpool-8': { database: 'embedded', env: { UV_THREADPOOL_SIZE: '8' }, description: 'libuv threadpool of 8', optIn: true },
  // The jemalloc chapter's analog: glibc's malloc gives each thread that allocates (libuv's
  // threadpool compressing, hashing) an arena of its own, which fragments; fewer arenas, or
  // jemalloc itself (Debian's libjemalloc2), may hold RSS down.
  'malloc-arenas-2': {
    database: 'embedded',
    env: { MALLOC_ARENA_MAX: '2' },
    description: 'glibc malloc limited to 2 arenas (MALLOC_ARENA_MAX=2)',
    optIn: true,
  },
  // A fixed mmap threshold between the compression contexts (below it: kept by malloc, reused)
  // and Argon2's 19 MiB blocks (above it: mapped and given back on free). Unset, glibc raises
  // the threshold to the largest block freed, so those blocks stay in its arenas.
  'malloc-mmap-4m': {
    database: 'embedded',
    env: { MALLOC_MMAP_THRESHOLD_: '4194304' },
    description: "glibc's mmap threshold fixed at 4 MiB (MALLOC_MMAP_THRESHOLD_): Argon2's blocks go back to the kernel",
    optIn: true,
  },
  jemalloc: {
    database: 'embedded',
    env: { LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2' },
    requires: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
    description: 'jemalloc (Debian libjemalloc2) preloaded instead of glibc malloc',
    optIn: true,
  },
  // jemalloc returning freed pages after 1 s (a background thread purges them) rather than 10.
  'jemalloc-decay': {
    database: 'embedded',
    env: {
      LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
      MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0',
    },
    requires: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
    description: 'jemalloc preloaded, giving freed pages back after 1 s (MALLOC_CONF dirty_decay_ms:1000)',
    optIn: true,
  },
  'workers-2-reuseport': {
    database: 'embedded',
    env: { WORKERS: '2', WORKERS_MODE: 'reuseport' },
    description: 'two worker processes, each binding the port (the kernel spreads connections)',
    optIn: true,
  },
  'workers-2': {
    database: 'embedded',
    env: { WORKERS: '2' },
    description: 'two worker processes (the service tree is sampled as a whole)',
    optIn: true,
  },
};

/** `npm run bench -- --compare`: each runtime knob against the default, on the scenarios it can move. */
export const COMPARE_CONFIGS = [
  'default',
  'semi-space-16',
  'semi-space-v8',
  'semi-space-32',
  'semi-space-64',
  'heap-growing-20',
  'malloc-arenas-2',
  'jemalloc',
  'threadpool-4',
  'threadpool-8',
  'workers-2',
  'workers-2-reuseport',
] as const;
export const COMPARE_SCENARIOS = ['read-anon', 'read-auth', 'mixed', 'login'] as const;

/** The name the platform limit (the bare node:http server) has in results, next to the configurations. */
export const PLATFORM = 'platform';
/** The same recordings served by a bare Fastify app (--floor): the framework's own cost. */
export const FLOOR = 'fastify-floor';

export function selectConfigs(names: readonly string[] | undefined): string[] {
  const selected = names ?? Object.keys(CONFIGS).filter((n) => !CONFIGS[n]!.optIn);
  for (const n of selected) {
    if (!(n in CONFIGS)) throw new Error(`unknown configuration "${n}"; known: ${Object.keys(CONFIGS).join(', ')}`);
  }
  return [...new Set(selected)];
}
