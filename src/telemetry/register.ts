// The one call buildApp makes for observability, before any other hook or route: tracing (when
// tracing.ts started it), metrics and /metrics, the admin endpoints (when ADMIN_TOKEN is set).
import type { App, AppContext } from '../context.ts';
import type { LoadShedder } from '../http/load-shedding.ts';
import { registerAdminRoutes } from './admin.ts';
import { registerTracing } from './http-tracing.ts';
import { registerMetrics } from './metrics.ts';
import { tracingActive } from './spans.ts';

export interface Telemetry {
  /** The load shedder is registered later (after the hooks that count requests). */
  watchShedder(shedder: LoadShedder): void;
}

export async function registerTelemetry(app: App, ctx: AppContext): Promise<Telemetry> {
  if (tracingActive()) await registerTracing(app, ctx);
  // METRICS_PORT set: /metrics is served there (main.ts), not next to the API.
  const metrics = registerMetrics(app, ctx, { route: ctx.config.metricsPort === undefined });
  registerAdminRoutes(app, ctx);
  return { watchShedder: (s) => metrics.watchShedder(s) };
}
