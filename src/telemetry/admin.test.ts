import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';
import { throughServer } from '../../test/inject.ts';
import { ADMIN_FAILURES_MAX, ADMIN_FAILURES_WINDOW_MS, adminServer } from './admin.ts';
import { startMetricsServer, supervisorAdmin } from './metrics-server.ts';

const TOKEN = 'admin-token-for-tests-admin-token-for-tests';

test('without ADMIN_TOKEN the admin endpoints do not exist', async () => {
  const t = await createTestApp();
  try {
    const res = await new Client(t.app).post('/admin/profile/cpu?seconds=1', { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 404);
  } finally {
    await t.close();
  }
});

describe('with ADMIN_TOKEN', () => {
  let t: TestApp;
  let client: Client;
  let dir: string;
  const auth = { authorization: `Bearer ${TOKEN}` };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'conduit-admin-'));
    t = await createTestApp({ ADMIN_TOKEN: TOKEN, PROFILE_DIR: dir });
    client = new Client(t.app);
  });
  after(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a request without the token, or with another, is refused', async () => {
    assert.equal((await client.post('/admin/profile/cpu?seconds=1')).status, 401);
    const wrong = await client.post('/admin/profile/cpu?seconds=1', { headers: { authorization: `Bearer ${TOKEN}x` } });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.body, { errors: { token: ['is missing or invalid'] } });
    assert.equal((await client.post('/admin/profile/cpu?seconds=1', { headers: { authorization: TOKEN } })).status, 401);
  });

  test('a CPU profile of the next seconds, as a .cpuprofile or as pprof', async () => {
    const res = await client.post('/admin/profile/cpu?seconds=1', { headers: auth });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-conduit-pid'], String(process.pid));
    assert.match(String(res.headers['content-disposition']), /attachment; filename="conduit-\d+-.*\.cpuprofile"/);
    assert.ok(Array.isArray(res.body.nodes) && res.body.nodes.length > 0);
    assert.ok(res.body.endTime - res.body.startTime >= 900_000, 'about a second of samples (µs)');

    const pprof = await t.app.inject({ method: 'POST', url: '/admin/profile/cpu?seconds=1&format=pprof', headers: auth });
    assert.equal(pprof.statusCode, 200);
    assert.equal(pprof.headers['content-type'], 'application/octet-stream');
    assert.match(String(pprof.headers['content-disposition']), /attachment; filename="conduit-\d+-.*\.cpu\.pb\.gz"/);
    const decoded = Profile.decode(gunzipSync(pprof.rawPayload));
    assert.deepEqual(
      decoded.sampleType.map((v) => decoded.stringTable.strings[Number(v.type)]),
      ['samples', 'cpu'],
    );
    assert.ok(decoded.sample.length > 0 && decoded.function.length > 0);
  });

  test('one CPU profile at a time: a second one meanwhile is refused with 409', async () => {
    const [a, b] = await Promise.all([
      client.post('/admin/profile/cpu?seconds=1', { headers: auth }),
      client.post('/admin/profile/cpu?seconds=1', { headers: auth }),
    ]);
    assert.deepEqual([a.status, b.status].sort(), [200, 409]);
  });

  test('an allocation profile, and a heap snapshot that is also kept in PROFILE_DIR', async () => {
    const heap = await client.post('/admin/profile/heap?seconds=1', { headers: auth });
    assert.equal(heap.status, 200);
    assert.ok(heap.body.head?.callFrame, 'a sampling heap profile');
    // Its promoted view (what no scavenge freed; profiler.test.ts tells them apart).
    const promoted = await client.post('/admin/profile/heap?seconds=1&promoted=true', { headers: auth });
    assert.equal(promoted.status, 200);
    assert.ok(promoted.body.head?.callFrame, 'a sampling heap profile');
    const pprof = await t.app.inject({ method: 'POST', url: '/admin/profile/heap?seconds=1&format=pprof', headers: auth });
    assert.equal(pprof.statusCode, 200);
    assert.match(String(pprof.headers['content-disposition']), /attachment; filename="conduit-\d+-.*\.heap\.pb\.gz"/);
    const decoded = Profile.decode(gunzipSync(pprof.rawPayload));
    assert.deepEqual(
      decoded.sampleType.map((v) => decoded.stringTable.strings[Number(v.type)]),
      ['alloc_space'],
    );

    const snapshot = await client.post('/admin/heap-snapshot', { headers: auth });
    assert.equal(snapshot.status, 200);
    assert.ok(snapshot.text.startsWith('{"snapshot":'));
    const files = await readdir(dir);
    assert.equal(files.filter((f) => f.endsWith('.heapsnapshot')).length, 1);
    assert.ok(!files.some((f) => f.endsWith('.tmp')));
    const kept = path.join(
      dir,
      files.find((f) => f.endsWith('.heapsnapshot'))!,
    );
    assert.ok(existsSync(kept));
    // It holds whatever the process does (the JWT secret, tokens): its owner's alone.
    assert.equal((await stat(kept)).mode & 0o777, 0o600);
  });

  test('seconds is bounded, the format one of json or pprof, and promoted a boolean', async () => {
    assert.equal((await client.post('/admin/profile/cpu?seconds=0', { headers: auth })).status, 422);
    assert.equal((await client.post('/admin/profile/cpu?seconds=601', { headers: auth })).status, 422);
    assert.equal((await client.post('/admin/profile/cpu?seconds=1&format=svg', { headers: auth })).status, 422);
    assert.equal((await client.post('/admin/profile/heap?seconds=1&promoted=maybe', { headers: auth })).status, 422);
  });
});

describe('wrong admin tokens from one address', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ ADMIN_TOKEN: TOKEN });
  });
  after(() => t.close());

  const send = (remoteAddress: string, token: string) =>
    throughServer(t.app, {
      method: 'POST',
      url: '/admin/profile/heap?seconds=1',
      remoteAddress,
      headers: { authorization: `Bearer ${token}` },
    });

  test(`are 401 up to ${ADMIN_FAILURES_MAX} a minute, then 429 with Retry-After for that address only`, async () => {
    for (let i = 0; i < ADMIN_FAILURES_MAX; i++) {
      const res = await send('10.9.0.1', `guess-${i}`);
      assert.equal(res.statusCode, 401, `guess ${i}`);
    }
    const over = await send('10.9.0.1', 'guess-over');
    assert.equal(over.statusCode, 429);
    assert.deepEqual(JSON.parse(over.body), { errors: { token: ['too many invalid tokens from this address, retry later'] } });
    const retryAfter = Number(over.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= ADMIN_FAILURES_WINDOW_MS / 1000, `Retry-After ${over.headers['retry-after']}`);
    // The right token from that address learns nothing until the window ends.
    assert.equal((await send('10.9.0.1', TOKEN)).statusCode, 429);
    // Another address is not held back by the first one's guesses.
    const other = await send('10.9.0.2', TOKEN);
    assert.equal(other.statusCode, 200, other.body.slice(0, 200));
  });
});

describe('wrong admin tokens with REDIS_URL', () => {
  const guess = (t: TestApp, remoteAddress: string, token: string) =>
    throughServer(t.app, {
      method: 'POST',
      url: '/admin/profile/heap?seconds=1',
      remoteAddress,
      headers: { authorization: `Bearer ${token}` },
    });

  test('are counted in Redis: guesses spread over two processes share one limit', async () => {
    const env = { ADMIN_TOKEN: TOKEN, REDIS_URL: 'redis://127.0.0.1:6379', RATE_LIMIT_PREFIX: `test:admin:${randomUUID()}:` };
    const [a, b] = await Promise.all([createTestApp(env), createTestApp(env)]);
    try {
      // Until its own Redis connection is up a process counts locally (no offline queue): wait
      // for each one's first count to show in Redis, as a running service's would long before.
      let probe = 0;
      for (const t of [a, b]) {
        for (let seen = 0; seen === 0; await sleep(20)) {
          const address = `10.9.9.${++probe}`;
          await guess(t, address, 'probe');
          seen = await t.ctx.redis!.exists(`${env.RATE_LIMIT_PREFIX}admin-failures:${address}`).catch(() => 0);
        }
      }
      for (let i = 0; i < ADMIN_FAILURES_MAX; i++) {
        const res = await guess(i % 2 === 0 ? a : b, '10.9.1.1', `guess-${i}`);
        assert.equal(res.statusCode, 401, `guess ${i}`);
      }
      for (const t of [a, b]) assert.equal((await guess(t, '10.9.1.1', 'guess-over')).statusCode, 429);
      // IPv6: one /64 is one guesser.
      for (let i = 0; i < ADMIN_FAILURES_MAX; i++) await guess(a, `2001:db8::${i + 1}`, `guess-${i}`);
      assert.equal((await guess(b, '2001:db8::ffff', TOKEN)).statusCode, 429);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('are still limited, per process, while Redis does not answer', async () => {
    const t = await createTestApp({ ADMIN_TOKEN: TOKEN, REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      for (let i = 0; i < ADMIN_FAILURES_MAX; i++) assert.equal((await guess(t, '10.9.2.1', `guess-${i}`)).statusCode, 401);
      assert.equal((await guess(t, '10.9.2.1', TOKEN)).statusCode, 429);
    } finally {
      await t.close();
    }
  });
});

describe('with METRICS_PORT', () => {
  test('the admin endpoints are served on the metrics port, beside /metrics, and not on the API port', async () => {
    const t = await createTestApp({ ADMIN_TOKEN: TOKEN, METRICS_PORT: '0' });
    const admin = await adminServer(t.ctx);
    assert.ok(admin, 'ADMIN_TOKEN is set');
    const server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      contentType: t.app.metrics.contentType,
      render: () => t.app.metrics.render(),
      other: admin.handle,
    });
    try {
      const auth = { authorization: `Bearer ${TOKEN}` };
      const onApi = await new Client(t.app).post('/admin/profile/heap?seconds=1', { headers: auth });
      assert.equal(onApi.status, 404, 'not on the API port');
      assert.equal((await new Client(t.app).get('/metrics')).status, 404, '/metrics neither');

      const base = `http://127.0.0.1:${server.port}`;
      const wrong = await fetch(`${base}/admin/profile/heap?seconds=1`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
      assert.equal(wrong.status, 401);
      assert.deepEqual(await wrong.json(), { errors: { token: ['is missing or invalid'] } });
      const bad = await fetch(`${base}/admin/profile/heap?seconds=0`, { method: 'POST', headers: auth });
      assert.equal(bad.status, 422, 'validated as on the API port');
      const heap = await fetch(`${base}/admin/profile/heap?seconds=1`, { method: 'POST', headers: auth });
      assert.equal(heap.status, 200);
      assert.equal(heap.headers.get('x-conduit-pid'), String(process.pid));
      assert.ok(((await heap.json()) as { head?: unknown }).head, 'a sampling heap profile');
      assert.equal((await fetch(`${base}/metrics`)).status, 200);
      assert.equal((await fetch(`${base}/elsewhere`)).status, 404);
    } finally {
      await server.close();
      await admin.close();
      await t.close();
    }
  });

  test('with WORKERS > 1 the supervisor answers the admin paths with 404 and the way to profile the workers', async () => {
    const server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      contentType: 'text/plain',
      render: async () => '',
      other: supervisorAdmin,
    });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/admin/profile/cpu`, { method: 'POST' });
      assert.equal(res.status, 404);
      assert.match(JSON.stringify(await res.json()), /SIGUSR2 to the supervisor/);
    } finally {
      await server.close();
    }
  });
});
