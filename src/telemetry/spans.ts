// What the application needs from tracing, with no dependency on the OpenTelemetry SDK: whether
// tracing was started (by tracing.ts, before anything else), the tracer, and a helper that runs
// a function in a span of its own. With tracing off nothing here is called on the hot path: the
// callers check `tracingActive()` once, when the app is built, and install nothing.
//
// The state is per process, like OpenTelemetry's own global tracer provider it mirrors.
import type { IncomingHttpHeaders } from 'node:http';
import { context, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';

interface TracingState {
  /** Exports the spans still buffered and stops the SDK. */
  shutdown: () => Promise<void>;
  /**
   * Set when the application samples root requests itself (sdk.ts): the share of requests
   * without a caller's trace context that get a span. Undefined: the SDK's sampler decides.
   */
  rootRatio: number | undefined;
}

let state: TracingState | undefined;

/** Called by sdk.ts once the provider is registered. */
export function markTracingStarted(s: TracingState): void {
  state = s;
}

/** Tracing was started in this process (`node --import ./src/telemetry/tracing.ts`, or a test). */
export function tracingActive(): boolean {
  return state !== undefined;
}

/** See TracingState.rootRatio. */
export function rootSampleRatio(): number | undefined {
  return state?.rootRatio;
}

/**
 * Whether tracing wants a span for this request, decided once per request by the request
 * pipeline (http/pipeline.ts), whose replay branch answers only requests it does not want. The
 * root ratio's dice are rolled here; the request hook (http-tracing.ts) reads the outcome, and
 * only a caller's trace (traceparent) or a sampler that decides per request is asked again there.
 */
export function wantsSpan(req: { headers: IncomingHttpHeaders }): boolean {
  if (state === undefined) return false;
  if (req.headers.traceparent !== undefined) return true;
  const ratio = state.rootRatio;
  if (ratio === undefined) return true;
  return ratio > 0 && Math.random() < ratio;
}

/** Flushes buffered spans and stops the SDK; a no-op when tracing is off. */
export async function shutdownTracing(): Promise<void> {
  const s = state;
  state = undefined;
  await s?.shutdown();
}

export const TRACER_NAME = 'conduit';

export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** Whether an error is the client's (4xx): not a failure of the operation's span. */
export type IsClientError = (err: unknown) => boolean;

/**
 * Runs `fn` in a new span named `name`, child of `parent` (default: the active context); ends it
 * when the promise settles. Errors that are not the client's mark the span as failed.
 */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  opts: { parent?: Context | undefined; isClientError?: IsClientError } = {},
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(name, { attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), fn, undefined, span);
  } catch (err) {
    if (!opts.isClientError?.(err)) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      if (err instanceof Error) span.recordException(err);
    }
    throw err;
  } finally {
    span.end();
  }
}
