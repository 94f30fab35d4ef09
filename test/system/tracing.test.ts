// Tracing in the running application, with spans kept in memory: the SDK is started exactly as
// tracing.ts starts it (same instrumentations, hooks, sampler), only the exporter differs.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { tracingSettings } from '../../src/config.ts';
import { startTracing } from '../../src/telemetry/sdk.ts';

const exporter = new InMemorySpanExporter();
startTracing(tracingSettings({}), { exporter, synchronous: true });
// Only now: pg and the app must be loaded after the instrumentations' hooks are in place.
const { Client } = await import('../harness.ts');
const { createLoggedApp } = await import('../logged-app.ts');
const { operationRoutes } = await import('../../src/telemetry/operations.ts');

type LoggedApp = Awaited<ReturnType<typeof createLoggedApp>>;

const spans = () => exporter.getFinishedSpans();
const named = (name: string) => spans().filter((s) => s.name === name);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const id = (s: ReadableSpan) => s.spanContext().spanId;

function only(name: string): ReadableSpan {
  const found = named(name);
  assert.equal(
    found.length,
    1,
    `one "${name}" span; spans: ${spans()
      .map((s) => s.name)
      .join(', ')}`,
  );
  return found[0]!;
}

/** `s` is below `ancestor` in the span tree. */
function descends(s: ReadableSpan, ancestor: ReadableSpan): boolean {
  const byId = new Map(spans().map((x) => [id(x), x]));
  for (let p = parentOf(s); p; p = byId.get(p) ? parentOf(byId.get(p)!) : undefined) if (p === id(ancestor)) return true;
  return false;
}

describe('tracing', () => {
  let t: LoggedApp;
  let client: InstanceType<typeof Client>;
  let author: Awaited<ReturnType<InstanceType<typeof Client>['register']>>;
  let slug: string;

  before(async () => {
    t = await createLoggedApp();
    client = new Client(t.app);
    author = await client.register();
    slug = (await client.createArticle(author.token, { title: 'Tracing the hot path' })).slug;
  });
  after(() => t.close());
  beforeEach(() => exporter.reset());

  test('an uncached read is one trace: the request span, its operation, the cache lookup and the SQL below it', async () => {
    const res = await client.get(`/api/articles/${slug}`);
    assert.equal(res.status, 200);

    const request = only('GET /api/articles/:slug');
    const operation = only('load article');
    const lookup = only('cache lookup');
    const queries = spans().filter((s) => s.attributes['db.system.name'] === 'postgresql');
    assert.ok(queries.length >= 1, 'at least one SQL span');

    const traceId = request.spanContext().traceId;
    for (const s of [operation, lookup, ...queries]) assert.equal(s.spanContext().traceId, traceId, `${s.name} is in the request's trace`);
    assert.equal(request.kind, SpanKind.SERVER);
    assert.equal(parentOf(request), undefined, 'a request without traceparent starts a trace');
    assert.equal(parentOf(operation), id(request));
    assert.equal(parentOf(lookup), id(operation));
    assert.equal(lookup.attributes['cache.hit'], false);
    assert.equal(lookup.attributes['cache.outcome'], 'miss');
    assert.equal(lookup.attributes['cache.key_kind'], 'article');
    for (const q of queries) assert.ok(descends(q, lookup), `${q.name} runs inside the cache lookup (the miss's load)`);
    const select = queries.find((q) => String(q.attributes['db.query.text']).includes('from articles'));
    assert.ok(select, 'the article query is traced with its text');
    assert.equal(select.attributes['db.response.returned_rows'], 1);
    assert.equal(request.attributes['http.route'], '/api/articles/:slug');
    assert.equal(request.attributes['http.response.status_code'], 200);

    // The response names the request's span, so a client can quote the trace.
    assert.equal(res.headers.traceparent, `00-${traceId}-${id(request)}-01`);
  });

  test('a second read is a cache hit, with no SQL for the article', async () => {
    await client.get(`/api/articles/${slug}`);
    exporter.reset();
    const res = await client.get(`/api/articles/${slug}`);
    assert.equal(res.status, 200);
    const lookup = only('cache lookup');
    assert.equal(lookup.attributes['cache.hit'], true);
    assert.equal(spans().filter((s) => String(s.attributes['db.query.text'] ?? '').includes('from articles')).length, 0);
  });

  test('an incoming traceparent becomes the parent of the request span', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const res = await client.get(`/api/articles/${slug}/comments`, { headers: { traceparent: `00-${traceId}-${parent}-01` } });
    assert.equal(res.status, 200);
    const request = only('GET /api/articles/:slug/comments');
    assert.equal(request.spanContext().traceId, traceId);
    assert.equal(parentOf(request), parent);
    assert.equal(only('list comments').spanContext().traceId, traceId);
    assert.equal(res.headers.traceparent, `00-${traceId}-${id(request)}-01`);
  });

  test('a caller that did not sample its trace gets none recorded here, but keeps its trace id in the header and the log', async () => {
    const traceId = '5bf92f3577b34da6a3ce929d0e0e4737';
    const res = await client.get(`/api/articles/${slug}/comments`, {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b8-00`, 'x-request-id': 'unsampled' },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(
      spans().map((s) => s.name),
      [],
      'nothing recorded: not the request, not its SQL',
    );
    assert.match(String(res.headers.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
    assert.equal(t.lines.find((l) => l.reqId === 'unsampled')?.trace_id, traceId);
  });

  test("the request's log line carries its trace id and span id", async () => {
    const res = await client.get(`/api/articles/${slug}`, { headers: { 'x-request-id': 'trace-log-check' } });
    assert.equal(res.status, 200);
    const request = only('GET /api/articles/:slug');
    const line = t.lines.find((l) => l.reqId === 'trace-log-check' && l.msg === 'request');
    assert.ok(line, 'the one line per request was written');
    assert.equal(line.trace_id, request.spanContext().traceId);
    assert.equal(line.span_id, id(request));
    assert.equal(line.route, '/api/articles/:slug');

    // The ids are the request's own: the next request's line has its own, and the app's logger none.
    exporter.reset();
    await client.get('/api/tags', { headers: { 'x-request-id': 'trace-log-check-2' } });
    const next = t.lines.find((l) => l.reqId === 'trace-log-check-2' && l.msg === 'request');
    assert.equal(next?.span_id, id(only('GET /api/tags')));
    assert.notEqual(next?.trace_id, line.trace_id);
    t.app.log.info('not a request');
    assert.equal(t.lines.at(-1)?.trace_id, undefined);
  });

  test('a write is named for its business operation, with its SQL below it', async () => {
    const reader = await client.register();
    exporter.reset();
    const res = await client.post(`/api/articles/${slug}/favorite`, { token: reader.token });
    assert.equal(res.status, 200);
    const request = only('POST /api/articles/:slug/favorite');
    const operation = only('favorite article');
    assert.equal(parentOf(operation), id(request));
    // The caller's identity check (http/auth.ts: the token's user and key, app-context.ts) runs in
    // the auth hook, before the operation; every other statement is the operation's.
    const sql = spans().filter(
      (s) =>
        s.attributes['db.system.name'] === 'postgresql' &&
        !String(s.attributes['db.query.text']).startsWith('select token_key from users where id'),
    );
    assert.ok(sql.length >= 1);
    for (const q of sql) assert.ok(descends(q, operation), `${q.name} is below "favorite article"`);
  });

  test('a login shows the password verification, and no span holds personal data', async () => {
    const user = await client.register();
    exporter.reset();
    const login = await client.post('/api/users/login', { body: { user: { email: user.email, password: user.password } } });
    assert.equal(login.status, 200);
    const token = login.body.user.token as string;
    await client.get(`/api/profiles/${user.username}`, { token });
    await client.get(`/api/articles?author=${user.username}`, { token });

    const verify = only('verify password');
    assert.ok(descends(verify, only('log in')));
    const secrets = [user.email, user.username, user.password, token];
    for (const s of spans()) {
      for (const [key, value] of Object.entries(s.attributes)) {
        for (const secret of secrets) assert.ok(!String(value).includes(secret), `${s.name} ${key}=${String(value)} holds personal data`);
      }
    }
    assert.equal(only('GET /api/profiles/:username').attributes['url.path'], '/api/profiles/:username');
  });

  test('probes and scrapes make no traces', async () => {
    await client.get('/healthz');
    await client.get('/readyz');
    await client.get('/metrics');
    assert.deepEqual(
      spans().map((s) => s.name),
      [],
    );
  });

  test('every route of the operation table exists, so no name silently stops being used', () => {
    for (const r of operationRoutes()) assert.ok(t.app.hasRoute({ method: r.method, url: r.url }), `${r.method} ${r.url} (${r.name})`);
  });
});

describe('tracing with Redis', () => {
  let t: LoggedApp;
  before(async () => {
    // The machine's Redis, as test/system/rate-limit.test.ts uses it (.ci/run starts it).
    t = await createLoggedApp({
      RATE_LIMIT: 'on',
      REDIS_URL: 'redis://127.0.0.1:6379',
      RATE_LIMIT_PREFIX: `conduit-tracing-test-${process.pid}:`,
    });
  });
  after(() => t.close());
  beforeEach(() => exporter.reset());

  test("the rate limiter's Redis commands are spans of the request", async () => {
    // The limiter's connection comes up asynchronously; until then requests skip it.
    const deadline = Date.now() + 10_000;
    let redis: ReadableSpan[] = [];
    while (redis.length === 0 && Date.now() < deadline) {
      exporter.reset();
      assert.equal((await new Client(t.app).get('/api/tags')).status, 200);
      redis = spans().filter((s) => s.attributes['db.system'] === 'redis' || s.attributes['db.system.name'] === 'redis');
      if (redis.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(
      redis.length >= 1,
      `a Redis span; spans: ${spans()
        .map((s) => s.name)
        .join(', ')}`,
    );
    const request = only('GET /api/tags');
    for (const s of redis) assert.ok(descends(s, request), `${s.name} is below the request`);
  });
});
