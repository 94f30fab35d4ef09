// buildApp(ctx): the whole HTTP application as a Fastify instance. It never listens; main.ts and
// the test harness decide how it is served.
import proxyAddr from '@fastify/proxy-addr';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { registerArticleRoutes } from './articles/articles.routes.ts';
import { Replays } from './cache/hot-path.ts';
import { registerCommentRoutes } from './comments/comments.routes.ts';
import { registerDocsRoutes } from './docs/docs.routes.ts';
import { DOC_TAGS, operationsLast } from './docs/openapi-order.ts';
import type { Config } from './config.ts';
import type { App, AppContext } from './context.ts';
import { registerHealthRoutes } from './health/health.routes.ts';
import { requestScope } from './db/deadline.ts';
import { registerCompression } from './http/compression.ts';
import { AppError, clientErrorHandler, errorHandler, forbiddenKey, notFoundHandler } from './http/errors.ts';
import { LoadShedder } from './http/load-shedding.ts';
import { Connections } from './http/connections.ts';
import { NeverRefused } from './http/never-refused.ts';
import { kRefusal, kRouted, Pipeline, requestId } from './http/pipeline.ts';
import { RateLimits } from './http/rate-limit.ts';
import { registerSecurity } from './http/security.ts';
import { validatorCompiler } from './http/validation.ts';
import { registerProfileRoutes } from './profiles/profiles.routes.ts';
import { registerTagRoutes } from './tags/tags.routes.ts';
import { RequestMetrics } from './telemetry/metrics.ts';
import { registerTelemetry } from './telemetry/register.ts';
import { tracingActive, wantsSpan } from './telemetry/spans.ts';
import { registerUserRoutes } from './users/users.routes.ts';

export interface BuildOptions {
  /** A pino logger (main.ts), or false/undefined for none (tests). */
  logger?: FastifyBaseLogger | undefined;
}

/** A hop count n believes the last n X-Forwarded-For entries (Fastify's rule for numbers). */
function trustProxyOption(trust: Config['trustProxy']): FastifyServerOptions['trustProxy'] {
  if (trust === false) return false;
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return [...trust];
}

/** For the parts made before Fastify when the app has no logger (tests). */
const silent = { warn: () => undefined, info: () => undefined };

export async function buildApp(ctx: AppContext, opts: BuildOptions = {}): Promise<App> {
  const { config } = ctx;
  const serverOptions: FastifyServerOptions = {
    bodyLimit: config.bodyLimitBytes,
    // X-Request-Id, when short and plain (pipeline.ts requestId), else a new one.
    requestIdHeader: false,
    genReqId: requestId,
    // One log line per request is written by the onResponse hook below, not Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // A request that reaches a closing server (on a connection that was already open) is served,
    // with Connection: close, rather than refused: Fastify's 503 for it was outside the error
    // shape, and failed a request the process could still answer, since close() waits for
    // in-flight requests anyway. Each connection carries at most one such request.
    return503OnClosing: false,
    // TRUST_PROXY (config.ts). Without it, behind a load balancer every request had the
    // balancer's address, so the per-IP rate limits were one limit shared by all clients.
    trustProxy: trustProxyOption(config.trustProxy),
    // Connection timeouts (config.ts explains each value): keep-alive outlives the load
    // balancer's idle timeout; headers and whole requests must arrive within their bounds
    // (slowloris, slow uploads). Node checks them every connectionsCheckingInterval.
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    requestTimeout: config.httpRequestTimeoutMs,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 512 },
    // A badly percent-encoded URL (`/api/profiles/%zz`) or an over-long path parameter is
    // answered by the router before any route or error handler runs; without this, those two
    // answered in Fastify's own body shape instead of `{"errors":{...}}` (SPEC.md "Beyond the contract").
    frameworkErrors: (err, request, reply) => {
      void errorHandler(err, request, reply);
    },
    // The same for errors on the connection itself (408 at the headers or request timeout, 431,
    // 400 unparsable): Fastify's default answered them in its own shape (errors.ts).
    clientErrorHandler,
  };
  const http = {
    headersTimeout: config.httpHeadersTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, config.httpHeadersTimeoutMs),
    // Node answers an HTTP/1.1 request without Host itself, with a bare 400 outside the error
    // shape; the onRequest hook below refuses it in the shape instead (test/resilience/fuzz.test.ts).
    requireHostHeader: false,
  };
  // The request pipeline (http/pipeline.ts) is the server's request listener: every request
  // meets admission and observation there, then the replay of a cached answer or Fastify. Its
  // parts are made first, complete, and the server is made here as Fastify would make it.
  const shedder = new LoadShedder(config);
  const limits = new RateLimits(config, ctx.redis, opts.logger ?? silent);
  const replays = ctx.cache && config.hotPath ? new Replays(ctx.cache, { viewerOf: ctx.auth.knownViewer }) : undefined;
  const requests = new RequestMetrics();
  const connections = new Connections({
    maxConnections: config.httpMaxConnections,
    maxPerAddress: config.httpMaxConnectionsPerAddress,
    keepAliveUnderPressureMs: config.httpKeepAliveUnderPressureMs,
  });
  const neverRefused = new NeverRefused();
  const trust = trustProxyOption(config.trustProxy);
  const trustFn = typeof trust === 'function' ? trust : Array.isArray(trust) ? proxyAddr.compile(trust) : undefined;
  const pipeline = new Pipeline({
    lifecycle: ctx.lifecycle,
    overload: config.shed ? () => shedder.reason : undefined,
    maxInFlight: config.shed ? config.shedMaxInFlight : 0,
    waitMs: config.shedQueueTimeoutMs,
    // One waiting request per connection; more come only from pipelining clients.
    maxWaiting: config.httpMaxConnections || 10_000,
    limit: limits.global,
    // The client's address as Fastify's request.ip works it out (TRUST_PROXY included).
    clientAddress: trustFn ? (req) => proxyAddr(req, trustFn) : (req) => req.socket.remoteAddress ?? '',
    neverRefused,
    sample: tracingActive() ? wantsSpan : undefined,
    replays,
    observe: (method, route, status, seconds) => requests.observe(method, route, status, seconds),
    log: opts.logger,
    connections,
  });
  // Fastify hands the factory its options; these are the ones its own factory applies to an
  // HTTP/1 server (fastify/lib/server.js).
  serverOptions.serverFactory = (handler, options) => {
    const o = options as { keepAliveTimeout: number; requestTimeout: number; connectionTimeout?: number; maxRequestsPerSocket?: number };
    const server = createServer(http, (req, res) => pipeline.handle(req, res, handler));
    server.keepAliveTimeout = o.keepAliveTimeout;
    server.requestTimeout = o.requestTimeout;
    server.setTimeout(o.connectionTimeout ?? 0);
    if ((o.maxRequestsPerSocket ?? 0) > 0) server.maxRequestsPerSocket = o.maxRequestsPerSocket!;
    connections.attach(server);
    return server;
  };
  const app: App = (
    opts.logger ? Fastify({ ...serverOptions, http, loggerInstance: opts.logger }) : Fastify({ ...serverOptions, http, logger: false })
  ).withTypeProvider<TypeBoxTypeProvider>();

  // An `Expect` other than 100-continue: Node answered 417 with an empty body and left the
  // unread request body on the keep-alive connection, where it was parsed as the next request
  // (test/resilience/fuzz.test.ts). RFC 9110 lets a server ignore an expectation it does not
  // know, so the request is served like any other.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => app.server.emit('request', req, res));

  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.decorateRequest('viewer', null);

  // JSON only. text/plain (Fastify's other default) is refused with 415; an empty body with a
  // JSON content type counts as no body, because common clients send that header on
  // POST /favorite and POST /follow, which have none.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') {
      done(null, undefined);
      return;
    }
    void parseJson(request, body as string, (err, parsed) => {
      // Refused: malformed (400), or a `__proto__` / `constructor.prototype` key in valid JSON
      // (422, errors.ts forbiddenKey). Only failures pay for the second look.
      done(err ? (forbiddenKey(body as string) ?? err) : null, parsed);
    });
  });

  // The OpenAPI document (GET /api/openapi.json, below) before any route: @fastify/swagger
  // collects routes as they are added, and one added before it (/metrics) was missing from it.
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Conduit API',
        version: '2.0.0',
        description:
          'The RealWorld (Conduit) API v2. Errors are always `{"errors":{"<key>":["<message>"]}}`; beyond the contract: ' +
          '400 malformed JSON, 413 body too large, 415 not JSON, 422 invalid input (limit is 1..100), 401 bad token, 503 database unavailable.' +
          // Added with the frameworkErrors mapping above, so the document names every status it can send.
          ' 400 badly percent-encoded URL, 414 path parameter too long (over 512 characters).' +
          // The production layer's refusals (http/rate-limit.ts, http/load-shedding.ts, db/deadline.ts, errors.ts).
          ' 429 too many requests (rate limit) and 503 overloaded (load shedding), both with Retry-After;' +
          ' 504 the request ran out of time; 408 request too slow, 431 headers too large and 400 not a valid HTTP request, answered on the connection;' +
          ' 500 unexpected, the body names only the request id. Each operation lists the statuses it can answer.' +
          '\n\nAuthenticated operations take `Authorization: Token <jwt>` with the token from login or registration.' +
          ' An interactive reference of this document, whose "Try it out" calls this service, is served at /docs.',
      },
      servers: [{ url: '/' }],
      // The order /docs shows them in: the API's resources first, in the contract's reading
      // order, and the operator's endpoints (/healthz, /readyz, /metrics) last.
      tags: DOC_TAGS.map((name) => ({ name })),
      components: {
        securitySchemes: {
          Token: {
            type: 'apiKey',
            in: 'header',
            name: 'Authorization',
            description: "Value: `Token <jwt>` (the spec's scheme) or `Bearer <jwt>`.",
          },
        },
      },
    },
    // Paths in the same order as the tags: /metrics and the health checks are registered before
    // the API's routes (they must see every request), which put them first in the document.
    transformObject: (doc) => {
      if (!('openapiObject' in doc)) return doc.swaggerObject;
      if (doc.openapiObject.paths) doc.openapiObject.paths = operationsLast(doc.openapiObject.paths);
      return doc.openapiObject;
    },
  });

  // The router's side of the pipeline, first: Fastify's request is noted for the pipeline's
  // metrics and log line (its route template, its logger), and a refusal is rendered here, where
  // the route is known (the probes and /metrics are never refused) and the error handler gives
  // it the shape and headers of every other error.
  // Read once every route is in: a plugin's own onRoute hook (the /docs scope's) may set the flag
  // after this one has seen the route.
  const routes: { url: string; config?: { neverShed?: boolean } }[] = [];
  app.addHook('onRoute', (route) => void routes.push(route));
  app.addHook('onReady', async () => {
    for (const route of routes) if (route.config?.neverShed === true) neverRefused.add(route.url);
    routes.length = 0;
    shedder.start();
  });
  app.addHook('onClose', async () => {
    shedder.stop();
    await limits.close();
  });

  // Observability before every other hook and route (telemetry/register.ts): the request span
  // must see each request, those the hooks below refuse included.
  await registerTelemetry(app, ctx, { requests, pipeline, replays, connections });

  // One synchronous hook for what every routed request needs (each hook, and each promise an
  // async one makes, is per-request work):
  //   - the pipeline's refusal (load shedding, the per-address rate limit), rendered;
  //   - RFC 9112 §3.2: an HTTP/1.1 request without Host is malformed (see requireHostHeader
  //     above); the same answer as for any other malformed request (errors.ts clientErrorHandler).
  //   - The deadline: the rest of the request (hooks, handler, every query) runs inside this
  //     scope, so the pool can tie checked-out connections to it without threading a signal
  //     through every repository function. `done` must run inside `run` to carry the scope.
  const timeoutMs = config.requestTimeoutMs;
  app.addHook('onRequest', (request, _reply, done) => {
    const raw = request.raw;
    raw[kRouted] = request;
    const refusal = raw[kRefusal];
    if (refusal !== undefined && request.routeOptions.config.neverShed !== true) {
      done(new AppError(refusal.status, { [refusal.key]: [refusal.reason] }, { retryAfter: refusal.retryAfter }));
    } else if (raw.httpVersion === '1.1' && request.headers.host === undefined) {
      done(new AppError(400, { request: ['is malformed'] }));
    } else if (timeoutMs > 0) {
      requestScope.run({ deadline: performance.now() + timeoutMs, timeoutMs }, done);
    } else {
      done();
    }
  });

  // While draining (after SIGTERM, main.ts) every response asks the client to close its
  // connection. Without it a keep-alive client can send its next request on a connection the
  // server is closing as idle at that moment, and get ECONNRESET on a request nobody failed
  // (test/timing/shutdown-under-load.test.ts). With it, during SHUTDOWN_DELAY_MS each busy
  // connection is closed cleanly after its current response, before the listener closes.
  // onSend, not onRequest: a request that began before the signal must close its connection too.
  // (The pipeline does not replay while draining: every answer comes this way.)
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (ctx.lifecycle.draining) void reply.header('connection', 'close');
    done(null, payload);
  });

  // What a cached read sent, recorded for the pipeline's replay branch.
  if (replays) {
    app.addHook('onResponse', (request, reply, done) => {
      replays.record(request.raw, reply.statusCode, () => reply.getHeaders(), request.routeOptions.url ?? 'unmatched');
      done();
    });
  }

  // The routes' own rate limits (login, registration); the per-address one is the pipeline's.
  await limits.register(app);
  await registerSecurity(app, config);
  await registerCompression(app, config);

  registerHealthRoutes(app, ctx);
  registerUserRoutes(app, ctx);
  registerProfileRoutes(app, ctx);
  registerArticleRoutes(app, ctx);
  registerCommentRoutes(app, ctx);
  registerTagRoutes(app, ctx);

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // GET /docs: the interactive reference built from that document (docs/docs.routes.ts).
  registerDocsRoutes(app, config);

  return app;
}
