// Process-wide metrics (prom-client's defaults, the event-loop delay and utilisation): one set
// per process, however many apps it builds (tests build many); served with each app's own
// (metrics.ts) and summed over a cluster's workers (metrics-server.ts).
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

/** V8's young-generation scavenges take a fraction of a millisecond, full mark-compacts tens. */
const GC_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1];

// The event-loop monitor and the GC observer they install are process-wide too.
let processRegistry: Registry | undefined;

export function processMetrics(): Registry {
  if (processRegistry) return processRegistry;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, gcDurationBuckets: GC_BUCKETS });
  replaceEventLoopDelayGauges(registry);
  // Event-loop utilisation as a counter of seconds busy and idle: rate() of the busy one is the
  // share of time the loop was working (1 = saturated), for any scrape interval and any number
  // of scrapers, which a gauge "since the last scrape" would not be.
  new Counter({
    name: 'nodejs_eventloop_time_seconds_total',
    help: 'Time the event loop spent busy (state="active") and waiting for I/O (state="idle"); rate(active) is its utilisation.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const elu = performance.eventLoopUtilization();
      this.reset();
      this.inc({ state: 'active' }, elu.active / 1000);
      this.inc({ state: 'idle' }, elu.idle / 1000);
    },
  });
  processRegistry = registry;
  return registry;
}

/** The event-loop delay summary gauges, as prom-client names them, and their cluster aggregators. */
const LAG_GAUGES = [
  ['min', 'The minimum recorded event loop delay.', 'min'],
  ['max', 'The maximum recorded event loop delay.', 'max'],
  ['mean', 'The mean of the recorded event loop delays.', 'average'],
  ['stddev', 'The standard deviation of the recorded event loop delays.', 'average'],
  ['p50', 'The 50th percentile of the recorded event loop delays.', 'average'],
  ['p90', 'The 90th percentile of the recorded event loop delays.', 'average'],
  ['p99', 'The 99th percentile of the recorded event loop delays.', 'average'],
] as const;

/**
 * prom-client's event-loop delay gauges read a histogram it resets on every scrape; a scrape
 * that finds it empty (the first one, which also starts the monitor, or two scrapes within its
 * 10 ms resolution) reported min 9223372036.854776 s (the empty histogram's int64 maximum) and
 * mean and stddev NaN. These replace them under the same names: a scrape that finds no new
 * samples repeats the last values (zero before the first), so every value is finite.
 */
function replaceEventLoopDelayGauges(registry: Registry): void {
  for (const [stat] of LAG_GAUGES) registry.removeSingleMetric(`nodejs_eventloop_lag_${stat}_seconds`);
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const last = { min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0 };
  const read = () => {
    if (histogram.count === 0) return;
    const ns = {
      min: histogram.min,
      max: histogram.max,
      mean: histogram.mean,
      stddev: histogram.stddev,
      p50: histogram.percentile(50),
      p90: histogram.percentile(90),
      p99: histogram.percentile(99),
    };
    for (const [stat] of LAG_GAUGES) last[stat] = Number.isFinite(ns[stat]) ? ns[stat] / 1e9 : 0;
    histogram.reset();
  };
  for (const [i, [stat, help, aggregator]] of LAG_GAUGES.entries()) {
    new Gauge({
      name: `nodejs_eventloop_lag_${stat}_seconds`,
      help,
      aggregator,
      registers: [registry],
      collect() {
        // The first of them reads (and resets) the histogram for the whole scrape.
        if (i === 0) read();
        this.set(last[stat]);
      },
    });
  }
}
