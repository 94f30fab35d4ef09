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
  // 4 running + 4 queued are admitted; the rest are refused without waiting for a hash. (A
  // permit freed while the 50 requests are still being dispatched may admit one or two more.)
  assert.ok(ok.length >= 8 && ok.length <= 12, `${ok.length} admitted`);
  for (const r of busy) {
    assert.deepEqual(r.res.body, { errors: { 'password hashing': ['is busy, retry later'] } });
    assert.equal(r.res.headers['retry-after'], '1');
  }
  // The median refusal, not the slowest: on a loaded machine one refusal can be delayed by the
  // event loop itself, which says nothing about the semaphore.
  const sorted = busy.map((r) => r.ms).sort((a, b) => a - b);
  const slowestRefusal = sorted[Math.floor(sorted.length / 2)]!;
  const fastestSuccess = Math.min(...ok.map((r) => r.ms));
  assert.ok(slowestRefusal < fastestSuccess, `refusals (median ${slowestRefusal.toFixed(1)} ms) came before any hash finished (${fastestSuccess.toFixed(1)} ms)`);
  assert.equal(t.ctx.passwords.limiter.running, 0);
});
