// Load shedding: when the process is saturated, refuse new work at the door with a fast 503
// instead of letting every request slow down. Two signals:
//   - requests in flight (SHED_MAX_IN_FLIGHT): past the bound, a new request is refused at once.
//     It bounds the work queued inside the process: a pipelined flood, or requests piling up on
//     a slow database.
//   - the event loop's delay, sampled every 250 ms (and the heap, when a bound is set): a loop
//     stalled by CPU-heavy work (a flood of pipelined requests, a runaway computation).
// Neither sees overload spread over many connections with one request each: at twice the peak
// rate over 400 connections the loop's delay stayed at 14-17 ms mean and fewer than 256 requests
// were ever in the process, while clients waited 1.2 s p50 (BENCHMARKS.md, "Twice the peak
// rate"). That queue is in the clients and the kernel's socket buffers, out of the process's
// sight; a load balancer's connection limit is what bounds it.
// Either way requests are refused before any other work is done for them.
//
// Written here rather than taken from @fastify/under-pressure, which was tried first: its first
// sample includes the event loop's start-up work (schema compilation), so a freshly started
// instance refused its first requests, /readyz included. Sampling starts at onReady here.
// Liveness, readiness and metrics are never shed: an overloaded instance is alive, its readiness
// is its own report, and its metrics are how an operator sees the overload.
import type { ServerResponse } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Config } from '../config.ts';
import type { App } from './app-type.ts';
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
const kCounted = Symbol('conduit.inFlight');
const RESOLUTION_MS = 10;

export interface LoadShedder {
  /** Why requests are being refused now, or null. */
  readonly reason: string | null;
  /** Requests refused so far. */
  readonly shed: number;
  /** The event-loop delay of the last sample, in ms. */
  readonly eventLoopDelayMs: number;
  /** Requests admitted and not yet closed. */
  readonly inFlight: number;
  /** Why a request arriving now would be refused, or null (also asked by the cache's hot path). */
  refusal(): string | null;
}

export function registerLoadShedding(
  app: App,
  config: Pick<Config, 'shed' | 'shedMaxEventLoopDelayMs' | 'shedMaxHeapUsedBytes' | 'shedMaxInFlight'>,
): LoadShedder {
  const maxInFlight = config.shedMaxInFlight;
  const state = {
    reason: null as string | null,
    shed: 0,
    eventLoopDelayMs: 0,
    inFlight: 0,
    // With SHED=off nothing sets a reason or counts requests in flight: never a refusal.
    refusal: (): string | null => state.reason ?? (maxInFlight > 0 && state.inFlight >= maxInFlight ? 'requests in flight' : null),
  };
  if (!config.shed) return state;
  // A response leaves the count when it is finished or when its connection closes first (a client
  // that hangs up), whichever comes first, and once: the flag lives on the response object, so
  // one function serves every response, with no closure per request.
  const left = function (this: ServerResponse & { [kCounted]?: boolean }) {
    if (!this[kCounted]) return;
    this[kCounted] = false;
    state.inFlight--;
  };
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
  app.addHook('onRequest', (request, reply, done) => {
    const reason = state.refusal();
    if (reason === null || request.routeOptions.config.neverShed) {
      if (maxInFlight > 0) {
        state.inFlight++;
        const res = reply.raw as ServerResponse & { [kCounted]?: boolean };
        res[kCounted] = true;
        res.once('finish', left).once('close', left);
      }
      done();
      return;
    }
    state.shed++;
    done(new AppError(503, { server: [`is overloaded (${reason}), retry later`] }, { retryAfter: 1 }));
  });
  return state;
}
