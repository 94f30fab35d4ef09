// Argon2 is the most expensive thing the service does; its concurrency is bounded so a login
// flood gets fast 503s instead of piling up on the threadpool.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../harness.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp({ ARGON2_CONCURRENCY: '4', ARGON2_QUEUE: '4', ARGON2_MAX_WAIT_MS: '2000' });
  api = new Client(t.app);
});
after(() => t.close());

test('50 concurrent logins with 4 permits and a queue of 4: the excess gets 503 fast, the rest succeed', async () => {
  const u = await api.register();
  // The bound itself: never more than 4 hashing and 4 waiting at once, sampled every
  // millisecond during the burst (an unbounded queue would hold ~40 for tens of ms).
  const { limiter } = t.ctx.passwords;
  const peak = { running: 0, waiting: 0 };
  const sampler = setInterval(() => {
    peak.running = Math.max(peak.running, limiter.running);
    peak.waiting = Math.max(peak.waiting, limiter.waiting);
  }, 1);
  const results = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const started = performance.now();
      const res = await api.post('/api/users/login', { body: { user: { email: u.email, password: u.password } } });
      return { res, ms: performance.now() - started };
    }),
  );
  const ok = results.filter((r) => r.res.status === 200);
  const busy = results.filter((r) => r.res.status === 503);
  assert.equal(ok.length + busy.length, 50, `statuses: ${results.map((r) => r.res.status).join(',')}`);
  clearInterval(sampler);
  // 4 running + 4 queued are admitted; the rest are refused without waiting for a hash. How many
  // more than 8 get in depends on how many hashes finish while the 50 are still being dispatched
  // (their user lookups share a 10-connection pool): 9-12 usually, 13 on a loaded CI machine.
  // So the bound is checked where it lives, in the semaphore, and the total only loosely.
  assert.deepEqual(peak, { running: 4, waiting: 4 }, 'at most 4 hashing and 4 waiting, and both were full');
  assert.ok(ok.length >= 8 && busy.length >= 25, `${ok.length} admitted, ${busy.length} refused`);
  for (const r of busy) {
    assert.deepEqual(r.res.body, { errors: { 'password hashing': ['is busy, retry later'] } });
    assert.equal(r.res.headers['retry-after'], '1');
  }
  // Refused without waiting for a hash. Timed end to end through inject, so every request also
  // pays the login's user lookup on a 10-connection pool and the event loop shared by all 50:
  // on a loaded machine a refusal can land after the first hashes finished (CI saw a median
  // refusal of 166 ms against a first success at 100 ms). What stays true is that a refusal never
  // waits for a queue slot (ARGON2_MAX_WAIT_MS) and typically comes before the last admitted
  // login, which waited for two rounds of hashes.
  const refusals = busy.map((r) => r.ms).sort((a, b) => a - b);
  const medianRefusal = refusals[Math.floor(refusals.length / 2)]!;
  const slowestSuccess = Math.max(...ok.map((r) => r.ms));
  assert.ok(refusals.at(-1)! < 2000, `a refusal took ${refusals.at(-1)!.toFixed(1)} ms: it waited for a queue slot`);
  assert.ok(
    medianRefusal < slowestSuccess,
    `refusals (median ${medianRefusal.toFixed(1)} ms) came before the last admitted login finished (${slowestSuccess.toFixed(1)} ms)`,
  );
  assert.equal(t.ctx.passwords.limiter.running, 0);
});
