// Tracing inside the application, installed by buildApp only when tracing.ts started the SDK:
//   - the @fastify/otel request span ("GET /api/articles/:slug"), continuing an incoming W3C
//     `traceparent` (the propagator reads it);
//   - the same `traceparent` returned to the client, naming this request's span, so a client or
//     a support ticket can quote the trace;
//   - trace_id and span_id bound to the request's logger: every log line of the request (the
//     one-line-per-request summary included) can be joined with its trace;
//   - a span per business operation ("favorite article", operations.ts) around the handler,
//     with the SQL spans under it;
//   - "cache lookup" spans with cache.hit, and "hash password"/"verify password" spans.
// Nothing here reads a body, a header value other than traceparent, or a user id: spans carry
// route templates and outcomes, never personal data.
import { context, ROOT_CONTEXT, trace, type Context, type Span } from '@opentelemetry/api';
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { ResponseCache } from '../cache/response-cache.ts';
import type { App, AppContext } from '../context.ts';
import { AppError } from '../http/errors.ts';
import type { Passwords } from '../users/password.ts';
import { operationName } from './operations.ts';
import { fastifyOtelPlugin, inSpan, tracer } from './spans.ts';

const kTraceContext = Symbol('conduit.traceContext');

type Traced = { [kTraceContext]: Context | null };

const isClientError = (err: unknown) => err instanceof AppError && err.status < 500;

export async function registerTracing(app: App, ctx: AppContext): Promise<void> {
  const plugin = fastifyOtelPlugin();
  if (!plugin) return;
  // Before every other hook and route: it wraps what is registered after it.
  await app.register(plugin);

  app.decorateRequest(kTraceContext, null);
  // Runs right after @fastify/otel's onRequest, inside the context holding the request span.
  app.addHook('onRequest', (request, reply, done) => {
    const active = context.active();
    const span = trace.getSpan(active);
    if (!span) {
      done();
      return;
    }
    const { traceId, spanId, traceFlags } = span.spanContext();
    (request as unknown as Traced)[kTraceContext] = active;
    void reply.header('traceparent', `00-${traceId}-${spanId}-0${traceFlags & 1}`);
    // On the request's own logger (Fastify made it for this request): no second child.
    // (The no-op logger of an app built without one has no setBindings.)
    (request.log as { setBindings?: (b: Record<string, string>) => void }).setBindings?.({ trace_id: traceId, span_id: spanId });
    if (span.isRecording()) {
      done();
      return;
    }
    // Not sampled: the rest of the request runs with no span in its context, so the pg and
    // ioredis instrumentations (requireParentSpan) step aside at once instead of building
    // spans that would be dropped. With 1% sampling that is 99% of requests.
    context.with(ROOT_CONTEXT, done);
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
      const parent = (request as unknown as Traced)[kTraceContext];
      // An unsampled request records nothing below it either (parent-based sampling): no span.
      if (!parent || !trace.getSpan(parent)?.isRecording()) return handler.call(this, request, reply);
      return inSpan(name, attributes, async () => handler.call(this, request, reply), { parent, isClientError });
    };
  });

  if (ctx.cache) traceCache(ctx.cache);
  tracePasswords(ctx.passwords);
}

const instrumented = new WeakSet<object>();

/** "cache lookup" around ResponseCache.get, with the outcome; a miss's load runs inside it. */
function traceCache(cache: ResponseCache): void {
  if (instrumented.has(cache)) return;
  instrumented.add(cache);
  const get = cache.get.bind(cache);
  const { stats } = cache;
  cache.get = function tracedGet(...args: Parameters<ResponseCache['get']>) {
    if (!trace.getActiveSpan()?.isRecording()) return get(...args);
    const key = args[0];
    const end = key.indexOf('\u0000');
    // The kind of entry (list, article, ...), never the key: keys hold usernames.
    const span = tracer().startSpan('cache lookup', { attributes: { 'cache.key_kind': end === -1 ? key : key.slice(0, end) } });
    const hits = stats.hits;
    const coalesced = stats.coalesced;
    let result: ReturnType<ResponseCache['get']>;
    try {
      result = context.with(trace.setSpan(context.active(), span), () => get(...args));
    } catch (err) {
      span.end();
      throw err;
    }
    // get() counts its outcome before its first await.
    const outcome = stats.hits !== hits ? 'hit' : stats.coalesced !== coalesced ? 'coalesced' : 'miss';
    span.setAttributes({ 'cache.hit': outcome === 'hit', 'cache.outcome': outcome });
    if (outcome === 'hit') {
      span.end();
      return result;
    }
    return result.then(
      (entry) => {
        span.end();
        return entry;
      },
      (err: unknown) => {
        fail(span, err);
        span.end();
        throw err;
      },
    );
  } as ResponseCache['get'];
}

function fail(span: Span, err: unknown): void {
  if (isClientError(err)) return;
  span.setStatus({ code: 2, message: err instanceof Error ? err.message : String(err) });
}

/** Argon2 dominates a login's time; its spans show the wait for a hashing slot too. */
function tracePasswords(passwords: Passwords): void {
  if (instrumented.has(passwords)) return;
  instrumented.add(passwords);
  const hash = passwords.hash.bind(passwords);
  const verify = passwords.verify.bind(passwords);
  const recording = () => trace.getActiveSpan()?.isRecording() === true;
  passwords.hash = (password) => (recording() ? inSpan('hash password', {}, () => hash(password), { isClientError }) : hash(password));
  passwords.verify = (password, phc) => (recording() ? inSpan('verify password', {}, () => verify(password, phc), { isClientError }) : verify(password, phc));
}
