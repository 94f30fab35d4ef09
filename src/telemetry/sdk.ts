// The OpenTelemetry SDK, started only when tracing is on (tracing.ts imports this file then, and
// never otherwise: with tracing off none of these packages is even loaded).
//
// The lighter parts rather than @opentelemetry/sdk-node (which brings metrics, logs and gRPC
// exporters this service does not use): a tracer provider, the W3C trace-context propagator,
// an OTLP/HTTP (protobuf) exporter behind a batch processor (it sends from a worker thread:
// worker-exporter.ts), the ioredis instrumentation (rate-limit counters and the shared cache
// tier), and a span per SQL statement from postgres.js's `postgres:query` diagnostics channel
// (pgSpans below: the driver publishes every query there, and there is no instrumentation
// package for it to use instead). The request span is the application's own (http-tracing.ts,
// which says why).
//
// ESM: `import Redis from 'ioredis'` in an ES module does not go through require(), so the
// require hook alone never sees it. import-in-the-middle's loader hook (the synchronous,
// in-thread one: module.registerHooks) intercepts the import; it is registered for the
// instrumented package only, before main.ts is loaded (that is why tracing.ts must run under
// `node --import`).
import dc from 'node:diagnostics_channel';
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
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
  registerImportHooks({ include: ['ioredis'] });

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
    instrumentations: [new IORedisInstrumentation({ requireParentSpan: true })],
  });
  pgSpans(provider.getTracer('conduit-postgres'));

  markTracingStarted({
    shutdown: () => provider.shutdown(),
    rootRatio: appSamplesRoots ? settings.samplerRatio : undefined,
  });
}

interface QueryMessage {
  query: string | null;
  database: string | null;
  host: string | null;
  port: number | null;
  command: string | null;
  count: number | null;
  error?: Error & { code?: string; severity?: string };
}

/**
 * A client span per statement, under the span active where the query was made (postgres.js runs
 * `start` in the caller's async context). Queries outside a request (the seed, a test's setup)
 * make no root traces. The text has $n placeholders; parameter values are never recorded (the
 * driver publishes them only with `debug: true`, which the pool never sets).
 */
function pgSpans(tracer: Tracer): void {
  const spans = new WeakMap<object, Span>();
  dc.tracingChannel<string, QueryMessage>('postgres:query').subscribe({
    start(x) {
      if (!trace.getActiveSpan()) return;
      spans.set(
        x,
        tracer.startSpan(`postgresql ${x.database ?? ''}`.trim(), {
          kind: SpanKind.CLIENT,
          attributes: { 'db.system.name': 'postgresql', 'db.namespace': x.database ?? undefined, 'db.query.text': x.query ?? undefined },
        }),
      );
    },
    error(x) {
      const span = spans.get(x);
      if (!span || !x.error) return;
      span.recordException(x.error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: x.error.message });
      span.setAttribute('error.type', x.error.code ?? x.error.name);
      if (x.error.severity && x.error.code) span.setAttribute('db.response.status_code', x.error.code);
    },
    asyncEnd(x) {
      const span = spans.get(x);
      if (!span) return;
      spans.delete(x);
      span.setAttributes({
        'db.operation.name': x.command ?? undefined,
        'db.response.returned_rows': x.count ?? undefined,
        'server.address': x.host ?? undefined,
        'server.port': x.port ?? undefined,
      });
      if (x.command) span.updateName(`${x.command} ${x.database ?? ''}`.trim());
      span.end();
    },
    end() {},
    asyncStart() {},
  });
}
