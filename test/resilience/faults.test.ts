// The real process (src/main.ts) under keep-alive load while its dependencies fail for real:
// - PostgreSQL stopped (a fast shutdown of an embedded server this file owns) and started again on
//   the same port and data directory: every request answers within the deadline in the error
//   shape, /readyz says so, the same process serves again within seconds, and a write cut by the
//   outage is stored whole or not at all.
// - Redis killed (SIGKILL) and restarted on the same port while two instances use it for the
//   cache tier, the invalidation bus and the rate-limit counters: no client sees anything but 2xx,
//   and both instances use Redis again once it is back.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ensureDatabase } from '../../src/db/database.ts';
import { freePort, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/db/embedded.ts';
import { createDatabase, TEST_JWT_SECRET } from '../harness.ts';
import { request, sleep } from '../http/socket.ts';
import { parsePrometheus } from '../prometheus.ts';
import { PrivateRedis } from '../redis-server.ts';
import { startService, type Service } from '../service.ts';

// ---- a keep-alive load driver ------------------------------------------------------------------

interface Req {
  base: string;
  method: string;
  path: string;
  token?: string | undefined;
  body?: unknown;
}

interface Outcome {
  req: Req;
  /** performance.now() when sent and when the response ended (or the request failed). */
  sentAt: number;
  doneAt: number;
  status?: number;
  /** A connection-level failure (ECONNRESET, ECONNREFUSED, ETIMEDOUT: no answer in time). */
  error?: string;
  body: string;
  retryAfter?: string | undefined;
}

// A request with no answer after this is recorded as hung (ETIMEDOUT), far past any bound asserted.
const CLIENT_TIMEOUT_MS = 10_000;

function send(req: Req, agent: http.Agent): Promise<Outcome> {
  const headers: Record<string, string> = {};
  if (req.token) headers.authorization = `Token ${req.token}`;
  let payload: string | undefined;
  if (req.body !== undefined) {
    payload = JSON.stringify(req.body);
    headers['content-type'] = 'application/json';
  }
  const sentAt = performance.now();
  return new Promise((resolve) => {
    const failed = (err: NodeJS.ErrnoException) =>
      resolve({ req, sentAt, doneAt: performance.now(), error: err.code ?? err.message, body: '' });
    const r = http.request(`${req.base}${req.path}`, { method: req.method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', failed);
      res.on('end', () =>
        resolve({
          req,
          sentAt,
          doneAt: performance.now(),
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          retryAfter: res.headers['retry-after'],
        }),
      );
    });
    r.on('error', failed);
    r.setTimeout(CLIENT_TIMEOUT_MS, () => r.destroy(Object.assign(new Error('no response in time'), { code: 'ETIMEDOUT' })));
    r.end(payload);
  });
}

// Every load started, so that the after() hooks stop those a failed assertion left running
// (their loops would keep the test file alive, and keep calling a service being stopped).
const loads: { stop(): Promise<void> }[] = [];
const stopLoads = () => Promise.all(loads.splice(0).map((l) => l.stop()));

/**
 * `clients` keep-alive clients (one connection each), each sending `next(client, n)` back to
 * back with a short pause (the machine is shared: load, not a benchmark), until stop().
 */
function drive(clients: number, next: (client: number, n: number) => Req, pauseMs = 10) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  const loops = Array.from({ length: clients }, async (_, c) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let n = 0; !stopped; n++) {
        outcomes.push(await send(next(c, n), agent));
        await sleep(pauseMs);
      }
    } finally {
      agent.destroy();
    }
  });
  const load = {
    outcomes,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
  loads.push(load);
  return load;
}

const ms = (x: number) => `${x.toFixed(0)} ms`;
const latency = (o: Outcome) => o.doneAt - o.sentAt;
const describeOutcome = (o: Outcome) =>
  `${o.req.method} ${o.req.path}: ${o.status ?? o.error} in ${ms(latency(o))} ${o.body.slice(0, 200)}`;

function tally(values: readonly (string | number | undefined)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[String(v)] = (counts[String(v)] ?? 0) + 1;
  return counts;
}

/** Outcomes counted by status (or by the connection error). */
const countBy = (outcomes: readonly Outcome[]) => tally(outcomes.map((o) => o.status ?? o.error));

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, withinMs: number): Promise<void> {
  const started = performance.now();
  while (!(await condition())) {
    assert.ok(performance.now() - started < withinMs, `timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function register(base: string, name: string): Promise<{ username: string; token: string }> {
  const res = await request(`${base}/api/users`, {
    method: 'POST',
    body: { user: { username: name, email: `${name}@example.com`, password: 'password123' } },
  });
  assert.equal(res.status, 201, res.body.toString());
  return JSON.parse(res.body.toString()).user as { username: string; token: string };
}

async function createArticle(base: string, token: string, title: string, tagList: string[]): Promise<string> {
  const res = await request(`${base}/api/articles`, {
    method: 'POST',
    headers: { authorization: `Token ${token}` },
    body: { article: { title, description: 'd', body: 'b', tagList } },
  });
  assert.equal(res.status, 201, res.body.toString());
  return (JSON.parse(res.body.toString()).article as { slug: string }).slug;
}

/** Stops a service still running when a test failed: SIGTERM, then SIGKILL if it lingers. */
async function kill(s: Service | undefined): Promise<void> {
  if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  s.proc.kill('SIGTERM');
  const exited = await Promise.race([s.exited.then(() => true), sleep(5000).then(() => false)]);
  if (!exited) await s.stop('SIGKILL');
}

// ---- PostgreSQL ---------------------------------------------------------------------------------

describe('PostgreSQL stopped and started again under load', () => {
  const DEADLINE_MS = 2000;
  // How far past the deadline an answer may come on a busy machine before it counts as hung.
  const MARGIN_MS = 1500;
  const DOWN_MS = 3000;
  let tmp: string;
  let port: number;
  let server: EmbeddedPostgresHandle | undefined;
  let dbUrl: string;
  let s: Service | undefined;
  const startPg = async () => {
    // Persistent (fsync on): what was committed before the stop must be there after the start.
    server = await startEmbeddedPostgres({ dir: path.join(tmp, 'pg'), port, ephemeral: false });
  };

  before(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'conduit-faults-'));
    // The server runs as the `postgres` user when the tests run as root: it must reach the dir.
    await chmod(tmp, 0o755);
    port = await freePort();
    await startPg();
    await ensureDatabase(server!.url, 'conduit');
    dbUrl = server!.url.replace(/\/postgres$/, '/conduit');
    // The service migrates the new database at start.
    s = await startService({
      DATABASE_URL: dbUrl,
      JWT_SECRET: TEST_JWT_SECRET,
      REQUEST_TIMEOUT_MS: String(DEADLINE_MS),
      DB_ACQUIRE_TIMEOUT_MS: '1000',
      // One client address and a busy machine: neither the limiter nor the shedder should answer.
      RATE_LIMIT: 'off',
      SHED: 'off',
    });
  });
  after(async () => {
    await stopLoads();
    await kill(s);
    await server?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  test('every request answers in time in the error shape while it is down, the same process serves again, and no write is half-stored', async (ctx) => {
    const base = s!.url;
    const pid = s!.proc.pid;
    const reader = await register(base, 'reader');
    const writer = await register(base, 'writer');
    const slugs: string[] = [];
    for (let i = 0; i < 3; i++) slugs.push(await createArticle(base, writer.token, `Seed ${i}`, ['seed', `seed${i}`]));

    // Reads are signed in. The cache answers some of them without PostgreSQL (the reader's
    // favorites and follows, the feed and the current user are cached too), until the token's
    // user-existence check (remembered 1 s, http/auth.ts) needs the database again: while it is
    // down, a read is a 200 from the cache or a 503, a write always a 503.
    const reads = [
      (n: number) => `/api/articles/${slugs[n % slugs.length]}`,
      () => '/api/articles?limit=5',
      () => '/api/articles/feed',
      () => '/api/user',
      () => `/api/profiles/${writer.username}`,
    ];
    // Writers create articles with 1 to 3 tags (two of them new each time) for the whole run:
    // some are in flight when the server stops.
    const sent = new Map<string, string[]>();
    const load = drive(8, (c, n) => {
      if (c < 2) {
        const title = `Fault ${c}-${n}`;
        const tagList = [`f${c}x${n}a`, `f${c}x${n}b`, 'shared'].slice(0, 1 + (n % 3));
        sent.set(title, tagList);
        return {
          base,
          method: 'POST',
          path: '/api/articles',
          token: writer.token,
          body: { article: { title, description: 'd', body: 'b', tagList } },
        };
      }
      return { base, method: 'GET', path: reads[(c + n) % reads.length]!(n), token: reader.token };
    });

    await sleep(1500);
    const stopAt = performance.now();
    await server!.stop();
    const downAt = performance.now();
    // The probes, while it is down.
    const probes: { readyz: number | string; healthz: number | string }[] = [];
    // A probe that gets no answer records why (ECONNREFUSED: the process is gone).
    const status = (url: string) =>
      request(url).then(
        (r) => r.status,
        (err: NodeJS.ErrnoException) => err.code ?? String(err),
      );
    while (performance.now() - downAt < DOWN_MS) {
      const [readyz, healthz] = await Promise.all([status(`${base}/readyz`), status(`${base}/healthz`)]);
      probes.push({ readyz, healthz });
      await sleep(200);
    }
    const restartAt = performance.now();
    await startPg();
    // startEmbeddedPostgres resolves on "database system is ready to accept connections".
    const upAt = performance.now();
    const isBack = (o: Outcome) => o.sentAt >= upAt && o.status !== undefined && o.status < 300;
    await waitFor('a request sent after PostgreSQL came back to succeed', () => load.outcomes.some(isBack), 10_000);
    const firstOk = load.outcomes.filter(isBack).reduce((a, b) => (a.doneAt < b.doneAt ? a : b));
    await sleep(2000);
    await load.stop();
    const outcomes = load.outcomes;

    const whileDown = outcomes.filter((o) => o.sentAt >= downAt && o.doneAt <= restartAt);
    const around = outcomes.filter((o) => o.doneAt >= stopAt && o.sentAt <= upAt);
    const recovered = outcomes.filter((o) => o.sentAt >= firstOk.doneAt + 500);
    const backMs = firstOk.doneAt - upAt;
    const maxDown = Math.max(...around.map(latency));
    ctx.diagnostic(
      `${outcomes.length} requests; while down (${ms(restartAt - downAt)}): ${whileDown.length} requests ${JSON.stringify(countBy(whileDown))}, ` +
        `max latency from the stop to the start ${ms(maxDown)}; /readyz ${JSON.stringify(tally(probes.map((p) => p.readyz)))}; ` +
        `PostgreSQL stop took ${ms(downAt - stopAt)}, start ${ms(upAt - restartAt)}; first 200 ${ms(backMs)} after it accepted connections; ` +
        `after recovery: ${JSON.stringify(countBy(recovered))}; all: ${JSON.stringify(countBy(outcomes))}`,
    );

    // Never an exit, a hang or a reset: every request got an HTTP answer, within the deadline.
    const fatal = s!.logs.filter((l) => Number(l.level) >= 50).map((l) => JSON.stringify(l).slice(0, 400));
    assert.deepEqual(
      [s!.proc.exitCode, s!.proc.signalCode, fatal],
      [null, null, []],
      'the process is still running, with nothing fatal logged',
    );
    assert.equal(s!.proc.pid, pid);
    assert.deepEqual(outcomes.filter((o) => o.error !== undefined).map(describeOutcome), [], 'connection-level failures');
    assert.deepEqual(outcomes.filter((o) => latency(o) > DEADLINE_MS + MARGIN_MS).map(describeOutcome), [], 'answers past the deadline');
    // Only success, or a refusal the client may retry: 503 (or 504) in the error shape, with Retry-After.
    assert.deepEqual(outcomes.filter((o) => ![200, 201, 503, 504].includes(o.status!)).map(describeOutcome), [], 'unexpected statuses');
    for (const o of outcomes.filter((x) => x.status === 503 || x.status === 504)) {
      const body = JSON.parse(o.body) as { errors: Record<string, unknown> };
      assert.ok(
        Object.values(body.errors).every((v) => Array.isArray(v) && v.every((m) => typeof m === 'string')),
        describeOutcome(o),
      );
      assert.ok(Number(o.retryAfter) >= 1, `Retry-After on ${describeOutcome(o)}`);
    }
    assert.ok(whileDown.length > 20, `load ran while it was down: ${whileDown.length} requests`);
    const allowedWhileDown = (o: Outcome) => (o.req.method === 'GET' ? [200, 503, 504] : [503, 504]).includes(o.status!);
    assert.deepEqual(
      whileDown.filter((o) => !allowedWhileDown(o)).map(describeOutcome),
      [],
      'while down: reads 200 (cached) or 503/504, writes 503/504',
    );
    assert.ok(whileDown.filter((o) => o.status === 503).length > 20, 'the outage showed: requests needing the database were refused');
    // Readiness follows the database; liveness does not (a restart would not help).
    assert.ok(probes.length >= 5);
    assert.deepEqual(new Set(probes.map((p) => p.readyz)), new Set([503]));
    assert.deepEqual(new Set(probes.map((p) => p.healthz)), new Set([200]));
    assert.equal((await request(`${base}/readyz`)).status, 200, 'ready again');
    // Served again, by the same process, within 5 s of PostgreSQL accepting connections.
    assert.ok(backMs < 5000, `first success ${ms(backMs)} after PostgreSQL was back`);
    assert.ok(recovered.length > 20, `load ran after recovery: ${recovered.length} requests`);
    assert.deepEqual(recovered.filter((o) => o.status !== 200 && o.status !== 201).map(describeOutcome), [], 'after recovery');

    // Writes: each is stored whole (the article and every tag it was sent with) or not at all.
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    let rows: { title: string; tags: string[] }[];
    try {
      rows = (
        await db.query<{ title: string; tags: string[] }>(
          `select a.title, coalesce(array_agg(t.name order by t.name) filter (where t.name is not null), '{}') as tags
           from articles a left join article_tags at on at.article_id = a.id left join tags t on t.id = at.tag_id
          where a.title like 'Fault %' group by a.id, a.title`,
        )
      ).rows;
    } finally {
      await db.end();
    }
    const stored = new Map(rows.map((r) => [r.title, r.tags]));
    assert.equal(stored.size, rows.length, 'each write stored once');
    const writes = outcomes.filter((o) => o.req.method === 'POST');
    const titleOf = (o: Outcome) => (o.req.body as { article: { title: string } }).article.title;
    const created = writes.filter((o) => o.status === 201);
    const refused = writes.filter((o) => o.status !== 201);
    for (const o of created) {
      const title = titleOf(o);
      assert.deepEqual(stored.get(title), [...sent.get(title)!].sort(), `${title}: answered 201, stored with all its tags`);
      assert.deepEqual((JSON.parse(o.body) as { article: { tagList: string[] } }).article.tagList, [...sent.get(title)!].sort());
    }
    for (const [title, tags] of stored) assert.deepEqual(tags, [...sent.get(title)!].sort(), `${title}: no article without all its tags`);
    const committedAnyway = refused.filter((o) => stored.has(titleOf(o))).length;
    const inFlight = writes.filter((o) => o.sentAt < stopAt && o.doneAt > stopAt);
    ctx.diagnostic(
      `writes: ${created.length} created (201), ${refused.length} refused (${committedAnyway} of those committed before the connection was cut, stored whole); ` +
        `${inFlight.length} in flight when the stop began (${JSON.stringify(countBy(inFlight))}); ${stored.size} stored, all with all their tags`,
    );
    assert.ok(refused.length > 0, 'some writes met the outage');
    assert.equal(stored.size, created.length + committedAnyway);
  });
});

// ---- Redis --------------------------------------------------------------------------------------

async function keys(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found;
}

describe('Redis killed and restarted under load, two instances', () => {
  const redis = new PrivateRedis();
  const cachePrefix = `conduit-faults:${randomUUID()}:cache:`;
  const limitPrefix = `conduit-faults:${randomUUID()}:ratelimit:`;
  let database: Awaited<ReturnType<typeof createDatabase>> | undefined;
  const services: Service[] = [];
  let probe: Redis | undefined;

  before(async () => {
    await redis.start();
    database = await createDatabase();
    const env = {
      DATABASE_URL: database.url,
      JWT_SECRET: TEST_JWT_SECRET,
      REDIS_URL: redis.url,
      CACHE_REDIS_PREFIX: cachePrefix,
      // The limiter's Redis path is on, with limits this load never reaches.
      RATE_LIMIT: 'on',
      RATE_LIMIT_MAX: '1000000',
      RATE_LIMIT_REGISTER_MAX: '1000',
      RATE_LIMIT_PASSWORD_MAX: '1000',
      RATE_LIMIT_PREFIX: limitPrefix,
      SHED: 'off',
    };
    const started = await Promise.allSettled([startService(env), startService(env)]);
    for (const r of started) if (r.status === 'fulfilled') services.push(r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    probe.on('error', () => undefined);
  });
  after(async () => {
    await stopLoads();
    probe?.disconnect();
    await Promise.all(services.map(kill));
    await redis.kill();
    await database?.drop();
  });

  test('no client sees anything but 2xx, and both instances use Redis again once it is back', async (ctx) => {
    const [a, b] = services as [Service, Service];
    const pids = [a.proc.pid, b.proc.pid];
    const users = [await register(a.url, `ra${process.pid}`), await register(b.url, `rb${process.pid}`)];
    const slugs: string[] = [];
    for (let i = 0; i < 4; i++) slugs.push(await createArticle(a.url, users[i % 2]!.token, `Redis ${i}`, ['redis', `r${i % 2}`]));
    await probe!.connect();
    const cacheKeys = () => keys(probe!, `${cachePrefix}e:*`);
    const limitKeys = () => keys(probe!, `${limitPrefix}*`);

    // Two clients per instance: reads of every cached kind (anonymous and signed in) and writes
    // that invalidate (an edit, a favorite and its undo), each by the article's author.
    const load = drive(4, (c, n) => {
      const base = c < 2 ? a.url : b.url;
      const i = (n + c) % slugs.length;
      const slug = slugs[i]!;
      const owner = users[i % 2]!;
      const token = n % 3 === 0 ? undefined : users[c % 2]!.token;
      const pick: [string, string, string | undefined, unknown?][] = [
        ['GET', '/api/articles', token],
        ['GET', `/api/articles/${slug}`, token],
        ['GET', `/api/articles/${slug}/comments`, token],
        ['GET', `/api/profiles/${owner.username}`, token],
        ['GET', '/api/tags', undefined],
        ['PUT', `/api/articles/${slug}`, owner.token, { article: { body: `body ${c}-${n}` } }],
        ['POST', `/api/articles/${slug}/favorite`, owner.token],
        ['DELETE', `/api/articles/${slug}/favorite`, owner.token],
      ];
      const [method, path, tok, body] = pick[n % pick.length]!;
      return { base, method, path, token: tok, body };
    });

    await sleep(1500);
    const before = { cache: (await cacheKeys()).length, limits: (await limitKeys()).length };
    probe!.disconnect();
    const killAt = performance.now();
    await redis.kill();
    await sleep(3000);
    const restartAt = performance.now();
    await redis.start();
    const upAt = performance.now();
    // A fresh Redis (nothing persisted): keys under the two prefixes are new writes by the
    // instances, the cache tier and the limiter. Both subscribers are back on the bus channel.
    await probe!.connect();
    let usedAgain = 0;
    await waitFor(
      'both instances to use Redis again',
      async () => {
        const [cache, limits, subs] = await Promise.all([
          cacheKeys(),
          limitKeys(),
          probe!.pubsub('NUMSUB', `${cachePrefix}invalidate`) as Promise<[string, number]>,
        ]);
        const ok = cache.length > 0 && limits.length > 0 && subs[1] === 2;
        if (ok) usedAgain = performance.now() - upAt;
        return ok;
      },
      15_000,
    );
    await sleep(1500);
    await load.stop();
    const outcomes = load.outcomes;

    // What each instance counted: lookups of the Redis tier that failed during the outage.
    const redisErrors: number[] = [];
    for (const s of [a, b]) {
      const metrics = parsePrometheus((await request(`${s.url}/metrics`)).body.toString()).samples;
      redisErrors.push(metrics.find((m) => m.name === 'conduit_cache_redis_requests_total' && m.labels.result === 'error')?.value ?? 0);
    }
    const whileDown = outcomes.filter((o) => o.sentAt >= killAt && o.doneAt <= restartAt);
    const afterBack = outcomes.filter((o) => o.sentAt >= upAt);
    ctx.diagnostic(
      `${outcomes.length} requests ${JSON.stringify(countBy(outcomes))}; while Redis was down (${ms(restartAt - killAt)}): ${whileDown.length}, ` +
        `max latency ${ms(Math.max(...whileDown.map(latency)))}; after it was back: ${afterBack.length}, max latency ${ms(Math.max(...afterBack.map(latency)))}; ` +
        `max latency overall ${ms(Math.max(...outcomes.map(latency)))}; Redis keys before the kill: ${JSON.stringify(before)}; ` +
        `both instances writing to Redis and subscribed again ${ms(usedAgain)} after it restarted; Redis tier errors counted ${JSON.stringify(redisErrors)}`,
    );

    assert.ok(before.cache > 0 && before.limits > 0, 'Redis was in use before the kill');
    assert.ok(whileDown.length > 20, `load ran while Redis was down: ${whileDown.length} requests`);
    assert.ok(afterBack.length > 20, `load ran after Redis was back: ${afterBack.length} requests`);
    assert.deepEqual(
      outcomes.filter((o) => o.status === undefined || o.status < 200 || o.status >= 300).map(describeOutcome),
      [],
      'non-2xx answers',
    );
    // Nothing waited on the dead Redis: fail-fast commands, then PostgreSQL.
    assert.deepEqual(outcomes.filter((o) => latency(o) > 2000).map(describeOutcome), [], 'slow answers');
    assert.ok(
      redisErrors.some((e) => e > 0),
      'the outage was noticed',
    );
    assert.deepEqual([a.proc.exitCode, b.proc.exitCode, a.proc.pid, b.proc.pid], [null, null, ...pids]);
  });
});
