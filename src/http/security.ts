// Security headers (@fastify/helmet, helmet's official Fastify plugin) and CORS for a JSON API.
import cors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import type { FastifyReply, FastifyRequest } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';
import type { Config } from '../config.ts';
import type { App } from '../context.ts';

/** A Content-Security-Policy's directives, as helmet takes them (camelCase names). */
export type CspDirectives = Readonly<Record<string, readonly string[]>>;

const API_CSP: CspDirectives = { defaultSrc: ["'none'"], frameAncestors: ["'none'"] };

/** Helmet's options for a response under `directives`: the API's, or a page's own (/docs). */
export function helmetOptions(directives: CspDirectives = API_CSP) {
  return {
    // The API serves JSON, never HTML: nothing may load from it or frame it. A page served here
    // (/docs) names what it loads in its own route's options.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: Object.fromEntries(Object.entries(directives).map(([name, values]) => [name, [...values]])),
    },
    // Browsers call the API from other origins (the RealWorld front ends) with CORS; CORP
    // same-origin would block their no-cors loads of nothing in particular, but keep it
    // explicit that cross-origin reads are intended.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
  } satisfies HelmetOptions;
}

// The same headers for responses that never reach the plugin's onRequest hook (below).
const apiHeaders = helmet(helmetOptions());

/**
 * Sets the API's security headers (idempotent). Called by the error handler: some responses never
 * pass the onRequest hooks (the router's own errors, requests refused by an earlier hook such as
 * load shedding), and every response carries these headers (test/http/security.test.ts).
 */
export function setSecurityHeaders(request: FastifyRequest, reply: FastifyReply): void {
  apiHeaders(request.raw, reply.raw, () => undefined);
}

export async function registerSecurity(app: App, config: Pick<Config, 'corsOrigins'>): Promise<void> {
  await app.register(fastifyHelmet, helmetOptions());
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
