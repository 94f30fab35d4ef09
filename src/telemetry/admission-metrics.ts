// The HTTP connections the process holds and what their bounds did (http/connections.ts), and
// the requests waiting for a place (http/pipeline.ts), read at each scrape from the counts kept anyway.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Connections } from '../http/connections.ts';
import type { Pipeline } from '../http/pipeline.ts';

export function registerAdmissionMetrics(connections: Connections, pipeline: Pipeline, registers: Registry[]): void {
  new Gauge({
    name: 'conduit_requests_waiting',
    help: 'Requests waiting for a place among SHED_MAX_IN_FLIGHT (at most SHED_QUEUE_TIMEOUT_MS, then 503).',
    registers,
    collect() {
      this.set(pipeline.stats.waiting);
    },
  });
  const { stats } = connections;
  new Gauge({
    name: 'conduit_http_connections',
    help: 'Open HTTP connections (HTTP_MAX_CONNECTIONS bounds them).',
    registers,
    collect() {
      this.set(stats.open);
    },
  });
  new Counter({
    name: 'conduit_http_connections_refused_total',
    help: 'New connections closed at once because no idle connection could make room: bound "process" (HTTP_MAX_CONNECTIONS) or "address" (HTTP_MAX_CONNECTIONS_PER_ADDRESS).',
    labelNames: ['bound'],
    registers,
    collect() {
      this.reset();
      this.inc({ bound: 'process' }, stats.refusedProcess);
      this.inc({ bound: 'address' }, stats.refusedAddress);
    },
  });
  new Counter({
    name: 'conduit_http_idle_connections_closed_total',
    help: 'Idle connections closed by the bounds: to make "room" for a new one, or idle past HTTP_KEEP_ALIVE_UNDER_PRESSURE_MS under "pressure".',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      this.inc({ reason: 'room' }, stats.closedForRoom);
      this.inc({ reason: 'pressure' }, stats.closedUnderPressure);
    },
  });
}
