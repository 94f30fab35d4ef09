import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig, tracingSettings } from '../config.ts';
import { ExportResultCode } from '@opentelemetry/core';
import { TracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace';
import { createBatchProcessor, createSampler } from './sdk.ts';

const base = { NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32), DATA_DIR: '/tmp/conduit-settings-test' };

test('tracing is on only with an OTLP endpoint, and nothing turning it off', () => {
  assert.equal(tracingSettings({}).enabled, false);
  assert.equal(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).enabled, true);
  assert.equal(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector.example/v1/traces' }).enabled, true);
  assert.equal(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }).enabled, false);
  assert.equal(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' }).enabled, false);
});

test('the standard sampler variables, with the specification’s defaults', () => {
  assert.deepEqual(
    { ...tracingSettings({}) },
    {
      enabled: false,
      serviceName: 'conduit',
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
      endpoint: undefined,
      batch: { scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 },
    },
  );
  const s = tracingSettings({
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.01',
    OTEL_SERVICE_NAME: 'conduit-eu',
  });
  assert.deepEqual([s.sampler, s.samplerRatio, s.serviceName], ['parentbased_traceidratio', 0.01, 'conduit-eu']);
  assert.match(createSampler(s).toString(), /ParentBased.*TraceIdRatioBased\{0\.01\}/);
});

test('the batch processor takes the OTEL_BSP_* variables: a full batch is exported at once, a partial one waits', async () => {
  const batch = tracingSettings({
    OTEL_BSP_SCHEDULE_DELAY: '3600000',
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '3',
    OTEL_BSP_MAX_QUEUE_SIZE: '10',
    OTEL_BSP_EXPORT_TIMEOUT: '1000',
  }).batch;
  assert.deepEqual({ ...batch }, { scheduledDelayMillis: 3_600_000, exportTimeoutMillis: 1000, maxQueueSize: 10, maxExportBatchSize: 3 });
  const exported: number[] = [];
  let exportedNow: () => void = () => undefined;
  const exporter: SpanExporter = {
    export(spans, done) {
      exported.push(spans.length);
      done({ code: ExportResultCode.SUCCESS });
      exportedNow();
    },
    shutdown: async () => undefined,
  };
  const processor = createBatchProcessor(batch, exporter);
  const tracer = new TracerProvider({ spanProcessors: [processor] }).getTracer('test');
  // Two spans: below the batch size, and the hour-long delay keeps them queued.
  tracer.startSpan('a').end();
  tracer.startSpan('b').end();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(exported, [], 'a partial batch waits for the schedule (the default, 5 s, would too)');
  // The third fills the batch (of 3, not the default 512): exported without waiting.
  const full = new Promise<void>((r) => (exportedNow = r));
  tracer.startSpan('c').end();
  await Promise.race([
    full,
    new Promise((_, reject) => setTimeout(() => reject(new Error('a full batch was not exported at once')), 2000).unref()),
  ]);
  assert.deepEqual(exported, [3]);
  tracer.startSpan('d').end();
  await processor.forceFlush();
  assert.deepEqual(exported, [3, 1]);
  await processor.shutdown();
});

test('bad OTEL_* values stop the process with a message naming the variable', () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER must be one of/],
    [{ OTEL_TRACES_SAMPLER_ARG: '2' }, /OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got "2"/],
    [{ OTEL_TRACES_SAMPLER_ARG: 'half' }, /OTEL_TRACES_SAMPLER_ARG/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT must be an http:\/\/ or https:\/\/ URL/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, /OTEL_EXPORTER_OTLP_ENDPOINT is not a URL/],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /OTEL_EXPORTER_OTLP_PROTOCOL must be http\/protobuf/],
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /OTEL_TRACES_EXPORTER must be one of otlp, none/],
    [{ OTEL_BSP_SCHEDULE_DELAY: '5s' }, /OTEL_BSP_SCHEDULE_DELAY must be an integer, got "5s"/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '0' }, /OTEL_BSP_MAX_QUEUE_SIZE must be between 1/],
    [
      { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4096' },
      /OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not exceed OTEL_BSP_MAX_QUEUE_SIZE \(2048\), got 4096/,
    ],
  ];
  for (const [env, message] of bad) {
    assert.throws(
      () => loadConfig({ ...base, ...env }),
      (err: unknown) => err instanceof ConfigError && message.test(err.message),
      JSON.stringify(env),
    );
  }
});

test('metrics port, admin token and profile settings', () => {
  const defaults = loadConfig(base);
  assert.equal(defaults.metricsPort, undefined);
  assert.equal(defaults.adminToken, undefined);
  assert.equal(defaults.profileDir, '/tmp/conduit-settings-test/profiles');
  assert.equal(defaults.profileSeconds, 10);
  const set = loadConfig({ ...base, METRICS_PORT: '9464', ADMIN_TOKEN: 'a'.repeat(32), PROFILE_DIR: '/var/tmp/p', PROFILE_SECONDS: '30' });
  assert.equal(set.metricsPort, 9464);
  assert.equal(set.adminToken?.expose(), 'a'.repeat(32));
  assert.equal(String(set.adminToken), '[redacted]', 'the token never prints');
  assert.deepEqual([set.profileDir, set.profileSeconds], ['/var/tmp/p', 30]);
  assert.throws(() => loadConfig({ ...base, ADMIN_TOKEN: 'short' }), /ADMIN_TOKEN must be at least 32 characters/);
  assert.throws(() => loadConfig({ ...base, METRICS_PORT: '70000' }), /METRICS_PORT must be between 0 and 65535/);
  assert.throws(() => loadConfig({ ...base, PROFILE_SECONDS: '0' }), /PROFILE_SECONDS must be between 1 and 600/);
});
