// Rate limiting: a generous per-IP limit on every route, and tight ones on login (per IP and
// email: password guessing) and registration (per IP). With Redis the counters are shared by
// every instance; if Redis is unreachable, requests are let through (skipOnError) rather than
// failed: the limiter protects the service, it must not become its outage.
import rateLimit from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';
import type { App } from '../context.ts';
import { AppError } from './errors.ts';

function tooMany(_request: FastifyRequest, context: { ttl: number }): AppError {
  return new AppError(429, { request: ['too many requests, retry later'] }, { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) });
}

export async function registerRateLimit(
  app: App,
  config: Pick<Config, 'rateLimit' | 'rateLimitMax' | 'rateLimitWindowMs' | 'rateLimitPrefix'>,
  redis: Redis | undefined,
): Promise<void> {
  if (!config.rateLimit) return;
  if (redis) {
    // Without an 'error' listener ioredis printed "[ioredis] Unhandled error event" to stderr
    // on every reconnect attempt while Redis was down (test/http/rate-limit.test.ts). Say once
    // per outage, in the log, what it means here.
    let down = false;
    redis.on('error', (err: Error) => {
      if (down) return;
      down = true;
      app.log.warn({ err }, 'redis unreachable: rate limits are not enforced until it is back');
    });
    redis.on('ready', () => {
      if (!down) return;
      down = false;
      app.log.info('redis reachable again: rate limits enforced');
    });
  }
  await app.register(rateLimit, {
    global: true,
    max: config.rateLimitMax,
    // RATE_LIMIT_WINDOW_MS (was a fixed minute): configurable so a test can watch a limit reset.
    timeWindow: config.rateLimitWindowMs,
    // RATE_LIMIT_PREFIX (was fixed): deployments or test runs sharing one Redis stay apart.
    ...(redis ? { redis, nameSpace: config.rateLimitPrefix } : {}),
    skipOnError: true,
    // Headers only on refusals: three extra headers on every response cost bytes for nothing.
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: tooMany,
  });
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
