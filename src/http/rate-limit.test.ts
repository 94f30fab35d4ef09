// The rate limit's counters in this process (rate-limit.ts LocalCounters) and the count the
// cache's hot path makes outside Fastify (GlobalLimit.count): synchronous once the address has
// been counted through the plugin, and always in the counters the plugin itself uses.
// Over a real socket, with Redis, and per route: test/system/rate-limit.test.ts.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import Fastify from 'fastify';
import { LocalCounters, registerRateLimit } from './rate-limit.ts';

describe('LocalCounters', () => {
  test('counts per key in a fixed window, and starts again when the window is over', (t) => {
    // The window is read from Date.now(): a mocked clock, so a busy machine cannot end it early.
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const c = new LocalCounters();
    assert.equal(c.count('a', 1000).current, 1);
    t.mock.timers.tick(400);
    assert.equal(c.count('a', 1000).current, 2);
    assert.equal(c.count('b', 1000).current, 1);
    const { current, ttl } = c.count('a', 1000);
    assert.deepEqual({ current, ttl }, { current: 3, ttl: 600 });
    t.mock.timers.tick(599);
    assert.equal(c.count('a', 1000).current, 4, 'still the same window');
    t.mock.timers.tick(1);
    assert.equal(c.count('a', 1000).current, 1, 'a new window');
    assert.equal(c.count('b', 1000).current, 2, "b's window began 400 ms later: not over yet");
  });

  test('the store interface: incr counts, read does not, child counts apart', () => {
    const c = new LocalCounters();
    const results: number[] = [];
    c.incr('k', (_e, r) => results.push(r!.current), 60_000);
    c.incr('k', (_e, r) => results.push(r!.current), 60_000);
    c.read('k', (_e, r) => results.push(r!.current), 60_000);
    c.read('other', (_e, r) => results.push(r!.current), 60_000);
    c.child({}).incr('k', (_e, r) => results.push(r!.current), 60_000);
    assert.deepEqual(results, [1, 2, 2, 0, 1]);
  });

  test("counts as the plugin's own LocalStore does, request for request (an upgrade that changes it fails here)", (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 5_000_000 });
    type Store = {
      incr(key: string, cb: (e: Error | null, r?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void;
    };
    const theirs = new (
      createRequire(import.meta.url)('@fastify/rate-limit/store/LocalStore.js') as new (a: boolean, b: boolean, cache?: number) => Store
    )(false, false, 3);
    const ours = new LocalCounters({ cache: 3 });
    const seen = (store: Store, key: string) => {
      let got: { current: number; ttl: number } | undefined;
      store.incr(key, (_e, r) => (got = r), 1000, 2);
      return { current: got!.current, ttl: got!.ttl };
    };
    // Keys come and go (a bound of 3), windows end, counts pass the max.
    const steps: [string, number][] = [
      ['a', 0],
      ['a', 100],
      ['b', 0],
      ['a', 300],
      ['c', 0],
      ['d', 50],
      ['a', 0],
      ['b', 700],
      ['b', 0],
      ['a', 1],
      ['c', 999],
    ];
    for (const [key, wait] of steps) {
      t.mock.timers.tick(wait);
      assert.deepEqual(seen(ours, key), seen(theirs, key), `${key} after ${wait} ms`);
    }
  });

  test('holds at most `cache` keys: the least recently counted goes first', () => {
    const c = new LocalCounters({ cache: 2 });
    c.count('a', 60_000);
    c.count('a', 60_000);
    c.count('b', 60_000);
    c.count('a', 60_000);
    c.count('c', 60_000); // b goes
    assert.equal(c.count('a', 60_000).current, 4);
    assert.equal(c.count('b', 60_000).current, 1);
  });
});

describe('the global limit counted outside Fastify (the hot path)', () => {
  async function limited(max: number) {
    const app = Fastify();
    const limit = await registerRateLimit(
      app,
      { rateLimit: true, rateLimitMax: max, rateLimitWindowMs: 60_000, rateLimitPrefix: 'test' },
      undefined,
    );
    app.get('/', async () => ({ ok: true }));
    await app.ready();
    const pipeline = async (remoteAddress: string) => (await app.inject({ method: 'GET', url: '/', remoteAddress })).statusCode;
    return { app, limit: limit!, pipeline };
  }

  test('an address seen once is counted at once, in the counters the pipeline uses', async () => {
    const { app, limit, pipeline } = await limited(4);
    try {
      const first = limit.count({ ip: '203.0.113.1' });
      assert.ok(first instanceof Promise, 'the first count goes through the plugin');
      assert.equal(await first, true);
      assert.equal(limit.count({ ip: '203.0.113.1' }), true, 'then synchronous');
      assert.equal(await pipeline('203.0.113.1'), 200); // the third
      assert.equal(limit.count({ ip: '203.0.113.1' }), true); // the fourth
      assert.equal(await pipeline('203.0.113.1'), 429);
      assert.equal(limit.count({ ip: '203.0.113.1' }), false, 'over the limit');
      // Another address has its own count.
      assert.equal(await limit.count({ ip: '203.0.113.2' }), true);
      assert.equal(await pipeline('203.0.113.2'), 200);
    } finally {
      await app.close();
    }
  });

  test('IPv6 addresses of one /64 share a count, as the plugin keys them', async () => {
    const { app, limit, pipeline } = await limited(3);
    try {
      assert.equal(await limit.count({ ip: '2001:db8:0:1::1' }), true);
      assert.equal(await limit.count({ ip: '2001:db8:0:1::2' }), true);
      assert.equal(limit.count({ ip: '2001:db8:0:1::1' }), true); // the third, at once
      assert.equal(await pipeline('2001:db8:0:1::3'), 429);
      assert.equal(limit.count({ ip: '2001:db8:0:1::2' }), false);
      assert.equal(await limit.count({ ip: '2001:db8:0:2::1' }), true, 'another /64');
    } finally {
      await app.close();
    }
  });
});
