// What the service's own /metrics says about a measured window: garbage-collection time, and
// the event loop's delay.
//
// Garbage-collection time of the service over a measured window, from its own /metrics
// (nodejs_gc_duration_seconds, a histogram per GC kind): read before and after the window, the
// difference is the GC work and the pause distribution of that window alone. With WORKERS > 1
// the API port's /metrics answers for whichever worker took the connection: one worker's share.

export interface GcWindow {
  /** Seconds spent in GC pauses during the window. */
  seconds: number;
  /** That time as a share of the window, in % of one core's time. */
  percent: number;
  /** Collections in the window. */
  count: number;
  /** Pause percentiles (upper bucket bounds, ms): the histogram's resolution, not exact values. */
  p50Ms: number | null;
  p99Ms: number | null;
  maxBucketMs: number | null;
}

export interface GcSnapshot {
  sum: number;
  count: number;
  /** Cumulative count per upper bound (seconds), summed over the GC kinds. */
  buckets: Map<number, number>;
}

export function parseGc(text: string): GcSnapshot {
  const snap: GcSnapshot = { sum: 0, count: 0, buckets: new Map() };
  for (const line of text.split('\n')) {
    if (!line.startsWith('nodejs_gc_duration_seconds')) continue;
    const m = /^nodejs_gc_duration_seconds_(sum|count|bucket)(?:\{([^}]*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (m[1] === 'sum') snap.sum += value;
    else if (m[1] === 'count') snap.count += value;
    else {
      const le = /le="([^"]+)"/.exec(m[2] ?? '')?.[1];
      if (le === undefined || le === '+Inf') continue;
      snap.buckets.set(Number(le), (snap.buckets.get(Number(le)) ?? 0) + value);
    }
  }
  return snap;
}

export async function readGc(baseUrl: string): Promise<GcSnapshot | null> {
  try {
    const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    return res.ok ? parseGc(await res.text()) : null;
  } catch {
    return null;
  }
}

export function gcWindow(before: GcSnapshot, after: GcSnapshot, windowSec: number): GcWindow {
  const seconds = Math.max(0, after.sum - before.sum);
  const count = Math.max(0, after.count - before.count);
  const bounds = [...after.buckets.keys()].sort((a, b) => a - b);
  const cumulative = bounds.map((le) => (after.buckets.get(le) ?? 0) - (before.buckets.get(le) ?? 0));
  const quantile = (q: number): number | null => {
    if (count === 0) return null;
    const i = cumulative.findIndex((c) => c >= q * count);
    // Above the last finite bound: report that bound as a floor.
    return (i === -1 ? bounds.at(-1)! : bounds[i]!) * 1000;
  };
  return {
    seconds: round(seconds, 4),
    percent: windowSec > 0 ? round((seconds / windowSec) * 100, 2) : 0,
    count,
    p50Ms: quantile(0.5),
    p99Ms: quantile(0.99),
    maxBucketMs: quantile(1),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * The event loop's delay since the previous scrape (prom-client resets its delay histogram at each
 * collection, so reading once before a window and once after gives that window's figures).
 */
export async function readLag(baseUrl: string): Promise<{ mean: number; p99: number; max: number } | null> {
  try {
    const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return null;
    const text = await res.text();
    const read = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
    const ms = (x: number) => Math.round(x * 1e4) / 10;
    return {
      mean: ms(read('nodejs_eventloop_lag_mean_seconds')),
      p99: ms(read('nodejs_eventloop_lag_p99_seconds')),
      max: ms(read('nodejs_eventloop_lag_max_seconds')),
    };
  } catch {
    return null;
  }
}
