// Rate limits over a real socket (src/http/rate-limit.ts): login per IP and email, registration
// per IP, a global limit per IP; 429 in the error shape with Retry-After; the window resets;
// counters are shared through Redis by several instances; a Redis outage lets requests through.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { Client, createTestApp, type TestApp } from '../harness.ts';
import { assertSecurityHeaders, json, listen, request, sleep, type WireResponse } from '../http/socket.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';

function login(url: string, email: string, password = 'wrong-password') {
  return request(`${url}/api/users/login`, { method: 'POST', body: { user: { email, password } } });
}

let seq = 0;
function register(url: string) {
  const n = `${process.pid}x${++seq}x${randomUUID().slice(0, 6)}`;
  return request(`${url}/api/users`, {
    method: 'POST',
    body: { user: { username: `rl${n}`, email: `rl${n}@example.com`, password: 'password123' } },
  });
}

function assertTooMany(res: WireResponse): void {
  assert.equal(res.status, 429);
  assert.deepEqual(json(res), { errors: { request: ['too many requests, retry later'] } });
  const retryAfter = Number(res.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `retry-after ${res.headers['retry-after']}`);
  assertSecurityHeaders(res, '429');
}

describe('in one instance (in-memory counters)', () => {
  let t: TestApp;
  let url: string;
  let user: { email: string; password: string };
  before(async () => {
    t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_LOGIN_MAX: '3', RATE_LIMIT_REGISTER_MAX: '3', RATE_LIMIT_MAX: '1000' });
    // Registered through inject, so it counts towards the register limit below: one of three.
    user = await new Client(t.app).register();
    url = await listen(t);
  });
  after(() => t.close());

  test('the 4th login attempt for one email in the window gets 429, even with the right password', async () => {
    const attempts = [];
    for (let i = 0; i < 3; i++) attempts.push((await login(url, user.email)).status);
    assert.deepEqual(attempts, [401, 401, 401]);
    const fourth = await login(url, user.email, user.password);
    assertTooMany(fourth);
    assert.ok(Number(fourth.headers['retry-after']) > 50, 'most of the minute is left');
  });

  test('logins for another email from the same address still work meanwhile', async () => {
    const other = await new Client(t.app).register();
    const res = await login(url, other.email, other.password);
    assert.equal(res.status, 200);
    assert.equal(json(res).user.email, other.email);
    // The email is compared as the user typed it, lower-cased: no dodging by changing case.
    assertTooMany(await login(url, user.email.toUpperCase(), user.password));
  });

  test('registration is limited per address: past RATE_LIMIT_REGISTER_MAX it gets 429', async () => {
    // Two registrations were made through inject above; one more is allowed.
    assert.equal((await register(url)).status, 201);
    assertTooMany(await register(url));
  });
});

describe('the global per-address limit', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_MAX: '5' });
    url = await listen(t);
  });
  after(() => t.close());

  test('past RATE_LIMIT_MAX requests in the window, any route gets 429', async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await request(`${url}/api/tags`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    assertTooMany(await request(`${url}/api/tags`));
    assertTooMany(await request(`${url}/api/articles`));
  });

  test('liveness and readiness probes are never limited, even from an address over its limit', async () => {
    assertTooMany(await request(`${url}/api/tags`));
    for (let i = 0; i < 10; i++) {
      assert.equal((await request(`${url}/healthz`)).status, 200);
      assert.equal((await request(`${url}/readyz`)).status, 200);
    }
  });

  test('a client cannot dodge the limit by sending X-Forwarded-For (TRUST_PROXY is off)', async () => {
    const res = await request(`${url}/api/tags`, { headers: { 'x-forwarded-for': '203.0.113.77' } });
    assertTooMany(res);
  });
});

describe('behind a load balancer (TRUST_PROXY=1)', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_MAX: '3', TRUST_PROXY: '1' });
    url = await listen(t);
  });
  after(() => t.close());

  test('each forwarded client address has its own limit', async () => {
    const from = (ip: string) => request(`${url}/api/tags`, { headers: { 'x-forwarded-for': ip } });
    for (let i = 0; i < 3; i++) assert.equal((await from('203.0.113.1')).status, 200);
    assertTooMany(await from('203.0.113.1'));
    // Another client behind the same balancer is not refused because of the first one.
    for (let i = 0; i < 3; i++) assert.equal((await from('203.0.113.2')).status, 200);
    assertTooMany(await from('203.0.113.2'));
    // Only the hop the balancer added counts: a client-supplied entry before it is ignored.
    assertTooMany(await from('198.51.100.9, 203.0.113.1'));
  });
});

describe('with a 1 s window (RATE_LIMIT_WINDOW_MS)', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_LOGIN_MAX: '3', RATE_LIMIT_WINDOW_MS: '1000' });
    url = await listen(t);
  });
  after(() => t.close());

  test('the login limit trips, then resets when the window has passed', async () => {
    const user = await new Client(t.app).register();
    // At once: attempts are counted before any password is hashed, so all four fall in the
    // window however slow hashing is on this machine.
    const windowStart = performance.now();
    const attempts = await Promise.all(Array.from({ length: 4 }, () => login(url, user.email)));
    const refused = attempts.filter((r) => r.status === 429);
    assert.deepEqual(attempts.map((r) => r.status).sort(), [401, 401, 401, 429]);
    assertTooMany(refused[0]!);
    assert.equal(refused[0]!.headers['retry-after'], '1');

    await sleep(Math.max(0, windowStart + 1100 - performance.now()));
    const res = await login(url, user.email, user.password);
    assert.equal(res.status, 200);
  });
});

/** Deletes this run's counters (only keys under our own prefix; never anything else). */
async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 100);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Sends requests until the limiter's counter shows up in Redis: its own connection is ready. */
async function waitForCounters(url: string, redis: Redis, prefix: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await request(`${url}/api/tags`);
    const [, keys] = await redis.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) return;
    await sleep(20);
  }
  throw new Error('the rate limiter never counted in Redis');
}

async function ready(redis: Redis): Promise<void> {
  if (redis.status !== 'ready') await once(redis, 'ready');
}

/** Two instances sharing Redis under `prefix`, listening, their counters in Redis already. */
async function startPair(env: Record<string, string>, prefix: string) {
  const [a, b] = await Promise.all([createTestApp(env), createTestApp(env)]);
  const [urlA, urlB] = await Promise.all([listen(a), listen(b)]);
  // Until its connection is up the limiter skips (no offline queue): wait, as a running
  // service would have long before its first requests.
  await ready(a.ctx.redis!);
  await waitForCounters(urlA, a.ctx.redis!, prefix);
  await waitForCounters(urlB, a.ctx.redis!, prefix);
  return { a, b, urlA, urlB };
}

async function stopPair(a: TestApp, b: TestApp, prefix: string): Promise<void> {
  await deleteKeys(a.ctx.redis!, prefix);
  await Promise.all([a.close(), b.close()]);
}

describe('two instances sharing Redis', () => {
  // A prefix of our own: parallel test runs and anything else in this Redis are not counted.
  const prefix = `conduit-test:${randomUUID()}:`;
  const env = { RATE_LIMIT: 'on', RATE_LIMIT_LOGIN_MAX: '3', REDIS_URL, RATE_LIMIT_PREFIX: prefix };
  let a: TestApp;
  let b: TestApp;
  let urlA: string;
  let urlB: string;
  before(async () => ({ a, b, urlA, urlB } = await startPair(env, prefix)));
  after(() => stopPair(a, b, prefix));

  test('login attempts on instance A count on instance B', async () => {
    const email = `shared-${randomUUID()}@example.com`;
    assert.equal((await login(urlA, email)).status, 401);
    assert.equal((await login(urlB, email)).status, 401);
    assert.equal((await login(urlA, email)).status, 401);
    // The 4th attempt, on either instance, is refused.
    assertTooMany(await login(urlB, email));
    assertTooMany(await login(urlA, email));
    // Another email is unaffected on both.
    assert.equal((await login(urlB, `other-${randomUUID()}@example.com`)).status, 401);
  });

  test('the counters live in Redis under RATE_LIMIT_PREFIX', async () => {
    const [, keys] = await a.ctx.redis!.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000);
    assert.ok(
      keys.some((k) => k.includes('login:')),
      `keys: ${keys.join(', ')}`,
    );
  });
});

describe('the password pace, two instances sharing Redis', () => {
  const prefix = `conduit-test:${randomUUID()}:`;
  const PACE = 4;
  const env = {
    RATE_LIMIT: 'on',
    RATE_LIMIT_PASSWORD_MAX: String(PACE),
    RATE_LIMIT_PASSWORD_WINDOW_MS: '60000',
    REDIS_URL,
    RATE_LIMIT_PREFIX: prefix,
  };
  let a: TestApp;
  let b: TestApp;
  let urlA: string;
  let urlB: string;
  before(async () => ({ a, b, urlA, urlB } = await startPair(env, prefix)));
  after(() => stopPair(a, b, prefix));

  test('logins and registrations from one address on A and B count against one pace', async () => {
    // Distinct emails: the per-email limit never applies.
    for (let i = 0; i < PACE; i++) {
      const res = i % 2 === 0 ? await login(i < 2 ? urlA : urlB, `pace-${randomUUID()}@example.com`) : await register(i < 2 ? urlA : urlB);
      assert.ok(res.status === 401 || res.status === 201, `attempt ${i}: ${res.status}`);
    }
    for (const url of [urlA, urlB]) {
      const res = await login(url, `pace-${randomUUID()}@example.com`);
      assert.equal(res.status, 429);
      assert.deepEqual(json(res), { errors: { request: ['too many logins and registrations from this client, retry later'] } });
    }
  });
});

describe('with Redis unreachable', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    // Port 1: nothing listens there, every connection attempt is refused.
    t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_LOGIN_MAX: '2', RATE_LIMIT_MAX: '5', REDIS_URL: 'redis://127.0.0.1:1' });
    url = await listen(t);
  });
  after(() => t.close());

  test('requests are let through without limits and never fail with 5xx', async () => {
    const statuses: number[] = [];
    const tagTimings: number[] = [];
    for (let i = 0; i < 8; i++) {
      const started = performance.now();
      statuses.push((await request(`${url}/api/tags`)).status);
      tagTimings.push(performance.now() - started);
    }
    for (let i = 0; i < 4; i++) statuses.push((await login(url, 'nobody@example.com')).status);
    statuses.push((await register(url)).status);
    assert.deepEqual(statuses, [...Array(8).fill(200), 401, 401, 401, 401, 201]);
    // Failing fast: no request waits for Redis to come back (no offline queue), which would
    // take the 1 s connect timeout or a reconnect delay.
    assert.ok(Math.max(...tagTimings) < 1000, `GET /api/tags took up to ${Math.max(...tagTimings).toFixed(0)} ms`);
  });
});

describe('with Redis answering nothing (a frozen connection)', () => {
  const prefix = `conduit-test:${randomUUID()}:`;
  let t: TestApp;
  let url: string;
  let frozen = false;
  const sockets: net.Socket[] = [];
  // A TCP relay to the real Redis that can stop relaying: the connection stays open and no
  // reply ever comes, as with a Redis stuck in a long command or a half-dead network path.
  const relay = net.createServer((client) => {
    const upstream = net.connect(6379, '127.0.0.1');
    sockets.push(client, upstream);
    client.on('data', (d) => void (frozen || upstream.write(d)));
    upstream.on('data', (d) => void (frozen || client.write(d)));
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  before(async () => {
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    const { port } = relay.address() as net.AddressInfo;
    t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_MAX: '3', REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_PREFIX: prefix });
    url = await listen(t);
    await ready(t.ctx.redis!);
    await waitForCounters(url, t.ctx.redis!, prefix);
  });
  after(async () => {
    frozen = false;
    await deleteKeys(t.ctx.redis!, prefix);
    for (const s of sockets) s.destroy();
    relay.close();
    await t.close();
  });

  test('requests are let through after a short bounded wait instead of hanging', async (ctx) => {
    frozen = true;
    const timings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const res = await Promise.race([request(`${url}/api/tags`), sleep(3000).then(() => undefined)]);
      timings.push(performance.now() - started);
      assert.ok(res, `request ${i} hung`);
      // Over RATE_LIMIT_MAX (3) already, but nobody can count: the limiter lets it through.
      assert.equal(res.status, 200);
    }
    ctx.diagnostic(`with Redis frozen, requests took ${timings.map((x) => x.toFixed(0)).join(', ')} ms`);
    assert.ok(Math.max(...timings) < 1000, `slowest ${Math.max(...timings).toFixed(0)} ms`);
  });
});
