// Rate limiting: a generous per-IP limit on every route, and tight ones on login (per IP and
// email: password guessing) and registration (per IP). With Redis the counters are shared by
// every instance; if Redis is unreachable, requests are let through (skipOnError) rather than
// failed: the limiter protects the service, it must not become its outage.
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';
import { emailKey } from '../lib/identity.ts';
import type { App } from './app-type.ts';
import { AppError } from './errors.ts';
import type { GlobalLimit } from './pipeline.ts';

function tooMany(_request: FastifyRequest, context: { ttl: number }): AppError {
  return new AppError(429, { request: ['too many requests, retry later'] }, { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) });
}

// A Redis that stops answering (connection open, no replies) would hold every request forever: the
// pipeline awaits its counter before the route runs, and neither the request deadline (it reaches
// only PostgreSQL) nor a failure (nothing fails) ends the wait (test/system/rate-limit.test.ts).
// Past this, the command fails and skipOnError lets the request through. Redis answers a counter
// increment in well under a millisecond; 250 ms leaves room for a busy event loop.
const REDIS_COMMAND_TIMEOUT_MS = 250;

/**
 * The per-address counters without Redis: a fixed window per key, as @fastify/rate-limit's own
 * LocalStore counts (its `continueExceeding` and `exponentialBackoff`, not used here, left out),
 * with a synchronous count: through a store's callback and the plugin's promise chain a count
 * cost about 8% of a replayed read's throughput (`scripts/hot-path-ratio.ts --pin`, RATE_LIMIT=off
 * against on).
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

  /** What `key`'s current window holds, without counting; undefined when it holds nothing. */
  peek(key: string, timeWindow: number): { current: number; ttl: number } | undefined {
    const now = Date.now();
    const w = this.#windows.get(key);
    if (w === undefined || w.start + timeWindow <= now) return undefined;
    return { current: w.current, ttl: w.start + timeWindow - now };
  }
}

// The per-address limit is counted by the request pipeline (pipeline.ts), for every request,
// a replayed one included, before Fastify has a request object: @fastify/rate-limit's global
// hook cannot run there. Its counting is the plugin's (a fixed window per key, the key the
// plugin's normalizeIP makes of the address), in LocalCounters or in Redis with the plugin's
// own increment script's logic, and the plugin keeps the routes' own limits (login, registration).

/** INCR and the window's expiry in one round trip, as @fastify/rate-limit's RedisStore counts. */
const COUNT_SCRIPT = `
local current = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ttl) else ttl = redis.call('PTTL', KEYS[1]) end
return {current, ttl}`;

/** What a key's current window holds, without counting: 0 and no TTL when it holds nothing. */
const PEEK_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if not current then return {0, 0} end
return {tonumber(current), redis.call('PTTL', KEYS[1])}`;

/**
 * Counts per key in a fixed window, shared by every process and instance through Redis when one
 * is configured (the admin endpoints' wrong tokens: a limit per process would give a guesser ten
 * tries a minute per process). While Redis does not answer, this process's own counts decide:
 * unlike the request limits, which let requests through rather than fail them, a guess limit
 * that Redis's outage lifted would be no limit.
 */
export class SharedCounters {
  readonly #local: LocalCounters;
  readonly #redis: Redis | undefined;
  readonly #prefix: string;
  readonly #windowMs: number;

  constructor(opts: { redis: Redis | undefined; prefix: string; windowMs: number; cache?: number }) {
    this.#local = new LocalCounters({ cache: opts.cache ?? 10_000 });
    // Its own connection, so the command timeout applies to it alone.
    this.#redis = opts.redis?.duplicate({ commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
    this.#redis?.on('error', () => undefined);
    this.#prefix = opts.prefix;
    this.#windowMs = opts.windowMs;
  }

  /** Counts one for `key`: how many its window holds with it, and what is left of the window. */
  async count(key: string): Promise<{ current: number; ttl: number }> {
    const local = this.#local.count(key, this.#windowMs);
    if (this.#redis === undefined) return local;
    try {
      const [current, ttl] = (await this.#redis.eval(COUNT_SCRIPT, 1, this.#prefix + key, this.#windowMs)) as [number, number];
      return { current, ttl };
    } catch {
      return local;
    }
  }

  /** What `key`'s window holds now, without counting; undefined when it holds nothing. */
  async peek(key: string): Promise<{ current: number; ttl: number } | undefined> {
    const local = this.#local.peek(key, this.#windowMs);
    if (this.#redis === undefined) return local;
    try {
      const [current, ttl] = (await this.#redis.eval(PEEK_SCRIPT, 1, this.#prefix + key)) as [number, number];
      return current === 0 ? undefined : { current, ttl };
    } catch {
      return local;
    }
  }

  async close(): Promise<void> {
    await this.#redis?.quit().catch(() => this.#redis?.disconnect());
  }
}

type LimitConfig = Pick<Config, 'rateLimit' | 'rateLimitMax' | 'rateLimitWindowMs' | 'rateLimitPrefix'>;

/** The limits' state: the global counters (for the pipeline) and the routes' plugin. */
export class RateLimits {
  /** The per-address limit every request counts against; undefined with RATE_LIMIT=off. */
  readonly global: GlobalLimit | undefined;
  readonly #config: LimitConfig;
  readonly #counters: Redis | undefined;

  constructor(config: LimitConfig, redis: Redis | undefined, log: Pick<FastifyBaseLogger, 'warn' | 'info'>) {
    this.#config = config;
    if (!config.rateLimit) return;
    // The limiter's own connection, so the command timeout applies to it alone.
    this.#counters = redis?.duplicate({ commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
    const window = config.rateLimitWindowMs;
    const max = config.rateLimitMax;
    const counters = this.#counters;
    if (counters === undefined) {
      const local = new LocalCounters();
      // An IPv4 address is its own key (normalizeIP only lowercases it); IPv6 ones go to their /64.
      this.global = { max, count: (address) => local.count(address.includes(':') ? normalizeIP(address) : address, window) };
      return;
    }
    // Without an 'error' listener ioredis prints "[ioredis] Unhandled error event" on every
    // reconnect attempt while Redis is down. Say once per outage, in the log, what it means here.
    let down = false;
    counters.on('error', (err: Error) => {
      if (down) return;
      down = true;
      log.warn({ err }, 'redis unreachable: rate limits are not enforced until it is back');
    });
    counters.on('ready', () => {
      if (!down) return;
      down = false;
      log.info('redis reachable again: rate limits enforced');
    });
    const prefix = config.rateLimitPrefix;
    this.global = {
      max,
      count: async (address) => {
        const [current, ttl] = (await counters.eval(COUNT_SCRIPT, 1, prefix + normalizeIP(address), window)) as [number, number];
        return { current, ttl };
      },
    };
  }

  /** The routes' own limits (route config `rateLimit`: loginRateLimit, registerRateLimitConfig). */
  async register(app: App): Promise<void> {
    if (!this.#config.rateLimit) return;
    await app.register(rateLimit, {
      global: false,
      ...(this.#counters ? { redis: this.#counters, nameSpace: this.#config.rateLimitPrefix } : {}),
      skipOnError: true,
      errorResponseBuilder: tooMany,
    });
  }

  async close(): Promise<void> {
    await this.#counters?.quit().catch(() => this.#counters?.disconnect());
  }
}

/**
 * Route config: login attempts counted per client IP and email (after the body is parsed), the
 * email in the normal form the account lookup uses (lib/identity.ts), so no spelling of an
 * address reaches its account under a fresh count.
 */
export function loginRateLimit(config: Pick<Config, 'rateLimitLoginMax' | 'rateLimitWindowMs'>) {
  return {
    rateLimit: {
      max: config.rateLimitLoginMax,
      timeWindow: config.rateLimitWindowMs,
      hook: 'preHandler' as const,
      keyGenerator: (request: FastifyRequest) => {
        const email = (request.body as { user?: { email?: unknown } } | undefined)?.user?.email;
        return `login:${request.ip}:${typeof email === 'string' ? emailKey(email) : ''}`;
      },
      errorResponseBuilder: tooMany,
    },
  };
}

/**
 * A hook for login and registration: password checks per client address, both routes counted
 * together, at most RATE_LIMIT_PASSWORD_MAX per RATE_LIMIT_PASSWORD_WINDOW_MS (30 in 5 s),
 * past it 429 before the body is read. The limits above count in a minute, which a flood spends
 * in its first second; a short window paces it: @fastify/rate-limit counts fixed windows only
 * (its stores, Redis included, have no sliding window or token bucket), and a short window bounds
 * any span of its length to twice the pace. Counted in Redis with the routes' own limits when
 * REDIS_URL is set, so the pace holds across processes and instances.
 *
 * The plugin's createRateLimit, not a second route config (one per route) nor its rateLimit()
 * hook: a request that met that hook skips every later limit of the plugin (the per-email one).
 */
export function passwordPace(
  app: App,
  config: Pick<Config, 'rateLimit' | 'rateLimitPasswordMax' | 'rateLimitPasswordWindowMs'>,
): ((request: FastifyRequest) => Promise<void>) | undefined {
  if (!config.rateLimit) return undefined;
  const check = app.createRateLimit({
    max: config.rateLimitPasswordMax,
    timeWindow: config.rateLimitPasswordWindowMs,
    keyGenerator: (request) => `password:${normalizeIP(request.ip)}`,
  });
  return async (request) => {
    const limit = await check(request);
    if (!limit.isAllowed && limit.isExceeded)
      throw new AppError(
        429,
        { request: ['too many logins and registrations from this client, retry later'] },
        { retryAfter: Math.max(1, limit.ttlInSeconds) },
      );
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
