// buildApp(ctx): the whole HTTP application as a Fastify instance. It never listens; main.ts and
// the test harness decide how it is served.
import proxyAddr from '@fastify/proxy-addr';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { registerArticleRoutes } from './articles/articles.routes.ts';
import { decorateCachedAnswer, HotPath, recordCachedAnswer } from './cache/hot-path.ts';
import { registerCommentRoutes } from './comments/comments.routes.ts';
import { registerDocsRoutes } from './docs/docs.routes.ts';
import { DOC_TAGS, operationsLast } from './docs/openapi-order.ts';
import type { Config } from './config.ts';
import type { App, AppContext } from './context.ts';
import { registerHealthRoutes } from './health/health.routes.ts';
import { requestScope } from './db/deadline.ts';
import { registerCompression } from './http/compression.ts';
import { AppError, clientErrorHandler, errorHandler, forbiddenKey, notFoundHandler } from './http/errors.ts';
import { registerLoadShedding } from './http/load-shedding.ts';
import { registerRateLimit } from './http/rate-limit.ts';
import { registerSecurity } from './http/security.ts';
import { validatorCompiler } from './http/validation.ts';
import { registerProfileRoutes } from './profiles/profiles.routes.ts';
import { registerTagRoutes } from './tags/tags.routes.ts';
import { registerTelemetry } from './telemetry/register.ts';
import { wantsSpan } from './telemetry/spans.ts';
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

export async function buildApp(ctx: AppContext, opts: BuildOptions = {}): Promise<App> {
  const { config } = ctx;
  const serverOptions: FastifyServerOptions = {
    bodyLimit: config.bodyLimitBytes,
    // A request id from the load balancer is kept so one id follows the request across hops.
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
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
  // The cache's hot path (cache/hot-path.ts) sees each request before Fastify does: the server
  // is made here, as Fastify would make it, with the hot path in front of Fastify's handler.
  const hot = ctx.cache && config.hotPath ? new HotPath(ctx.cache) : undefined;
  if (hot) {
    // Fastify hands the factory its options; these are the ones its own factory applies to an
    // HTTP/1 server (fastify/lib/server.js).
    serverOptions.serverFactory = (handler, options) => {
      const o = options as { keepAliveTimeout: number; requestTimeout: number; connectionTimeout?: number; maxRequestsPerSocket?: number };
      const server = createServer(http, (req, res) => hot.handle(req, res, handler));
      server.keepAliveTimeout = o.keepAliveTimeout;
      server.requestTimeout = o.requestTimeout;
      server.setTimeout(o.connectionTimeout ?? 0);
      if ((o.maxRequestsPerSocket ?? 0) > 0) server.maxRequestsPerSocket = o.maxRequestsPerSocket!;
      return server;
    };
  }
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

  // Observability before every other hook and route (telemetry/register.ts): the request span
  // and the in-flight count must see each request, those the hooks below refuse included.
  const telemetry = await registerTelemetry(app, ctx);

  // One synchronous hook for two things every request needs (each hook, and each promise an
  // async one makes, is per-request work on the hot path):
  //   - RFC 9112 §3.2: an HTTP/1.1 request without Host is malformed (see requireHostHeader
  //     above); the same answer as for any other malformed request (errors.ts clientErrorHandler).
  //   - The deadline: the rest of the request (hooks, handler, every query) runs inside this
  //     scope, so the pool can tie checked-out connections to it without threading a signal
  //     through every repository function. `done` must run inside `run` to carry the scope.
  const timeoutMs = config.requestTimeoutMs;
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      done(new AppError(400, { request: ['is malformed'] }));
    } else if (timeoutMs > 0) {
      requestScope.run({ deadline: performance.now() + timeoutMs, timeoutMs }, done);
    } else {
      done();
    }
  });

  // While draining (after SIGTERM, main.ts) every response asks the client to close its
  // connection. Without it a keep-alive client sent its next request on a connection the
  // server was closing as idle at that moment, and got ECONNRESET on a request nobody had
  // failed (test/http/shutdown-under-load.test.ts). With it, during SHUTDOWN_DELAY_MS each busy
  // connection is closed cleanly after its current response, before the listener closes.
  // onSend, not onRequest: a request that began before the signal must close its connection too.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (ctx.lifecycle.draining) void reply.header('connection', 'close');
    done(null, payload);
  });

  // The line is only built when it will be written: at LOG_LEVEL=warn (the benchmark's) the
  // arguments cost an object and a routeOptions object per request for nothing.
  // It also hands the hot path what a cached anonymous read sent (in this hook: a hook of its own
  // would be more per-request work for every request).
  const logsRequests = (app.log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info') !== false;
  app.addHook('onResponse', (request, reply, done) => {
    // pino has isLevelEnabled; the no-op logger of an app built without one has not (info is a no-op there).
    if (logsRequests) {
      request.log.info(
        {
          method: request.method,
          route: request.routeOptions.url,
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 100) / 100,
        },
        'request',
      );
    }
    if (hot) recordCachedAnswer(hot, request, reply);
    done();
  });
  if (hot) decorateCachedAnswer(app);

  // Order matters: shedding first (refuse before doing any work), then the rate limit, then
  // headers and compression for whatever is answered.
  const shedder = registerLoadShedding(app, config);
  telemetry.watchShedder(shedder);
  const globalLimit = await registerRateLimit(app, config, ctx.redis);
  if (hot) {
    // What the pipeline does for every request, for the ones the hot path answers: the same
    // decisions, asked of the modules that make them.
    const trust = trustProxyOption(config.trustProxy);
    const trustFn = typeof trust === 'function' ? trust : Array.isArray(trust) ? proxyAddr.compile(trust) : undefined;
    hot.hooks = {
      busy: () => ctx.lifecycle.draining || shedder.refusal() !== null,
      traced: wantsSpan,
      // The client's address as Fastify's request.ip works it out (TRUST_PROXY included).
      admit: globalLimit && ((req) => globalLimit.count({ ip: (trustFn ? proxyAddr(req, trustFn) : req.socket.remoteAddress) ?? '' })),
      counted: (req) => globalLimit?.counted(req),
      observe: (req, route, status, seconds) => {
        app.metrics.observeRequest('GET', route, status, seconds);
        if (logsRequests) {
          const reqId = req.headers['x-request-id'];
          app.log.info(
            {
              reqId: typeof reqId === 'string' && reqId !== '' ? reqId : randomUUID(),
              method: 'GET',
              route,
              status,
              ms: Math.round(seconds * 100_000) / 100,
            },
            'request',
          );
        }
      },
      failed: (err) => app.log.error({ err }, 'the cache hot path failed on a request'),
    };
    app.metrics.watchHotPath(hot);
  }
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
