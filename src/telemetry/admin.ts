// Admin endpoints: profiles of this process on demand (profiler.ts). They exist only when
// ADMIN_TOKEN is set, answer only `Authorization: Bearer <ADMIN_TOKEN>`, are never shed (an
// overloaded instance is the one worth profiling) and not in the OpenAPI document.
//
//   POST /admin/profile/cpu?seconds=10[&format=pprof]   .cpuprofile JSON, or pprof (.cpu.pb.gz)
//   POST /admin/profile/heap?seconds=10[&format=pprof][&promoted=true]
//                                                       .heapprofile JSON (allocations; promoted: only
//                                                       what no scavenge freed), or pprof
//   POST /admin/heap-snapshot                           .heapsnapshot (also kept in PROFILE_DIR)
//
// Chrome DevTools and speedscope open the JSON ones, `go tool pprof` and Pyroscope the pprof ones;
// each draws the flame graph (docs/observability.md).
//
// Where: on METRICS_PORT when it is set (production's default), beside /metrics and never on the
// API port (adminServer below, started by main.ts); otherwise on PORT, next to the API. With
// WORKERS > 1 the workers share PORT, so a request there reaches one worker (its `x-conduit-pid`
// response header says which); the supervisor, which serves METRICS_PORT, has no app to profile
// and answers /admin/ there with 404 and the way to profile the workers: SIGUSR2 to it profiles
// every worker into PROFILE_DIR.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyReply } from 'fastify';
import { Type } from 'typebox';
import type { App, AppContext } from '../context.ts';
import { AppError, errorHandler, notFoundHandler } from '../http/errors.ts';
import { NEVER_SHED } from '../http/load-shedding.ts';
import { normalizeIP } from '@fastify/rate-limit';
import { SharedCounters } from '../http/rate-limit.ts';
import { validatorCompiler } from '../http/validation.ts';
import { cpuProfileToPprof, heapProfileToPprof } from './pprof.ts';
import {
  CPU_INTERVAL_US,
  cpuProfile,
  HEAP_INTERVAL_BYTES,
  heapProfile,
  heapSnapshot,
  profileBaseName,
  ProfilerBusyError,
} from './profiler.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Wrong tokens an address may send in a window before every admin request from it is 429 until
 * the window ends: guessing is bounded to this many tries a minute per address, a mistyped token
 * costs its operator at most a minute. Counted in Redis when REDIS_URL is set, so the bound holds
 * across processes and instances (per process otherwise, and while Redis is away). Counted here
 * and not by RATE_LIMIT_MAX, which allows thousands of requests a minute and is off when
 * RATE_LIMIT=off.
 */
export const ADMIN_FAILURES_MAX = 10;
export const ADMIN_FAILURES_WINDOW_MS = 60_000;

/**
 * The admin endpoints as a request handler of their own, for the METRICS_PORT server
 * (metrics-server.ts): a Fastify instance beside the app, with the app's error shape and
 * validation, in this process. Undefined without ADMIN_TOKEN.
 */
export async function adminServer(
  ctx: AppContext,
): Promise<{ handle: (req: IncomingMessage, res: ServerResponse) => void; close: () => Promise<void> } | undefined> {
  if (!ctx.config.adminToken) return undefined;
  const admin = Fastify({ logger: false }).withTypeProvider<TypeBoxTypeProvider>();
  admin.setValidatorCompiler(validatorCompiler);
  admin.setErrorHandler(errorHandler);
  admin.setNotFoundHandler(notFoundHandler);
  registerAdminRoutes(admin, ctx);
  await admin.ready();
  return { handle: (req, res) => admin.routing(req, res), close: () => admin.close() };
}

export function registerAdminRoutes(app: App, ctx: AppContext): void {
  const token = ctx.config.adminToken;
  if (!token) return;
  const expected = digest(`Bearer ${token.expose()}`);
  const { profileDir } = ctx.config;

  void app.register(async (admin) => {
    const failures = new SharedCounters({
      redis: ctx.redis,
      prefix: `${ctx.config.rateLimitPrefix}admin-failures:`,
      windowMs: ADMIN_FAILURES_WINDOW_MS,
    });
    admin.addHook('onClose', () => failures.close());
    const refuse = (ttl: number) =>
      new AppError(
        429,
        { token: ['too many invalid tokens from this address, retry later'] },
        { retryAfter: Math.max(1, Math.ceil(ttl / 1000)) },
      );
    // Equal-length digests compared in constant time: the comparison says nothing about the token.
    admin.addHook('onRequest', async (request) => {
      // An IPv6 client holds a /64: its addresses are one guesser (the rate limiter's key).
      const address = normalizeIP(request.ip);
      // An address over its failures is refused before its token is looked at: past the limit a
      // guess, right or wrong, learns nothing.
      const seen = await failures.peek(address);
      if (seen !== undefined && seen.current >= ADMIN_FAILURES_MAX) throw refuse(seen.ttl);
      const given = request.headers.authorization;
      if (given === undefined || !timingSafeEqual(digest(given), expected)) {
        await failures.count(address);
        throw new AppError(401, { token: ['is missing or invalid'] });
      }
    });
    admin.addHook('onSend', async (_request, reply) => {
      void reply.header('x-conduit-pid', String(process.pid)).header('cache-control', 'no-store');
    });

    const Query = Type.Object({
      seconds: Type.Integer({ minimum: 1, maximum: 600, default: ctx.config.profileSeconds }),
      format: Type.Union([Type.Literal('json'), Type.Literal('pprof')], { default: 'json' }),
    });
    const HeapQuery = Type.Object({ ...Query.properties, promoted: Type.Boolean({ default: false }) });
    // One profile of a kind at a time: a second request is told so (409) rather than queued.
    const busy = (err: unknown): never => {
      if (err instanceof ProfilerBusyError) throw new AppError(409, { profile: [err.message] });
      throw err;
    };
    type Format = 'json' | 'pprof';
    const download = (reply: FastifyReply, name: string, format: Format, json: object, pprof: () => Buffer) =>
      format === 'pprof'
        ? reply.type('application/octet-stream').header('content-disposition', `attachment; filename="${name}.pb.gz"`).send(pprof())
        : reply.type('application/json').header('content-disposition', `attachment; filename="${name}"`).send(JSON.stringify(json));

    admin.post('/admin/profile/cpu', { config: NEVER_SHED, schema: { hide: true, querystring: Query } }, async (request, reply) => {
      const { seconds, format } = request.query as { seconds: number; format: Format };
      const profile = await cpuProfile(seconds).catch(busy);
      const name = profileBaseName();
      return download(reply, format === 'pprof' ? `${name}.cpu` : `${name}.cpuprofile`, format, profile, () =>
        cpuProfileToPprof(profile, CPU_INTERVAL_US),
      );
    });

    admin.post('/admin/profile/heap', { config: NEVER_SHED, schema: { hide: true, querystring: HeapQuery } }, async (request, reply) => {
      const { seconds, format, promoted } = request.query as { seconds: number; format: Format; promoted: boolean };
      const started = new Date();
      const profile = await heapProfile(seconds, { promoted }).catch(busy);
      const name = profileBaseName();
      return download(reply, format === 'pprof' ? `${name}.heap` : `${name}.heapprofile`, format, profile, () =>
        heapProfileToPprof(profile, HEAP_INTERVAL_BYTES, started),
      );
    });

    admin.post('/admin/heap-snapshot', { config: NEVER_SHED, schema: { hide: true } }, async (_request, reply) => {
      await mkdir(profileDir, { recursive: true });
      const file = path.join(profileDir, `${profileBaseName()}.heapsnapshot`);
      await heapSnapshot(file).catch(busy);
      return reply
        .type('application/json')
        .header('content-disposition', `attachment; filename="${path.basename(file)}"`)
        .send(createReadStream(file));
    });
  });
}
