// Load shedding (src/http/load-shedding.ts) over real sockets: while the event loop is saturated,
// API requests get a fast 503 in the error shape and probes still answer; once the loop is calm
// again, requests are served. Then the real process driven well past capacity on loopback for a
// few seconds: it sheds instead of failing, admitted requests stay bounded, its memory stays
// bounded, and it recovers.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import autocannon from 'autocannon';
import { seed } from '../../scripts/seed.ts';
import { freePort } from '../../src/db/embedded.ts';
import { createPool } from '../../src/db/pool.ts';
import { createDatabase, createTestApp, TEST_JWT_SECRET, type TestApp } from '../harness.ts';
import { startService, type Service } from '../service.ts';
import { assertSecurityHeaders, json, listen, request, sleep, type WireResponse } from '../http/socket.ts';

/**
 * Keeps this process's event loop saturated, the way a CPU-bound overload does: busy chunks of
 * `chunkMs` with one turn of the loop between them (so timers fire, late, and sockets are
 * served), until `until` resolves or `maxMs` passes.
 */
async function saturate(until: Promise<unknown>, chunkMs: number, maxMs: number): Promise<void> {
  let done = false;
  void until.finally(() => (done = true));
  const end = performance.now() + maxMs;
  while (!done && performance.now() < end) {
    const chunkEnd = performance.now() + chunkMs;
    while (performance.now() < chunkEnd) {
      // busy: nothing else runs on this thread meanwhile
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Waits `ms` by performance.now(). Not sleep(ms) alone: timers count from the loop's cached
 * clock, which a busy stretch leaves behind, so such a timer fires early.
 */
async function waitReal(ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) await sleep(20);
}

describe('in one process, with SHED_MAX_EVENT_LOOP_DELAY_MS=50', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ SHED: 'on', SHED_MAX_EVENT_LOOP_DELAY_MS: '50' });
    url = await listen(t);
    // Warm: a pooled connection exists, so /readyz needs one round trip under saturation.
    assert.equal((await request(`${url}/readyz`)).status, 200);
    // /api/tags answered from the cache and then replayed by the cache's hot path: under
    // saturation it is still answered, since sending recorded bytes costs less than a refusal.
    for (let i = 0; i < 2; i++) assert.equal((await request(`${url}/api/tags`)).status, 200);
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /^conduit_cache_replayed_total [1-9]/m, 'the repeat of /api/tags was replayed');
  });
  after(() => t.close());

  test('while the event loop is saturated an API request gets 503 + Retry-After, a replayable one its recorded answer, and /healthz and /readyz answer 200', async () => {
    let release!: () => void;
    const stop = new Promise<void>((resolve) => (release = resolve));
    // ~90 ms of delay on every timer, well over the 50 ms threshold.
    const load = saturate(stop, 100, 8000);
    let results: WireResponse[];
    try {
      // Past at least two samples (250 ms apart) of the saturated loop, by the real clock.
      await waitReal(600);
      results = await Promise.all([
        request(`${url}/api/articles?limit=3&offset=7`),
        request(`${url}/healthz`),
        request(`${url}/readyz`),
        request(`${url}/api/tags`),
      ]);
    } finally {
      release();
      await load;
    }
    const [api, healthz, readyz, replayed] = results;
    assert.equal(api!.status, 503);
    assert.equal(api!.headers['retry-after'], '1');
    assert.deepEqual(json(api!), { errors: { server: ['is overloaded (event loop delay), retry later'] } });
    // Refused before helmet's own hook ran; the headers are there all the same.
    assertSecurityHeaders(api!, 'shed 503');
    assert.equal(healthz!.status, 200);
    assert.equal(readyz!.status, 200);
    assert.deepEqual(json(readyz!), { status: 'ready' });
    assert.equal(replayed!.status, 200, 'a replay is answered under overload');
    assert.deepEqual(json(replayed!), { tags: [] });
  });

  test('after the loop has been calm for ~600 ms requests are served again', async () => {
    await sleep(600);
    const res = await request(`${url}/api/tags`);
    assert.equal(res.status, 200);
    assert.deepEqual(json(res), { tags: [] });
  });

  test('a single stall sheds for at most one sample: 300 ms later requests are served', async () => {
    // The shedder reacts to the mean delay of each 250 ms sample, so a one-off 400 ms stall
    // trips at most the sample right after it (and often none: the mean dilutes it); the next
    // calm sample lifts it. Sustained overload (the test above) keeps it on.
    const end = performance.now() + 400;
    while (performance.now() < end) {
      // one long synchronous stall
    }
    await waitReal(300);
    assert.equal((await request(`${url}/api/tags`)).status, 200);
  });
});

/** The process's resident set size, in MB, from /proc (Linux). */
async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  return kb / 1024;
}

// Driven past capacity by pipelining rather than by connection count alone: 100 connections with
// 15 requests each in flight keep ~1,500 requests queued at the process, so every turn of its
// event loop has far more work than 10 ms whatever the machine's speed. (200 plain connections
// and a 20 ms threshold prove nothing: on a quiet machine the service keeps up and never sheds,
// on a loaded one the load generator starves.)
// The requests carry an If-None-Match that matches nothing, so they go through the framework (a
// 200 with the body, from the cache): the cache's hot path answers bare repeats of these reads at
// several times the rate, and with it the same flood (then 10 pipelined) was past capacity in one
// CI run (14% shed) and not in the next (0 shed, everything answered); through the framework with
// 10 pipelined, 4 of 209,172 were shed in one run. With 15, 62-99% were shed in three runs, RSS
// 199-415 MB. The hot path's share in shedding, a replayable request refused while the loop is
// saturated, is the first describe's test.
describe('the real process driven past capacity (SHED on, 100 connections × 15 pipelined, 5 s)', () => {
  let drop: () => Promise<void>;
  let s: Service;
  before(async () => {
    const db = await createDatabase();
    drop = () => db.drop();
    const pool = createPool(db.url, { dbPoolMax: 4, dbAcquireTimeoutMs: 10_000 });
    try {
      await seed(pool, { users: 50, articles: 500, comments: 500, favorites: 500, tags: 20, follows: 200, seed: 7 });
    } finally {
      await pool.end();
    }
    s = await startService({
      DATABASE_URL: db.url,
      JWT_SECRET: TEST_JWT_SECRET,
      SHED: 'on',
      SHED_MAX_EVENT_LOOP_DELAY_MS: '10',
      // One client address sends everything: the per-IP limit would answer 429 instead.
      RATE_LIMIT: 'off',
      // A request line per request would make the log, not the load, the subject; with a fixed
      // port the harness waits for /readyz instead of the "listening" line.
      LOG_LEVEL: 'warn',
      PORT: String(await freePort()),
    });
  });
  after(async () => {
    if (s.proc.exitCode === null) await s.stop('SIGKILL');
    await drop();
  });

  test('excess requests are shed with a fast 503, admitted ones keep bounded latency, RSS stays bounded, and it recovers', async (ctx) => {
    const pid = s.proc.pid!;
    const rssBefore = await rssMb(pid);
    let rssMax = rssBefore;
    const sampler = setInterval(() => {
      void rssMb(pid).then(
        (mb) => (rssMax = Math.max(rssMax, mb)),
        () => undefined,
      );
    }, 200);
    const bodies = { shed: 0, otherRefusal: 0, badRefusal: 0, other: 0 };
    const admittedMs: number[] = [];
    const paths = ['/api/articles', '/api/articles?limit=5&offset=20', '/api/tags', '/api/articles?tag=tag1'];
    let result: autocannon.Result;
    try {
      const options: autocannon.Options = {
        url: s.url,
        connections: 100,
        pipelining: 15,
        duration: 5,
        timeout: 10,
        requests: paths.map((path) => ({
          method: 'GET' as const,
          path,
          headers: { 'if-none-match': '"matches-nothing"' },
          onResponse: (status: number, body: string, _context: object, headers: IncomingHttpHeaders | undefined) => {
            if (status === 200) return;
            if (status !== 503) return void bodies.other++;
            // Every refusal is in the error shape with Retry-After, whatever refused it (the
            // shedder, or the pool's acquire timeout when the database is the queue).
            if (headers?.['retry-after'] !== '1' || !body.startsWith('{"errors":')) bodies.badRefusal++;
            else if (body.includes('is overloaded')) bodies.shed++;
            else bodies.otherRefusal++;
          },
        })),
      };
      result = await new Promise<autocannon.Result>((resolve, reject) => {
        const instance = autocannon(options, (err: unknown, res: autocannon.Result) =>
          err ? reject(err instanceof Error ? err : new Error('autocannon failed', { cause: err })) : resolve(res),
        );
        // Per response, with its latency: the admitted requests' own distribution.
        instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
          if (status === 200) admittedMs.push(ms);
        });
      });
    } finally {
      clearInterval(sampler);
    }
    const codes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, v]) => [code, v.count ?? 0]));
    admittedMs.sort((a, b) => a - b);
    const admittedP99 = admittedMs[Math.floor(admittedMs.length * 0.99)] ?? NaN;
    ctx.diagnostic(
      `${result.requests.total} requests in ${result.duration} s: status ${JSON.stringify(codes)} (${JSON.stringify(bodies)}), ` +
        `errors ${result.errors}, timeouts ${result.timeouts}; all: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms; ` +
        `admitted: p50 ${admittedMs[Math.floor(admittedMs.length / 2)]} ms, p99 ${admittedP99} ms; RSS ${rssBefore.toFixed(0)} -> max ${rssMax.toFixed(0)} MB`,
    );

    assert.ok(bodies.shed > 0, 'some requests were shed');
    // How many are admitted varies a lot from run to run (256 to 6,720 seen): while the flood
    // lasts, answering the 503s keeps the loop's delay over the 10 ms threshold, and the shedder
    // then refuses nearly everything. That it admits some, and sheds the rest fast, is the claim.
    assert.ok((codes['200'] ?? 0) > 0, 'some requests were admitted');
    assert.equal(result.errors, 0, 'no connection errors');
    assert.equal(result.timeouts, 0, 'no timeouts');
    assert.deepEqual(
      { badRefusal: bodies.badRefusal, other: bodies.other },
      { badRefusal: 0, other: 0 },
      'only 200 and 503 + Retry-After in the error shape',
    );
    // Admitted requests do not queue without bound. The figure above is what to read; the bound
    // is loose on purpose: this process drives the load with autocannon on the same two cores
    // (its own event loop delays what it measures: 3.4 s p99 was seen with other suites running
    // alongside). `npm run bench -- --overload` measures admitted latency from a separate,
    // paced load generator, shedding on against off.
    assert.ok(admittedP99 < 8000, `admitted p99 ${admittedP99} ms`);
    // Bounded, not small: the service peaks at 300-360 MB under ordinary full load in the
    // benchmarks (BENCHMARKS.md), and shedding by requests in flight lets it answer ~15,000
    // requests a second here (most of them fast 503s) instead of queueing them.
    assert.ok(rssMax < 512, `RSS peaked at ${rssMax.toFixed(0)} MB`);

    // Load gone: within seconds every request is served again (well under a second here when the
    // machine is otherwise idle; the bound leaves room for other work alongside).
    const started = performance.now();
    let status = 0;
    while (performance.now() - started < 5000) {
      status = (await request(`${s.url}/api/articles`)).status;
      if (status === 200) break;
      await sleep(100);
    }
    ctx.diagnostic(`served again ${(performance.now() - started).toFixed(0)} ms after the load stopped`);
    assert.equal(status, 200);
    const again = await Promise.all(Array.from({ length: 10 }, () => request(`${s.url}/api/articles?limit=5`)));
    assert.deepEqual(
      again.map((r) => r.status),
      Array(10).fill(200),
    );
    assert.equal(await s.stop(), 0);
  });
});
