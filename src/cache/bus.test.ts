// The LISTEN/NOTIFY invalidation bus (cache/bus.ts) on a real database: the listener comes
// back by itself after its connection is killed, dropping what it may have missed, and a
// publish that fails neither throws (the write has committed) nor is forgotten.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPool, type Pool } from '../db/pool.ts';
import { createDatabase } from '../../test/harness.ts';
import { PgInvalidationBus } from './bus.ts';
import { ResponseCache } from './response-cache.ts';
import { tag } from './tags.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const options = { ttlMs: 60_000, maxBytes: 1 << 20, compression: false, compressionThresholdBytes: 1024 };
const poolOptions = { dbPoolMax: 2, dbAcquireTimeoutMs: 2000 };

async function waitFor(what: string, condition: () => boolean, withinMs = 5000): Promise<number> {
  const started = performance.now();
  while (!condition()) {
    assert.ok(performance.now() - started < withinMs, `timed out waiting for ${what}`);
    await sleep(5);
  }
  return performance.now() - started;
}

/** A cache holding one entry, built from tag `x`. */
async function filled(): Promise<ResponseCache> {
  const cache = new ResponseCache(options);
  await cache.get('k', async () => ({ data: 'v', tags: [tag.tagsInUse] }), JSON.stringify);
  assert.equal(cache.size, 1);
  return cache;
}

let database: Awaited<ReturnType<typeof createDatabase>>;
let pool: Pool;
const closing: { close(): Promise<void> }[] = [];

before(async () => {
  database = await createDatabase();
  pool = createPool(database.url, poolOptions);
});
after(async () => {
  for (const c of closing) await c.close();
  await pool.end();
  await database.drop();
});

test('the listener reconnects by itself after its connection is killed, and drops its cache: messages were missed', async (t) => {
  const cache = await filled();
  const listener = new PgInvalidationBus({ url: database.url, db: pool, cache });
  closing.push(listener);
  await listener.start();
  const publisher = new PgInvalidationBus({ url: database.url, db: pool, cache: new ResponseCache(options) });

  await pool.query(`select pg_terminate_backend(pid) from pg_stat_activity
                     where application_name = 'conduit-cache-bus' and datname = current_database()`);
  await waitFor('the listener to notice', () => !listener.connected);
  // Sent while nobody listens: lost.
  await publisher.publish([tag.tagsInUse]);
  const back = await waitFor('the listener to reconnect', () => listener.connected);
  t.diagnostic(`reconnected ${back.toFixed(0)} ms after noticing`);
  assert.equal(listener.received, 0, 'the message was lost');
  assert.equal(cache.size, 0, 'so the cache was dropped on reconnect');

  // And it listens again.
  await cache.get('k', async () => ({ data: 'v', tags: [tag.tagsInUse] }), JSON.stringify);
  assert.equal(cache.size, 1);
  await publisher.publish([tag.tagsInUse]);
  await waitFor('delivery after the reconnect', () => cache.size === 0);
  assert.equal(listener.received, 1);
});

test('a publish that fails does not throw, and is made up for by "drop everything" once it gets through', async () => {
  const cache = await filled();
  const listener = new PgInvalidationBus({ url: database.url, db: pool, cache });
  closing.push(listener);
  await listener.start();
  // A publisher whose pool cannot serve (ended) and whose own connection is not up yet: the
  // publish has no way through.
  const broken = createPool(database.url, poolOptions);
  await broken.end();
  const publisher = new PgInvalidationBus({ url: database.url, db: broken, cache: new ResponseCache(options) });
  closing.push(publisher);

  await publisher.publish([tag.tagsInUse]);
  await sleep(100);
  assert.equal(cache.size, 1, 'not delivered');
  // Its own connection comes up: the other process hears "drop everything" at once.
  await publisher.start();
  const waited = await waitFor('the make-up message', () => cache.size === 0, 3000);
  assert.ok(waited < 2000, `${waited.toFixed(0)} ms`);
  assert.equal(listener.received, 1);
});

test('a publish goes through the bus own connection: it works with the pool exhausted or gone', async () => {
  const cache = await filled();
  const listener = new PgInvalidationBus({ url: database.url, db: pool, cache });
  closing.push(listener);
  await listener.start();
  const gone = createPool(database.url, poolOptions);
  await gone.end();
  const publisher = new PgInvalidationBus({ url: database.url, db: gone, cache: new ResponseCache(options) });
  closing.push(publisher);
  await publisher.start();

  await publisher.publish([tag.tagsInUse]);
  await waitFor('delivery', () => cache.size === 0);
  assert.equal(listener.received, 1);
});

test('writes that finish together share one NOTIFY, and every tag of theirs arrives', async () => {
  const cache = new ResponseCache(options);
  const tags = Array.from({ length: 20 }, (_, i) => tag.article(i));
  for (const t of tags) await cache.get(t, async () => ({ data: t, tags: [t] }), JSON.stringify);
  const listener = new PgInvalidationBus({ url: database.url, db: pool, cache });
  closing.push(listener);
  await listener.start();
  const publisher = new PgInvalidationBus({ url: database.url, db: pool, cache: new ResponseCache(options) });
  closing.push(publisher);
  await publisher.start();

  // Twenty writers answering in the same turn of the event loop, each awaiting its publish.
  await Promise.all(tags.map((tag) => publisher.publish([tag])));
  await waitFor('every tag to be dropped', () => cache.size === 0);
  // One message for all twenty (a second one at most, if the first was already on its way).
  assert.ok(listener.received >= 1 && listener.received <= 2, `${listener.received} messages`);
});

test('every NOTIFY is sent as the same statement text, its payload a parameter (for pg_stat_statements: one entry, not one per message)', async () => {
  const publisher = new PgInvalidationBus({ url: database.url, db: pool, cache: new ResponseCache(options) });
  closing.push(publisher);
  await publisher.start();
  // The earlier tests' buses are still connected: every bus's last NOTIFY must read the same.
  const sent = async () =>
    (
      await pool.query<{ query: string }>(
        "select query from pg_stat_activity where datname = current_database() and application_name = 'conduit-cache-bus' and query ilike '%notify%'",
      )
    ).rows.map((r) => r.query);
  for (const id of [1, 2]) {
    await publisher.publish([tag.article(id)]);
    assert.deepEqual([...new Set(await sent())], ['select pg_notify($1, $2)']);
  }
});
