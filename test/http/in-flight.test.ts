// Load shedding by requests in flight (SHED_MAX_IN_FLIGHT, src/http/pipeline.ts) over real
// sockets: past the bound a request waits for a place, then is refused in the error shape; probes answer,
// a client that hangs up frees its place, and the service recovers when the held work finishes.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Client, createTestApp, databaseUrl, type TestApp } from '../harness.ts';
import { assertSecurityHeaders, json, listen, request, sleep } from './socket.ts';

let t: TestApp;
let url: string;
let token: string;
let locker: pg.Client;
before(async () => {
  // The event-loop signal off (0): only the in-flight bound is under test.
  // CACHE=off: the held requests below must reach the database every time (with the cache,
  // GET /api/user is answered from memory after the first read).
  t = await createTestApp({
    SHED: 'on',
    SHED_MAX_IN_FLIGHT: '2',
    SHED_QUEUE_TIMEOUT_MS: '500',
    SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
    CACHE: 'off',
  });
  token = (await new Client(t.app).register()).token;
  url = await listen(t);
  locker = new pg.Client({ connectionString: databaseUrl(new URL(t.config.databaseUrl!.expose()).pathname.slice(1)) });
  await locker.connect();
});
after(async () => {
  await locker?.end();
  await t?.close();
});

// GET /api/user reads the users table every time (cache off): a table lock holds it in flight.
const me = (timeoutMs?: number) =>
  request(`${url}/api/user`, { headers: { authorization: `Token ${token}` }, ...(timeoutMs ? { timeoutMs } : {}) });

async function holding<T>(work: () => Promise<T>): Promise<T> {
  await locker.query('begin');
  await locker.query('lock table users in access exclusive mode');
  try {
    return await work();
  } finally {
    await locker.query('rollback');
  }
}

test('past SHED_MAX_IN_FLIGHT a request waits SHED_QUEUE_TIMEOUT_MS for a place, then gets 503 + Retry-After; probes answer at once', async () => {
  // Seen once before the lock: the token's user is remembered, so the held requests wait on
  // the users read, not on the existence check.
  assert.equal((await me()).status, 200);
  let held: Promise<unknown> | undefined;
  await holding(async () => {
    held = Promise.all([me(), me()]);
    await sleep(300);
    const started = performance.now();
    const refused = await me();
    const ms = performance.now() - started;
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.deepEqual(json(refused), { errors: { server: ['is overloaded (requests in flight), retry later'] } });
    assertSecurityHeaders(refused, 'in-flight 503');
    assert.ok(ms >= 450 && ms < 2500, `refused after ${ms.toFixed(0)} ms`);
    assert.equal((await request(`${url}/healthz`)).status, 200);
  });
  const statuses = ((await held) as { status: number }[]).map((r) => r.status);
  assert.deepEqual(statuses, [200, 200]);
  assert.equal((await me()).status, 200);
});

test('a request waiting for a place is served once one frees', async () => {
  assert.equal((await me()).status, 200);
  let held: Promise<{ status: number }[]> | undefined;
  let waiting: ReturnType<typeof me> | undefined;
  await holding(async () => {
    held = Promise.all([me(), me()]);
    await sleep(100);
    waiting = me();
    await sleep(200);
  });
  assert.deepEqual(
    (await held!).map((r) => r.status),
    [200, 200],
  );
  assert.equal((await waiting!).status, 200, 'served, not refused: it waited less than SHED_QUEUE_TIMEOUT_MS');
});

test('pipelined responses leave the count when they finish, while their connection stays open', async () => {
  // Two requests pipelined on one connection (the bound is 2), answered, the connection kept
  // open; then a third on another connection must be admitted: the two left the count when they
  // finished, not when (if ever) their connection closes.
  const { port } = new URL(url);
  const socket = net.connect(Number(port), '127.0.0.1');
  try {
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.write('GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\nGET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let i = 0; i < 100 && (received.match(/HTTP\/1\.1 200/g) ?? []).length < 2; i++) await sleep(20);
    assert.equal((received.match(/HTTP\/1\.1 200/g) ?? []).length, 2, received);
    assert.equal((await request(`${url}/api/tags`)).status, 200);
  } finally {
    socket.destroy();
  }
});

test('a client that hangs up frees its place: the count follows closed connections, not answers', async () => {
  await locker.query('begin');
  await locker.query('lock table users in access exclusive mode');
  let kept: ReturnType<typeof me> | undefined;
  let admitted: ReturnType<typeof me> | undefined;
  try {
    kept = me();
    // This one gives up after 200 ms and closes its connection while the server still waits.
    await assert.rejects(me(200), /no response in time/);
    await sleep(100);
    // One place taken (kept), one freed: this request is admitted, so it waits for the lock
    // too instead of being refused at once.
    admitted = me();
    const early = await Promise.race([admitted.then((r) => r.status), sleep(300).then(() => 'waiting' as const)]);
    assert.equal(early, 'waiting');
  } finally {
    await locker.query('rollback');
  }
  const [a, b] = await Promise.all([kept, admitted]);
  assert.deepEqual([a?.status, b?.status], [200, 200]);
  assert.equal((await me()).status, 200);
});
