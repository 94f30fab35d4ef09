// Tracing inside the application, installed by buildApp only when tracing.ts started the SDK:
//   - a SERVER span per request ("GET /api/articles/:slug"), continuing an incoming W3C
//     `traceparent` (the propagator reads it);
//   - the same `traceparent` returned to the client, naming this request's span, so a client or
//     a support ticket can quote the trace;
//   - trace_id and span_id bound to the request's logger: every log line of the request (the
//     one-line-per-request summary included) can be joined with its trace;
//   - a span per business operation ("favorite article", operations.ts) around the handler,
//     with the SQL spans under it;
//   - "cache lookup" spans with cache.hit, and "hash password"/"verify password" spans, come from
//     the cache and the hashing built with spans of their own (traced-parts.ts).
// Nothing here reads a body, a header value other than traceparent, or a user id: spans carry
// route templates and outcomes, never personal data.
//
// The request span is made here rather than by @fastify/otel, which this service used first:
// measured with scripts/telemetry-cost.ts on a cached read, @fastify/otel cost 15% of the
// throughput with every request ignored (its onSend/onResponse hooks and hook wrapping) and 42%
// at 1% sampling (a span, a context switch and header work for the 99% of requests that record
// nothing). Here an unsampled request costs one sampler call and nothing else; with
// parentbased_traceidratio, an unsampled root request costs one Math.random() (sdk.ts).
import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { App } from '../context.ts';
import { AppError } from '../http/errors.ts';
import { kSampled } from '../http/pipeline.ts';
import { operationName } from './operations.ts';
import { inSpan, rootSampleRatio, tracer, wantsSpan } from './spans.ts';

/** Paths whose requests are not traced: probes and scrapes, every few seconds, say nothing. */
const UNTRACED = ['/healthz', '/readyz', '/metrics', '/admin/'];
const isUntraced = (url: string) => {
  for (const prefix of UNTRACED) if (url.startsWith(prefix)) return true;
  return false;
};

const kTraceContext = Symbol('conduit.traceContext');
const kSpan = Symbol('conduit.requestSpan');

declare module 'fastify' {
  interface FastifyRequest {
    /** The request span's context, when the request is recorded. */
    [kTraceContext]: Context | null;
    [kSpan]: Span | null;
  }
}

const isClientError = (err: unknown) => err instanceof AppError && err.status < 500;

/** Names the trace on the response and on every log line of the request. */
function announce(request: FastifyRequest, reply: { header(k: string, v: string): unknown }, span: Span): void {
  const { traceId, spanId, traceFlags } = span.spanContext();
  reply.header('traceparent', `00-${traceId}-${spanId}-0${traceFlags & 1}`);
  // On the request's own logger (Fastify made it for this request): no second child.
  // (The no-op logger of an app built without one has no setBindings.)
  (request.log as { setBindings?: (b: Record<string, string>) => void }).setBindings?.({ trace_id: traceId, span_id: spanId });
}

export async function registerTracing(app: App): Promise<void> {
  const requests = tracer();
  app.decorateRequest(kTraceContext, null);
  app.decorateRequest(kSpan, null);

  const rootRatio = rootSampleRatio();
  // Registered before every other hook and route, so the span covers all of them.
  app.addHook('onRequest', (request, reply, done) => {
    const incoming = request.headers.traceparent !== undefined;
    // A root request (no caller's trace) not picked for sampling: no span at all (sdk.ts). The
    // pipeline decided (wantsSpan, once per request); a request it did not see (app.inject in a
    // test) is asked here.
    if (!(request.raw[kSampled] ?? wantsSpan(request.raw))) {
      done();
      return;
    }
    if (isUntraced(request.url)) {
      done();
      return;
    }
    const parent = incoming ? propagation.extract(context.active(), request.headers) : context.active();
    // A traceparent that does not parse starts a root trace: sampled at the root ratio too.
    if (incoming && rootRatio !== undefined && trace.getSpanContext(parent) === undefined && Math.random() >= rootRatio) {
      done();
      return;
    }
    const route = request.routeOptions.url;
    // The sampler decides here (OTEL_TRACES_SAMPLER); attributes are only built for spans it keeps.
    const span = requests.startSpan(route ? `${request.method} ${route}` : request.method, { kind: SpanKind.SERVER }, parent);
    if (!span.isRecording()) {
      // Not sampled: nothing is recorded, and the rest of the request runs with no span in its
      // context, so the pg and ioredis instrumentations (requireParentSpan) step aside at once.
      // A caller that sent its own trace id still gets it back (its logs can quote it); a trace
      // that starts and ends unsampled here has an id that leads nowhere, so it is not handed out.
      if (incoming) announce(request, reply, span);
      done();
      return;
    }
    span.setAttributes({
      'http.request.method': request.method,
      // The template, never the raw path: raw paths hold usernames and slugs.
      'http.route': route ?? '(unmatched)',
      'url.path': route ?? '(unmatched)',
    });
    const active = trace.setSpan(parent, span);
    request[kSpan] = span;
    request[kTraceContext] = active;
    announce(request, reply, span);
    // Ended once the response is written, by a listener on this response only: an onResponse
    // hook would run (and allocate its runner's closures) for every request, sampled or not.
    // A client that hangs up first never gets 'finish': its span is dropped, not exported
    // half-finished.
    reply.raw.once('finish', () => {
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    context.with(active, done);
  });

  app.addHook('onError', (request, _reply, error, done) => {
    const span = request[kSpan];
    if (span && !isClientError(error)) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      span.recordException(error);
    }
    done();
  });

  app.addHook('onRoute', (route: RouteOptions) => {
    const method = Array.isArray(route.method) ? route.method[0] : route.method;
    const name = method && operationName(method, route.url ?? '');
    if (!name) return;
    const handler = route.handler;
    const attributes = { 'http.route': route.url ?? '' };
    route.handler = function operation(this: FastifyInstance, request, reply) {
      // The request's context, not the active one: after a body is read, the handler runs in
      // the socket's async context.
      const parent = request[kTraceContext];
      // Set only for a recorded request: an unsampled one records nothing below it either.
      if (!parent) return handler.call(this, request, reply);
      return inSpan(name, attributes, async () => handler.call(this, request, reply), { parent, isClientError });
    };
  });
}
