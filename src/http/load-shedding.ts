// Load shedding: when the process is saturated, refuse new work at the door with a fast 503
// instead of letting every request slow down. Two signals:
//   - requests in flight (SHED_MAX_IN_FLIGHT): past the bound, a new request waits for a place
//     up to SHED_QUEUE_TIMEOUT_MS, then is refused (http/waiting.ts says why it waits). It bounds
//     the work inside the process: a pipelined flood, or requests piling up on a slow database.
//     The pipeline keeps that count and its queue; this class keeps the other signal.
//   - the event loop's delay, sampled every 250 ms (and the heap, when a bound is set): a loop
//     stalled by CPU-heavy work (a flood of pipelined requests, a runaway computation).
// Neither sees overload spread over many connections with one request each: at twice the peak
// rate over 400 connections the loop's delay stayed at 14-17 ms mean and fewer than 256 requests
// were ever in the process, while clients waited 1.2 s p50 (BENCHMARKS.md, "Twice the peak
// rate"). That queue is in the clients and the kernel's socket buffers, out of the process's
// sight; a load balancer's connection limit is what bounds it.
// Either way requests are refused before any other work is done for them (http/pipeline.ts).
//
// Written here rather than taken from @fastify/under-pressure, which was tried first: its first
// sample includes the event loop's start-up work (schema compilation), so a freshly started
// instance refused its first requests, /readyz included. Sampling starts at onReady here.
// The in-flight count is the pipeline's: every request, a replayed one included, is in it.
// Liveness, readiness and metrics are never shed: an overloaded instance is alive, its readiness
// is its own report, and its metrics are how an operator sees the overload.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Config } from '../config.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answer even when the process is overloaded, and never count towards a rate limit. */
    neverShed?: boolean;
  }
}

/** Route config for routes that must answer even under pressure. */
export const NEVER_SHED = { neverShed: true } as const;

const SAMPLE_MS = 250;
const RESOLUTION_MS = 10;

type ShedConfig = Pick<Config, 'shed' | 'shedMaxEventLoopDelayMs' | 'shedMaxHeapUsedBytes'>;

/** Whether the process is saturated now (`reason`); the request pipeline (pipeline.ts) asks it. */
export class LoadShedder {
  /** Why requests are being refused now (event loop or heap), or null. */
  reason: string | null = null;
  /** The event-loop delay of the last sample, in ms. */
  eventLoopDelayMs = 0;
  readonly #config: ShedConfig;
  readonly #histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  #timer: NodeJS.Timeout | undefined;

  constructor(config: ShedConfig) {
    this.#config = config;
  }

  /** Starts sampling (at the app's onReady: start-up work is not a stalled loop). */
  start(): void {
    if (!this.#config.shed || this.#timer !== undefined) return;
    this.#histogram.enable();
    this.#timer = setInterval(() => this.#sample(), SAMPLE_MS).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#histogram.disable();
  }

  #sample(): void {
    const config = this.#config;
    // Each recorded value includes the sampling interval itself; the excess is the delay.
    this.eventLoopDelayMs = Math.max(0, this.#histogram.mean / 1e6 - RESOLUTION_MS);
    this.#histogram.reset();
    const heapUsed = config.shedMaxHeapUsedBytes > 0 ? process.memoryUsage().heapUsed : 0;
    if (config.shedMaxEventLoopDelayMs > 0 && this.eventLoopDelayMs > config.shedMaxEventLoopDelayMs) {
      this.reason = 'event loop delay';
    } else if (config.shedMaxHeapUsedBytes > 0 && heapUsed > config.shedMaxHeapUsedBytes) {
      this.reason = 'heap';
    } else {
      this.reason = null;
    }
  }
}
