import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';
import { parsePrometheus, type Sample } from '../../test/prometheus.ts';
import { startMetricsServer } from './metrics-server.ts';

async function scrape(client: Client) {
  const res = await client.get('/metrics');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(res.text);
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

describe('GET /metrics', () => {
  let t: TestApp;
  let client: Client;
  before(async () => {
    t = await createTestApp({ DB_POOL_MAX: '2' });
    client = new Client(t.app);
  });
  after(() => t.close());

  test('is Prometheus text with the process, request, pool, cache and refusal families', async () => {
    const { types } = await scrape(client);
    const expected: Record<string, string> = {
      http_server_request_duration_seconds: 'histogram',
      http_server_active_requests: 'gauge',
      db_client_connection_count: 'gauge',
      db_client_connection_max: 'gauge',
      db_client_connection_pending_requests: 'gauge',
      db_client_connection_wait_time_seconds: 'histogram',
      db_client_connection_failures_total: 'counter',
      conduit_cache_requests_total: 'counter',
      conduit_cache_evictions_total: 'counter',
      conduit_cache_invalidations_total: 'counter',
      conduit_cache_entries: 'gauge',
      conduit_cache_size_bytes: 'gauge',
      conduit_requests_refused_total: 'counter',
      nodejs_eventloop_lag_p99_seconds: 'gauge',
      nodejs_eventloop_time_seconds_total: 'counter',
      nodejs_gc_duration_seconds: 'histogram',
      nodejs_heap_size_used_bytes: 'gauge',
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) assert.equal(types.get(name), type, name);
  });

  test('counts requests by route template, method and status class, with durations in buckets', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await client.get('/api/tags')).status, 200);
    assert.equal((await client.get('/api/articles/no-such-slug-x1')).status, 404);
    assert.equal((await client.get('/no/such/route/x2')).status, 404);
    assert.equal((await client.post('/api/users/login', { body: { user: {} } })).status, 422);
    const { samples } = await scrape(client);
    const h = 'http_server_request_duration_seconds';
    const tags = { method: 'GET', route: '/api/tags', status_class: '2xx' };
    assert.equal(value(samples, `${h}_count`, tags), 3);
    assert.equal(value(samples, `${h}_count`, { method: 'GET', route: '/api/articles/:slug', status_class: '4xx' }), 1);
    assert.equal(value(samples, `${h}_count`, { method: 'GET', route: 'unmatched', status_class: '4xx' }), 1);
    assert.equal(value(samples, `${h}_count`, { method: 'POST', route: '/api/users/login', status_class: '4xx' }), 1);
    assert.ok(value(samples, `${h}_sum`, tags)! > 0);
    // Cumulative buckets: non-decreasing, the last (+Inf) equal to the count.
    const buckets = samples.filter((s) => s.name === `${h}_bucket` && s.labels.route === '/api/tags' && s.labels.status_class === '2xx');
    assert.deepEqual(
      buckets.map((b) => b.labels.le),
      ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '+Inf'],
    );
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    assert.equal(buckets.at(-1)!.value, 3);
    // Low cardinality: no raw path reaches a label.
    for (const s of samples) for (const v of Object.values(s.labels)) assert.ok(!/x1|x2/.test(v), `${s.name} label ${v}`);
    // The request being answered counts itself as in flight.
    assert.equal(value(samples, 'http_server_active_requests'), 1);
  });

  test("pool gauges follow connections in use and queries waiting, and each query's wait is timed", async () => {
    const before = await scrape(client);
    const waitsBefore = value(before.samples, 'db_client_connection_wait_time_seconds_count')!;
    const a = await t.db.connect();
    const b = await t.db.connect();
    const third = t.db.query('select 1'); // both connections (DB_POOL_MAX=2) reserved: this one waits
    try {
      const busy = await scrape(client);
      assert.equal(value(busy.samples, 'db_client_connection_count', { state: 'used' }), 2);
      assert.equal(value(busy.samples, 'db_client_connection_pending_requests'), 1);
      assert.equal(value(busy.samples, 'db_client_connection_max'), 2);
    } finally {
      a.release();
      b.release();
    }
    await third;
    const idle = await scrape(client);
    assert.equal(value(idle.samples, 'db_client_connection_count', { state: 'used' }), 0);
    assert.equal(value(idle.samples, 'db_client_connection_pending_requests'), 0);
    assert.ok(value(idle.samples, 'db_client_connection_count', { state: 'idle' })! >= 1);
    assert.equal(value(idle.samples, 'db_client_connection_wait_time_seconds_count'), waitsBefore + 1);
  });

  test('cache counters and gauges follow misses, hits and invalidations', async () => {
    const user = await client.register();
    const before = (await scrape(client)).samples;
    const c = (result: string, s: Sample[]) => value(s, 'conduit_cache_requests_total', { result })!;
    // A tag no other test uses: neither the page nor its count is cached yet.
    const url = `/api/articles?tag=metrics-${user.username}&limit=7`;
    await client.get(url);
    await client.get(url);
    const read = (await scrape(client)).samples;
    // The first read misses the page and the filter's count (its own entry), the second hits the page.
    assert.equal(c('miss', read) - c('miss', before), 2);
    assert.equal(c('hit', read) - c('hit', before), 1);
    assert.ok(value(read, 'conduit_cache_entries')! >= 1);
    assert.ok(value(read, 'conduit_cache_size_bytes')! > 0);
    await client.createArticle(user.token);
    const written = (await scrape(client)).samples;
    assert.ok(value(written, 'conduit_cache_invalidations_total')! > value(read, 'conduit_cache_invalidations_total')!);
  });

  test('process metrics: event loop, garbage collection, heap and CPU', async () => {
    const { samples } = await scrape(client);
    assert.ok(value(samples, 'nodejs_eventloop_time_seconds_total', { state: 'active' })! > 0);
    assert.ok(value(samples, 'nodejs_eventloop_time_seconds_total', { state: 'idle' })! > 0);
    assert.ok(value(samples, 'nodejs_heap_size_used_bytes')! > 0);
    assert.ok(value(samples, 'process_cpu_seconds_total')! > 0);
    assert.ok(samples.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds'));
  });
});

describe('refusals', () => {
  let t: TestApp;
  let client: Client;
  before(async () => {
    t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_MAX: '3' });
    client = new Client(t.app);
  });
  after(() => t.close());

  test('rate-limited requests are counted, and /metrics itself is never limited', async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await client.get('/api/tags')).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    for (let i = 0; i < 5; i++) await scrape(client);
    const { samples } = await scrape(client);
    assert.equal(value(samples, 'conduit_requests_refused_total', { reason: 'rate_limited' }), 2);
    assert.equal(value(samples, 'conduit_requests_refused_total', { reason: 'shed' }), 0);
    assert.equal(value(samples, 'conduit_requests_refused_total', { reason: 'timed_out' }), 0);
    assert.equal(
      value(samples, 'http_server_request_duration_seconds_count', { method: 'GET', route: '/api/tags', status_class: '4xx' }),
      2,
    );
  });
});

describe('METRICS_PORT', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ METRICS_PORT: '0' });
  });
  after(() => t.close());

  test('moves /metrics off the API port onto a port of its own', async () => {
    const client = new Client(t.app);
    assert.equal((await client.get('/metrics')).status, 404);
    await client.get('/api/tags');
    const server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      contentType: t.app.metrics.contentType,
      render: () => t.app.metrics.render(),
    });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      assert.equal(res.status, 200);
      const { samples } = parsePrometheus(await res.text());
      assert.equal(
        value(samples, 'http_server_request_duration_seconds_count', { method: 'GET', route: '/api/tags', status_class: '2xx' }),
        1,
      );
      assert.equal((await fetch(`http://127.0.0.1:${server.port}/api/tags`)).status, 404);
    } finally {
      await server.close();
    }
  });
});

describe('METRICS_SNAPSHOT_MS', () => {
  let t: TestApp;
  let client: Client;
  before(async () => {
    t = await createTestApp({ METRICS_SNAPSHOT_MS: '1000' });
    client = new Client(t.app);
  });
  after(() => t.close());

  test('a scrape flood on the API port costs one render a second, every scrape within it the same text', async () => {
    const renders = async () => value((await scrape(client)).samples, 'conduit_metrics_renders_total') ?? 0;
    // Past any snapshot the app's start left (none is made before the first scrape).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const started = performance.now();
    const first = await client.get('/metrics');
    const texts = await Promise.all(Array.from({ length: 50 }, () => client.get('/metrics')));
    for (let i = 0; i < 20; i++) texts.push(await client.get('/metrics'));
    const elapsed = performance.now() - started;
    if (elapsed < 1000) for (const res of texts) assert.equal(res.text, first.text, `a scrape ${elapsed} ms into the snapshot differs`);
    const seconds = Math.ceil((performance.now() - started) / 1000);
    assert.ok((await renders()) <= seconds + 1, `${await renders()} renders for 71 scrapes in ${seconds} s`);
    // A second later the snapshot is renewed: what happened meanwhile shows.
    await client.get('/api/tags');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const later = await client.get('/metrics');
    assert.notEqual(later.text, first.text);
  });
});
