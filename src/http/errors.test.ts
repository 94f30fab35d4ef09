// SPEC.md "Errors" and "Beyond the contract": whatever a client sends, the answer is an honest
// status with a `{"errors":{"<key>":["<message>"]}}` body, never a stack trace or SQL, and the
// process keeps serving. Also the CORS rules ("Rules the tests enforce", last bullet).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import pg from 'pg';
import { Client, createTestApp, type Res, type TestApp } from '../../test/harness.ts';
import { DeadlineExceeded } from '../db/deadline.ts';
import { Busy } from '../lib/semaphore.ts';
import { errorHandler } from './errors.ts';

let t: TestApp;
let api: Client;
let token: string;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
  token = (await api.register()).token;
});
after(() => t.close());

// Stack frames, file paths and SQL: none of it may reach a client.
const LEAK = /\n\s+at |node_modules|\/src\/|\.ts:\d|\bselect\b[\s\S]*\bfrom\b|\binsert into\b|\bSQLSTATE\b|\bstack\b/i;

/** The status, and a body that is exactly `{"errors":{key:[string, ...], ...}}` and leaks nothing. */
function assertError(res: Res, status: number, expected?: Record<string, string[]>): void {
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['content-type']), /^application\/json/, res.text);
  assert.deepEqual(Object.keys(res.body ?? {}), ['errors'], res.text);
  const errors = res.body.errors as Record<string, unknown>;
  assert.ok(Object.keys(errors).length > 0, res.text);
  for (const [key, messages] of Object.entries(errors)) {
    assert.ok(Array.isArray(messages) && messages.length > 0, `${key}: ${res.text}`);
    for (const m of messages) assert.equal(typeof m, 'string', `${key}: ${res.text}`);
  }
  assert.doesNotMatch(res.text, LEAK);
  if (expected) assert.deepEqual(res.body, { errors: expected });
}

/** A raw request, for what the Client helper cannot send (no content type, odd methods). */
async function raw(method: string, url: string, opts: { payload?: string; headers?: Record<string, string> } = {}): Promise<Res> {
  const res = await t.app.inject({
    method: method as 'GET',
    url,
    headers: opts.headers ?? {},
    ...(opts.payload !== undefined ? { payload: opts.payload } : {}),
  });
  const isJson = String(res.headers['content-type'] ?? '').includes('json') && res.body.length > 0;
  return { status: res.statusCode, headers: res.headers, body: isJson ? JSON.parse(res.body) : undefined, text: res.body };
}

const newArticle = { article: { title: 'T', description: 'D', body: 'B' } };

describe('malformed and hostile JSON', () => {
  test('malformed JSON is 400 "body is not valid JSON"', async () => {
    for (const payload of ['{"user":', '{"user": {}} trailing', "{'user': {}}", '{"a":1,}']) {
      const res = await api.post('/api/users', { body: payload });

      assertError(res, 400, { body: ['is not valid JSON'] });
    }
  });

  test('a __proto__ key, at the top or nested, is 422 "__proto__ is not allowed" and pollutes nothing', async () => {
    const payloads = [
      '{"user":{"username":"proto1","email":"proto1@example.com","password":"password123"},"__proto__":{"polluted":"yes"}}',
      '{"user":{"username":"proto2","email":"proto2@example.com","password":"password123","__proto__":{"polluted":"yes"}}}',
      '{"user":{"username":"proto3","email":"proto3@example.com","password":"password123","bio":[{"\\u005f_proto__":{"polluted":"yes"}}]}}',
    ];
    for (const payload of payloads) {
      const res = await api.post('/api/users', { body: payload });

      // JSON.parse, not a literal: `{"__proto__": ...}` in source sets the prototype.
      assertError(res, 422, JSON.parse('{"__proto__":["is not allowed"]}') as Record<string, string[]>);
    }
    // Also on a route that takes no body, and still 400 when the JSON is malformed as well.
    const article = await api.createArticle(token);
    const favorite = await api.post(`/api/articles/${article.slug}/favorite`, { token, body: '{"__proto__":{"polluted":"yes"}}' });
    assertError(favorite, 422, JSON.parse('{"__proto__":["is not allowed"]}') as Record<string, string[]>);
    const malformed = await api.post('/api/users', { body: '{"__proto__":{"polluted":"yes"},' });
    assertError(malformed, 400, { body: ['is not valid JSON'] });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(!Object.hasOwn(Object.prototype, 'polluted'));
    const stored = await t.db.query(`select count(*)::int as n from users where username like 'proto%'`);
    assert.equal(stored.rows[0].n, 0);
  });

  test('a constructor.prototype key is 422 "constructor is not allowed" and pollutes nothing', async () => {
    const res = await api.post('/api/users', {
      body: '{"user":{"username":"ctor1","email":"ctor1@example.com","password":"password123"},"constructor":{"prototype":{"polluted":"yes"}}}',
    });

    assertError(res, 422, { constructor: ['is not allowed'] });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('a JSON array, string, number or null as the body is 422 with every required field blank', async () => {
    for (const payload of ['[1,2]', '"hello"', '42', 'null', 'true']) {
      const res = await api.post('/api/articles', { token, body: payload });

      assertError(res, 422, { title: ["can't be blank"], description: ["can't be blank"], body: ["can't be blank"] });
    }
  });

  test('a missing body, or an empty one labelled JSON, is 422 with every required field blank', async () => {
    const none = await raw('POST', '/api/articles', { headers: { authorization: `Token ${token}` } });
    const empty = await raw('POST', '/api/articles', {
      payload: '',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
    });

    for (const res of [none, empty]) {
      assertError(res, 422, { title: ["can't be blank"], description: ["can't be blank"], body: ["can't be blank"] });
    }
  });

  test('a NUL character anywhere in the input is 422 keyed by its field, not a database error', async () => {
    const inBody = await api.put('/api/user', { token, body: { user: { bio: 'a\u0000b' } } });
    const inTagList = await api.post('/api/articles', { token, body: { article: { ...newArticle.article, tagList: ['ok', 'b\u0000d'] } } });
    const inPath = await api.get('/api/profiles/a%00b');
    const inQuery = await api.get('/api/articles?tag=a%00b');

    assertError(inBody, 422, { bio: ['must not contain NUL characters'] });
    assertError(inTagList, 422, { tagList: ['must not contain NUL characters'] });
    assertError(inPath, 422, { username: ['must not contain NUL characters'] });
    assertError(inQuery, 422, { tag: ['must not contain NUL characters'] });
  });
});

describe('content types and sizes', () => {
  test('text/plain and form-encoded bodies are 415 "content-type must be application/json"', async () => {
    for (const [type, payload] of [
      ['text/plain', JSON.stringify(newArticle)],
      ['application/x-www-form-urlencoded', 'article[title]=T&article[description]=D&article[body]=B'],
      ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--'],
      ['application/xml', '<article/>'],
    ] as const) {
      const res = await api.post('/api/articles', { token, body: payload, headers: { 'content-type': type } });

      assertError(res, 415, { 'content-type': ['must be application/json'] });
    }
  });

  test('a body with no content type is 415', async () => {
    const res = await raw('POST', '/api/articles', { payload: JSON.stringify(newArticle), headers: { authorization: `Token ${token}` } });

    assertError(res, 415, { 'content-type': ['must be application/json'] });
  });

  test('application/json with a charset parameter is accepted', async () => {
    const res = await api.post('/api/articles', {
      token,
      body: newArticle,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });

    assert.equal(res.status, 201, res.text);
  });

  test('a body over the configured limit is 413 "body is too large"; one under it is processed', async () => {
    const small = await createTestApp({ BODY_LIMIT_BYTES: '2048' });
    try {
      const client = new Client(small.app);
      const u = await client.register();

      const over = await client.put('/api/user', { token: u.token, body: { user: { bio: 'x'.repeat(2100) } } });
      const under = await client.put('/api/user', { token: u.token, body: { user: { bio: 'x'.repeat(1900) } } });

      assertError(over, 413, { body: ['is too large'] });
      assert.equal(under.status, 200, under.text);
      assert.equal(under.body.user.bio.length, 1900);
    } finally {
      await small.close();
    }
  });
});

describe('routes, methods and URLs', () => {
  test('an unknown route is 404 "route not found", under /api and outside it', async () => {
    for (const url of ['/api/nope', '/api/articles/some-slug/nope', '/', '/api', '/favicon.ico']) {
      const res = await api.get(url);

      assertError(res, 404, { route: ['not found'] });
    }
  });

  test('an unknown method on a known path is 404 or 405 in the error shape', async () => {
    for (const [method, url] of [
      ['PATCH', '/api/tags'],
      ['PUT', '/api/tags'],
      ['DELETE', '/api/articles'],
      ['PATCH', '/api/user'],
      ['POST', '/api/articles/feed'],
    ] as const) {
      const res = await raw(method, url, { headers: { authorization: `Token ${token}` } });

      assert.ok(res.status === 404 || res.status === 405, `${method} ${url}: ${res.status}`);
      assertError(res, res.status);
    }
  });

  test('a badly percent-encoded path is 400 "url is not validly percent-encoded"', async () => {
    for (const url of ['/api/profiles/%zz', '/api/articles/%E0%A4%A/comments']) {
      const res = await api.get(url);

      assertError(res, 400, { url: ['is not validly percent-encoded'] });
    }
  });

  test('a path parameter longer than the router accepts is 414 "url is too long"; a shorter over-long one is 422', async () => {
    const tooLong = await api.get(`/api/profiles/${'x'.repeat(600)}`);
    const overSchema = await api.get(`/api/profiles/${'x'.repeat(300)}`);

    assertError(tooLong, 414, { url: ['is too long'] });
    assertError(overSchema, 422, { username: ['is too long (maximum is 256 characters)'] });
  });

  test('a bare OPTIONS request (not a CORS preflight) is 204, not a text error', async () => {
    const res = await raw('OPTIONS', '/api/tags');

    assert.equal(res.status, 204);
    assert.equal(res.text, '');
  });
});

describe('query strings and JSON types', () => {
  test('limit above 100, below 1 or not an integer, and a negative offset, are 422 keyed by the parameter', async () => {
    const cases: [string, Record<string, string[]>][] = [
      ['limit=101', { limit: ['must be less than or equal to 100'] }],
      ['limit=1000000', { limit: ['must be less than or equal to 100'] }],
      ['limit=0', { limit: ['must be greater than or equal to 1'] }],
      ['limit=-5', { limit: ['must be greater than or equal to 1'] }],
      ['limit=abc', { limit: ['must be an integer'] }],
      ['limit=2.5', { limit: ['must be an integer'] }],
      ['limit=10&limit=20', { limit: ['must be an integer'] }],
      ['offset=-1', { offset: ['must be greater than or equal to 0'] }],
    ];
    for (const [query, expected] of cases) {
      const res = await api.get(`/api/articles?${query}`);

      assertError(res, 422, expected);
    }
    const feed = await api.get('/api/articles/feed?limit=101', { token });
    assertError(feed, 422, { limit: ['must be less than or equal to 100'] });
  });

  test('limit 100 and limit 1 are accepted', async () => {
    for (const limit of [1, 100]) {
      const res = await api.get(`/api/articles?limit=${limit}`);

      assert.equal(res.status, 200, `limit ${limit}`);
    }
  });

  test('wrong JSON types are 422 keyed by the field', async () => {
    const cases: [Record<string, unknown>, Record<string, string[]>][] = [
      [{ title: 123 }, { title: ['must be a string'] }],
      [{ description: true }, { description: ['must be a string'] }],
      [{ body: { text: 'x' } }, { body: ['must be a string'] }],
      [{ tagList: 'x' }, { tagList: ['must be an array'] }],
      [{ tagList: [1] }, { tagList: ['must be a string'] }],
      [{ tagList: [['nested']] }, { tagList: ['must be a string'] }],
      [{ tagList: null }, { tagList: ["can't be blank"] }],
    ];
    for (const [override, expected] of cases) {
      const res = await api.post('/api/articles', { token, body: { article: { ...newArticle.article, ...override } } });

      assertError(res, 422, expected);
    }
  });

  test('every invalid field is reported at once: a wrong type and the missing fields together', async () => {
    const article = await api.post('/api/articles', { token, body: { article: { title: 123 } } });
    assertError(article, 422, { title: ['must be a string'], description: ["can't be blank"], body: ["can't be blank"] });

    const register = await api.post('/api/users', { body: { user: { username: 'carol' } } });
    assertError(register, 422, { email: ["can't be blank"], password: ["can't be blank"] });

    const update = await api.put('/api/user', { token, body: { user: { email: '', username: 7, password: 'short', bio: 5 } } });
    assertError(update, 422, {
      email: ["can't be blank"],
      username: ['must be a string'],
      password: ['is too short (minimum is 8 characters)'],
      bio: ['must be a string'],
    });

    const query = await api.get('/api/articles?limit=0&offset=-1');
    assertError(query, 422, { limit: ['must be greater than or equal to 1'], offset: ['must be greater than or equal to 0'] });
  });

  test('one message per invalid field however large the input, and never more than 10', async () => {
    // 100k invalid tags: the field's first error only, not one per item.
    const tagList = Array.from({ length: 100_000 }, (_, i) => i);
    const many = await api.post('/api/articles', { token, body: { article: { title: 5, description: 6, body: 7, tagList } } });
    assertError(many, 422, {
      title: ['must be a string'],
      description: ['must be a string'],
      body: ['must be a string'],
      tagList: ['has too many items (maximum is 32)'],
    });

    const { validationErrors, MAX_VALIDATION_MESSAGES } = await import('./validation.ts');
    const errors = Array.from({ length: 50 }, (_, i) => ({
      keyword: 'required',
      instancePath: '',
      schemaPath: '#',
      params: { missingProperty: `f${i}` },
    }));
    const request = { routeOptions: { schema: {} }, query: {} } as unknown as Parameters<typeof validationErrors>[2];
    const map = validationErrors(errors, 'querystring', request);
    assert.equal(MAX_VALIDATION_MESSAGES, 10);
    assert.equal(Object.values(map).flat().length, 10);
  });

  test('a wrapper that is not an object is 422 with every required field blank', async () => {
    for (const article of ['a string', 7, [newArticle.article]]) {
      const res = await api.post('/api/articles', { token, body: { article } });

      assertError(res, 422, { title: ["can't be blank"], description: ["can't be blank"], body: ["can't be blank"] });
    }
  });

  test('wrong types in the user bodies are 422 keyed by the field', async () => {
    const register = await api.post('/api/users', { body: { user: { username: 5, email: 'n@example.com', password: 'password123' } } });
    const login = await api.post('/api/users/login', { body: { user: { email: ['a@example.com'], password: 'password123' } } });
    const update = await api.put('/api/user', { token, body: { user: { image: 12 } } });

    assertError(register, 422, { username: ['must be a string'] });
    assertError(login, 422, { email: ['must be a string'] });
    assertError(update, 422, { image: ['must be a string'] });
  });
});

describe('after all of that', () => {
  // Runs last in this file: every bad request above went to this same app instance.
  test('the app still serves GET /api/tags', async () => {
    const res = await api.get('/api/tags');

    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.body.tags));
  });
});

describe('server-side failures are opaque', () => {
  let broken: TestApp;
  let client: Client;
  before(async () => {
    broken = await createTestApp();
    client = new Client(broken.app);
  });
  // The pool is ended by a test below, so the harness's close() (which ends it again) cannot be
  // used: close the app, then drop the file's database directly.
  after(async () => {
    await broken.app.close();
    if (!broken.db.ended) await broken.db.end();
    const name = new URL(broken.config.databaseUrl!.expose()).pathname.slice(1);
    const admin = new pg.Client({ connectionString: process.env.CONDUIT_TEST_SERVER_URL });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${name} with (force)`);
    } finally {
      await admin.end();
    }
  });

  test('an unexpected database error is a 500 naming only the request id: no SQL, no stack', async () => {
    const u = await client.register();
    const article = await client.createArticle(u.token);
    await broken.db.query('drop table comments');

    const res = await client.get(`/api/articles/${article.slug}/comments`, { headers: { 'x-request-id': 'req-for-support-42' } });

    assertError(res, 500, { server: ['internal error (request id req-for-support-42)'] });
    assert.doesNotMatch(res.text, /comments|relation|does not exist/);
  });

  test('with the database gone every route answers 503 with Retry-After and {"errors":{"database":[...]}}', async () => {
    const u = await client.register();
    await broken.db.end();

    const requests = [
      client.get('/api/tags'),
      client.get(`/api/profiles/${u.username}`),
      client.get('/api/articles'),
      client.get('/api/user', { token: u.token }),
      client.post('/api/users/login', { body: { user: { email: u.email, password: u.password } } }),
    ];
    for (const res of await Promise.all(requests)) {
      assertError(res, 503);
      assert.deepEqual(Object.keys(res.body.errors), ['database'], res.text);
      assert.match(String(res.headers['retry-after']), /^\d+$/);
    }
  });
});

describe('CORS', () => {
  const preflight = (client: Client, origin: string) =>
    client.request('OPTIONS', '/api/articles', {
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });

  test('a preflight from any origin gets 204 with Allow-Origin and Allow-Headers including authorization', async () => {
    const res = await preflight(api, 'https://somewhere.example');

    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.match(String(res.headers['access-control-allow-headers']), /\bauthorization\b/i);
    assert.match(String(res.headers['access-control-allow-headers']), /\bcontent-type\b/i);
    assert.match(String(res.headers['access-control-allow-methods']), /\bDELETE\b/);
  });

  test('actual responses, errors included, carry Allow-Origin so a browser can read them', async () => {
    const ok = await api.get('/api/tags', { headers: { origin: 'https://somewhere.example' } });
    const notFound = await api.get('/api/nope', { headers: { origin: 'https://somewhere.example' } });
    const unauthorized = await api.get('/api/user', { headers: { origin: 'https://somewhere.example' } });

    for (const res of [ok, notFound, unauthorized]) assert.equal(res.headers['access-control-allow-origin'], '*', String(res.status));
  });

  test('CORS_ORIGINS allows the listed origin and not another', async () => {
    const restricted = await createTestApp({ CORS_ORIGINS: 'https://a.example' });
    try {
      const client = new Client(restricted.app);

      const allowed = await preflight(client, 'https://a.example');
      const refused = await preflight(client, 'https://b.example');
      const allowedGet = await client.get('/api/tags', { headers: { origin: 'https://a.example' } });
      const refusedGet = await client.get('/api/tags', { headers: { origin: 'https://b.example' } });

      assert.equal(allowed.status, 204);
      assert.equal(allowed.headers['access-control-allow-origin'], 'https://a.example');
      assert.match(String(allowed.headers['access-control-allow-headers']), /\bauthorization\b/i);
      assert.match(String(allowed.headers.vary), /\bOrigin\b/i);
      assert.equal(refused.headers['access-control-allow-origin'], undefined);
      assert.equal(allowedGet.headers['access-control-allow-origin'], 'https://a.example');
      assert.equal(refusedGet.headers['access-control-allow-origin'], undefined);
    } finally {
      await restricted.close();
    }
  });
});

describe('errors raised below HTTP', () => {
  // db/deadline.ts and lib/semaphore.ts raise their own types; the error model answers them.
  test('a deadline that ran out before a connection is 504 with Retry-After; a busy semaphore is 503 naming it', async () => {
    const app = Fastify({ logger: false });
    app.setErrorHandler(errorHandler);
    app.get('/deadline', async () => {
      throw new DeadlineExceeded(1500);
    });
    app.get('/busy', async () => {
      throw new Busy('password hashing');
    });
    try {
      const deadline = await app.inject({ url: '/deadline' });
      assert.equal(deadline.statusCode, 504);
      assert.equal(deadline.headers['retry-after'], '1');
      assert.deepEqual(deadline.json(), { errors: { request: ['timed out'] } });
      const busy = await app.inject({ url: '/busy' });
      assert.equal(busy.statusCode, 503);
      assert.equal(busy.headers['retry-after'], '1');
      assert.deepEqual(busy.json(), { errors: { 'password hashing': ['is busy, retry later'] } });
    } finally {
      await app.close();
    }
  });
});
