import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Busy, Semaphore } from './semaphore.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('no more tasks run at once than there are permits', async () => {
  const sem = new Semaphore({ permits: 3, queue: 100, maxWaitMs: 10_000, name: 'x' });
  let running = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      sem.run(async () => {
        peak = Math.max(peak, ++running);
        await sleep(5);
        running--;
      }),
    ),
  );
  assert.equal(peak, 3);
  assert.equal(sem.running, 0);
});

test('past the queue bound a task is refused at once, naming the resource', async () => {
  const sem = new Semaphore({ permits: 1, queue: 1, maxWaitMs: 10_000, name: 'hashing' });
  const first = sem.run(() => sleep(50));
  const second = sem.run(() => sleep(1));
  const started = Date.now();
  await assert.rejects(
    sem.run(() => sleep(1)),
    (err: unknown) => {
      assert.ok(err instanceof Busy);
      assert.equal(err.resource, 'hashing');
      return true;
    },
  );
  // Far below the 10 s it would wait in the queue (generous for a loaded CI machine).
  assert.ok(Date.now() - started < 1000, 'refused without waiting');
  await Promise.all([first, second]);
  assert.equal(sem.rejected, 1);
});

test('a queued task gives up after maxWaitMs and the permit accounting stays right', async () => {
  const sem = new Semaphore({ permits: 1, queue: 5, maxWaitMs: 30, name: 'x' });
  const long = sem.run(() => sleep(100));
  await assert.rejects(
    sem.run(() => sleep(1)),
    Busy,
  );
  await long;
  assert.equal(sem.running, 0);
  assert.equal(sem.waiting, 0);
  // The semaphore still works afterwards.
  assert.equal(await sem.run(async () => 42), 42);
});

test('a failing task releases its permit', async () => {
  const sem = new Semaphore({ permits: 1, queue: 0, maxWaitMs: 10, name: 'x' });
  await assert.rejects(
    sem.run(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await sem.run(async () => 'ok'), 'ok');
});
