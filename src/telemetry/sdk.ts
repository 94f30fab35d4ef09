// The OpenTelemetry SDK, started only when tracing is on (tracing.ts imports this file then, and
// never otherwise: with tracing off none of these packages is even loaded).
//
// The lighter parts rather than @opentelemetry/sdk-node (which brings metrics, logs and gRPC
// exporters this service does not use): a tracer provider, the W3C trace-context propagator,
// an OTLP/HTTP (protobuf) exporter behind a batch processor (it sends from a worker thread:
// worker-exporter.ts), and two instrumentations:
//   - pg (every query and pool checkout becomes a span; statements have $n placeholders, the
//     parameter values are never recorded),
//   - ioredis (rate-limit counters and the shared cache tier).
// The request span is the application's own (http-tracing.ts, which says why).
//
// ESM: `import pg from 'pg'` in an ES module does not go through require(), so the require
// hook alone never sees pg. import-in-the-middle's loader hook (the synchronous, in-thread one:
// module.registerHooks) intercepts the import; it is registered for the instrumented packages
// only, before main.ts is loaded (that is why tracing.ts must run under `node --import`).
import { context, propagation, trace, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { register as registerImportHooks } from 'import-in-the-middle/register-hooks.mjs';
import type { BatchSettings, TracingSettings } from '../config.ts';
import { markTracingStarted } from './spans.ts';
import { WorkerSpanExporter } from './worker-exporter.ts';

export interface StartOptions {
  /** Where spans go; default: OTLP over HTTP to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. */
  exporter?: SpanExporter;
  /** Export each span as it ends (tests), instead of in batches. */
  synchronous?: boolean;
}

export function createSampler(settings: Pick<TracingSettings, 'sampler' | 'samplerRatio'>): Sampler {
  const ratio = new TraceIdRatioBasedSampler(settings.samplerRatio);
  switch (settings.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
  }
}

/** The batch processor with the OTEL_BSP_* settings (this SDK package does not read them). */
export function createBatchProcessor(batch: BatchSettings, exporter: SpanExporter): BatchSpanProcessor {
  return new BatchSpanProcessor({ exporter, ...batch });
}

let started = false;

/** Registers the provider, the propagator, the context manager and the instrumentations. */
export function startTracing(settings: TracingSettings, opts: StartOptions = {}): void {
  if (started) throw new Error('tracing was already started in this process');
  started = true;
  // First: every module loaded from here on is seen by the instrumentations' hooks.
  registerImportHooks({ include: ['pg', 'pg-pool', 'ioredis'] });

  const resource = resourceFromAttributes({ 'service.name': settings.serviceName }).merge(detectResources({ detectors: [envDetector] }));
  // OTLP/HTTP protobuf, sent from a worker thread (worker-exporter.ts says why).
  const exporter = opts.exporter ?? new WorkerSpanExporter();
  // parentbased_traceidratio (the production setting): the root decision for requests is made
  // by the request pipeline (http/pipeline.ts, spans.ts wantsSpan) before any span exists, and
  // the SDK records every root it is asked for. An unsampled request then costs one Math.random(),
  // not a span start, a trace id and two samplers: at 1% that is most of tracing's cost on a
  // cached read (docs/observability.md "What it costs"). Callers' decisions (traceparent) are followed.
  const appSamplesRoots = settings.sampler === 'parentbased_traceidratio';
  const provider = new TracerProvider({
    resource,
    sampler: appSamplesRoots ? createSampler({ sampler: 'parentbased_always_on', samplerRatio: 1 }) : createSampler(settings),
    spanProcessors: [opts.synchronous ? new SimpleSpanProcessor({ exporter }) : createBatchProcessor(settings.batch, exporter)],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);

  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new PgInstrumentation({
        // Queries outside a request (the invalidation listener, migrations) make no root traces.
        requireParentSpan: true,
        enhancedDatabaseReporting: false,
        responseHook: (span, { data }) => {
          const attrs: Attributes = { 'db.response.returned_rows': data.rowCount ?? data.rows.length };
          span.setAttributes(attrs);
        },
      }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });

  markTracingStarted({
    shutdown: () => provider.shutdown(),
    rootRatio: appSamplesRoots ? settings.samplerRatio : undefined,
  });
}
