// Security headers and CORS for a JSON API.
import cors from '@fastify/cors';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';
import type { Config } from '../config.ts';
import type { App } from './app-type.ts';

const HELMET_OPTIONS = {
  // The API serves JSON, never HTML: nothing may load from it or frame it.
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  // Browsers call the API from other origins (the RealWorld front ends) with CORS; CORP
  // same-origin would block their no-cors loads of nothing in particular, but keep it
  // explicit that cross-origin reads are intended.
  crossOriginResourcePolicy: { policy: 'cross-origin' },
} satisfies HelmetOptions;

/**
 * The headers helmet sets for `options`, worked out once. Helmet's headers do not depend on the
 * request, and @fastify/helmet (used first) built helmet's middleware again on every request:
 * parsing the CSP directives and allocating its closures cost 3-4% of a cached read's CPU and
 * ~5% of its allocations (`npm run profile`). Helmet still decides what the headers are.
 */
function helmetHeaders(options: HelmetOptions): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader: (name: string, value: string | number) => void (headers[name.toLowerCase()] = String(value)),
    removeHeader: () => undefined,
  };
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, () => undefined);
  return Object.freeze(headers);
}

const API_HEADERS = helmetHeaders(HELMET_OPTIONS);

/** The Content-Security-Policy header value for these directives (a page with its own policy). */
export function contentSecurityPolicy(directives: Readonly<Record<string, readonly string[]>>): string {
  const own = Object.fromEntries(Object.entries(directives).map(([k, v]) => [k, [...v]]));
  const csp = helmetHeaders({ ...HELMET_OPTIONS, contentSecurityPolicy: { useDefaults: false, directives: own } })[
    'content-security-policy'
  ];
  if (!csp) throw new Error('helmet produced no Content-Security-Policy');
  return csp;
}

/**
 * Sets the security headers (idempotent). Also called by the error handler: some responses never
 * pass the onRequest hook (the router's own errors, requests refused by an earlier hook such as
 * load shedding), and they went out without these headers once (test/http/security.test.ts).
 */
export function setSecurityHeaders(_request: FastifyRequest, reply: FastifyReply): void {
  void reply.headers(API_HEADERS);
}

export async function registerSecurity(app: App, config: Pick<Config, 'corsOrigins'>): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    setSecurityHeaders(request, reply);
    done();
  });
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
