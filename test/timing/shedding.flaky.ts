// Load shedding (src/http/load-shedding.ts) over real sockets: while the event loop is saturated,
// API requests get a fast 503 in the error shape and probes still answer; once the loop is calm
// again, requests are served. Then the real process driven well past capacity on loopback for a
// few seconds: it sheds instead of failing, its memory stays bounded, and it recovers.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import autocannon from 'autocannon';
import { seed } from '../../scripts/seed.ts';
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
  });
  after(() => t.close());

  test('while the event loop is saturated an API request gets 503 + Retry-After, and /healthz and /readyz answer 200', async () => {
    let release!: () => void;
    const stop = new Promise<void>((resolve) => (release = resolve));
    // ~90 ms of delay on every timer, well over the 50 ms threshold.
    const load = saturate(stop, 100, 8000);
    let results: WireResponse[];
    try {
      // Past at least two samples (250 ms apart) of the saturated loop, by the real clock.
      await waitReal(600);
      results = await Promise.all([request(`${url}/api/tags`), request(`${url}/healthz`), request(`${url}/readyz`)]);
    } finally {
      release();
      await load;
    }
    const [api, healthz, readyz] = results;
    assert.equal(api!.status, 503);
    assert.equal(api!.headers['retry-after'], '1');
    assert.deepEqual(json(api!), { errors: { server: ['is overloaded (event loop delay), retry later'] } });
    // Refused before helmet's own hook ran; the headers are there all the same.
    assertSecurityHeaders(api!, 'shed 503');
    assert.equal(healthz!.status, 200);
    assert.equal(readyz!.status, 200);
    assert.deepEqual(json(readyz!), { status: 'ready' });
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

describe('the real process driven past capacity (SHED on, 200 connections, 5 s)', () => {
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
      // Low, so that this machine's capacity is crossed for certain at 200 connections.
      SHED_MAX_EVENT_LOOP_DELAY_MS: '20',
      // One client address sends everything: the per-IP limit would answer 429 instead.
      RATE_LIMIT: 'off',
    });
  });
  after(async () => {
    if (s.proc.exitCode === null) await s.stop('SIGKILL');
    await drop();
  });

  test('excess requests are shed with 503, nothing else fails, RSS stays under 300 MB, and it recovers', async (ctx) => {
    const pid = s.proc.pid!;
    const rssBefore = await rssMb(pid);
    let rssMax = rssBefore;
    const sampler = setInterval(() => {
      void rssMb(pid).then((mb) => (rssMax = Math.max(rssMax, mb)), () => undefined);
    }, 200);
    const bodies = { shed: 0, otherServiceUnavailable: 0, other: 0 };
    let result: autocannon.Result;
    try {
      result = await autocannon({
        url: `${s.url}/api/articles`,
        connections: 200,
        duration: 5,
        timeout: 10,
        requests: [
          {
            method: 'GET',
            path: '/api/articles',
            onResponse: (status, body) => {
              if (status === 200) return;
              if (status === 503 && body.includes('is overloaded')) bodies.shed++;
              else if (status === 503) bodies.otherServiceUnavailable++;
              else bodies.other++;
            },
          },
        ],
      });
    } finally {
      clearInterval(sampler);
    }
    // Drop this run's request log lines from memory: tens of thousands of them.
    s.logs.length = 0;
    const codes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, v]) => [code, v.count ?? 0]));
    ctx.diagnostic(
      `${result.requests.total} requests in ${result.duration} s: status ${JSON.stringify(codes)}, ` +
        `errors ${result.errors}, timeouts ${result.timeouts}; latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ` +
        `max ${result.latency.max} ms; RSS ${rssBefore.toFixed(0)} -> max ${rssMax.toFixed(0)} MB`,
    );

    assert.ok(bodies.shed > 0, 'some requests were shed');
    assert.ok((codes['200'] ?? 0) > 0, 'some requests were admitted');
    assert.equal(result.errors, 0, 'no connection errors');
    assert.equal(result.timeouts, 0, 'no timeouts');
    assert.deepEqual(Object.keys(codes).sort(), ['200', '503']);
    assert.deepEqual({ otherServiceUnavailable: bodies.otherServiceUnavailable, other: bodies.other }, { otherServiceUnavailable: 0, other: 0 });
    assert.ok(rssMax < 300, `RSS peaked at ${rssMax.toFixed(0)} MB`);

    // Load gone: within seconds every request is served again (0.2-0.9 s here when the machine
    // is otherwise idle; the bound leaves room for other test files running alongside).
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
    assert.deepEqual(again.map((r) => r.status), Array(10).fill(200));
    assert.equal(await s.stop(), 0);
  });
});
