// Rate limiting: a generous per-IP limit on every route, and tight ones on login (per IP and
// email: password guessing) and registration (per IP). With Redis the counters are shared by
// every instance; if Redis is unreachable, requests are let through (skipOnError) rather than
// failed: the limiter protects the service, it must not become its outage.
import rateLimit from '@fastify/rate-limit';
import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import type { FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.ts';
import type { App } from './app-type.ts';
import { AppError } from './errors.ts';

function tooMany(_request: FastifyRequest, context: { ttl: number }): AppError {
  return new AppError(429, { request: ['too many requests, retry later'] }, { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) });
}

// A Redis that stops answering (connection open, no replies) held every request forever: the
// limiter awaits its counter before the route runs, and neither the request deadline (it reaches
// only PostgreSQL) nor skipOnError (nothing fails) ended the wait (test/http/rate-limit.test.ts).
// Past this, the command fails and skipOnError lets the request through. Redis answers a counter
// increment in well under a millisecond; 250 ms leaves room for a busy event loop.
const REDIS_COMMAND_TIMEOUT_MS = 250;

/**
 * Counts a request against the global per-address limit (the counters every route shares);
 * false when it is over. For requests answered outside Fastify's hooks (cache/hot-path.ts): it
 * reads only the address the request came from, as the limit's key does. Synchronous where it
 * can be (the counters in this process, an address seen before), else a promise (Redis).
 */
export interface GlobalLimit {
  count(request: { ip: string }): boolean | Promise<boolean>;
  /** This request was counted (and allowed): the pipeline, if it gets it, does not count it again. */
  counted(raw: IncomingMessage): void;
}

const countedEarly = new WeakSet<IncomingMessage>();

/**
 * The counters without Redis: a fixed window per key, as @fastify/rate-limit's own LocalStore
 * counts (its `continueExceeding` and `exponentialBackoff`, not used here, left out), with a
 * synchronous count. Through the plugin, a count is a chain of promises (`applyRateLimit` is
 * async and awaits its allow list and its store; our wrapper adds one); for a request the hot
 * path answers in ~17 µs of CPU, that chain cost about 8% of its throughput in one A/B run
 * (`scripts/hot-path-ratio.ts --pin`, RATE_LIMIT=off against on), so the hot path counts here
 * directly, in the same counters the plugin uses.
 */
export class LocalCounters {
  // Least recently counted keys go first past `cache` of them (the plugin's option, 5,000 by default).
  readonly #windows: LRUCache<string, { current: number; start: number }>;

  constructor(options: { cache?: number } = {}) {
    this.#windows = new LRUCache({ max: options.cache ?? 5000 });
  }

  /** Counts one request for `key`; how many the window holds with it, and what is left of the window. */
  count(key: string, timeWindow: number): { current: number; ttl: number } {
    const now = Date.now();
    let w = this.#windows.get(key);
    if (w === undefined || w.start + timeWindow <= now) this.#windows.set(key, (w = { current: 0, start: now }));
    w.current++;
    return { current: w.current, ttl: w.start + timeWindow - now };
  }

  // The store interface @fastify/rate-limit calls.
  incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
    callback(null, this.count(key, timeWindow));
  }

  read(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
    const w = this.#windows.peek(key);
    const now = Date.now();
    callback(
      null,
      w === undefined || w.start + timeWindow <= now ? { current: 0, ttl: 0 } : { current: w.current, ttl: w.start + timeWindow - now },
    );
  }

  /** A route's own limit (login, registration): counters of its own (the plugin passes the route's merged options). */
  child(options: object): LocalCounters {
    return new LocalCounters(options);
  }
}

export async function registerRateLimit(
  app: App,
  config: Pick<Config, 'rateLimit' | 'rateLimitMax' | 'rateLimitWindowMs' | 'rateLimitPrefix'>,
  redis: Redis | undefined,
): Promise<GlobalLimit | undefined> {
  if (!config.rateLimit) return undefined;
  // The limiter's own connection, so the command timeout applies to it alone; closed with the app.
  const counters = redis?.duplicate({ commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
  if (counters) {
    // Without an 'error' listener ioredis printed "[ioredis] Unhandled error event" to stderr
    // on every reconnect attempt while Redis was down. Say once per outage, in the log, what it
    // means here.
    let down = false;
    counters.on('error', (err: Error) => {
      if (down) return;
      down = true;
      app.log.warn({ err }, 'redis unreachable: rate limits are not enforced until it is back');
    });
    counters.on('ready', () => {
      if (!down) return;
      down = false;
      app.log.info('redis reachable again: rate limits enforced');
    });
    app.addHook('onClose', async () => {
      await counters.quit().catch(() => counters.disconnect());
    });
  }
  // The plugin makes its global store itself (`new store(options)`): this class hands back ours.
  const local = counters ? undefined : new LocalCounters();
  class GlobalCounters extends LocalCounters {
    constructor() {
      super();
      // The instance the hot path counts in.
      return local!;
    }
  }
  await app.register(rateLimit, {
    global: true,
    max: config.rateLimitMax,
    // RATE_LIMIT_WINDOW_MS (was a fixed minute): configurable so a test can watch a limit reset.
    timeWindow: config.rateLimitWindowMs,
    // RATE_LIMIT_PREFIX (was fixed): deployments or test runs sharing one Redis stay apart.
    ...(counters ? { redis: counters, nameSpace: config.rateLimitPrefix } : { store: GlobalCounters }),
    skipOnError: true,
    // Liveness and readiness probes (the routes that are never shed) are never limited either:
    // the orchestrator's probes may share an address with client traffic (SNAT), and a 429 on
    // /healthz would get a healthy instance restarted.
    // A request the hot path counted and then handed over (GlobalLimit.counted) is not counted twice.
    allowList: (request) => request.routeOptions.config.neverShed === true || countedEarly.delete(request.raw),
    // Headers only on refusals: three extra headers on every response cost bytes for nothing.
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: tooMany,
  });
  // A route with a limit of its own (login, registration) got only that one: @fastify/rate-limit
  // replaces the global hook by the route's, so RATE_LIMIT_MAX did not apply there, and a spray
  // of wrong passwords over many emails from one address (a fresh login counter per email) was
  // not limited at all (test/resilience/security.test.ts). Such routes also count towards the
  // global per-address limit: createRateLimit() without options shares the global counters.
  const globalLimit = app.createRateLimit();
  app.addHook('onRoute', (route) => {
    if (typeof route.config?.rateLimit !== 'object') return;
    const countGlobally = async (request: FastifyRequest) => {
      const result = await globalLimit(request);
      if (!result.isAllowed && result.isExceeded) throw tooMany(request, { ttl: result.ttl });
    };
    const own = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [countGlobally, ...own];
  });
  // @fastify/rate-limit reads, from the request: the address (its default key), the route's config
  // (our allowList, and a per-route groupId) and, for the allow list, the raw request. Those are
  // what a request answered outside Fastify has; the hot-path test checks that a replay and a
  // request through the pipeline share one counter (TRUST_PROXY included).
  const noRoute = { config: {} };
  const noRaw = {};
  // The key the plugin counts an address under (its default key generator: the address, IPv6
  // ones reduced to their /64), learnt from its first count through the plugin: a function of
  // the address alone, so a later count can go straight to the counters. Twice the counters'
  // own bound (5,000 keys): an address it has forgotten is simply counted through the plugin again.
  const keys = local && new LRUCache<string, string>({ max: 10_000 });
  return {
    count: ({ ip }) => {
      const key = keys?.get(ip);
      // The plugin's decision (applyRateLimit): over the limit when the window holds more than max.
      if (key !== undefined) return local!.count(key, config.rateLimitWindowMs).current <= config.rateLimitMax;
      return globalLimit({ ip, routeOptions: noRoute, raw: noRaw } as unknown as FastifyRequest).then((result) => {
        keys?.set(ip, result.key);
        return result.isAllowed || !result.isExceeded;
      });
    },
    counted: (raw) => void countedEarly.add(raw),
  };
}

/** Route config: login attempts counted per client IP and email (after the body is parsed). */
export function loginRateLimit(config: Pick<Config, 'rateLimitLoginMax' | 'rateLimitWindowMs'>) {
  return {
    rateLimit: {
      max: config.rateLimitLoginMax,
      timeWindow: config.rateLimitWindowMs,
      hook: 'preHandler' as const,
      keyGenerator: (request: FastifyRequest) => {
        const email = (request.body as { user?: { email?: unknown } } | undefined)?.user?.email;
        return `login:${request.ip}:${typeof email === 'string' ? email.toLowerCase() : ''}`;
      },
      errorResponseBuilder: tooMany,
    },
  };
}

/** Route config: registrations counted per client IP. */
export function registerRateLimitConfig(config: Pick<Config, 'rateLimitRegisterMax' | 'rateLimitWindowMs'>) {
  return {
    rateLimit: {
      max: config.rateLimitRegisterMax,
      timeWindow: config.rateLimitWindowMs,
      keyGenerator: (request: FastifyRequest) => `register:${request.ip}`,
      errorResponseBuilder: tooMany,
    },
  };
}
