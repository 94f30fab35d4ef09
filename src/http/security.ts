// Security headers and CORS for a JSON API.
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { Config } from '../config.ts';
import type { App } from '../context.ts';

export async function registerSecurity(app: App, config: Pick<Config, 'corsOrigins'>): Promise<void> {
  await app.register(helmet, {
    // The API serves JSON, never HTML: nothing may load from it or frame it.
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    // Browsers call the API from other origins (the RealWorld front ends) with CORS; CORP
    // same-origin would block their no-cors loads of nothing in particular, but keep it
    // explicit that cross-origin reads are intended.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
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
