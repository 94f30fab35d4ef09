// Admin endpoints: profiles of this process on demand (profiler.ts). They exist only when
// ADMIN_TOKEN is set, answer only `Authorization: Bearer <ADMIN_TOKEN>`, are never shed (an
// overloaded instance is the one worth profiling) and not in the OpenAPI document.
//
//   POST /admin/profile/cpu?seconds=10[&format=svg]   .cpuprofile JSON, or the flame graph
//   POST /admin/profile/heap?seconds=10[&format=svg]  .heapprofile JSON (allocations), or its flame graph
//   POST /admin/heap-snapshot                         .heapsnapshot (also kept in PROFILE_DIR)
//
// With WORKERS > 1 a request reaches one worker: its `x-conduit-pid` response header says which.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Type } from 'typebox';
import type { App, AppContext } from '../context.ts';
import { AppError } from '../http/errors.ts';
import { NEVER_SHED } from '../http/load-shedding.ts';
import { cpuFlamegraph, cpuProfile, heapFlamegraph, heapProfile, heapSnapshot, profileBaseName, ProfilerBusyError } from './profiler.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function registerAdminRoutes(app: App, ctx: AppContext): void {
  const token = ctx.config.adminToken;
  if (!token) return;
  const expected = digest(`Bearer ${token.expose()}`);
  const { profileDir } = ctx.config;

  void app.register(async (admin) => {
    // Equal-length digests compared in constant time: the comparison says nothing about the token.
    admin.addHook('onRequest', async (request) => {
      const given = request.headers.authorization;
      if (given === undefined || !timingSafeEqual(digest(given), expected)) {
        throw new AppError(401, { token: ['is missing or invalid'] });
      }
    });
    admin.addHook('onSend', async (_request, reply) => {
      void reply.header('x-conduit-pid', String(process.pid)).header('cache-control', 'no-store');
    });

    const Query = Type.Object({
      seconds: Type.Integer({ minimum: 1, maximum: 600, default: ctx.config.profileSeconds }),
      format: Type.Union([Type.Literal('json'), Type.Literal('svg')], { default: 'json' }),
    });
    // One profile of a kind at a time: a second request is told so (409) rather than queued.
    const busy = (err: unknown): never => {
      if (err instanceof ProfilerBusyError) throw new AppError(409, { profile: [err.message] });
      throw err;
    };
    const title = () => `Conduit, pid ${process.pid}, ${new Date().toISOString()}`;

    admin.post('/admin/profile/cpu', { config: NEVER_SHED, schema: { hide: true, querystring: Query } }, async (request, reply) => {
      const { seconds, format } = request.query as { seconds: number; format: 'json' | 'svg' };
      const profile = await cpuProfile(seconds).catch(busy);
      if (format === 'svg') return reply.type('image/svg+xml').send(cpuFlamegraph(profile, title()));
      return reply
        .type('application/json')
        .header('content-disposition', `attachment; filename="${profileBaseName()}.cpuprofile"`)
        .send(JSON.stringify(profile));
    });

    admin.post('/admin/profile/heap', { config: NEVER_SHED, schema: { hide: true, querystring: Query } }, async (request, reply) => {
      const { seconds, format } = request.query as { seconds: number; format: 'json' | 'svg' };
      const profile = await heapProfile(seconds).catch(busy);
      if (format === 'svg') return reply.type('image/svg+xml').send(heapFlamegraph(profile, title()));
      return reply
        .type('application/json')
        .header('content-disposition', `attachment; filename="${profileBaseName()}.heapprofile"`)
        .send(JSON.stringify(profile));
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
