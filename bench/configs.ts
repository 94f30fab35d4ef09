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
  /** Left out of a run without --configs (for slow or niche configurations). */
  readonly optIn?: boolean;
  /** Export spans over OTLP to the harness's loopback sink (OTEL_EXPORTER_OTLP_ENDPOINT is set to it). */
  readonly otlp?: boolean;
}

export const CONFIGS: Readonly<Record<string, BenchConfig>> = {
  default: { database: 'embedded', env: {}, description: 'the defaults of `npm start`: embedded PostgreSQL, one process' },
  'external-pg': { database: 'external', env: {}, description: "the machine's own PostgreSQL server (127.0.0.1:5432) instead of the embedded one" },
  'cache-off': { database: 'embedded', env: { CACHE: 'off' }, description: 'the default without the in-process response cache: every request reaches PostgreSQL' },
  'compression-off': { database: 'embedded', env: { COMPRESSION: 'off' }, description: 'the default without response compression', optIn: true },
  'cache-off-compression-off': { database: 'embedded', env: { CACHE: 'off', COMPRESSION: 'off' }, description: 'neither cache nor compression', optIn: true },
  // Tracing is loaded in every configuration (the service starts as `npm start` does, with
  // --import ./src/telemetry/tracing.ts); these two give it somewhere to send spans.
  'tracing-1pct': { database: 'embedded', env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' }, otlp: true, description: 'OpenTelemetry on, 1% of traces sampled and exported over OTLP to a loopback sink', optIn: true },
  'tracing-100pct': { database: 'embedded', env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }, otlp: true, description: 'OpenTelemetry on, every trace sampled and exported over OTLP to a loopback sink', optIn: true },
  'workers-2': { database: 'embedded', env: { WORKERS: '2' }, description: 'two worker processes (the service tree is sampled as a whole)', optIn: true },
};

/** The name the platform limit (the bare node:http server) has in results, next to the configurations. */
export const PLATFORM = 'platform';

export function selectConfigs(names: readonly string[] | undefined): string[] {
  const selected = names ?? Object.keys(CONFIGS).filter((n) => !CONFIGS[n]!.optIn);
  for (const n of selected) {
    if (!(n in CONFIGS)) throw new Error(`unknown configuration "${n}"; known: ${Object.keys(CONFIGS).join(', ')}`);
  }
  return [...new Set(selected)];
}
