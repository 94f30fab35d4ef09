// Connection timeouts (config.ts HTTP_*_TIMEOUT_MS, wired in app.ts) over raw sockets: slowloris
// headers and slow bodies are cut off within their bound while other clients are served, an idle
// keep-alive connection is not mistaken for a slow request, and it is closed once idle too long.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../harness.ts';
import { listen, request, sleep } from '../http/socket.ts';

interface RawConnection {
  socket: net.Socket;
  /** Everything the server sent so far. */
  received: () => string;
  /** Resolves with performance.now() when the connection closes. */
  closed: Promise<number>;
}

async function connect(url: string): Promise<RawConnection> {
  const { port } = new URL(url);
  const socket = net.connect(Number(port), '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (received += d));
  // Writes racing the server's close fail with EPIPE/ECONNRESET: that is the close under test.
  socket.on('error', () => undefined);
  const closed = once(socket, 'close').then(() => performance.now());
  await once(socket, 'connect');
  return { socket, received: () => received, closed };
}

/** Waits until one whole response (Content-Length framed) has arrived after `from` characters. */
async function responseAfter(conn: RawConnection, from: number, timeoutMs = 2000): Promise<{ status: number; head: string; body: string }> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const text = conn.received().slice(from);
    const end = text.indexOf('\r\n\r\n');
    if (end !== -1) {
      const head = text.slice(0, end);
      const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (text.length >= end + 4 + length) {
        return { status: Number(head.slice(9, 12)), head, body: text.slice(end + 4, end + 4 + length) };
      }
    }
    if (performance.now() > deadline) throw new Error(`no complete response in ${timeoutMs} ms; got ${JSON.stringify(text)}`);
    await sleep(10);
  }
}

/**
 * Another, well-behaved client: requests /healthz every `everyMs` on its keep-alive connection
 * until `stop` resolves; returns the statuses. (Keep-alive, as real clients do: Node starts a new
 * connection's headers clock when it accepts it, so on a machine stalled for a whole second by
 * other work a fresh connection could be timed out before its request is even read.)
 */
async function keepServing(url: string, stop: Promise<unknown>, everyMs = 100): Promise<number[]> {
  let done = false;
  void stop.then(() => (done = true));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const statuses: number[] = [];
  try {
    while (!done) {
      statuses.push((await request(`${url}/healthz`, { agent })).status);
      await sleep(everyMs);
    }
  } finally {
    agent.destroy();
  }
  return statuses;
}

describe('headers and request timeouts (headers 1 s, whole request 1.5 s, keep-alive 4 s)', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '1500', HTTP_KEEP_ALIVE_TIMEOUT_MS: '4000' });
    url = await listen(t);
  });
  after(() => t.close());

  test('a client trickling header bytes is disconnected within ~1-2.5 s while other clients keep being served', async (ctx) => {
    const conn = await connect(url);
    const started = performance.now();
    conn.socket.write('GET /api/tags HTTP/1.1\r\nHost: localhost\r\n');
    // One header line every 200 ms: each byte arrives long before any idle timeout, but the
    // headers never end.
    const trickle = setInterval(() => conn.socket.write('X-Slow: a\r\n'), 200);
    const others = keepServing(url, conn.closed);
    const closedAt = await Promise.race([conn.closed, sleep(5000).then(() => Infinity)]);
    clearInterval(trickle);
    conn.socket.destroy();
    const elapsed = closedAt - started;

    ctx.diagnostic(`slowloris headers cut off after ${elapsed.toFixed(0)} ms`);
    // Node checks every connectionsCheckingInterval (min(1000, headers timeout)): cut at 1-2 s.
    assert.ok(elapsed >= 950 && elapsed <= 2500, `disconnected after ${elapsed.toFixed(0)} ms`);
    assert.match(conn.received(), /^HTTP\/1\.1 408 /);
    const statuses = await others;
    assert.ok(statuses.length >= 5, `${statuses.length} requests served meanwhile`);
    assert.deepEqual(
      statuses,
      statuses.map(() => 200),
    );
  });

  test('a connection that never sends a byte is closed within the headers timeout too', async (ctx) => {
    // Node starts a new connection's headers clock when it accepts it, not at its first byte:
    // connecting and staying silent holds nothing for long either.
    const conn = await connect(url);
    const started = performance.now();
    const closedAt = await Promise.race([conn.closed, sleep(5000).then(() => Infinity)]);
    conn.socket.destroy();
    const elapsed = closedAt - started;
    ctx.diagnostic(`silent connection closed after ${elapsed.toFixed(0)} ms`);
    assert.ok(elapsed >= 950 && elapsed <= 2500, `closed after ${elapsed.toFixed(0)} ms`);
  });

  test('the 408 sent to a slow client is in the error shape', async () => {
    const conn = await connect(url);
    conn.socket.write('GET /api/tags HTTP/1.1\r\nHost: localhost\r\n');
    await conn.closed;
    const res = await responseAfter(conn, 0);
    assert.equal(res.status, 408);
    assert.match(res.head, /content-type: application\/json/i);
    assert.deepEqual(JSON.parse(res.body), { errors: { request: ['timed out'] } });
  });

  test('a client that sends headers with Content-Length: 1000 and trickles the body gets 408 at the request timeout', async (ctx) => {
    const conn = await connect(url);
    const started = performance.now();
    conn.socket.write(
      'POST /api/users/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n',
    );
    const trickle = setInterval(() => conn.socket.write('          '), 200);
    const others = keepServing(url, conn.closed);
    const closedAt = await Promise.race([conn.closed, sleep(6000).then(() => Infinity)]);
    clearInterval(trickle);
    conn.socket.destroy();
    const elapsed = closedAt - started;

    ctx.diagnostic(`slow body cut off after ${elapsed.toFixed(0)} ms`);
    // Headers were complete at once, so the 1 s headers timeout does not apply; the 1.5 s
    // request timeout does, checked every second: cut at 1.5-2.5 s.
    assert.ok(elapsed >= 1450 && elapsed <= 3000, `cut off after ${elapsed.toFixed(0)} ms`);
    const res = await responseAfter(conn, 0);
    assert.equal(res.status, 408);
    assert.deepEqual(JSON.parse(res.body), { errors: { request: ['timed out'] } });
    const statuses = await others;
    assert.ok(statuses.length >= 5);
    assert.deepEqual(
      statuses,
      statuses.map(() => 200),
    );
  });

  test('a keep-alive connection idle for longer than the headers and request timeouts still serves its next request', async () => {
    // The measurement behind headers timeout (10 s) < keep-alive timeout (72 s): Node starts the
    // headers clock at a request's first byte, not when the connection goes idle, so a short
    // headers timeout never cuts an idle keep-alive connection. (The issue suggested a headers
    // timeout above the keep-alive timeout; that is only needed on Node < 18.)
    const conn = await connect(url);
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const first = await responseAfter(conn, 0);
    assert.equal(first.status, 200);
    assert.match(first.head, /keep-alive: timeout=4/i);

    await sleep(2500);
    const offset = conn.received().length;
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const second = await responseAfter(conn, offset);
    assert.equal(second.status, 200);
    assert.deepEqual(JSON.parse(second.body), { status: 'ok' });
    assert.equal(conn.socket.destroyed, false, 'the same connection served both requests');
    conn.socket.destroy();
  });
});

describe('keep-alive timeout (1.5 s)', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ HTTP_KEEP_ALIVE_TIMEOUT_MS: '1500' });
    url = await listen(t);
  });
  after(() => t.close());

  test('an idle keep-alive connection is closed by the server after the keep-alive timeout', async (ctx) => {
    const conn = await connect(url);
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const res = await responseAfter(conn, 0);
    const idleFrom = performance.now();
    assert.equal(res.status, 200);
    assert.match(res.head, /keep-alive: timeout=1\b/i);
    const closedAt = await Promise.race([conn.closed, sleep(5000).then(() => Infinity)]);
    const idle = closedAt - idleFrom;
    conn.socket.destroy();
    ctx.diagnostic(`idle keep-alive connection closed after ${idle.toFixed(0)} ms`);
    // Node closes at keepAliveTimeout + keepAliveTimeoutBuffer (1 s by default since Node 24):
    // the advertised timeout is shorter than the real one, so a client never reuses a socket
    // the server has just closed.
    assert.ok(idle >= 1450 && idle <= 3200, `closed after ${idle.toFixed(0)} ms idle`);
  });
});
