// The Redis parts of the cache (cache/redis-tier.ts, cache/redis-bus.ts) against real Redis
// servers: the shared one on 127.0.0.1:6379 (each test under its own key prefix, never flushed)
// and private ones this file starts, kills and restarts on free ports.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { Client, createDatabase, createTestAppOn, type ArticleJson, type TestApp } from '../harness.ts';
import { parsePrometheus } from '../prometheus.ts';
import { PrivateRedis } from '../redis-server.ts';
import { RedisTier } from '../../src/cache/redis-tier.ts';
import { ResponseCache, type Entry } from '../../src/cache/response-cache.ts';

const SHARED_REDIS = 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, withinMs = 5000): Promise<void> {
  const started = performance.now();
  while (!(await condition())) {
    assert.ok(performance.now() - started < withinMs, `timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function ready(redis: Redis): Promise<void> {
  if (redis.status !== 'ready') await once(redis, 'ready');
}

/** Deletes one test's keys (its own prefix only: the Redis is shared). */
async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(SHARED_REDIS);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

async function entryKeys(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}e:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

/** Counts what reaches the pool until `restore()`. */
function countQueries(t: TestApp) {
  const db = t.db as unknown as Record<'query', (...args: unknown[]) => unknown>;
  const original = db.query;
  const counter = { queries: 0, restore: () => void delete (db as Partial<typeof db>).query };
  db.query = function (this: unknown, ...args: unknown[]) {
    counter.queries++;
    return original.apply(this, args);
  };
  return counter;
}

async function get(t: TestApp, url: string) {
  const res = await t.app.inject({ method: 'GET', url });
  return { status: res.statusCode, text: res.body, etag: res.headers.etag };
}

/** Builds apps in parallel; every one built goes into `into` (for after() to close), even if another failed. */
async function createApps(into: TestApp[], url: string, envs: Record<string, string>[]): Promise<TestApp[]> {
  const settled = await Promise.allSettled(envs.map((env) => createTestAppOn(url, env)));
  for (const s of settled) if (s.status === 'fulfilled') into.push(s.value);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<TestApp>).value);
}

describe('the shared Redis tier', () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  const prefix = `conduit-test:${randomUUID()}:`;
  // A generous command timeout: these tests count hits, and a machine busy with other work can
  // stall the event loop past the default 150 ms (a spurious timeout, then a database read).
  const env = { REDIS_URL: SHARED_REDIS, CACHE_REDIS_PREFIX: prefix, CACHE_REDIS_TIMEOUT_MS: '2000' };
  const apps: TestApp[] = [];
  let a: TestApp;
  let author: Awaited<ReturnType<Client['register']>>;
  let article: ArticleJson;
  let urls: string[];

  before(async () => {
    database = await createDatabase();
    a = await createTestAppOn(database.url, env);
    apps.push(a);
    const api = new Client(a.app);
    author = await api.register();
    for (let i = 0; i < 3; i++) article = await api.createArticle(author.token, { title: `Shared ${i}`, tagList: ['shared', `t${i}`] });
    await api.post(`/api/articles/${article.slug}/comments`, { token: author.token, body: { comment: { body: 'A comment' } } });
    urls = [
      '/api/articles',
      `/api/articles/${article.slug}`,
      `/api/articles/${article.slug}/comments`,
      `/api/profiles/${author.username}`,
      '/api/tags',
    ];
    await ready(a.ctx.redis!);
    await waitFor('the tier to be usable', () => (a.ctx.cache!.shared as RedisTier).usable);
  });
  after(async () => {
    for (const t of apps) await t.close();
    await deleteKeys(prefix);
    await database?.drop();
  });

  test('a new instance with an empty in-process cache starts warm: its first reads are Redis hits and touch no database', async () => {
    const first = await Promise.all(urls.map((url) => get(a, url)));
    assert.ok(first.every((r) => r.status === 200));
    await waitFor('the entries to reach Redis', () => a.ctx.cache!.stats.redisStores >= urls.length);

    const b = await createTestAppOn(database.url, env);
    apps.push(b);
    await waitFor('its tier to be usable', () => (b.ctx.cache!.shared as RedisTier).usable);
    const counter = countQueries(b);
    let fresh;
    try {
      fresh = await Promise.all(urls.map((url) => get(b, url)));
    } finally {
      counter.restore();
    }
    assert.equal(counter.queries, 0, 'served from Redis');
    assert.deepEqual(fresh, first, 'the same bytes and ETags as the instance that loaded them');
    assert.equal(b.ctx.cache!.stats.redisHits, urls.length);
    assert.equal(b.ctx.cache!.stats.redisMisses, 0);
    // And an operator sees it: the tier's counters are exported.
    const metrics = parsePrometheus((await b.app.inject({ method: 'GET', url: '/metrics' })).body).samples;
    const redisLookups = (result: string) =>
      metrics.find((m) => m.name === 'conduit_cache_redis_requests_total' && m.labels.result === result)?.value;
    assert.deepEqual([redisLookups('hit'), redisLookups('miss'), redisLookups('error')], [urls.length, 0, 0]);
    // Now in b's own cache: the next reads do not even ask Redis.
    for (const url of urls) await get(b, url);
    assert.equal(b.ctx.cache!.stats.hits, urls.length);
    assert.equal(b.ctx.cache!.stats.redisHits, urls.length);
  });

  test('a write on one instance removes its Redis entries before it answers, and only those', async () => {
    const redis = a.ctx.redis!;
    const before = await entryKeys(redis, prefix);
    const articleKey = (keys: string[]) => keys.filter((k) => k.endsWith(`article\u0000${article.slug}`));
    assert.equal(articleKey(before).length, 1, 'the article is in Redis');
    const tagsKey = (keys: string[]) => keys.filter((k) => k.endsWith(':tags'));
    assert.equal(tagsKey(before).length, 1, 'so is the tag list');

    const res = await new Client(apps[1]!.app).put(`/api/articles/${article.slug}`, {
      token: author.token,
      body: { article: { body: 'Edited' } },
    });
    assert.equal(res.status, 200);
    const now = await entryKeys(redis, prefix);
    assert.deepEqual(articleKey(now), [], 'the edited article is gone from Redis');
    assert.equal(now.filter((k) => k.includes('list')).length, 0, 'so is the list page that showed it');
    assert.equal(tagsKey(now).length, 1, 'the tag list, which a body edit does not change, stays');

    // The writer's instance: fresh at once. The other: fresh once the bus has delivered, and
    // from the database (Redis no longer has it), never a stale copy from Redis.
    assert.match((await get(apps[1]!, `/api/articles/${article.slug}`)).text, /"body":"Edited"/);
    await waitFor('the invalidation to reach the first instance', async () =>
      /"body":"Edited"/.test((await get(a, `/api/articles/${article.slug}`)).text),
    );
  });
});

describe('the TTL across tiers', () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  const prefix = `conduit-test:${randomUUID()}:`;
  // A generous command timeout: these tests count hits, and a machine busy with other work can
  // stall the event loop past the default 150 ms (a spurious timeout, then a database read).
  const env = { REDIS_URL: SHARED_REDIS, CACHE_REDIS_PREFIX: prefix, CACHE_REDIS_TIMEOUT_MS: '2000' };
  const apps: TestApp[] = [];
  let a: TestApp;
  let b: TestApp;
  before(async () => {
    database = await createDatabase();
    [a, b] = (await createApps(apps, database.url, [env, env])) as [TestApp, TestApp];
    await ready(a.ctx.redis!);
    await waitFor('the tiers to be usable', () => [a, b].every((t) => (t.ctx.cache!.shared as RedisTier).usable));
  });
  after(async () => {
    await Promise.all(apps.map((t) => t.close()));
    await deleteKeys(prefix);
    await database?.drop();
  });

  test('an entry read from Redis lives in-process no longer than it had left in Redis', async () => {
    await get(a, '/api/tags');
    await waitFor('the store', () => a.ctx.cache!.stats.redisStores === 1);
    const [key] = await entryKeys(a.ctx.redis!, prefix);
    await a.ctx.redis!.pexpire(key!, 300);
    const stats = b.ctx.cache!.stats;
    await get(b, '/api/tags');
    assert.deepEqual([stats.redisHits, stats.redisErrors], [1, 0]);
    await get(b, '/api/tags');
    assert.equal(stats.hits, 1, 'kept in-process while it lives');
    await sleep(400);
    await get(b, '/api/tags');
    assert.equal(stats.misses, 2, 'gone from the process with its time in Redis');
    assert.equal(stats.redisMisses, 1, 'and from Redis');
  });
});

describe('the Redis tier race guard, across processes', () => {
  const prefix = `conduit-test:${randomUUID()}:`;
  let redis: Redis;
  const connections: Redis[] = [];
  const entry = (data: string, tags: string[]): Entry<unknown> => ({
    data,
    body: Buffer.from(JSON.stringify(data)),
    etag: `"${data}"`,
    tags,
    variants: new Map(),
  });
  /** A process's tier: its own connection, its own stats. */
  const tier = async () => {
    const connection = new Redis(SHARED_REDIS, { enableOfflineQueue: false, commandTimeout: 1000 });
    connections.push(connection);
    await ready(connection);
    const { stats } = new ResponseCache({ ttlMs: 60_000, maxBytes: 1 << 20, compression: false, compressionThresholdBytes: 1024 });
    return { t: new RedisTier({ redis: connection, prefix, ttlMs: 60_000, stats }), stats };
  };
  let one: Awaited<ReturnType<typeof tier>>;
  let two: Awaited<ReturnType<typeof tier>>;

  before(async () => {
    redis = new Redis(SHARED_REDIS);
    await ready(redis);
    [one, two] = await Promise.all([tier(), tier()]);
  });
  after(async () => {
    one?.t.close();
    two?.t.close();
    for (const c of connections) c.disconnect();
    await deleteKeys(prefix);
    redis.disconnect();
  });

  test('a load that started before another process invalidated one of its tags is not stored', async () => {
    const miss = await one.t.read('k1');
    assert.ok(miss && !miss.entry, 'a miss with a ticket');
    // Another process writes (and invalidates) while this one loads.
    await two.t.invalidate(['article:1']);
    assert.equal(await one.t.store('k1', entry('stale', ['article:1', 'user:1']), miss.ticket), false, 'refused');
    const again = await two.t.read('k1');
    assert.ok(again && !again.entry, 'nothing to read');
    // A load that started after the invalidation is stored.
    assert.equal(await one.t.store('k1', entry('fresh', ['article:1', 'user:1']), again.ticket), true);
    assert.equal((await two.t.read('k1'))?.entry?.data, 'fresh');
    assert.deepEqual([one.stats.redisErrors, two.stats.redisErrors], [0, 0]);
  });

  test('an entry whose tag set was lost is still never served after an invalidation of its tag', async () => {
    const miss = await one.t.read('k2');
    assert.equal(await one.t.store('k2', entry('v', ['user:7']), miss!.ticket), true);
    assert.equal((await two.t.read('k2'))?.entry?.data, 'v');
    // As if Redis had evicted the set of keys built from user:7: the invalidation cannot find the entry.
    await redis.del(`${prefix}t:user:7`);
    await two.t.invalidate(['user:7']);
    assert.equal((await entryKeys(redis, prefix)).filter((k) => k.endsWith(':k2')).length, 1, 'the entry is still there');
    const read = await one.t.read('k2');
    assert.ok(read && !read.entry, 'the stamp of user:7 is newer than the entry: not served');
  });

  test('an invalidation that fails makes its tier stand aside until the epoch has moved, which drops every entry', async () => {
    const miss = await one.t.read('k4');
    assert.equal(await one.t.store('k4', entry('before the write', ['article:4']), miss!.ticket), true);
    // A process whose connection to Redis is gone, while the others still reach it.
    const connection = new Redis(SHARED_REDIS, { enableOfflineQueue: false, commandTimeout: 1000 });
    connections.push(connection);
    await ready(connection);
    const { stats } = new ResponseCache({ ttlMs: 60_000, maxBytes: 1 << 20, compression: false, compressionThresholdBytes: 1024 });
    const cut = new RedisTier({ redis: connection, prefix, ttlMs: 60_000, stats });
    const ended = once(connection, 'end');
    connection.disconnect();
    await ended;
    await cut.invalidate(['article:4']);
    assert.equal(stats.redisErrors, 1);
    assert.equal(await cut.read('k4'), undefined, 'it does not use the tier meanwhile');
    // The limitation: others may read what the failed invalidation should have removed.
    assert.equal((await two.t.read('k4'))?.entry?.data, 'before the write');
    await connection.connect();
    await waitFor('the epoch to move', () => cut.usable);
    const after = await two.t.read('k4');
    assert.ok(after && !after.entry, 'gone for everyone');
    cut.close();
  });

  test('a load in flight across a Redis restart (all of meta lost) is not stored', async () => {
    const miss = await one.t.read('k3');
    await redis.del(`${prefix}meta`);
    assert.equal(await one.t.store('k3', entry('from before the restart', ['article:3']), miss!.ticket), false);
    const read = await two.t.read('k3');
    assert.ok(read && !read.entry, 'a new epoch: the old ticket is refused');
  });
});

describe('with Redis unreachable from the start (a closed port)', () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  let t: TestApp;
  before(async () => {
    database = await createDatabase();
    t = await createTestAppOn(database.url, { REDIS_URL: 'redis://127.0.0.1:1' });
  });
  after(async () => {
    await t?.close();
    await database?.drop();
  });

  test('every request succeeds from the database, quickly, and the errors are counted', async () => {
    const api = new Client(t.app);
    const started = performance.now();
    const user = await api.register();
    const other = await api.register();
    const a = await api.createArticle(user.token, { tagList: ['down'] });
    const statuses: number[] = [];
    for (let round = 0; round < 2; round++) {
      for (const [method, url, token, body] of [
        ['GET', '/api/articles', undefined],
        ['GET', `/api/articles/${a.slug}`, other.token],
        ['POST', `/api/articles/${a.slug}/favorite`, other.token],
        ['POST', `/api/articles/${a.slug}/comments`, other.token, { comment: { body: 'still here' } }],
        ['GET', `/api/articles/${a.slug}/comments`, undefined],
        ['GET', `/api/profiles/${user.username}`, undefined],
        ['PUT', '/api/user', user.token, { user: { bio: `round ${round}` } }],
        ['GET', '/api/tags', undefined],
        ['GET', '/api/articles/feed', other.token],
      ] as const) {
        statuses.push((await api.request(method, url, { token, body })).status);
      }
    }
    assert.deepEqual(statuses, [200, 200, 200, 201, 200, 200, 200, 200, 200, 200, 200, 200, 201, 200, 200, 200, 200, 200]);
    // The profile edit shows at once: invalidation works in-process without Redis.
    assert.match((await api.get(`/api/profiles/${user.username}`)).text, /round 1/);
    assert.ok(performance.now() - started < 5000, `${(performance.now() - started).toFixed(0)} ms`);
    assert.ok(t.ctx.cache!.stats.redisErrors > 0);
    assert.ok(t.ctx.cache!.stats.hits > 0, 'the in-process cache keeps working');
    assert.equal(t.ctx.bus!.connected, false);
  });
});

describe('with a Redis that stops answering (a frozen connection)', () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  let t: TestApp;
  let frozen = false;
  const prefix = `conduit-test:${randomUUID()}:`;
  const sockets: net.Socket[] = [];
  // A TCP relay to the shared Redis that can stop relaying: connections stay open, no reply comes.
  const relay = net.createServer((client) => {
    const upstream = net.connect(6379, '127.0.0.1');
    sockets.push(client, upstream);
    client.on('data', (d) => void (frozen || upstream.write(d)));
    upstream.on('data', (d) => void (frozen || client.write(d)));
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  before(async () => {
    database = await createDatabase();
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    const { port } = relay.address() as net.AddressInfo;
    t = await createTestAppOn(database.url, { REDIS_URL: `redis://127.0.0.1:${port}`, CACHE_REDIS_PREFIX: prefix });
    await waitFor('the bus to listen', () => t.ctx.bus!.connected);
  });
  after(async () => {
    frozen = false;
    await t?.close();
    for (const s of sockets) s.destroy();
    relay.close();
    await deleteKeys(prefix);
    await database?.drop();
  });

  test('reads and writes answer within a bounded time, without errors', async () => {
    const api = new Client(t.app);
    const user = await api.register();
    const a = await api.createArticle(user.token);
    frozen = true;
    const timings: number[] = [];
    for (let i = 0; i < 6; i++) {
      for (const [method, url, body] of [
        ['GET', `/api/articles?offset=${i}`],
        ['PUT', `/api/articles/${a.slug}`, { article: { body: `frozen ${i}` } }],
        ['GET', `/api/articles/${a.slug}`],
      ] as const) {
        const started = performance.now();
        const res = await api.request(method, url, { token: user.token, body });
        timings.push(performance.now() - started);
        assert.equal(res.status, 200, `${method} ${url}`);
      }
      assert.match((await api.get(`/api/articles/${a.slug}`)).text, new RegExp(`frozen ${i}`), 'read-your-writes holds');
    }
    // One command timeout (150 ms) per second at most, then the breakers skip Redis.
    assert.ok(Math.max(...timings) < 1000, `slowest ${Math.max(...timings).toFixed(0)} ms`);
    const total = timings.reduce((x, y) => x + y, 0);
    assert.ok(total < 3000, `${timings.length} requests took ${total.toFixed(0)} ms`);
  });
});

/**
 * A TCP relay to the shared Redis that can stall: while stalled nothing goes through either
 * way, and on release everything held goes through in order, as with a Redis (or a network
 * path) that stops answering for a while. Commands that timed out meanwhile still run then.
 */
class StallingRelay {
  stalled = false;
  port = 0;
  readonly #held: (() => void)[] = [];
  readonly #sockets: net.Socket[] = [];
  readonly #server = net.createServer((client) => {
    const upstream = net.connect(6379, '127.0.0.1');
    this.#sockets.push(client, upstream);
    const pass = (to: net.Socket) => (d: Buffer) => {
      if (this.stalled) this.#held.push(() => void to.write(d));
      else to.write(d);
    };
    client.on('data', pass(upstream));
    upstream.on('data', pass(client));
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as net.AddressInfo).port;
  }
  release(): void {
    this.stalled = false;
    for (const write of this.#held.splice(0)) write();
  }
  close(): void {
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
  }
}

describe("a write that cannot invalidate Redis (the writer's breaker is open after a stall)", () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  const prefix = `conduit-test:${randomUUID()}:`;
  const relay = new StallingRelay();
  const apps: TestApp[] = [];
  let writer: TestApp;
  let reader: TestApp;
  let truth: TestApp;
  before(async () => {
    await relay.start();
    database = await createDatabase();
    [writer, reader, truth] = (await createApps(apps, database.url, [
      { REDIS_URL: `redis://127.0.0.1:${relay.port}`, CACHE_REDIS_PREFIX: prefix },
      { REDIS_URL: SHARED_REDIS, CACHE_REDIS_PREFIX: prefix, CACHE_REDIS_TIMEOUT_MS: '2000' },
      { CACHE: 'off' },
    ])) as [TestApp, TestApp, TestApp];
    await waitFor('the tiers and buses', () =>
      [writer, reader].every((t) => t.ctx.bus!.connected && (t.ctx.cache!.shared as RedisTier).usable),
    );
  });
  after(async () => {
    relay.release();
    await Promise.all(apps.map((t) => t.close()));
    relay.close();
    await deleteKeys(prefix);
    await database?.drop();
  });

  test('the other instance does not take the stale entry from Redis once it has the message', async () => {
    const api = new Client(writer.app);
    const user = await api.register();
    const { slug } = await api.createArticle(user.token);
    const url = `/api/articles/${slug}`;
    // The reader loads it and stores it in Redis; the writer has it too.
    await get(reader, url);
    await waitFor('the store', () => reader.ctx.cache!.stats.redisStores >= 1);
    await get(writer, url);

    // Redis stalls for a moment: one of the writer's reads times out and its breaker opens
    // (for a second it does not call Redis). The stall ends; the bus connection is fine.
    relay.stalled = true;
    await get(writer, '/api/articles?limit=3');
    relay.release();
    assert.equal((writer.ctx.cache!.shared as RedisTier).usable, false, 'the breaker is open');

    // A write now cannot invalidate Redis: the entry the reader stored stays there.
    assert.equal((await api.put(url, { token: user.token, body: { article: { body: 'Edited' } } })).status, 200);
    assert.match((await get(writer, url)).text, /Edited/, 'read-your-writes on the writer');
    const fresh = (await get(truth, url)).text;
    // Within the bus delay the reader is fresh, and from then on it never serves the stale copy
    // (from Redis, or kept in-process after reading it there).
    let freshSince: number | undefined;
    const deadline = performance.now() + 2500;
    while (performance.now() < deadline) {
      const body = (await get(reader, url)).text;
      if (body === fresh) freshSince ??= performance.now();
      else assert.equal(freshSince, undefined, `stale again ${(performance.now() - freshSince!).toFixed(0)} ms after it was fresh`);
      await sleep(10);
    }
    assert.ok(freshSince !== undefined, 'the reader became fresh');
    await waitFor('both tiers to be usable again (a new epoch)', () =>
      [writer, reader].every((t) => (t.ctx.cache!.shared as RedisTier).usable),
    );
    assert.equal((await get(reader, url)).text, fresh);
  });
});

describe('Redis killed and restarted under traffic', () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  const redis = new PrivateRedis();
  const apps: TestApp[] = [];
  let a: TestApp;
  let b: TestApp;
  let truth: TestApp;
  before(async () => {
    await redis.start();
    database = await createDatabase();
    const env = { REDIS_URL: redis.url };
    [a, b, truth] = (await createApps(apps, database.url, [env, env, { CACHE: 'off' }])) as [TestApp, TestApp, TestApp];
    await waitFor('both buses to listen', () => a.ctx.bus!.connected && b.ctx.bus!.connected);
  });
  after(async () => {
    await Promise.all(apps.map((t) => t.close()));
    await redis.kill();
    await database?.drop();
  });

  test('no client sees an error, and caching across instances resumes when Redis is back', async () => {
    const api = new Client(a.app);
    const users = [await api.register(), await api.register()];
    const slugs: string[] = [];
    for (let i = 0; i < 4; i++)
      slugs.push((await api.createArticle(users[i % 2]!.token, { title: `Restart ${i}`, tagList: [`r${i % 2}`] })).slug);

    const failures: string[] = [];
    let requests = 0;
    let stop = false;
    // Two clients per instance: reads of every cached kind, and a write now and then.
    const client = async (t: TestApp, n: number) => {
      const c = new Client(t.app);
      for (let i = 0; !stop; i++) {
        const slug = slugs[(i + n) % slugs.length]!;
        const user = users[(i + n) % 2]!;
        const [method, url, body]: [string, string, unknown?] = [
          ['GET', '/api/articles'],
          ['GET', `/api/articles/${slug}`],
          ['GET', `/api/articles/${slug}/comments`],
          ['GET', `/api/profiles/${user.username}`],
          ['GET', '/api/tags'],
          ['PUT', `/api/articles/${slug}`, { article: { body: `body ${n}-${i}` } }],
          ['POST', `/api/articles/${slug}/favorite`],
          ['DELETE', `/api/articles/${slug}/favorite`],
        ][i % 8] as [string, string, unknown?];
        const token = method === 'GET' && i % 3 === 0 ? undefined : users[slugs.indexOf(slug) % 2]!.token;
        const started = performance.now();
        const res = await c.request(method, url, { token, body });
        requests++;
        const ms = performance.now() - started;
        if (res.status >= 400 || ms > 1000) failures.push(`${method} ${url}: ${res.status} in ${ms.toFixed(0)} ms ${res.text}`);
        await new Promise((r) => setImmediate(r));
      }
    };
    const traffic = Promise.all([client(a, 0), client(a, 1), client(b, 2), client(b, 3)]);

    await sleep(300);
    const storedBefore = a.ctx.cache!.stats.redisStores + b.ctx.cache!.stats.redisStores;
    await redis.kill();
    await sleep(1000);
    const errorsWhileDown = a.ctx.cache!.stats.redisErrors + b.ctx.cache!.stats.redisErrors;
    await redis.start();
    await waitFor(
      'both buses to resubscribe and both tiers to be usable',
      () => [a, b].every((t) => t.ctx.bus!.connected && (t.ctx.cache!.shared as RedisTier).usable),
      10_000,
    );
    const storesAtRestart = a.ctx.cache!.stats.redisStores + b.ctx.cache!.stats.redisStores;
    await sleep(500);
    stop = true;
    await traffic;

    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed or were slow`);
    assert.ok(storedBefore > 0, 'Redis was in use before the kill');
    assert.ok(errorsWhileDown > 0, 'the outage was noticed');
    assert.ok(a.ctx.cache!.stats.redisStores + b.ctx.cache!.stats.redisStores > storesAtRestart, 'entries are stored in Redis again');

    // Coherent again: both instances answer what the database says. The clients' last writes may
    // still be on the bus to the other instance when the traffic stops (tens of ms, measured in
    // the coherence tests), so each read gets up to 2 s to agree: a stale entry that outlived the
    // outage would stay wrong for the whole TTL (60 s).
    for (const t of [a, b]) {
      for (const url of ['/api/articles', ...slugs.map((s) => `/api/articles/${s}`), '/api/tags']) {
        const agrees = async () => (await get(t, url)).text === (await get(truth, url)).text;
        const deadline = performance.now() + 2000;
        while (!(await agrees()) && performance.now() < deadline) await sleep(20);
        assert.equal((await get(t, url)).text, (await get(truth, url)).text, url);
      }
    }
    // And shared again: what a loads, b reads from Redis.
    const probe = `/api/articles?tag=r1&limit=${3}`;
    const stores = a.ctx.cache!.stats.redisStores;
    await get(a, probe);
    await waitFor('the store', () => a.ctx.cache!.stats.redisStores > stores);
    const hits = b.ctx.cache!.stats.redisHits;
    await get(b, probe);
    assert.equal(b.ctx.cache!.stats.redisHits, hits + 1);
  });
});
