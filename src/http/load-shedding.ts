// Load shedding: when the process is saturated, refuse new work at the door with a fast 503
// instead of letting every request slow down. The event loop's delay is sampled every 250 ms (and
// the heap, when a bound is set); while the last sample is over its threshold, requests are
// refused before any other work is done for them.
//
// Written here rather than taken from @fastify/under-pressure, which was tried first: its first
// sample includes the event loop's start-up work (schema compilation), so a freshly started
// instance refused its first requests, /readyz included. Sampling starts at onReady here.
// Liveness, readiness and metrics are never shed: an overloaded instance is alive, its readiness
// is its own report, and its metrics are how an operator sees the overload.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Config } from '../config.ts';
import type { App } from '../context.ts';
import { AppError } from './errors.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answer even when the process is overloaded. */
    neverShed?: boolean;
  }
}

/** Route config for routes that must answer even under pressure. */
export const NEVER_SHED = { neverShed: true } as const;

const SAMPLE_MS = 250;
const RESOLUTION_MS = 10;

export interface LoadShedder {
  /** Why requests are being refused now, or null. */
  readonly reason: string | null;
  /** Requests refused so far. */
  readonly shed: number;
  /** The event-loop delay of the last sample, in ms. */
  readonly eventLoopDelayMs: number;
}

export function registerLoadShedding(
  app: App,
  config: Pick<Config, 'shed' | 'shedMaxEventLoopDelayMs' | 'shedMaxHeapUsedBytes'>,
): LoadShedder {
  const state = { reason: null as string | null, shed: 0, eventLoopDelayMs: 0 };
  if (!config.shed) return state;
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  let timer: NodeJS.Timeout | undefined;

  const sample = () => {
    // Each recorded value includes the sampling interval itself; the excess is the delay.
    state.eventLoopDelayMs = Math.max(0, histogram.mean / 1e6 - RESOLUTION_MS);
    histogram.reset();
    const heapUsed = config.shedMaxHeapUsedBytes > 0 ? process.memoryUsage().heapUsed : 0;
    if (config.shedMaxEventLoopDelayMs > 0 && state.eventLoopDelayMs > config.shedMaxEventLoopDelayMs) {
      state.reason = 'event loop delay';
    } else if (config.shedMaxHeapUsedBytes > 0 && heapUsed > config.shedMaxHeapUsedBytes) {
      state.reason = 'heap';
    } else {
      state.reason = null;
    }
  };

  app.addHook('onReady', async () => {
    histogram.enable();
    timer = setInterval(sample, SAMPLE_MS).unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    histogram.disable();
  });
  // Synchronous and first: a refused request costs one comparison, no promise, no parsing.
  app.addHook('onRequest', (request, _reply, done) => {
    if (state.reason === null || request.routeOptions.config.neverShed) {
      done();
      return;
    }
    state.shed++;
    done(new AppError(503, { server: [`is overloaded (${state.reason}), retry later`] }, { retryAfter: 1 }));
  });
  return state;
}
