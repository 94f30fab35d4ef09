// An open-loop, evenly paced HTTP/1.1 load for the rate sweep: request i is due at
// t0 + i / rate, whatever happened to the ones before it. A request that finds every connection
// busy waits, and its latency counts from its due time (so queueing behind slow responses
// counts: no coordinated omission).
//
// Why not autocannon's `overallRate`: it gives each connection a quota per one-second window,
// sent back to back when the window opens (autocannon/lib/httpClient.js, `reqsMadeThisSecond`), so "50% of
// peak" is really full-speed bursts for half of every second, and the latency it reports is
// the latency at peak. wrk2 paces evenly but is not packaged for Debian.
//
// Deliberately small: keep-alive sockets, one request in flight per socket, responses framed by
// content-length or chunked encoding (what Node and Fastify send).
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Histogram } from './histogram.ts';
import type { KindStats, LoadResult } from './loadgen.ts';
import type { BenchRequest } from './scenarios.ts';

export interface PacedSpec {
  url: string;
  connections: number;
  durationSec: number;
  rate: number;
  timeoutSec: number;
  onTick?: (responses: number, elapsedSec: number) => void;
  /**
   * Check for due requests on every turn of the event loop (setImmediate) instead of every
   * millisecond: requests go out within microseconds of their due time, evenly, instead of in
   * bursts of up to rate/1000 at once (at 30,000 req/s, 30 requests written together, the last
   * waiting behind the other 29 in the server: ~0.4 ms added to the median). It takes a whole
   * core: only for a generator that has a core of its own (scripts/hot-path-ratio.ts --pin; under
   * `npm run bench -- --pin` it shares CPU 0 with the harness and the embedded database, at the
   * lowest priority: bench/loadgen.ts).
   */
  spin?: boolean;
}

interface Pending {
  index: number;
  /** When latency counts from: the due time if the request had to wait for a free connection
   * (the target was still busy with earlier ones), else the moment it was written. The pump
   * runs every millisecond (unless it spins), so a request goes out up to ~1 ms after its due
   * time: that delay is the generator's, and counting it would swamp sub-millisecond latencies.
   * (So a request that falls due while the generator itself is stalled is not late by the
   * stall if a connection is free; a response that arrives during one is.) */
  from: number;
}

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * The generator's own delay is sampled by a timer of this period: what the monitor records is the
 * time between its firings (1.02–1.12 ms on an idle loop), so the lateness is that less the period.
 */
const OWN_DELAY_RESOLUTION_MS = 1;
const lateMs = (ns: number) => Math.max(0, Math.round(ns / 1e3 - OWN_DELAY_RESOLUTION_MS * 1e3) / 1e3);

class Conn {
  socket: net.Socket | undefined;
  busy: Pending | undefined;
  /** The status line of a response that arrived with no request in flight (then the connection is dropped). */
  unexpected: string | undefined;
  #buf: Buffer = Buffer.alloc(0);
  /** When the request in flight was written (performance.now()), for its timeout. */
  #sentAt = 0;

  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly onDone: (c: Conn, p: Pending, status: number) => void;
  readonly onFail: (c: Conn, p: Pending | undefined, timeout: boolean) => void;

  constructor(
    host: string,
    port: number,
    timeoutMs: number,
    onDone: (c: Conn, p: Pending, status: number) => void,
    onFail: (c: Conn, p: Pending | undefined, timeout: boolean) => void,
  ) {
    this.host = host;
    this.port = port;
    this.timeoutMs = timeoutMs;
    this.onDone = onDone;
    this.onFail = onFail;
  }

  connect(): void {
    this.#buf = Buffer.alloc(0);
    const s = net.connect(this.port, this.host);
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => this.#data(d));
    s.on('error', () => this.#fail(false));
    s.on('close', () => {
      if (this.socket === s) this.#fail(false);
    });
    this.socket = s;
  }

  send(p: Pending, bytes: Buffer): void {
    this.busy = p;
    this.socket!.write(bytes);
    this.#sentAt = performance.now();
  }

  /** Fails the request in flight if it has waited past the timeout (runPaced checks every 100 ms). */
  expire(now: number): void {
    if (this.busy !== undefined && now - this.#sentAt > this.timeoutMs) this.#fail(true);
  }

  close(): void {
    const s = this.socket;
    this.socket = undefined;
    s?.destroy();
  }

  #fail(timeout: boolean): void {
    const p = this.busy;
    this.busy = undefined;
    this.close();
    this.onFail(this, p, timeout);
  }

  #data(d: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    const end = this.#buf.indexOf(CRLF2);
    if (end === -1) return;
    const head = this.#buf.subarray(0, end).toString('latin1');
    const status = Number(head.slice(9, 12));
    const body = this.#buf.subarray(end + 4);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let complete: boolean;
    let used: number;
    if (length) {
      used = Number(length[1]);
      complete = body.length >= used;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const r = chunkedEnd(body);
      complete = r !== -1;
      used = r;
    } else {
      complete = true; // 204/304 or no body
      used = 0;
    }
    if (!complete) return;
    this.#buf = body.length > used ? body.subarray(used) : Buffer.alloc(0);
    const p = this.busy;
    if (!p) {
      // A response nobody asked for (a soak once met one after ~60,000 requests, on a connection
      // the server was closing): reported in the result, the connection dropped and opened
      // again, never a crash of the generator.
      this.unexpected = head.split('\r\n', 1)[0] ?? head;
      this.#fail(false);
      return;
    }
    this.busy = undefined;
    this.onDone(this, p, status);
  }
}

/** The length of a complete chunked body at the start of `b`, or -1 when more is to come. */
function chunkedEnd(b: Buffer): number {
  let at = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', at);
    if (eol === -1) return -1;
    const size = parseInt(b.subarray(at, eol).toString('latin1'), 16);
    if (Number.isNaN(size)) return -1;
    if (size === 0) {
      const trailerEnd = b.indexOf(CRLF2, eol);
      return trailerEnd === -1 ? -1 : trailerEnd + 4;
    }
    at = eol + 2 + size + 2;
    if (at > b.length) return -1;
  }
}

export async function runPaced(requests: readonly BenchRequest[], spec: PacedSpec): Promise<LoadResult> {
  const url = new URL(spec.url);
  const host = url.hostname;
  const port = Number(url.port);
  const wire = requests.map((r) => {
    const body = r.body === undefined ? undefined : Buffer.from(r.body);
    const headers = { host: url.host, ...r.headers, ...(body ? { 'content-length': String(body.length) } : {}) };
    const head = `${r.method} ${r.path} HTTP/1.1\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n`;
    return body ? Buffer.concat([Buffer.from(head), body]) : Buffer.from(head);
  });

  const all = new Histogram();
  const ok = new Histogram();
  const byKind = new Map<string, { h: Histogram; non2xx: number }>();
  const statusCodes: Record<string, number> = {};
  let responses = 0;
  let non2xx = 0;
  let errors = 0;
  let timeouts = 0;
  let sent = 0;
  const backlog: Pending[] = [];
  const idle: Conn[] = [];
  const interval = 1000 / spec.rate;
  let t0 = 0;
  let stopping = false;

  const dispatch = (c: Conn, p: Pending) => c.send(p, wire[p.index % wire.length]!);
  const onDone = (c: Conn, p: Pending, status: number) => {
    if (!stopping) {
      const us = (performance.now() - p.from) * 1000;
      responses++;
      all.record(us);
      statusCodes[status] = (statusCodes[status] ?? 0) + 1;
      const bad = status < 200 || status > 299;
      if (bad) non2xx++;
      else ok.record(us);
      const kind = requests[p.index % requests.length]!.kind;
      let k = byKind.get(kind);
      if (!k) byKind.set(kind, (k = { h: new Histogram(), non2xx: 0 }));
      k.h.record(us);
      if (bad) k.non2xx++;
    }
    const next = backlog.shift();
    if (next && !stopping) dispatch(c, next);
    else idle.push(c);
  };
  const unexpected: string[] = [];
  const onFail = (c: Conn, p: Pending | undefined, timeout: boolean) => {
    if (stopping) return;
    // A connection that fails is not idle any more: the pump must not hand it a request before
    // it has reconnected. (Left in the idle list, a connection the server had closed for being
    // idle past its keep-alive timeout was handed a request with no socket: the generator
    // crashed 100 s into a soak at 200 req/s, where most of the 16 connections sit idle.)
    const at = idle.indexOf(c);
    if (at !== -1) idle.splice(at, 1);
    // Only a request in flight makes it an error; an idle connection closed by the server (its
    // keep-alive timeout) is ordinary, and is simply opened again.
    if (p && timeout) timeouts++;
    else if (p) errors++;
    if (c.unexpected !== undefined) {
      if (unexpected.length < 10) unexpected.push(c.unexpected);
      c.unexpected = undefined;
    }
    if (p) backlog.unshift(p);
    setTimeout(() => {
      if (stopping) return;
      c.connect();
      const next = backlog.shift();
      if (next) dispatch(c, next);
      else idle.push(c);
    }, 50);
  };

  const conns = Array.from({ length: spec.connections }, () => new Conn(host, port, spec.timeoutSec * 1000, onDone, onFail));
  await Promise.all(
    conns.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          c.connect();
          c.socket!.once('connect', () => resolve());
          c.socket!.once('error', reject);
        }),
    ),
  );
  idle.push(...conns);
  // One timer for every connection's timeout, not one per request: a timer set and cleared per
  // request was most of what the generator allocated, and its old-space collections (a 5 ms
  // mark-compact every ~200 ms at 30,000 req/s) showed up as the server's tail latency.
  const expiry = setInterval(() => {
    const now = performance.now();
    for (const c of conns) c.expire(now);
  }, 100);

  // The generator's own stalls (its GC, or the machine taking its CPU away): a request due or
  // answered during one is late by the stall, whichever side caused it. Reported next to the
  // latencies so a tail the generator saw in its own event loop is not blamed on the server.
  const ownDelay = monitorEventLoopDelay({ resolution: OWN_DELAY_RESOLUTION_MS });
  ownDelay.enable();
  t0 = performance.now();
  const end = t0 + spec.durationSec * 1000;
  let lastTick = t0;
  await new Promise<void>((resolve) => {
    let pump: NodeJS.Timeout | undefined;
    const tick = () => {
      const now = performance.now();
      if (now >= end) {
        clearInterval(pump);
        resolve();
        return;
      }
      const dueCount = Math.floor((now - t0) / interval) + 1;
      while (sent < dueCount) {
        const due = t0 + sent * interval;
        const c = idle.pop();
        if (c) dispatch(c, { index: sent, from: performance.now() });
        else backlog.push({ index: sent, from: due });
        sent++;
      }
      if (spec.onTick && now - lastTick >= 1000) {
        lastTick = now;
        spec.onTick(responses, (now - t0) / 1000);
      }
      if (spec.spin) setImmediate(tick);
    };
    if (spec.spin) setImmediate(tick);
    else pump = setInterval(tick, 1);
  });
  // Requests still waiting or in flight at the end were offered but not answered in time.
  const unanswered = backlog.length + conns.filter((c) => c.busy).length;
  stopping = true;
  clearInterval(expiry);
  ownDelay.disable();
  for (const c of conns) c.close();
  const durationSec = (performance.now() - t0) / 1000;
  const kinds: Record<string, KindStats> = {};
  for (const [kind, k] of byKind) kinds[kind] = { count: k.h.count, non2xx: k.non2xx, latencyMs: k.h.percentilesMs() };
  return {
    engine: 'paced (bench/paced.ts)',
    durationSec: Math.round(durationSec * 1000) / 1000,
    responses,
    requestsPerSec: Math.round((responses / durationSec) * 10) / 10,
    latencyMs: all.percentilesMs(),
    errors,
    timeouts,
    non2xx,
    statusCodes,
    byKind: kinds,
    bytesPerSec: 0,
    offeredRate: spec.rate,
    unanswered,
    latency2xxMs: ok.percentilesMs(),
    generatorDelayMs: { p99: lateMs(ownDelay.percentile(99)), max: lateMs(ownDelay.max) },
    ...(unexpected.length ? { unexpected } : {}),
  };
}
