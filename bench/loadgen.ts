// The load generator: its own process (`node bench/loadgen.ts <spec.json>`), so it never shares
// an event loop with what it measures. One process serves every run against one target (warm-up,
// peak, the sweep's steps): the harness sends a step, the generator runs it and reports a tick
// per second, then the step's result, over IPC. Closed-loop steps (as fast as the target
// answers) run on autocannon; paced steps (a fixed offered rate) on bench/paced.ts.
//
// Latency is recorded here, per response, with microsecond resolution and per request kind
// (autocannon's own histogram keeps whole milliseconds and only 2xx responses).
import autocannon from 'autocannon';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Histogram, type Percentiles } from './histogram.ts';
import { runPaced } from './paced.ts';
import type { BenchRequest } from './scenarios.ts';

export interface LoadSpec {
  url: string;
  connections: number;
  timeoutSec: number;
  /** A JSON file with the BenchRequest[] to cycle through. */
  requestsFile: string;
  /** Paced steps spin (bench/paced.ts `spin`): the generator has a core of its own (--pin). */
  spin?: boolean;
}

export interface LoadStep {
  durationSec: number;
  /** Requests per second over all connections, evenly paced (bench/paced.ts); absent: autocannon, as fast as it answers. */
  rate?: number | undefined;
  /** Paced steps: connections for this step instead of the session's (the overload step opens many). */
  connections?: number | undefined;
}

export interface KindStats {
  count: number;
  non2xx: number;
  latencyMs: Percentiles;
}

export interface LoadResult {
  engine: string;
  durationSec: number;
  /** Responses of any status. */
  responses: number;
  requestsPerSec: number;
  latencyMs: Percentiles;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  byKind: Record<string, KindStats>;
  bytesPerSec: number;
  /** Paced runs (the sweep): the rate asked for, and requests still queued or in flight at the end. */
  offeredRate?: number;
  unanswered?: number;
  /** Paced runs: the latency of the 2xx responses alone (under overload: the admitted requests). */
  latency2xxMs?: Percentiles;
  /** Paced runs: how late the generator's own event loop ran (its GC, or the machine), 99th percentile and worst. */
  generatorDelayMs?: { p99: number; max: number };
  /** Paced runs: status lines of responses that arrived with no request in flight (counted as errors). */
  unexpected?: string[];
}

/** Harness -> generator. */
export type LoadCommand = { type: 'step'; step: LoadStep } | { type: 'end' };

/** Generator -> harness. */
export type LoadMessage =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'tick'; responses: number; elapsedSec: number }
  | { type: 'result'; result: LoadResult }
  | { type: 'error'; message: string };

/** Per-connection state autocannon passes to setupRequest: the kind of the request in flight. */
interface KindContext {
  kind?: string;
}

/**
 * autocannon internals read to attribute a response to the request it answers: with pipelining
 * 1, the connection's context still describes the request in flight when 'response' fires
 * (the next request is set up right after).
 */
interface ClientInternals {
  requestIterator?: { context?: KindContext };
}

function send(msg: LoadMessage): void {
  if (process.send) process.send(msg);
  else process.stdout.write(`${JSON.stringify(msg)}\n`);
}

async function run(spec: LoadSpec, requests: readonly BenchRequest[], step: LoadStep): Promise<LoadResult> {
  if (step.rate) {
    send({ type: 'started' });
    return runPaced(requests, {
      url: spec.url,
      connections: step.connections ?? spec.connections,
      durationSec: step.durationSec,
      rate: step.rate,
      timeoutSec: spec.timeoutSec,
      spin: spec.spin === true,
      onTick: (responses, elapsedSec) => send({ type: 'tick', responses, elapsedSec }),
    });
  }
  const all = new Histogram();
  const byKind = new Map<string, { h: Histogram; non2xx: number }>();
  const statusCodes: Record<string, number> = {};
  let responses = 0;
  let non2xx = 0;

  let finish!: (err: unknown, result: autocannon.Result) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = (err, result) => (err ? reject(err instanceof Error ? err : new Error('autocannon failed', { cause: err })) : resolve(result));
  });
  // One request entry whose setupRequest hands out the list's requests in order, shared by all
  // connections. A list of N entries would make autocannon build N request buffers for every
  // connection before the first request (seconds, and hundreds of MB, for 4,000 x 50), blocking
  // the generator's event loop while the first connections already wait for their responses.
  let next = 0;
  const entry: autocannon.Request = {
    setupRequest: (req: autocannon.Request, context: KindContext) => {
      const r = requests[next++ % requests.length]!;
      context.kind = r.kind;
      return { ...req, method: r.method, path: r.path, headers: { ...req.headers, ...r.headers }, body: r.body ?? '' };
    },
  };
  const instance = autocannon(
    {
      url: spec.url,
      connections: spec.connections,
      duration: step.durationSec,
      timeout: spec.timeoutSec,
      pipelining: 1,
      requests: [entry],
    },
    (err, result) => finish(err, result),
  );
  const started = performance.now();
  send({ type: 'started' });

  instance.on('response', (client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    responses++;
    const us = responseTimeMs * 1000;
    all.record(us);
    statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
    const bad = statusCode < 200 || statusCode > 299;
    if (bad) non2xx++;
    const kind = (client as ClientInternals).requestIterator?.context?.kind ?? 'all';
    let k = byKind.get(kind);
    if (!k) byKind.set(kind, (k = { h: new Histogram(), non2xx: 0 }));
    k.h.record(us);
    if (bad) k.non2xx++;
  });
  const ticker = setInterval(() => send({ type: 'tick', responses, elapsedSec: (performance.now() - started) / 1000 }), 1000);

  const result = await done;
  clearInterval(ticker);
  const durationSec = (performance.now() - started) / 1000;
  return {
    engine: `autocannon ${(await import('autocannon/package.json', { with: { type: 'json' } })).default.version}`,
    durationSec: round(durationSec, 3),
    responses,
    requestsPerSec: round(responses / durationSec, 1),
    latencyMs: all.percentilesMs(),
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx,
    statusCodes,
    byKind: Object.fromEntries(
      [...byKind].map(([kind, k]) => [kind, { count: k.h.count, non2xx: k.non2xx, latencyMs: k.h.percentilesMs() }]),
    ),
    bytesPerSec: round(result.throughput.average, 0),
  };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file || !process.send) {
    process.stderr.write('usage: node bench/loadgen.ts <spec.json>, with an IPC channel (started by the harness)\n');
    process.exit(2);
  }
  const spec = JSON.parse(readFileSync(file, 'utf8')) as LoadSpec;
  const requests = JSON.parse(readFileSync(spec.requestsFile, 'utf8')) as BenchRequest[];
  // A generator that spins is always ready to run: on the core it shares with the harness and
  // the embedded database (--pin), it must yield to them whenever they have work (a request
  // that misses the cache waits for the database), so it takes the lowest priority there is.
  if (spec.spin) os.setPriority(19);
  let queue = Promise.resolve();
  process.on('message', (cmd: LoadCommand) => {
    // Steps run one after the other, in the order they were sent.
    queue = queue.then(async () => {
      if (cmd.type === 'end') {
        process.disconnect?.();
        return;
      }
      try {
        send({ type: 'result', result: await run(spec, requests, cmd.step) });
      } catch (err) {
        send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      }
    });
  });
  // The harness going away closes the channel: stop then, whatever is running.
  process.once('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}
