// METRICS_PORT: /metrics on a port of its own, for deployments whose API port is public (the
// default in production, config/telemetry.ts), with the admin endpoints of the process beside it.
//
// With WORKERS > 1 the workers share the API port, so a scrape of /metrics there reaches one
// worker at random and sees only its numbers. With METRICS_PORT set, the supervisor serves the
// cluster's metrics instead: it asks every worker for its metrics over the cluster's IPC channel
// and sums them (prom-client's AggregatorRegistry: counters and histograms add up, gauges add up
// or average as each says, e.g. event-loop delays are averaged). That is the setup README
// "Metrics" recommends for WORKERS > 1; the alternative, one scrape target per process, needs a
// port per worker.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import type { Metrics } from './metrics.ts';
import { processMetrics } from './process-metrics.ts';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(opts: {
  host: string;
  port: number;
  contentType: string;
  render: () => Promise<string>;
  /** Every other request: the admin endpoints of this process (admin.ts adminServer); unset: 404. */
  other?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
}): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url !== '/metrics' && !url.startsWith('/metrics?') && opts.other) {
      opts.other(req, res);
      return;
    }
    if (req.method !== 'GET' || (url !== '/metrics' && !url.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    opts.render().then(
      (text) => res.writeHead(200, { 'content-type': opts.contentType }).end(text),
      (err: unknown) =>
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  // A scraper keeps its connection; it must not hold the process open at shutdown.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    // Production listens on 9464 unless told otherwise: a second instance on one host must say
    // which setting to change rather than fail with a bare EADDRINUSE.
    server.once('error', (err) =>
      reject(
        new Error(`METRICS_PORT ${opts.port}: ${err.message} (set METRICS_PORT to a free port, or to api to serve /metrics on PORT)`, {
          cause: err,
        }),
      ),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** In a worker: answer the supervisor's requests for this process's metrics. */
export function serveMetricsToSupervisor(metrics: Metrics): void {
  AggregatorRegistry.setRegistries([processMetrics(), metrics.registry]);
  // Constructing one installs the worker's IPC listener (prom-client's design).
  new AggregatorRegistry();
}

/**
 * In the supervisor, for the admin paths: the admin endpoints profile one process, and the
 * supervisor serves no requests worth profiling; SIGUSR2 to it profiles every worker (main.ts).
 */
export function supervisorAdmin(req: http.IncomingMessage, res: http.ServerResponse): void {
  const admin = (req.url ?? '').startsWith('/admin/');
  res.writeHead(404, { 'content-type': 'application/json' }).end(
    JSON.stringify({
      errors: {
        route: [
          admin
            ? 'not found: with WORKERS > 1 the admin endpoints are off; send SIGUSR2 to the supervisor to profile every worker into PROFILE_DIR'
            : 'not found',
        ],
      },
    }),
  );
}

/** In the supervisor: the sum over every worker. */
export function clusterMetrics(): { contentType: string; render: () => Promise<string> } {
  const aggregator = new AggregatorRegistry();
  return { contentType: aggregator.contentType, render: () => aggregator.clusterMetrics() };
}
