// Security headers (helmet's, tuned for a JSON API) and CORS.
import cors from '@fastify/cors';
import type { FastifyReply, FastifyRequest } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { Config } from '../config.ts';
import type { App } from './app-type.ts';

/** A Content-Security-Policy's directives, as helmet takes them (camelCase names). */
export type CspDirectives = Readonly<Record<string, readonly string[]>>;

const API_CSP: CspDirectives = { defaultSrc: ["'none'"], frameAncestors: ["'none'"] };

function helmetOptions(directives: CspDirectives) {
  return {
    // The API serves JSON, never HTML: nothing may load from it or frame it. A page served here
    // (/docs) names what it loads with its own directives.
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

/**
 * The headers helmet sets under these CSP directives (the API's by default), worked out once:
 * helmet decides them, and they do not depend on the request. Helmet hands them out only by writing them into a response, so
 * it writes them into one of node:http's own, never sent. Per request this is one
 * `reply.headers()`. @fastify/helmet builds helmet's middleware again on every request: measured
 * side by side it cost 30-55% more CPU per response on the pipeline path, far past the 5% that
 * would make the official plugin the choice (docs/operations.md, "Security headers").
 */
export function securityHeaders(directives: CspDirectives = API_CSP): Readonly<Record<string, string>> {
  const request = new IncomingMessage(new Socket());
  const response = new ServerResponse(request);
  helmet(helmetOptions(directives))(request, response, () => undefined);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.getHeaders())) headers[name] = String(value);
  return Object.freeze(headers);
}

const API_HEADERS = securityHeaders();

/**
 * Sets the security headers (idempotent). Also called by the error handler: some responses never
 * pass the onRequest hook (the router's own errors, requests refused by an earlier hook such as
 * load shedding), and every response carries them (test/http/security.test.ts).
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
