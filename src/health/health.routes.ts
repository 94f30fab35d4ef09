// Liveness and readiness for load balancers and orchestrators. Liveness says only that the
// process answers (restarting it would not help a database outage); readiness says whether this
// instance should get traffic: database reachable, schema migrated, not draining.
import { Type } from 'typebox';
import type { App, AppContext } from '../context.ts';
import { isMigrated } from '../db/migrate.ts';
import { NEVER_SHED } from '../http/load-shedding.ts';
import { NotReady } from '../http/schemas.ts';

// A probe must answer within the orchestrator's probe timeout even when the database hangs.
const READY_CHECK_MS = 1000;

export function registerHealthRoutes(app: App, ctx: AppContext): void {
  const tags = ['Operations'];
  const Status = Type.Object({ status: Type.String() });

  app.get('/healthz', { config: NEVER_SHED, schema: { summary: 'Liveness', tags, response: { 200: Status } } }, async () => ({
    status: 'ok',
  }));

  app.get(
    '/readyz',
    {
      config: NEVER_SHED,
      schema: { summary: 'Readiness: database reachable and migrated, not draining', tags, response: { 200: Status, 503: NotReady } },
    },
    async (_request, reply) => {
      if (ctx.lifecycle.draining) return reply.code(503).send({ errors: { server: ['is shutting down'] } });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, READY_CHECK_MS, 'timeout')));
      try {
        const result = await Promise.race([isMigrated(ctx.db, ctx.migrations), timeout]);
        if (result === 'timeout') return reply.code(503).send({ errors: { database: ['did not answer in time'] } });
        if (!result) return reply.code(503).send({ errors: { database: ['is not migrated'] } });
        return { status: 'ready' };
      } catch {
        return reply.code(503).send({ errors: { database: ['is unreachable'] } });
      } finally {
        clearTimeout(timer);
      }
    },
  );
}
