// What the service tells its operators: the log level, the metrics port, the profiles taken on
// demand, and OpenTelemetry tracing from the standard OTEL_* variables.
import path from 'node:path';
import { bool, ConfigError, int, oneOf, Secret, str, type Env } from './parse.ts';
import type { NodeEnv } from './server.ts';

/**
 * METRICS_PORT's default in production: the port OpenTelemetry's Prometheus exporter uses by
 * convention, the one the deploy files scrape (deploy/k8s, deploy/compose.yaml).
 */
export const DEFAULT_METRICS_PORT = 9464;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface TelemetryConfig {
  readonly logLevel: LogLevel;
  /**
   * A separate port for GET /metrics and the admin endpoints (then not served on PORT);
   * undefined: both on PORT.
   */
  readonly metricsPort: number | undefined;
  /** GET /metrics on PORT is rendered at most once per this many ms (0: on every scrape). */
  readonly metricsSnapshotMs: number;
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

export function telemetryConfig(env: Env, dataDir: string, nodeEnv: NodeEnv): TelemetryConfig {
  return {
    logLevel: oneOf<LogLevel>(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    metricsPort: metricsPort(env, nodeEnv),
    // On the API port anyone may scrape: a flood costs one render per interval (telemetry/snapshot.ts).
    metricsSnapshotMs: int(env, 'METRICS_SNAPSHOT_MS', 1000, 0, 60_000),
    // Unset by default: the profiling endpoints stop the world (heap snapshots) and must not
    // exist unless an operator asked for them.
    adminToken: adminToken(env),
    profileDir: path.resolve(str(env, 'PROFILE_DIR') ?? path.join(dataDir, 'profiles')),
    // Ten seconds of samples show any path that takes over 1% of the CPU (about 100 samples at
    // V8's 1 ms sampling interval), short enough to take while the problem is happening.
    profileSeconds: int(env, 'PROFILE_SECONDS', 10, 1, 600),
    tracing: tracingSettings(env),
  };
}

/**
 * Where /metrics and the admin endpoints are served: a port of their own, or PORT (undefined).
 * In development PORT, next to the API (what `npm start` users expect). In production a port of
 * their own unless asked otherwise: the API port is the public one, and an unauthenticated scrape
 * of about 27 KB is an amplifier there (issue 24 item 2), the admin endpoints a target for
 * guesses. `METRICS_PORT=api` keeps both on PORT (a platform that exposes one port only). With
 * WORKERS > 1 the supervisor serves the whole cluster's metrics on that port
 * (docs/observability.md "Metrics").
 */
function metricsPort(env: Env, nodeEnv: NodeEnv): number | undefined {
  const raw = str(env, 'METRICS_PORT');
  if (raw === 'api') return undefined;
  if (raw === undefined) return nodeEnv === 'production' ? DEFAULT_METRICS_PORT : undefined;
  if (!/^\d+$/.test(raw)) throw new ConfigError('METRICS_PORT', `must be a port number or "api", got "${raw}"`);
  return int(env, 'METRICS_PORT', 0, 0, 65535);
}

function adminToken(env: Env): Secret | undefined {
  const raw = str(env, 'ADMIN_TOKEN');
  if (raw === undefined) return undefined;
  // It guards endpoints that stop the world for seconds (heap snapshots): not guessable.
  if (raw.length < 32) throw new ConfigError('ADMIN_TOKEN', 'must be at least 32 characters');
  return new Secret(raw);
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
    // busy deployment sets parentbased_traceidratio with a ratio (docs/observability.md "Traces").
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
