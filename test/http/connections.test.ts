// The connection bounds (src/http/connections.ts) over real sockets from several loopback
// addresses: one address holding connections up to its bound leaves the others, and the probes,
// answered; at the process's bound an idle connection makes room for a new one; when
// every connection is busy a new one is closed at once; past 3/4 of the bound keep-alive shortens.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { createTestApp, type TestApp } from '../harness.ts';
import { hold, sample, type Held } from '../held.ts';
import { request, sleep } from './socket.ts';

let t: TestApp;
let url: string;
let port: number;
const opened: Held[] = [];
before(async () => {
  t = await createTestApp({ HTTP_MAX_CONNECTIONS: '40', HTTP_MAX_CONNECTIONS_PER_ADDRESS: '20', HTTP_REQUEST_TIMEOUT_MS: '60000' });
  url = await listen();
  port = Number(new URL(url).port);
});
after(async () => {
  for (const h of opened) h.close();
  await t?.close();
});

async function listen(): Promise<string> {
  return t.app.listen({ port: 0, host: '127.0.0.1' });
}

async function holding(n: number, from: string, send: 'get' | 'stalled' = 'get'): Promise<Held> {
  const h = await hold(port, n, { from, send });
  opened.push(h);
  return h;
}

const metrics = async () => (await request(`${url}/metrics`)).body.toString();
const open = async () => sample(await metrics(), 'conduit_http_connections');

function release(): void {
  for (const h of opened.splice(0)) h.close();
}

test('one address holding connections past its bound keeps only its bound; another address and /readyz are answered', async () => {
  const flood = await holding(30, '127.0.0.2');
  await sleep(100);
  // Each connection past 20 made room by closing that address's own longest-idle one.
  assert.equal(flood.open(), 20, 'the flooding address holds its bound, no more');
  const other = await holding(15, '127.0.0.3');
  assert.equal(other.answered, 15, 'every connection of the other address is answered');
  assert.equal((await request(`${url}/readyz`)).status, 200);
  assert.ok((await open()) <= 40);
  release();
});

test("at the process's bound a new connection is served: an idle connection, the earliest opened, makes room", async () => {
  const first = await holding(20, '127.0.0.2');
  const second = await holding(20, '127.0.0.3');
  assert.equal(first.answered + second.answered, 40);
  const closed = async () => sample(await metrics(), 'conduit_http_idle_connections_closed_total{reason="room"}');
  const before = await closed();
  const third = await holding(5, '127.0.0.4');
  assert.equal(third.answered, 5, 'the newcomers are answered');
  assert.equal((await request(`${url}/readyz`)).status, 200, '/readyz is answered');
  await sleep(100);
  assert.equal(second.open(), 20, 'the connections opened later are kept');
  assert.ok(first.open() <= 16, `the earliest opened (the first address) made the room: ${first.open()} left`);
  assert.ok((await closed()) - before >= 4, 'the closes are counted');
  release();
});

test('when every connection is busy, a new one is closed at once and counted', async () => {
  await sleep(100);
  // Requests whose bodies never come: busy until HTTP_REQUEST_TIMEOUT_MS.
  const busy = [await holding(20, '127.0.0.2', 'stalled'), await holding(20, '127.0.0.3', 'stalled')];
  await sleep(300);
  const started = performance.now();
  const late = await hold(port, 3, { from: '127.0.0.4', waitMs: 5000 });
  opened.push(late);
  assert.equal(late.refused, 3, 'the newcomers are closed');
  assert.ok(performance.now() - started < 2000, 'closed at once, not left waiting');
  assert.equal(busy[0]!.open() + busy[1]!.open(), 40, 'no busy connection was closed');
  // The scrape needs a connection too: the busy ones go first.
  release();
  await sleep(100);
  assert.ok(sample(await metrics(), 'conduit_http_connections_refused_total{bound="process"}') >= 3);
});

test('past 3/4 of the bound, connections going idle are told the shorter keep-alive', async () => {
  await sleep(100);
  // A keep-alive client is told how long its connection may stay idle.
  const keepAlive = () => request(`${url}/healthz`, { agent: new http.Agent({ keepAlive: true }) });
  const calm = await keepAlive();
  assert.match(String(calm.headers['keep-alive']), /timeout=72/);
  assert.equal((await holding(20, '127.0.0.2')).answered, 20);
  assert.equal((await holding(11, '127.0.0.3')).answered, 11);
  const pressed = await keepAlive();
  assert.match(String(pressed.headers['keep-alive']), /timeout=5\b/);
  release();
  await sleep(200);
  const again = await keepAlive();
  assert.match(String(again.headers['keep-alive']), /timeout=72/, 'restored once the crowd is gone');
});
