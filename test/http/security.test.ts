// Security headers over a real socket (src/http/security.ts): helmet's headers, tuned for a JSON
// API, on successful responses and on every kind of error response; requests the parser rejects
// before any route runs are answered in the error shape; CORS follows CORS_ORIGINS.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../harness.ts';
import { assertSecurityHeaders, json, listen, request } from './socket.ts';

/** Sends raw bytes and returns everything the server answers before closing. */
async function raw(url: string, bytes: string): Promise<string> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (received += d));
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(bytes);
  await once(socket, 'close');
  return received;
}

function parseRaw(text: string): { status: number; head: string; body: any } {
  const end = text.indexOf('\r\n\r\n');
  return { status: Number(text.slice(9, 12)), head: text.slice(0, end), body: JSON.parse(text.slice(end + 4)) };
}

describe('security headers', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ BODY_LIMIT_BYTES: '2048' });
    url = await listen(t);
  });
  after(() => t.close());

  test('an API response carries the JSON-API helmet headers and no x-powered-by', async () => {
    const res = await request(`${url}/api/tags`);
    assert.equal(res.status, 200);
    assertSecurityHeaders(res);
    assert.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'");
    assert.equal(res.headers['cross-origin-resource-policy'], 'cross-origin');
    assert.match(String(res.headers['strict-transport-security']), /max-age=\d+/);
    assert.equal(res.headers['x-frame-options'], 'SAMEORIGIN');
  });

  const errors: [string, string, Parameters<typeof request>[1], number][] = [
    ['unknown route', '/api/nothing-here', {}, 404],
    ['missing token', '/api/user', {}, 401],
    ['invalid token', '/api/user', { headers: { authorization: 'Token not-a-jwt' } }, 401],
    ['invalid input', '/api/users', { method: 'POST', body: { user: { email: 'x' } } }, 422],
    ['malformed JSON', '/api/users/login', { method: 'POST', body: '{"user":' }, 400],
    ['prototype poisoning', '/api/users/login', { method: 'POST', body: '{"__proto__":{"admin":true}}' }, 422],
    ['not JSON', '/api/users/login', { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } }, 415],
    ['body too large', '/api/users', { method: 'POST', body: { user: { bio: 'x'.repeat(4096) } } }, 413],
    ['badly percent-encoded URL', '/api/profiles/%zz', {}, 400],
    ['over-long path parameter', `/api/profiles/${'a'.repeat(600)}`, {}, 414],
  ];
  for (const [what, path, opts, status] of errors) {
    test(`an error response (${what}, ${status}) carries them too, in the error shape`, async () => {
      const res = await request(`${url}${path}`, opts);
      assert.equal(res.status, status);
      assertSecurityHeaders(res, what);
      assert.equal(typeof json(res).errors, 'object', `${what}: ${res.body.toString()}`);
    });
  }

  test('headers over the size limit get 431 in the error shape before any route runs', async () => {
    const res = parseRaw(await raw(url, `GET /api/tags HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
    assert.equal(res.status, 431);
    assert.deepEqual(res.body, { errors: { headers: ['are too large'] } });
  });

  test('an unparsable request gets 400 in the error shape before any route runs', async () => {
    const res = parseRaw(await raw(url, 'THIS IS NOT HTTP\r\n\r\n'));
    assert.equal(res.status, 400);
    assert.match(res.head, /content-type: application\/json/i);
    assert.deepEqual(res.body, { errors: { request: ['is malformed'] } });
  });
});

describe('CORS with explicit origins', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ CORS_ORIGINS: 'https://app.example' });
    url = await listen(t);
  });
  after(() => t.close());

  test('a listed origin is allowed, with Retry-After and X-Request-Id exposed', async () => {
    const res = await request(`${url}/api/tags`, { headers: { origin: 'https://app.example' } });
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(res.headers['access-control-expose-headers']), /Retry-After/);
    const preflight = await request(`${url}/api/articles`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(preflight.headers['access-control-allow-headers']), /Authorization/);
  });

  test('any other origin gets no CORS headers', async () => {
    const res = await request(`${url}/api/tags`, { headers: { origin: 'https://evil.example' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });
});
