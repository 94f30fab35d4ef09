// Security headers and CORS for a JSON API.
import cors from '@fastify/cors';
import helmetPlugin, { type FastifyHelmetOptions } from '@fastify/helmet';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Config } from '../config.ts';
import type { App } from '../context.ts';

const HELMET_OPTIONS = {
  // The API serves JSON, never HTML: nothing may load from it or frame it.
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  // Browsers call the API from other origins (the RealWorld front ends) with CORS; CORP
  // same-origin would block their no-cors loads of nothing in particular, but keep it
  // explicit that cross-origin reads are intended.
  crossOriginResourcePolicy: { policy: 'cross-origin' },
} satisfies FastifyHelmetOptions;

// Some responses never pass @fastify/helmet's onRequest hook: the router's own errors (bad
// percent-encoding, over-long parameter: app.ts frameworkErrors) and requests refused by an
// earlier onRequest hook (load shedding). They went out without these headers
// (test/http/security.test.ts). The same helmet middleware the plugin runs, built once from the
// same options, sets them there; `helmet` is resolved from @fastify/helmet, whose dependency it is.
type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: Error) => void) => void;
const helmet = createRequire(import.meta.resolve('@fastify/helmet'))('helmet') as (options: object) => Middleware;
const applyHelmet = helmet(HELMET_OPTIONS);

/** Sets the security headers on a response that may have skipped the helmet hook (idempotent). */
export function setSecurityHeaders(request: FastifyRequest, reply: FastifyReply): void {
  applyHelmet(request.raw, reply.raw, () => undefined);
}

export async function registerSecurity(app: App, config: Pick<Config, 'corsOrigins'>): Promise<void> {
  await app.register(helmetPlugin, HELMET_OPTIONS);
  await app.register(cors, {
    // Permissive by default for development and the RealWorld front ends; production sets
    // CORS_ORIGINS to its own origins.
    origin: config.corsOrigins === '*' ? '*' : [...config.corsOrigins],
    methods: ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
    exposedHeaders: ['X-Request-Id', 'Retry-After'],
    maxAge: 600,
    // A bare OPTIONS (no Access-Control-Request-Method) is a legal request, not an error; the
    // strict default answered it 400 with a text/plain body outside the error shape.
    strictPreflight: false,
  });
}
