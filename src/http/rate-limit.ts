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

const MINUTE = 60_000;

function tooMany(_request: FastifyRequest, context: { ttl: number }): AppError {
  return new AppError(429, { request: ['too many requests, retry later'] }, { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) });
}

export async function registerRateLimit(app: App, config: Pick<Config, 'rateLimit' | 'rateLimitMax'>, redis: Redis | undefined): Promise<void> {
  if (!config.rateLimit) return;
  await app.register(rateLimit, {
    global: true,
    max: config.rateLimitMax,
    timeWindow: MINUTE,
    ...(redis ? { redis, nameSpace: 'conduit:ratelimit:' } : {}),
    skipOnError: true,
    // Headers only on refusals: three extra headers on every response cost bytes for nothing.
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: tooMany,
  });
}

/** Route config: login attempts counted per client IP and email (after the body is parsed). */
export function loginRateLimit(config: Pick<Config, 'rateLimitLoginMax'>) {
  return {
    rateLimit: {
      max: config.rateLimitLoginMax,
      timeWindow: MINUTE,
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
export function registerRateLimitConfig(config: Pick<Config, 'rateLimitRegisterMax'>) {
  return {
    rateLimit: {
      max: config.rateLimitRegisterMax,
      timeWindow: MINUTE,
      keyGenerator: (request: FastifyRequest) => `register:${request.ip}`,
      errorResponseBuilder: tooMany,
    },
  };
}
