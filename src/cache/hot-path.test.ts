// The hot path (hot-path.ts): repeats of cached reads, anonymous and signed in, answered by the
// request pipeline's replay branch, without Fastify. Every request here goes through the app's
// server as a connection's would (test/inject.ts), so the pipeline sees it; /metrics says which
// ones were replayed (conduit_cache_replayed_total). The pipeline's own unit tests: src/http/pipeline.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import type { Response } from 'light-my-request';
import { createLoggedApp, type LoggedApp } from '../../test/logged-app.ts';
import type { FastifyRequest } from 'fastify';
import { noteCachedAnswer } from './answer.ts';
import { Replays } from './hot-path.ts';
import { ResponseCache, type Entry } from './response-cache.ts';
import { Client, createDatabase, createTestAppOn, type ArticleJson, type TestApp } from '../../test/harness.ts';
import { throughServer } from '../../test/inject.ts';
import { parsePrometheus } from '../../test/prometheus.ts';
import { tag, type CacheTag } from './tags.ts';
import { USER_EXISTS_TTL_MS } from '../http/auth.ts';

const ENCODINGS = ['', 'gzip', 'br', 'zstd', 'deflate', 'identity', '*', 'gzip;q=0, br;q=0.5', 'gzip, deflate, br, zstd'];

async function metric(t: TestApp, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { samples } = parsePrometheus((await t.app.inject({ method: 'GET', url: '/metrics' })).body);
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
const replayed = (t: TestApp) => metric(t, 'conduit_cache_replayed_total');

function get(t: TestApp, url: string, headers: Record<string, string> = {}): Promise<Response> {
  return throughServer(t.app, { method: 'GET', url, headers });
}

/** Headers as sent, less the ones that differ per response whoever sends it. */
function stable(res: Response): Record<string, unknown> {
  const { date: _date, ...rest } = res.headers;
  return rest;
}

/** Asserts `url` is answered by the pipeline, then by the hot path, alike; returns the replay. */
async function replays(t: TestApp, url: string, headers: Record<string, string> = {}): Promise<Response> {
  // A reader's token is replayed only within USER_EXISTS_TTL_MS of the router's last check of its
  // key, and a route without an auth hook (GET /api/tags) never checks it. On a loaded machine a
  // loop of requests outlasts that window, so the reader is active first: GET /api/user, which is
  // never replayed, has the router check the key.
  if (headers.authorization !== undefined) {
    assert.equal((await get(t, '/api/user', { authorization: headers.authorization })).statusCode, 200);
  }
  const first = await get(t, url, headers);
  assert.equal(first.statusCode, 200, `${url}: ${first.body}`);
  const before = await replayed(t);
  const again = await get(t, url, headers);
  assert.equal(await replayed(t), before + 1, `${url} (${JSON.stringify(headers)}) was replayed`);
  assert.equal(again.statusCode, first.statusCode);
  assert.deepEqual(stable(again), stable(first), `${url}: the same headers`);
  assert.ok(again.rawPayload.equals(first.rawPayload), `${url}: the same bytes`);
  return again;
}

/** Asserts the next `url` is not answered by the hot path; returns the pipeline's answer. */
async function notReplayed(t: TestApp, url: string, headers: Record<string, string> = {}): Promise<Response> {
  const before = await replayed(t);
  const res = await get(t, url, headers);
  assert.equal(await replayed(t), before, `${url} (${JSON.stringify(headers)}) went through the pipeline`);
  return res;
}

describe('the hot path', () => {
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let t: TestApp;
  let off: TestApp;
  let client: Client;
  let author: Awaited<ReturnType<Client['register']>>;
  let article: ArticleJson;
  before(async () => {
    db = await createDatabase();
    t = await createTestAppOn(db.url);
    // A second instance on the same database with the hot path off: the pipeline's own answers.
    off = await createTestAppOn(db.url, { HOT_PATH: 'off' });
    client = new Client(t.app);
    author = await client.register();
    // Long enough that lists and the article are compressed (over COMPRESSION_THRESHOLD_BYTES).
    article = await client.createArticle(author.token, {
      tagList: ['hot', 'path'],
      description: 'A description. '.repeat(60),
      body: 'The body. '.repeat(200),
    });
    await client.post(`/api/articles/${article.slug}/comments`, { token: author.token, body: { comment: { body: 'first' } } });
  });
  after(async () => {
    await t.close();
    await off.close();
    await db.drop();
  });

  /** A read of each route that sets a reader's flags, and `/api/tags` (no auth hook: everyone's bytes, token or not). */
  const signedInReads = () => [
    '/api/articles',
    `/api/articles?author=${author.username}`,
    `/api/articles/${article.slug}`,
    `/api/articles/${article.slug}/comments`,
    `/api/profiles/${author.username}`,
    '/api/tags',
  ];

  test('replays every cached anonymous read, in every encoding, with the pipeline’s status, headers and bytes', async () => {
    for (const url of [...signedInReads(), '/api/articles?limit=5&offset=0', '/api/articles?tag=hot']) {
      for (const encoding of ENCODINGS) {
        const headers: Record<string, string> = encoding === '' ? {} : { 'accept-encoding': encoding };
        const replay = await replays(t, url, headers);
        if (encoding === 'gzip' && url !== '/api/tags' && !url.endsWith('/comments') && !url.startsWith('/api/profiles')) {
          assert.equal(replay.headers['content-encoding'], 'gzip', `${url}: a compressed variant is replayed`);
        }
        // And what an instance without the hot path sends for the same request.
        const pipeline = await get(off, url, headers);
        assert.deepEqual(stable(replay), stable(pipeline), `${url} (${encoding}): headers as without the hot path`);
        assert.ok(replay.rawPayload.equals(pipeline.rawPayload), `${url} (${encoding}): bytes as without the hot path`);
      }
    }
  });

  test('Accept-Encoding spelled as the compression plugin also reads it (x-gzip, GZIP, *, a refused zstd) gets the gzip variant, and its replay the same', async () => {
    const url = `/api/articles/${article.slug}`;
    for (const encoding of ['x-gzip', 'GZIP', '*', 'zstd;q=0, *']) {
      const again = await replays(t, url, { 'accept-encoding': encoding });
      assert.equal(again.headers['content-encoding'], 'gzip', encoding);
      assert.equal(Number(again.headers['content-length']), again.rawPayload.length, `${encoding}: framing`);
      assert.equal(JSON.parse(zlib.gunzipSync(again.rawPayload).toString()).article.slug, article.slug, `${encoding}: the body decodes`);
    }
  });

  test('a write is seen by the next read: the replay of what it changed ends before the write is answered', async () => {
    const reader = new Client(t.app);
    const slug = article.slug;
    const bodyOf = async (url: string) => JSON.parse((await get(t, url)).body) as Record<string, any>;
    await replays(t, `/api/articles/${slug}`);
    await replays(t, '/api/articles');
    await replays(t, `/api/articles/${slug}/comments`);
    await replays(t, `/api/profiles/${author.username}`);
    await replays(t, '/api/tags');

    // Each write, then at once the anonymous read it changes: fresh, from the pipeline.
    await reader.put(`/api/articles/${slug}`, { token: author.token, body: { article: { description: 'changed on the hot path' } } });
    assert.equal(JSON.parse((await notReplayed(t, `/api/articles/${slug}`)).body).article.description, 'changed on the hot path');

    const fan = await reader.register();
    await reader.post(`/api/articles/${slug}/favorite`, { token: fan.token });
    assert.equal((await bodyOf(`/api/articles/${slug}`)).article.favoritesCount, 1);
    assert.equal((await bodyOf('/api/articles')).articles.find((a: ArticleJson) => a.slug === slug).favoritesCount, 1);

    await reader.post(`/api/articles/${slug}/comments`, { token: fan.token, body: { comment: { body: 'second' } } });
    assert.deepEqual((await bodyOf(`/api/articles/${slug}/comments`)).comments.map((c: { body: string }) => c.body).sort(), [
      'first',
      'second',
    ]);

    await reader.put('/api/user', { token: author.token, body: { user: { bio: 'a new bio' } } });
    assert.equal((await bodyOf(`/api/profiles/${author.username}`)).profile.bio, 'a new bio');

    const fresh = await reader.createArticle(author.token, { tagList: ['brand-new-tag'] });
    assert.equal((await bodyOf('/api/articles')).articles[0].slug, fresh.slug);
    assert.ok((await bodyOf('/api/tags')).tags.includes('brand-new-tag'));

    await reader.delete(`/api/articles/${fresh.slug}`, { token: author.token });
    assert.equal((await notReplayed(t, `/api/articles/${fresh.slug}`)).statusCode, 404);
    assert.ok(!(await bodyOf('/api/articles')).articles.some((a: ArticleJson) => a.slug === fresh.slug));
    assert.ok(!(await bodyOf('/api/tags')).tags.includes('brand-new-tag'));
  });

  test('what could change the answer goes through the pipeline', async () => {
    const url = `/api/articles/${article.slug}`;
    const first = await replays(t, url);
    // A token that does not verify: 401 from the auth hook (signed-in readers: below).
    assert.equal((await notReplayed(t, url, { authorization: 'Token not.a.token' })).statusCode, 401);
    // An Origin: CORS headers for it.
    const cors = await notReplayed(t, url, { origin: 'https://app.example' });
    assert.equal(cors.headers['access-control-allow-origin'], '*');
    // A conditional request: 304.
    assert.equal((await notReplayed(t, url, { 'if-none-match': String(first.headers.etag) })).statusCode, 304);
    // A caller's trace context (tracing is off here; with it on, the request hook reads it).
    await notReplayed(t, url, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    // Another method on the same URL.
    const before = await replayed(t);
    const head = await throughServer(t.app, { method: 'HEAD', url });
    assert.equal(head.statusCode, 200);
    assert.equal(await replayed(t), before);
    // A body on a GET is read by the pipeline, never left on the connection.
    const withBody = await throughServer(t.app, { method: 'GET', url, payload: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(withBody.statusCode, 200);
    assert.equal(await replayed(t), before);
    // A URL it has not seen: another query string is another request (validated there).
    assert.equal((await notReplayed(t, '/api/articles?limit=0')).statusCode, 422);
  });

  test('signed-in readers of the routes that set their flags are replayed too, with their flags, as an instance without the hot path answers them', async () => {
    const fan = await client.register();
    const stranger = await client.register();
    await client.post(`/api/articles/${article.slug}/favorite`, { token: fan.token });
    await client.post(`/api/profiles/${author.username}/follow`, { token: fan.token });
    for (const url of signedInReads()) {
      for (const encoding of ['', 'gzip', 'zstd', 'gzip, deflate, br, zstd']) {
        for (const reader of [stranger, fan]) {
          const headers: Record<string, string> = { authorization: `Token ${reader.token}` };
          if (encoding !== '') headers['accept-encoding'] = encoding;
          // Twice first: the router loads the reader's sets, then records or has recorded the page.
          await get(t, url, headers);
          await get(t, url, headers);
          const replay = await replays(t, url, headers);
          const pipeline = await get(off, url, headers);
          const what = `${url} (${encoding}) for ${reader === fan ? 'a reader whose flags show' : 'a reader with none'}`;
          assert.deepEqual(stable(replay), stable(pipeline), `${what}: headers as without the hot path`);
          assert.ok(replay.rawPayload.equals(pipeline.rawPayload), `${what}: bytes as without the hot path`);
          if (reader === fan && url !== '/api/tags') assert.equal(replay.headers.etag, undefined, `${what}: a copy has no ETag`);
        }
      }
    }
    const decoded = JSON.parse(
      zlib
        .zstdDecompressSync(
          (
            await get(t, `/api/articles/${article.slug}`, {
              authorization: `Token ${fan.token}`,
              'accept-encoding': 'zstd',
            })
          ).rawPayload,
        )
        .toString(),
    ) as { article: ArticleJson };
    assert.equal(decoded.article.favorited, true);
    assert.equal(decoded.article.author.following, true);
  });

  test('a signed-in read goes to the router when the token is not known good in memory, and its flags follow the reader’s writes', async () => {
    const reader = await client.register();
    const auth = (token: string) => ({ authorization: `Token ${token}` });
    const url = `/api/articles/${article.slug}`;
    await get(t, url, auth(reader.token));
    await replays(t, url, auth(reader.token));
    // Bearer is the same token.
    await replays(t, url, { authorization: `Bearer ${reader.token}` });
    // Tampered, or without a scheme: the auth hook's 401, not a replay. (Sent twice, over a real
    // socket: test/resilience/security.test.ts.)
    assert.equal((await notReplayed(t, url, auth(`${reader.token.slice(0, -2)}xx`))).statusCode, 401);
    assert.equal((await notReplayed(t, url, { authorization: reader.token })).statusCode, 401);

    // A favorite invalidates the reader's sets and the page: the next read is the router's, with it.
    await client.post(`/api/articles/${article.slug}/favorite`, { token: reader.token });
    const fresh = await notReplayed(t, url, auth(reader.token));
    assert.equal(JSON.parse(fresh.body).article.favorited, true);
    // The page is recorded from a reader none of whose flags it shows (here an anonymous one).
    await get(t, url);
    assert.equal(JSON.parse((await replays(t, url, auth(reader.token))).body).article.favorited, true);
    await client.delete(`/api/articles/${article.slug}/favorite`, { token: reader.token });
    assert.equal(JSON.parse((await notReplayed(t, url, auth(reader.token))).body).article.favorited, false);

    // A follow leaves the page as it is (its bytes are everyone's) and drops only the reader's sets.
    await get(t, url);
    await replays(t, url, auth(reader.token));
    await client.post(`/api/profiles/${author.username}/follow`, { token: reader.token });
    assert.equal(JSON.parse((await notReplayed(t, url, auth(reader.token))).body).article.author.following, true);
    assert.equal(JSON.parse((await replays(t, url, auth(reader.token))).body).article.author.following, true);
    await client.delete(`/api/profiles/${author.username}/follow`, { token: reader.token });
    assert.equal(JSON.parse((await notReplayed(t, url, auth(reader.token))).body).article.author.following, false);

    // A password change: the old token is refused at once, the new one is read.
    const changed = await client.put('/api/user', { token: reader.token, body: { user: { password: 'another-password-1' } } });
    assert.equal((await notReplayed(t, url, auth(reader.token))).statusCode, 401);
    const token = changed.body.user.token as string;
    await get(t, url, auth(token));
    await replays(t, url, auth(token));

    // A user deleted out of band: their token is refused once the remembered key is older than
    // USER_EXISTS_TTL_MS, as through the router.
    await t.db.query('delete from users where username = $1', [reader.username]);
    await new Promise((resolve) => setTimeout(resolve, USER_EXISTS_TTL_MS + 100));
    assert.equal((await notReplayed(t, url, auth(token))).statusCode, 401);
  });

  test('signed-in replays count as the router counts: two cache hits (page and sets), one on a page showing nobody, a kept copy as a copy hit', async () => {
    const fan = await client.register();
    await client.post(`/api/articles/${article.slug}/favorite`, { token: fan.token });
    const empty = await client.createArticle(author.token);
    const headers = { authorization: `Token ${fan.token}`, 'accept-encoding': 'zstd' };
    const counts = async (app: TestApp) => ({
      hits: await metric(app, 'conduit_cache_requests_total', { result: 'hit' }),
      copyHits: await metric(app, 'conduit_cache_viewer_copies_total', { result: 'hit' }),
      copyMisses: await metric(app, 'conduit_cache_viewer_copies_total', { result: 'miss' }),
    });
    // A flagged page, a page without the reader's flags, and an empty list (no one on it).
    for (const url of [
      `/api/articles/${article.slug}`,
      '/api/articles?author=nobody-writes-here',
      `/api/articles/${empty.slug}/comments`,
    ]) {
      for (const app of [t, off]) {
        // Recorded from an anonymous reader who accepts the same encoding.
        await get(app, url, { 'accept-encoding': 'zstd' });
        await get(app, url, headers);
      }
      const [before, beforeOff] = [await counts(t), await counts(off)];
      const replayedBefore = await replayed(t);
      for (let i = 0; i < 3; i++) {
        const [hot, cold] = [await get(t, url, headers), await get(off, url, headers)];
        assert.ok(hot.rawPayload.equals(cold.rawPayload), url);
      }
      assert.equal(await replayed(t), replayedBefore + 3, `${url}: replayed`);
      const [after, afterOff] = [await counts(t), await counts(off)];
      for (const key of ['hits', 'copyHits', 'copyMisses'] as const) {
        assert.equal(after[key] - before[key], afterOff[key] - beforeOff[key], `${url}: ${key} as without the hot path`);
      }
    }
  });

  test('a page read only by readers whose flags it shows is recorded from their copy: it is replayed to them, never to anyone else', async () => {
    for (const encoding of ['zstd', '']) {
      const fan = await client.register();
      const stranger = await client.register();
      const own = await client.createArticle(author.token, {
        description: 'Only fans read this. '.repeat(40),
        body: 'The body. '.repeat(200),
      });
      await client.post(`/api/articles/${own.slug}/favorite`, { token: fan.token });
      const url = `/api/articles/${own.slug}`;
      const accept: Record<string, string> = encoding === '' ? {} : { 'accept-encoding': encoding };
      const decoded = (res: Response) =>
        JSON.parse((encoding === '' ? res.rawPayload : zlib.zstdDecompressSync(res.rawPayload)).toString()) as { article: ArticleJson };
      const fanHeaders = { ...accept, authorization: `Token ${fan.token}` };
      const strangerHeaders = { ...accept, authorization: `Token ${stranger.token}` };
      // The stranger's sets loaded on another page, so only the recording decides below.
      await get(t, `/api/articles/${article.slug}`, strangerHeaders);
      await get(t, url, fanHeaders);
      const replay = await replays(t, url, fanHeaders);
      const pipeline = await get(off, url, fanHeaders);
      assert.deepEqual(stable(replay), stable(pipeline), `${encoding}: the copy’s headers as without the hot path`);
      assert.ok(replay.rawPayload.equals(pipeline.rawPayload), `${encoding}: the copy’s bytes as without the hot path`);
      assert.equal(decoded(replay).article.favorited, true);
      // Anyone else gets the entry's own bytes, from the router first.
      const theirs = await notReplayed(t, url, strangerHeaders);
      assert.equal(decoded(theirs).article.favorited, false, `${encoding}: the stranger's own bytes`);
      assert.ok(theirs.headers.etag !== undefined);
      const anonymous = await notReplayed(t, url, accept);
      assert.equal(decoded(anonymous).article.favorited, false);
      await replays(t, url, accept);
      assert.equal(decoded(await replays(t, url, strangerHeaders)).article.favorited, false);
      await replays(t, url, fanHeaders);
    }
  });

  test('a signed-in reader’s answer is replayed to anonymous readers only once one was answered so; the feed and the current user never', async () => {
    const reader = await client.register();
    const auth = { authorization: `Token ${reader.token}` };
    const url = '/api/articles?limit=3';
    await get(t, url, auth);
    await get(t, url, auth);
    await replays(t, url, auth);
    await notReplayed(t, url);
    await replays(t, url);
    await replays(t, url, auth);
    for (const own of ['/api/articles/feed', '/api/user']) {
      for (let i = 0; i < 3; i++) assert.equal((await notReplayed(t, own, auth)).statusCode, 200, own);
      assert.equal((await notReplayed(t, own)).statusCode, 401, `${own} anonymous`);
    }
  });

  test('over a real socket: replays on one keep-alive connection are framed right; a request without Host is still refused', async () => {
    const url = `/api/articles/${article.slug}`;
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = t.app.server.address() as net.AddressInfo;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await replayed(t);
      const bodies: Buffer[] = [];
      const sockets = new Set<unknown>();
      for (let i = 0; i < 4; i++) {
        const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port, path: url, agent, headers: { 'accept-encoding': 'gzip' } }, resolve).on('error', reject);
        });
        sockets.add(res.socket);
        const chunks: Buffer[] = [];
        for await (const chunk of res) chunks.push(chunk as Buffer);
        const body = Buffer.concat(chunks);
        assert.equal(res.statusCode, 200);
        assert.equal(Number(res.headers['content-length']), body.length, 'Content-Length is the body sent');
        assert.equal(res.headers['content-encoding'], 'gzip');
        bodies.push(body);
      }
      assert.equal(sockets.size, 1, 'one connection carried every request');
      assert.ok((await replayed(t)) >= before + 3, 'the repeats were replayed');
      assert.ok(bodies.every((b) => b.equals(bodies[0]!)));
      // HTTP/1.1 without Host: malformed, whatever the hot path holds for the URL.
      const socket = net.connect(port, '127.0.0.1');
      await once(socket, 'connect');
      socket.end(`GET ${url} HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n`);
      let raw = '';
      for await (const chunk of socket) raw += (chunk as Buffer).toString('latin1');
      assert.match(raw, /^HTTP\/1\.1 400 /);
    } finally {
      agent.destroy();
      await new Promise<void>((resolve) => t.app.server.close(() => resolve()));
    }
  });

  test('a draining process answers through the pipeline (Connection: close)', async () => {
    const url = '/api/tags';
    await replays(t, url);
    t.ctx.lifecycle.draining = true;
    try {
      const res = await notReplayed(t, url);
      assert.equal(res.headers.connection, 'close');
    } finally {
      t.ctx.lifecycle.draining = false;
    }
    await replays(t, url);
  });

  test('replayed requests are counted in the request metrics under their route, and as cache hits', async () => {
    const url = `/api/profiles/${author.username}`;
    await get(t, url);
    const labels = { method: 'GET', route: '/api/profiles/:username', status_class: '2xx' };
    const [count, hits, replays0] = await Promise.all([
      metric(t, 'http_server_request_duration_seconds_count', labels),
      metric(t, 'conduit_cache_requests_total', { result: 'hit' }),
      replayed(t),
    ]);
    for (let i = 0; i < 7; i++) assert.equal((await get(t, url)).statusCode, 200);
    assert.equal(await replayed(t), replays0 + 7);
    assert.equal(await metric(t, 'http_server_request_duration_seconds_count', labels), count + 7);
    assert.equal(await metric(t, 'conduit_cache_requests_total', { result: 'hit' }), hits + 7);
  });

  test('HOT_PATH=off: nothing is replayed', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await get(off, '/api/tags')).statusCode, 200);
    assert.equal(await replayed(off), 0);
  });
});

describe('the hot path under a rate limit', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof createDatabase>>;
  before(async () => {
    db = await createDatabase();
    t = await createTestAppOn(db.url, { RATE_LIMIT: 'on', RATE_LIMIT_MAX: '6' });
  });
  after(async () => {
    await t.close();
    await db.drop();
  });

  test('replayed requests count towards the per-address limit, and the one over it is refused by the pipeline', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await get(t, '/api/tags')).statusCode);
    // /metrics is a route like any other for the limiter: read it once the limit has tripped.
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    assert.ok((await replayed(t)) >= 4, 'the hot path answered the repeats below the limit');
    const refused = await get(t, '/api/tags');
    assert.equal(refused.statusCode, 429);
    assert.deepEqual(JSON.parse(refused.body), { errors: { request: ['too many requests, retry later'] } });
    assert.ok(refused.headers['retry-after'] !== undefined);
  });
});

describe('the hot path behind a proxy, with its own CORS origins', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof createDatabase>>;
  before(async () => {
    db = await createDatabase();
    t = await createTestAppOn(db.url, { RATE_LIMIT: 'on', RATE_LIMIT_MAX: '4', TRUST_PROXY: '1', CORS_ORIGINS: 'https://app.example' });
  });
  after(async () => {
    await t.close();
    await db.drop();
  });

  test('replays and the pipeline count one limit per client address (X-Forwarded-For), and Vary keeps Origin', async () => {
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(t, '/api/tags', from('203.0.113.7'))).statusCode);
    assert.deepEqual(statuses, [200, 200, 200, 200, 429]);
    // Another client behind the same proxy has its own count, and is replayed.
    const before = await replayed(t);
    assert.equal((await get(t, '/api/tags', from('203.0.113.8'))).statusCode, 200);
    assert.equal(await replayed(t), before + 1);
    // CORS with listed origins varies on Origin: the cache's Vary adds to it.
    const replay = await get(t, '/api/tags', from('203.0.113.9'));
    assert.equal(replay.headers.vary, 'Origin, Accept-Encoding');
    const withOrigin = await get(t, '/api/tags', { ...from('203.0.113.10'), origin: 'https://app.example' });
    assert.equal(withOrigin.headers['access-control-allow-origin'], 'https://app.example');
  });
});

describe('the hot path, logged', () => {
  let t: LoggedApp;
  before(async () => {
    t = await createLoggedApp();
  });
  after(() => t.close());

  test('a replayed request has its log line, with its request id, route and status', async () => {
    for (const id of ['hot-1', 'hot-2', 'hot-3']) assert.equal((await get(t, '/api/tags', { 'x-request-id': id })).statusCode, 200);
    assert.ok((await replayed(t)) >= 2);
    for (const id of ['hot-1', 'hot-2', 'hot-3']) {
      const line = t.lines.find((l) => l.reqId === id && l.msg === 'request');
      assert.deepEqual(
        { method: line?.method, route: line?.route, status: line?.status, level: line?.level },
        { method: 'GET', route: '/api/tags', status: 200, level: 30 },
        id,
      );
      assert.equal(typeof line?.ms, 'number');
    }
  });
});

describe('replays and the cache’s bounds', () => {
  const request = (url: string) =>
    ({ method: 'GET', url, httpVersion: '1.1', headers: { host: 'localhost' } }) as unknown as IncomingMessage;
  const body = Buffer.alloc(1000, 'x');
  /** A request ResponseCache.send answered with `entry`'s body. */
  const answered = (url: string, entry: Entry<unknown>) => {
    const raw = request(url);
    noteCachedAnswer({ raw } as FastifyRequest, entry, body);
    return raw;
  };
  async function store(cache: ResponseCache, key: string, tags: CacheTag[]) {
    const entry = await cache.get(
      key,
      async () => ({ data: key, tags }),
      () => body,
    );
    assert.ok(entry);
    return entry;
  }

  test('a replay never keeps an entry the cache let go: evicted, invalidated, or past the replay bound', async () => {
    // Room for two entries: an entry counts twice its body, and the entries have seven eighths of
    // the bound (the rest is for viewers' copies).
    const cache = new ResponseCache({ ttlMs: 60_000, maxBytes: 5_000, compression: false, compressionThresholdBytes: 1024 });
    const hot = new Replays(cache, { maxReplays: 3 });
    for (let i = 0; i < 5; i++) {
      const entry = await store(cache, `k${i}`, [tag.article(i)]);
      hot.record(answered(`/u${i}`, entry), 200, () => ({ 'content-type': 'application/json', 'content-length': body.length }), '/u/:i');
    }
    assert.equal(cache.size, 2);
    assert.equal(hot.size, 2, 'only the entries still cached have replays');
    cache.invalidate([tag.article(4)]);
    assert.equal(hot.size, 1);
    cache.clear();
    assert.equal(hot.size, 0);

    const roomy = new ResponseCache({ ttlMs: 60_000, maxBytes: 1_000_000, compression: false, compressionThresholdBytes: 1024 });
    const bounded = new Replays(roomy, { maxReplays: 3 });
    for (let i = 0; i < 5; i++)
      bounded.record(answered(`/u${i}`, await store(roomy, `k${i}`, [])), 200, () => ({ 'content-length': body.length }), '/u/:i');
    assert.equal(bounded.size, 3, 'at most maxReplays');
  });

  test('an answer changed on its way out (another encoding or length than noted) is not recorded', async () => {
    const cache = new ResponseCache({ ttlMs: 60_000, maxBytes: 1_000_000, compression: false, compressionThresholdBytes: 1024 });
    const hot = new Replays(cache);
    const entry = await store(cache, 'k', []);
    hot.record(answered('/a', entry), 200, () => ({ 'content-encoding': 'gzip', 'content-length': body.length }), '/a');
    hot.record(answered('/b', entry), 200, () => ({ 'content-length': body.length - 1 }), '/b');
    assert.equal(hot.size, 0);
    hot.record(answered('/c', entry), 200, () => ({ 'content-length': body.length }), '/c');
    assert.equal(hot.size, 1, 'as noted: recorded');
  });

  test('an answer from an entry the cache did not keep is not recorded', async () => {
    const cache = new ResponseCache({ ttlMs: 60_000, maxBytes: 1_000_000, compression: false, compressionThresholdBytes: 1024 });
    const hot = new Replays(cache);
    // A load that raced a write: answered, not stored.
    const raced = await cache.get(
      'k',
      async () => {
        cache.invalidate([tag.listAll]);
        return { data: 'k', tags: [tag.listAll] };
      },
      () => body,
    );
    assert.ok(raced);
    assert.equal(cache.size, 0);
    hot.record(answered('/u', raced), 200, () => ({ 'content-length': body.length }), '/u');
    assert.equal(hot.size, 0);
  });
});
