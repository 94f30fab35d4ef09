// The one call buildApp makes for observability, before any other hook or route: tracing (when
// tracing.ts started it), metrics and /metrics, the admin endpoints (when ADMIN_TOKEN is set), the last two on the API
// port only when METRICS_PORT does not give them a port of their own.
import type { App, AppContext } from '../context.ts';
import { registerAdminRoutes } from './admin.ts';
import { registerTracing } from './http-tracing.ts';
import { registerMetrics, type MetricsSources } from './metrics.ts';
import { tracingActive } from './spans.ts';

export async function registerTelemetry(app: App, ctx: AppContext, sources: Omit<MetricsSources, 'route'>): Promise<void> {
  if (tracingActive()) await registerTracing(app);
  // METRICS_PORT set: /metrics is served there (main.ts), not next to the API.
  registerMetrics(app, ctx, { ...sources, route: ctx.config.metricsPort === undefined });
  // METRICS_PORT set: the admin endpoints too (admin.ts adminServer, started by main.ts).
  if (ctx.config.metricsPort === undefined) registerAdminRoutes(app, ctx);
}
