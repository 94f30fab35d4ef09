// What the application needs from tracing, with no dependency on the OpenTelemetry SDK: whether
// tracing was started (by tracing.ts, before anything else), the tracer, and a helper that runs
// a function in a span of its own. With tracing off nothing here is called on the hot path: the
// callers check `tracingActive()` once, when the app is built, and install nothing.
//
// The state is per process, like OpenTelemetry's own global tracer provider it mirrors.
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

// Root requests the cache's hot path picked for a span before handing them to the pipeline.
const sampledEarly = new WeakSet<object>();

/**
 * For a request about to be answered outside Fastify's hooks (cache/hot-path.ts): whether
 * tracing wants a span for it. The dice are rolled here, once; a request picked goes to the
 * pipeline, whose request hook (sampledEarlyTaken) makes its span without rolling again (two
 * rolls would sample ratio² of them). Without tracing: false. With a sampler that decides per
 * request (no root ratio): true, the pipeline asks it.
 */
export function wantsSpan(req: object): boolean {
  if (state === undefined) return false;
  const ratio = state.rootRatio;
  if (ratio === undefined) return true;
  if (ratio <= 0 || Math.random() >= ratio) return false;
  sampledEarly.add(req);
  return true;
}

/** Whether wantsSpan picked this request (and forgets it). */
export function sampledEarlyTaken(req: object): boolean {
  return sampledEarly.delete(req);
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
