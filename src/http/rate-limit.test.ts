// The per-address limit's counters in this process (rate-limit.ts LocalCounters) and the count
// the request pipeline makes (RateLimits.global): synchronous, keyed as the plugin keys an address.
// Over a real socket, with Redis, and per route: test/system/rate-limit.test.ts.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { LocalCounters, RateLimits } from './rate-limit.ts';

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

  test("counts as the plugin's own LocalStore does, request for request (an upgrade that changes it fails here)", (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 5_000_000 });
    type Store = {
      incr(key: string, cb: (e: Error | null, r?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void;
    };
    const theirs = new (
      createRequire(import.meta.url)('@fastify/rate-limit/store/LocalStore.js') as new (a: boolean, b: boolean, cache?: number) => Store
    )(false, false, 3);
    const ours = new LocalCounters({ cache: 3 });
    const seen = (store: Store | LocalCounters, key: string) => {
      if (store instanceof LocalCounters) return store.count(key, 1000);
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

describe('the per-address limit the pipeline counts (RateLimits.global)', () => {
  const config = { rateLimit: true, rateLimitMax: 3, rateLimitWindowMs: 60_000, rateLimitPrefix: 'test' };
  const silent = { warn: () => undefined, info: () => undefined };

  test('counted at once in this process, one window per address, over the max past it', () => {
    const limit = new RateLimits(config, undefined, silent).global!;
    assert.equal(limit.max, 3);
    const counts = [1, 2, 3, 4].map(() => limit.count('203.0.113.1'));
    assert.deepEqual(
      counts.map((w) => !(w instanceof Promise) && w.current),
      [1, 2, 3, 4],
    );
    const other = limit.count('203.0.113.2');
    assert.ok(!(other instanceof Promise) && other.current === 1, 'another address has its own count');
  });

  test('IPv6 addresses of one /64 share a count, as the plugin keys them', () => {
    const limit = new RateLimits(config, undefined, silent).global!;
    const current = (ip: string) => {
      const w = limit.count(ip);
      assert.ok(!(w instanceof Promise));
      return w.current;
    };
    assert.equal(current('2001:db8:0:1::1'), 1);
    assert.equal(current('2001:db8:0:1::2'), 2);
    assert.equal(current('2001:db8:0:2::1'), 1, 'another /64');
  });

  test('RATE_LIMIT=off: nothing to count', () => {
    assert.equal(new RateLimits({ ...config, rateLimit: false }, undefined, silent).global, undefined);
  });
});
