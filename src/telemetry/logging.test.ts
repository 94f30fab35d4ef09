import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Client } from '../../test/harness.ts';
import { createLoggedApp } from '../../test/logged-app.ts';
import { createLogger } from './logging.ts';

test('a client-sent X-Request-Id is kept only when short and plain; otherwise the request gets a new id', async () => {
  const t = await createLoggedApp();
  try {
    const client = new Client(t.app);
    const long = 'a'.repeat(15_000);
    const forged = 'x\n{"level":60,"msg":"forged"}';
    for (const id of ['lb-7f3a.9_Z', long, forged, 'a'.repeat(129)]) {
      assert.equal((await client.get('/api/tags', { headers: { 'x-request-id': id } })).status, 200);
    }
    const ids = t.lines.filter((l) => l.msg === 'request' && l.route === '/api/tags').map((l) => String(l.reqId));
    assert.equal(ids.length, 4);
    assert.equal(ids[0], 'lb-7f3a.9_Z');
    for (const id of ids.slice(1)) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.ok(!t.text().includes(long) && !t.text().includes('forged'), 'neither id reached the log');
  } finally {
    await t.close();
  }
});

test('a login logs one line per request, with no password and no token in any line, at every level', async () => {
  const t = await createLoggedApp({}, 'trace');
  try {
    const client = new Client(t.app);
    const user = await client.register({ password: 'correct horse battery' });
    const login = await client.post('/api/users/login', {
      body: { user: { email: user.email, password: user.password } },
      headers: { 'x-request-id': 'login-1' },
    });
    assert.equal(login.status, 200);
    const token = login.body.user.token as string;
    await client.post('/api/users/login', { body: { user: { email: user.email, password: 'wrong password' } } });
    await client.post('/api/users/login', {
      body: '{"user":{"email":"x@example.com","password":"broken json',
      headers: { 'content-type': 'application/json' },
    });
    await client.get('/api/user', { token });
    await client.get('/api/user', { token: `${token}tampered` });

    const line = t.lines.find((l) => l.reqId === 'login-1');
    assert.deepEqual(
      { msg: line?.msg, method: line?.method, route: line?.route, status: line?.status, level: line?.level },
      { msg: 'request', method: 'POST', route: '/api/users/login', status: 200, level: 30 },
    );
    assert.equal(typeof line?.ms, 'number');
    const text = t.text();
    for (const secret of [user.password, 'wrong password', 'broken json', token, user.token, 'tampered']) {
      assert.ok(!text.includes(secret), `the log holds "${secret.slice(0, 12)}..."`);
    }
  } finally {
    await t.close();
  }
});

test('credentials are masked wherever a request, its headers or a body would put them', () => {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const log = createLogger({ logLevel: 'info', nodeEnv: 'production' }, sink);
  log.info({ req: { method: 'POST', headers: { authorization: 'Token s3cret-a', cookie: 'sid=s3cret-b' } } }, 'request');
  log.info({ headers: { authorization: 'Bearer s3cret-c' } }, 'headers');
  log.info({ body: { user: { email: 'someone@example.com', password: 's3cret-d' } } }, 'body');
  log.info({ user: { username: 'someone', token: 's3cret-e' } }, 'response');
  log.info({ password: 's3cret-f', token: 's3cret-g', authorization: 's3cret-h' }, 'flat');
  log.child({ reqId: 'r1' }).info({ req: { body: { user: { password: 's3cret-i' } } } }, 'nested');
  const text = chunks.join('');
  assert.ok(!/s3cret/.test(text), text);
  assert.equal(text.match(/\[redacted\]/g)?.length, 9);
  // What is not a credential is kept.
  assert.ok(text.includes('someone@example.com') && text.includes('"method":"POST"'));
});
