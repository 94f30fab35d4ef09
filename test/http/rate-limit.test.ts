// Rate limits over a real socket (src/http/rate-limit.ts): login per IP and email, registration
// per IP, a global limit per IP; 429 in the error shape with Retry-After; the window resets;
// counters are shared through Redis by several instances; a Redis outage lets requests through.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { Client, createTestApp, type TestApp } from '../harness.ts';
import { assertSecurityHeaders, json, listen, request, sleep, type WireResponse } from './socket.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';

function login(url: string, email: string, password = 'wrong-password') {
  return request(`${url}/api/users/login`, { method: 'POST', body: { user: { email, password } } });
}

let seq = 0;
function register(url: string) {
  const n = `${process.pid}x${++seq}x${randomUUID().slice(0, 6)}`;
  return request(`${url}/api/users`, { method: 'POST', body: { user: { username: `rl${n}`, email: `rl${n}@example.com`, password: 'password123' } } });
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

  test('liveness and readiness probes are limited like everything else', async () => {
    // Documents the current behaviour: probes come from the orchestrator's address, which
    // sends far fewer than RATE_LIMIT_MAX requests a minute.
    assert.equal((await request(`${url}/healthz`)).status, 429);
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
    for (let i = 0; i < 3; i++) assert.equal((await login(url, user.email)).status, 401);
    const refused = await login(url, user.email, user.password);
    assertTooMany(refused);
    assert.equal(refused.headers['retry-after'], '1');

    await sleep(1100);
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

describe('two instances sharing Redis', () => {
  // A prefix of our own: parallel test runs and anything else in this Redis are not counted.
  const prefix = `conduit-test:${randomUUID()}:`;
  const env = { RATE_LIMIT: 'on', RATE_LIMIT_LOGIN_MAX: '3', REDIS_URL, RATE_LIMIT_PREFIX: prefix };
  let a: TestApp;
  let b: TestApp;
  let urlA: string;
  let urlB: string;
  before(async () => {
    [a, b] = await Promise.all([createTestApp(env), createTestApp(env)]);
    // Until the client is connected the limiter skips (no offline queue): wait, as a running
    // service would have long before its first requests.
    await Promise.all([a, b].map((t) => (t.ctx.redis!.status === 'ready' ? undefined : once(t.ctx.redis!, 'ready'))));
    [urlA, urlB] = await Promise.all([listen(a), listen(b)]);
  });
  after(async () => {
    await deleteKeys(a.ctx.redis!, prefix);
    await Promise.all([a.close(), b.close()]);
  });

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
    assert.ok(keys.some((k) => k.includes('login:')), `keys: ${keys.join(', ')}`);
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
    const started = performance.now();
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await request(`${url}/api/tags`)).status);
    for (let i = 0; i < 4; i++) statuses.push((await login(url, 'nobody@example.com')).status);
    statuses.push((await register(url)).status);
    const elapsed = performance.now() - started;
    assert.deepEqual(statuses, [...Array(8).fill(200), 401, 401, 401, 401, 201]);
    // Failing fast: no request waits for Redis to come back (no offline queue).
    assert.ok(elapsed < 3000, `${statuses.length} requests took ${elapsed.toFixed(0)} ms`);
  });
});
