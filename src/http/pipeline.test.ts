// The request pipeline (pipeline.ts) on a real HTTP server, with a stand-in router: the order of
// its decisions, what it marks a refused request with, the replay branch, and what it observes.
// With the whole app: src/cache/hot-path.test.ts (replays), src/telemetry/metrics.test.ts,
// test/timing/shedding.test.ts and test/system/rate-limit.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { noteCachedAnswer } from '../cache/answer.ts';
import { Replays } from '../cache/hot-path.ts';
import { ResponseCache } from '../cache/response-cache.ts';
import { tag } from '../cache/tags.ts';
import { NeverRefused } from './never-refused.ts';
import { kRefusal, kSampled, Pipeline, type PipelineParts, type Window } from './pipeline.ts';

function never(...routes: string[]): NeverRefused {
  const n = new NeverRefused();
  for (const route of routes) n.add(route);
  return n;
}

interface Seen {
  routed: { url: string; refusal: IncomingMessage[typeof kRefusal]; sampled: boolean | undefined }[];
  observed: { method: string; route: string; status: number }[];
}

async function serve(parts: Partial<PipelineParts>) {
  const seen: Seen = { routed: [], observed: [] };
  const pipeline = new Pipeline({
    lifecycle: { draining: false },
    overload: undefined,
    maxInFlight: 0,
    waitMs: 0,
    maxWaiting: 100,
    limit: undefined,
    clientAddress: (req) => req.socket.remoteAddress ?? '',
    neverRefused: never('/healthz', '/docs/assets/:name'),
    sample: undefined,
    replays: undefined,
    observe: (method, route, status) => void seen.observed.push({ method, route, status }),
    log: undefined,
    connections: undefined,
    ...parts,
  });
  const router = (req: IncomingMessage, res: ServerResponse) => {
    seen.routed.push({ url: req.url!, refusal: req[kRefusal], sampled: req[kSampled] });
    res.writeHead(req[kRefusal]?.status ?? 200).end('routed');
  };
  const server = http.createServer((req, res) => pipeline.handle(req, res, router));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Plain node:http: no Accept-Encoding of its own (a replay is found by URL and Accept-Encoding).
  const get = async (path: string) => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => http.get(base + path, resolve).on('error', reject));
    let body = '';
    for await (const chunk of res) body += String(chunk);
    return { status: res.statusCode!, body };
  };
  // The 'close' listener runs after the client has its answer: wait for the count to settle.
  const settled = async () => {
    while (pipeline.stats.inFlight > 0) await new Promise((r) => setTimeout(r, 1));
  };
  return { pipeline, seen, get, settled, base, close: () => new Promise((r) => server.close(r)) };
}

describe('the request pipeline', () => {
  const servers: { close(): Promise<unknown> }[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));
  const started = async (parts: Partial<PipelineParts>) => {
    const s = await serve(parts);
    servers.push(s);
    return s;
  };

  test('an overloaded process marks requests refused (503) and routes them; never-refused URLs pass; each is observed once', async () => {
    let reason: string | null = 'event loop delay';
    const s = await started({ overload: () => reason });
    assert.equal((await s.get('/api/tags')).status, 503);
    assert.equal((await s.get('/healthz')).status, 200);
    reason = null;
    assert.equal((await s.get('/api/tags')).status, 200);
    await s.settled();
    assert.deepEqual(
      s.seen.routed.map((r) => [r.url, r.refusal?.status, r.refusal?.key]),
      [
        ['/api/tags', 503, 'server'],
        ['/healthz', undefined, undefined],
        ['/api/tags', undefined, undefined],
      ],
    );
    assert.match(s.seen.routed[0]!.refusal!.reason, /overloaded \(event loop delay\)/);
    assert.equal(s.pipeline.stats.shed, 1);
    assert.deepEqual(
      s.seen.observed.map((o) => o.status),
      [503, 200, 200],
    );
    assert.equal(s.pipeline.stats.inFlight, 0);
  });

  /** A limit that holds each admitted request until `release()`: requests in flight on demand. */
  function holdingLimit() {
    const held: (() => void)[] = [];
    return {
      limit: { max: 1000, count: () => new Promise<Window>((resolve) => held.push(() => resolve({ current: 1, ttl: 1 }))) },
      held: () => held.length,
      release: () => {
        for (const r of held.splice(0)) r();
      },
    };
  }

  test('past SHED_MAX_IN_FLIGHT with no wait: 503 at once; refused ones do not count as in flight', async () => {
    const h = holdingLimit();
    const s = await started({ maxInFlight: 2, waitMs: 0, limit: h.limit });
    const first = [s.get('/a'), s.get('/b')];
    while (h.held() < 2) await new Promise((r) => setTimeout(r, 1));
    assert.equal((await s.get('/c')).status, 503);
    assert.equal((await s.get('/healthz')).status, 200, 'never-refused URLs pass the bound');
    h.release();
    assert.deepEqual(
      (await Promise.all(first)).map((r) => r.status),
      [200, 200],
    );
    await s.settled();
    assert.equal(s.pipeline.stats.shed, 1);
    assert.match(s.seen.routed.find((r) => r.url === '/c')!.refusal!.reason, /requests in flight/);
    assert.deepEqual({ inFlight: s.pipeline.stats.inFlight, admitted: s.pipeline.stats.admitted }, { inFlight: 0, admitted: 0 });
  });

  test('past SHED_MAX_IN_FLIGHT a request waits for a place, in arrival order, and is served when one frees', async () => {
    const h = holdingLimit();
    const s = await started({ maxInFlight: 1, waitMs: 10_000, limit: h.limit });
    const a = s.get('/a');
    while (h.held() < 1) await new Promise((r) => setTimeout(r, 1));
    const b = s.get('/b');
    const c = s.get('/c');
    while (s.pipeline.stats.waiting < 2) await new Promise((r) => setTimeout(r, 1));
    assert.equal(h.held(), 1, 'the waiting ones are not admitted yet');
    // Each release lets the next one in, oldest first.
    for (let admitted = 1; admitted <= 3; admitted++) {
      while (h.held() < 1) await new Promise((r) => setTimeout(r, 1));
      h.release();
    }
    assert.deepEqual(
      (await Promise.all([a, b, c])).map((r) => r.status),
      [200, 200, 200],
    );
    await s.settled();
    assert.deepEqual(
      s.seen.routed.map((r) => r.url),
      ['/a', '/b', '/c'],
    );
    assert.equal(s.pipeline.stats.shed, 0);
    assert.equal(s.pipeline.stats.waiting, 0);
  });

  test('a request that waited SHED_QUEUE_TIMEOUT_MS without a place gets 503', async () => {
    const h = holdingLimit();
    const s = await started({ maxInFlight: 1, waitMs: 100, limit: h.limit });
    const a = s.get('/a');
    while (h.held() < 1) await new Promise((r) => setTimeout(r, 1));
    const asked = performance.now();
    const b = await s.get('/b');
    assert.equal(b.status, 503);
    assert.ok(performance.now() - asked >= 90, 'refused once its wait ran out, not before');
    h.release();
    assert.equal((await a).status, 200);
    await s.settled();
    assert.deepEqual(
      { waiting: s.pipeline.stats.waiting, inFlight: s.pipeline.stats.inFlight, shed: s.pipeline.stats.shed },
      { waiting: 0, inFlight: 0, shed: 1 },
    );
  });

  test('a waiting request whose client hangs up leaves the queue, neither answered nor refused', async () => {
    const h = holdingLimit();
    const s = await started({ maxInFlight: 1, waitMs: 10_000, limit: h.limit });
    const a = s.get('/a');
    while (h.held() < 1) await new Promise((r) => setTimeout(r, 1));
    const gone = http.get(`${s.base}/b`).on('error', () => {});
    while (s.pipeline.stats.waiting < 1) await new Promise((r) => setTimeout(r, 1));
    gone.destroy();
    // Dropped by the queue's own sweep: no place had to free up for it to be noticed.
    while (s.pipeline.stats.waiting > 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(s.pipeline.stats.inFlight, 1);
    h.release();
    assert.equal((await a).status, 200);
    await s.settled();
    assert.deepEqual({ waiting: s.pipeline.stats.waiting, shed: s.pipeline.stats.shed }, { waiting: 0, shed: 0 });
    assert.deepEqual(
      s.seen.routed.map((r) => r.url),
      ['/a'],
    );
  });

  test('the per-address limit: over max, a 429 refusal with Retry-After from the window; at once or after a promise', async () => {
    let current = 0;
    let shared = false;
    const s = await started({
      limit: {
        max: 2,
        count: (): Window | Promise<Window> => {
          const w = { current: ++current, ttl: 2500 };
          return shared ? Promise.resolve(w) : w;
        },
      },
    });
    assert.deepEqual([(await s.get('/x')).status, (await s.get('/x')).status, (await s.get('/x')).status], [200, 200, 429]);
    const refused = s.seen.routed[2]!.refusal!;
    assert.deepEqual(
      { status: refused.status, key: refused.key, retryAfter: refused.retryAfter },
      { status: 429, key: 'request', retryAfter: 3 },
    );
    for (const url of ['/healthz', '/healthz?verbose', '/docs/assets/app.js']) {
      assert.equal((await s.get(url)).status, 200, `${url}: never counted, never refused`);
    }
    assert.equal(current, 3);
    shared = true;
    current = 0;
    assert.deepEqual([(await s.get('/x')).status, (await s.get('/x')).status, (await s.get('/x')).status], [200, 200, 429]);
    assert.equal(s.pipeline.stats.rateLimited, 2);
  });

  test('counters that fail let the request through', async () => {
    const s = await started({ limit: { max: 1, count: () => Promise.reject(new Error('redis down')) } });
    assert.equal((await s.get('/x')).status, 200);
    assert.equal(s.seen.routed[0]!.refusal, undefined);
  });

  test('the replay branch: a recorded answer is written without the router, unless tracing wants the request or the process drains', async () => {
    const cache = new ResponseCache({ ttlMs: 60_000, maxBytes: 1_000_000, compression: false, compressionThresholdBytes: 1024 });
    const replays = new Replays(cache);
    const body = Buffer.from('{"tags":["a"]}');
    const entry = await cache.get(
      'tags',
      async () => ({ data: ['a'], tags: [tag.tagsInUse] }),
      () => body,
    );
    const lifecycle = { draining: false };
    let sampled = false;
    let overload: string | null = null;
    const s = await started({ replays, lifecycle, sample: () => sampled, overload: () => overload });
    // What the router answered for this URL, as ResponseCache.send notes it and app.ts records it.
    const raw = { method: 'GET', url: '/api/tags', httpVersion: '1.1', headers: { host: 'h' } } as IncomingMessage;
    noteCachedAnswer({ raw } as FastifyRequest, entry!, body);
    replays.record(raw, 200, () => ({ 'content-type': 'application/json', 'content-length': body.length }), '/api/tags');

    assert.deepEqual(await s.get('/api/tags'), { status: 200, body: '{"tags":["a"]}' });
    assert.equal(s.seen.routed.length, 0);
    assert.equal(replays.stats.replayed, 1);
    overload = 'event loop delay';
    assert.deepEqual(
      await s.get('/api/tags'),
      { status: 200, body: '{"tags":["a"]}' },
      'overloaded: a recorded answer is cheaper than a refusal',
    );
    assert.equal(s.pipeline.stats.shed, 0);
    overload = null;
    sampled = true;
    assert.equal((await s.get('/api/tags')).body, 'routed', 'a sampled request gets its span through the router');
    assert.equal(s.seen.routed[0]!.sampled, true);
    sampled = false;
    lifecycle.draining = true;
    assert.equal((await s.get('/api/tags')).body, 'routed', 'draining: the router asks the client to close');
    lifecycle.draining = false;
    cache.invalidate([tag.tagsInUse]);
    assert.equal((await s.get('/api/tags')).body, 'routed', 'an invalidated entry is not replayed');
    assert.equal(replays.size, 0);
    await s.settled();
    assert.deepEqual(s.seen.observed[0], { method: 'GET', route: '/api/tags', status: 200 }, 'the replay is observed under its route');
    s.seen.observed.splice(1, 1);
    assert.deepEqual(
      s.seen.observed.slice(1).map((o) => o.route),
      ['unmatched', 'unmatched', 'unmatched'],
      'without Fastify, the stand-in router has no route',
    );
  });

  test('a client that hangs up is no longer in flight and is not observed', async () => {
    const s = await started({
      limit: { max: 10, count: () => new Promise<Window>((resolve) => setTimeout(() => resolve({ current: 1, ttl: 1 }), 100)) },
    });
    const req = http.get(`${s.base}/x`);
    req.on('error', () => undefined);
    for (let waited = 0; s.pipeline.stats.inFlight === 0 && waited < 5000; waited += 5) await new Promise((r) => setTimeout(r, 5));
    assert.equal(s.pipeline.stats.inFlight, 1);
    req.destroy();
    await new Promise((r) => setTimeout(r, 150));
    await s.settled();
    assert.equal(s.pipeline.stats.inFlight, 0);
    assert.deepEqual(s.seen, { routed: [], observed: [] }, 'the count came back after the client left: nothing routed');
  });
});
