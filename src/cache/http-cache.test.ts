// The response cache seen from HTTP (cache/response-cache.ts and the routes that use it): strong
// ETags and 304s, stored compressed variants, anonymous hits that never reach PostgreSQL, a
// viewer's favorites and follows loaded once and invalidated by their own writes, the feed,
// GET /api/user and list counts cached, and bodies byte-identical to a CACHE=off instance on
// the same database.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { FEED_AUTHOR_TAGS_MAX } from '../articles/articles.cache.ts';
import { MAX_SET_SIZE } from './viewer-flags.ts';
import { Client, createDatabase, createTestAppOn, type ArticleJson, type TestApp } from '../../test/harness.ts';
import { throughServer } from '../../test/inject.ts';

type Wire = { status: number; headers: Record<string, unknown>; raw: Buffer; text: string };

async function get(t: TestApp, url: string, headers: Record<string, string> = {}): Promise<Wire> {
  const res = await throughServer(t.app, { method: 'GET', url, headers });
  return { status: res.statusCode, headers: res.headers, raw: res.rawPayload, text: res.body };
}

function auth(token: string): Record<string, string> {
  return { authorization: `Token ${token}` };
}

/** Counts what reaches the pool from now until `restore()`: statements, and connections reserved. */
function countDatabase(t: TestApp) {
  const db = t.db as unknown as Record<'query' | 'connect', (...args: unknown[]) => unknown>;
  const counts = { query: 0, connect: 0 };
  for (const method of ['query', 'connect'] as const) {
    const original = db[method];
    db[method] = function (this: unknown, ...args: unknown[]) {
      counts[method]++;
      return original.apply(this, args);
    };
  }
  return {
    counts,
    restore: () => {
      // The wrappers are own properties shadowing the pool's prototype methods.
      delete (db as Partial<typeof db>).query;
      delete (db as Partial<typeof db>).connect;
    },
  };
}

/** One GET on `t`, with what it cost the database (statements, and connections reserved). */
async function countedGet(
  t: TestApp,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ res: Wire; counts: { query: number; connect: number } }> {
  const counter = countDatabase(t);
  try {
    return { res: await get(t, url, headers), counts: counter.counts };
  } finally {
    counter.restore();
  }
}

/**
 * `n` new users (usernames `<prefix>-1` ...) all followed by `follower`: two statements, where
 * registering them through the API would take minutes.
 */
async function followBulk(t: TestApp, follower: string, prefix: string, n: number): Promise<void> {
  await t.db.query(
    `insert into users (username, email, password_hash)
       select $2 || '-' || g, $2 || '-' || g || '@example.test', 'x' from generate_series(1, $1::int) g`,
    [n, prefix],
  );
  await t.db.query(
    `insert into follows (follower_id, followee_id)
       select (select id from users where username = $1), id from users where username like $2 || '-%'`,
    [follower, prefix],
  );
}

const decoders: Record<string, (b: Buffer) => Buffer> = {
  gzip: (b) => zlib.gunzipSync(b),
  br: (b) => zlib.brotliDecompressSync(b),
  zstd: (b) => zlib.zstdDecompressSync(b),
};

describe('the response cache over HTTP', () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  let on: TestApp;
  let off: TestApp;
  let api: Client;
  let author: Awaited<ReturnType<Client['register']>>;
  let reader: Awaited<ReturnType<Client['register']>>;
  let articles: ArticleJson[];
  let urls: Record<'list' | 'article' | 'tags' | 'profile' | 'comments', string>;

  before(async () => {
    database = await createDatabase();
    on = await createTestAppOn(database.url);
    off = await createTestAppOn(database.url, { CACHE: 'off' });
    api = new Client(on.app);
    author = await api.register();
    reader = await api.register();
    articles = [];
    for (let i = 0; i < 8; i++) {
      articles.push(
        await api.createArticle(author.token, {
          title: `Cached article ${i}`,
          description: 'A description long enough that a page of these is well over a kilobyte. '.repeat(2),
          tagList: [`tag${i % 3}`, 'shared'],
        }),
      );
    }
    const first = articles[0]!;
    await api.post(`/api/articles/${first.slug}/comments`, { token: reader.token, body: { comment: { body: 'First!' } } });
    urls = {
      list: '/api/articles',
      article: `/api/articles/${first.slug}`,
      tags: '/api/tags',
      profile: `/api/profiles/${author.username}`,
      comments: `/api/articles/${first.slug}/comments`,
    };
  });
  after(async () => {
    await on?.close();
    await off?.close();
    await database?.drop();
  });

  test('every cached GET carries a strong ETag, and If-None-Match with it gets 304 with an empty body', async () => {
    for (const [name, url] of Object.entries(urls)) {
      const first = await get(on, url);
      assert.equal(first.status, 200, name);
      const etag = first.headers.etag as string;
      assert.match(etag, /^"[A-Za-z0-9_-]{27}"$/, `${name}: a strong ETag (quoted, no W/)`);
      const again = await get(on, url);
      assert.equal(again.headers.etag, etag, `${name}: the same bytes have the same ETag`);
      const notModified = await get(on, url, { 'if-none-match': etag });
      assert.equal(notModified.status, 304, name);
      assert.equal(notModified.raw.length, 0, `${name}: a 304 has no body`);
      assert.equal(notModified.headers.etag, etag, `${name}: a 304 repeats the ETag`);
      // Compared weakly and as a list (RFC 9110): what proxies and browsers send back.
      for (const header of [`W/${etag}`, `"other", ${etag}`, `"other",W/${etag}`, '*']) {
        assert.equal((await get(on, url, { 'if-none-match': header })).status, 304, `${name}: If-None-Match: ${header}`);
      }
      const otherTag = await get(on, url, { 'if-none-match': '"not-the-etag"' });
      assert.equal(otherTag.status, 200, name);
      assert.equal(otherTag.text, first.text, name);
    }
  });

  test('a write that changes a resource changes its ETag, and the old ETag then gets 200 with the new body', async () => {
    const etags = async () =>
      Object.fromEntries(
        await Promise.all(Object.entries(urls).map(async ([name, url]) => [name, (await get(on, url)).headers.etag as string])),
      ) as Record<keyof typeof urls, string>;
    const stale = async (name: keyof typeof urls, etag: string) => {
      const res = await get(on, urls[name], { 'if-none-match': etag });
      assert.equal(res.status, 200, `${name}: the old ETag no longer matches`);
      assert.notEqual(res.headers.etag, etag);
      assert.equal(res.text, (await get(off, urls[name])).text, `${name}: the new body`);
    };
    const slug = articles[0]!.slug;

    let before = await etags();
    assert.equal(
      (await api.put(`/api/articles/${slug}`, { token: author.token, body: { article: { body: 'An edited body' } } })).status,
      200,
    );
    let now = await etags();
    await stale('article', before.article);
    await stale('list', before.list);
    assert.equal(now.tags, before.tags, 'tags untouched by a body edit');
    assert.equal(now.comments, before.comments, 'comments untouched by a body edit');

    before = now;
    assert.equal(
      (await api.post(`/api/articles/${slug}/comments`, { token: author.token, body: { comment: { body: 'Second' } } })).status,
      201,
    );
    now = await etags();
    await stale('comments', before.comments);
    assert.equal(now.article, before.article, 'a comment does not change the article');

    before = now;
    await api.createArticle(reader.token, { title: 'A new tag appears', tagList: ['brand-new'] });
    now = await etags();
    await stale('tags', before.tags);
    await stale('list', before.list);

    before = now;
    assert.equal((await api.put('/api/user', { token: author.token, body: { user: { bio: 'A new bio' } } })).status, 200);
    now = await etags();
    await stale('profile', before.profile);
    await stale('article', before.article);
    await stale('comments', before.comments);
  });

  for (const encoding of ['gzip', 'br', 'zstd']) {
    test(`Accept-Encoding: ${encoding} on a cached list gets ${encoding}, decoding to the identity bytes, compressed once and then served as stored`, async () => {
      const identity = await get(on, urls.list);
      assert.ok(identity.raw.length > 1024, `the list page is ${identity.raw.length} bytes`);
      const made = on.ctx.cache!.stats.compressions;
      const first = await get(on, urls.list, { 'accept-encoding': encoding });
      assert.equal(first.status, 200);
      assert.equal(first.headers['content-encoding'], encoding);
      assert.match(String(first.headers.vary), /accept-encoding/i);
      assert.equal(first.headers.etag, identity.headers.etag, 'one ETag for the entry in every encoding');
      assert.ok(first.raw.length < identity.raw.length / 2, `${first.raw.length} of ${identity.raw.length} bytes`);
      assert.ok(decoders[encoding]!(first.raw).equals(identity.raw), 'decodes to the exact identity bytes');
      assert.equal(on.ctx.cache!.stats.compressions, made + 1, 'compressed once, on first demand');

      const second = await get(on, urls.list, { 'accept-encoding': encoding });
      assert.equal(second.headers['content-encoding'], encoding);
      assert.ok(second.raw.equals(first.raw), 'the stored variant, byte for byte');
      assert.equal(on.ctx.cache!.stats.compressions, made + 1, 'no compression work on the second request');
    });
  }

  test('a warm anonymous read touches no database', async () => {
    for (const url of Object.values(urls)) assert.equal((await get(on, url)).status, 200);
    const hits = on.ctx.cache!.stats.hits;
    const counter = countDatabase(on);
    try {
      for (const url of Object.values(urls)) {
        assert.equal((await get(on, url)).status, 200, url);
        assert.equal((await get(on, url, { 'accept-encoding': 'gzip' })).status, 200, url);
      }
    } finally {
      counter.restore();
    }
    assert.deepEqual(counter.counts, { query: 0, connect: 0 });
    assert.equal(on.ctx.cache!.stats.hits, hits + 2 * Object.keys(urls).length);
  });

  test("a signed-in viewer's page with their flags set is compressed once and sent again as kept, to them and to a viewer with the same flags; changed flags get a copy of their own", async () => {
    const [one, two] = [await api.register(), await api.register()];
    const favorite = articles[5]!;
    for (const viewer of [one, two])
      assert.equal((await api.post(`/api/articles/${favorite.slug}/favorite`, { token: viewer.token })).status, 200);
    const zstd = { 'accept-encoding': 'zstd' };
    const asOff = async (token: string) => (await get(off, urls.list, auth(token))).raw;
    const cache = on.ctx.cache!;

    const first = await get(on, urls.list, { ...auth(one.token), ...zstd });
    assert.equal(first.headers['content-encoding'], 'zstd');
    assert.equal(first.headers.etag, undefined, "the viewer's copy is not the cached entry");
    assert.match(String(first.headers.vary), /accept-encoding/i);
    const decoded = zlib.zstdDecompressSync(first.raw);
    assert.ok(decoded.equals(await asOff(one.token)), 'the bytes CACHE=off answers this viewer');
    assert.match(decoded.toString(), /"favorited":true/);

    const { compressions, copyHits } = cache.stats;
    const again = await get(on, urls.list, { ...auth(one.token), ...zstd });
    const other = await get(on, urls.list, { ...auth(two.token), ...zstd });
    assert.ok(again.raw.equals(first.raw) && other.raw.equals(first.raw), 'the kept bytes, to both viewers');
    assert.equal(cache.stats.compressions, compressions, 'no compression for either');
    assert.equal(cache.stats.copyHits, copyHits + 2);

    assert.equal((await api.post(`/api/profiles/${author.username}/follow`, { token: one.token })).status, 200);
    const followed = await get(on, urls.list, { ...auth(one.token), ...zstd });
    assert.ok(zlib.zstdDecompressSync(followed.raw).equals(await asOff(one.token)), 'after a follow: the bytes CACHE=off answers');
    assert.match(zlib.zstdDecompressSync(followed.raw).toString(), /"following":true/);
    const unchanged = await get(on, urls.list, { ...auth(two.token), ...zstd });
    assert.ok(zlib.zstdDecompressSync(unchanged.raw).equals(await asOff(two.token)), 'the other viewer: unchanged');

    // Another reader's favorite changes a count on the page (as many bytes, so the flags sit where
    // they did): a new entry, another ETag, and not the copy kept for the old one.
    const three = await api.register();
    assert.equal((await api.post(`/api/articles/${articles[6]!.slug}/favorite`, { token: three.token })).status, 200);
    const recounted = await get(on, urls.list, { ...auth(one.token), ...zstd });
    assert.ok(zlib.zstdDecompressSync(recounted.raw).equals(await asOff(one.token)), 'after the page changed: the bytes CACHE=off answers');
    assert.ok(!recounted.raw.equals(followed.raw));

    // A client that refuses zstd but takes anything else gets gzip, as from the compression plugin.
    const refused = await get(on, urls.list, { ...auth(one.token), 'accept-encoding': 'zstd;q=0, *' });
    assert.equal(refused.headers['content-encoding'], 'gzip');
    assert.ok(zlib.gunzipSync(refused.raw).equals(await asOff(one.token)));
    const plain = await get(on, urls.list, auth(one.token));
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.ok(plain.raw.equals(await asOff(one.token)), 'uncompressed: the same bytes');
  });

  test("a viewer's first authenticated read loads their favorites and follows with one query, later reads need none, and carry the viewer's flags while anonymous reads stay all-false", async () => {
    const favorite = articles[2]!;
    assert.equal((await api.post(`/api/articles/${favorite.slug}/favorite`, { token: reader.token })).status, 200);
    assert.equal((await api.post(`/api/profiles/${author.username}/follow`, { token: reader.token })).status, 200);
    const viewed = { ...urls, article: `/api/articles/${favorite.slug}` };
    for (const url of Object.values(viewed)) await get(on, url);

    let loaded = false;
    for (const [name, url] of Object.entries(viewed)) {
      const { res, counts } = await countedGet(on, url, auth(reader.token));
      // /api/tags has no per-viewer part: no query at all. The first read that needs the
      // viewer's flags loads their sets (cache/viewer-flags.ts); every later one finds them.
      const expected: number = name === 'tags' || loaded ? 0 : 1;
      if (name !== 'tags') loaded = true;
      assert.deepEqual(counts, { query: expected, connect: 0 }, name);
      assert.equal(res.status, 200, name);
      assert.equal(res.text, (await get(off, url, auth(reader.token))).text, `${name}: what a CACHE=off instance answers this viewer`);
    }

    const list = JSON.parse((await get(on, urls.list, auth(reader.token))).text) as { articles: ArticleJson[] };
    for (const a of list.articles) {
      assert.equal(a.favorited, a.slug === favorite.slug, a.slug);
      assert.equal(a.author.following, a.author.username === author.username, a.slug);
    }
    const profile = JSON.parse((await get(on, urls.profile, auth(reader.token))).text);
    assert.equal(profile.profile.following, true);

    // The viewer's flags never leak into what anonymous clients (or other users) get.
    for (const [name, url] of Object.entries(viewed)) {
      for (const headers of [{}, auth(author.token)]) {
        const text = (await get(on, url, headers)).text;
        assert.doesNotMatch(text, /"(favorited|following)":true/, name);
      }
    }
  });

  test("the viewer's own favorite, unfavorite, follow and unfollow show in their next read (their cached sets are invalidated before the answer)", async () => {
    const viewer = await api.register();
    const target = articles[5]!;
    const read = async () => {
      const body = JSON.parse((await get(on, `/api/articles/${target.slug}`, auth(viewer.token))).text) as { article: ArticleJson };
      return { favorited: body.article.favorited, following: body.article.author.following };
    };
    assert.deepEqual(await read(), { favorited: false, following: false });
    const steps: [string, string, { favorited: boolean; following: boolean }][] = [
      ['post', `/api/articles/${target.slug}/favorite`, { favorited: true, following: false }],
      ['post', `/api/profiles/${author.username}/follow`, { favorited: true, following: true }],
      // Repeated: idempotent, nothing changes (and nothing needs invalidating).
      ['post', `/api/profiles/${author.username}/follow`, { favorited: true, following: true }],
      ['delete', `/api/articles/${target.slug}/favorite`, { favorited: false, following: true }],
      ['delete', `/api/profiles/${author.username}/follow`, { favorited: false, following: false }],
    ];
    for (const [method, url, expected] of steps) {
      const res = method === 'post' ? await api.post(url, { token: viewer.token }) : await api.delete(url, { token: viewer.token });
      assert.equal(res.status, 200, `${method} ${url}`);
      assert.deepEqual(await read(), expected, `after ${method} ${url}`);
    }
  });

  test('a viewer who follows more than MAX_SET_SIZE users gets the per-page query instead of a cached set, with the same answers', async () => {
    const heavy = await api.register();
    await followBulk(on, heavy.username, 'bulk', MAX_SET_SIZE + 1);
    assert.equal((await api.post(`/api/profiles/${author.username}/follow`, { token: heavy.token })).status, 200);
    for (let round = 0; round < 3; round++) {
      const { res, counts } = await countedGet(on, urls.profile, auth(heavy.token));
      // Round 0 loads the sets and keeps only the fact that there are too many; every round
      // then queries the page.
      assert.equal(counts.query, round === 0 ? 2 : 1, `round ${round}`);
      assert.equal(JSON.parse(res.text).profile.following, true);
      assert.equal(res.text, (await get(off, urls.profile, auth(heavy.token))).text);
    }
  });

  test("a viewer's feed is cached (a repeated read needs no query) and follows every write that changes it, as CACHE=off answers", async () => {
    const viewer = await api.register();
    const other = await api.register();
    const feed = async (why: string, expectQueries?: number) => {
      const { res, counts } = await countedGet(on, '/api/articles/feed?limit=5', auth(viewer.token));
      if (expectQueries !== undefined) assert.equal(counts.query, expectQueries, `${why}: queries`);
      assert.equal(res.status, 200, why);
      assert.equal(res.text, (await get(off, '/api/articles/feed?limit=5', auth(viewer.token))).text, why);
      return JSON.parse(res.text) as { articles: ArticleJson[]; articlesCount: number };
    };
    assert.equal((await feed('empty')).articlesCount, 0);
    assert.equal((await api.post(`/api/profiles/${author.username}/follow`, { token: viewer.token })).status, 200);
    const before = await feed('after following');
    assert.equal(before.articlesCount, articles.length);
    await feed('repeated', 0);
    const fresh = await api.createArticle(author.token, { title: 'Fresh for the feed', tagList: [] });
    const after = await feed("after the followed author's new article");
    assert.equal(after.articles[0]!.slug, fresh.slug);
    assert.equal((await api.post(`/api/articles/${fresh.slug}/favorite`, { token: other.token })).status, 200);
    assert.equal((await feed("after another user's favorite")).articles[0]!.favoritesCount, 1);
    assert.equal((await api.post(`/api/articles/${fresh.slug}/favorite`, { token: viewer.token })).status, 200);
    assert.equal((await feed("after the viewer's own favorite")).articles[0]!.favorited, true);
    assert.equal(
      (await api.put(`/api/articles/${fresh.slug}`, { token: author.token, body: { article: { description: 'changed' } } })).status,
      200,
    );
    assert.equal((await feed('after an update')).articles[0]!.description, 'changed');
    assert.equal((await api.delete(`/api/articles/${fresh.slug}`, { token: author.token })).status, 204);
    assert.equal((await feed('after the delete')).articlesCount, articles.length);
    assert.equal((await api.delete(`/api/profiles/${author.username}/follow`, { token: viewer.token })).status, 200);
    assert.equal((await feed('after unfollowing')).articlesCount, 0);
  });

  test(`a viewer following more than FEED_AUTHOR_TAGS_MAX users still sees a followed author's new article at once`, async () => {
    const viewer = await api.register();
    await followBulk(on, viewer.username, 'feedbulk', FEED_AUTHOR_TAGS_MAX + 1);
    assert.equal((await api.post(`/api/profiles/${author.username}/follow`, { token: viewer.token })).status, 200);
    const read = async () => (await get(on, '/api/articles/feed?limit=1', auth(viewer.token))).text;
    const first = await read();
    const fresh = await api.createArticle(author.token, { title: 'Fresh for a heavy follower', tagList: [] });
    const second = await read();
    assert.notEqual(second, first);
    assert.equal(JSON.parse(second).articles[0].slug, fresh.slug);
    assert.equal(second, (await get(off, '/api/articles/feed?limit=1', auth(viewer.token))).text);
  });

  test("a favorite drops the list pages showing the article but not the filter's count: the next read runs the page query alone", async () => {
    const fan = await api.register();
    const url = '/api/articles?tag=shared&limit=3';
    await get(on, url);
    assert.equal((await api.post(`/api/articles/${articles[7]!.slug}/favorite`, { token: fan.token })).status, 200);
    const afterFavorite = await countedGet(on, url);
    assert.equal(afterFavorite.counts.query, 1);
    assert.equal(afterFavorite.res.text, (await get(off, url)).text);
    // A new article in the filter changes the count: both are loaded again.
    await api.createArticle(author.token, { title: 'Counted', tagList: ['shared'] });
    const afterCreate = await countedGet(on, url);
    assert.equal(afterCreate.counts.query, 2);
    assert.equal(afterCreate.res.text, (await get(off, url)).text);
  });

  test('GET /api/user is cached per user: a repeated read needs no query, and an update shows in the next read', async () => {
    const me = await api.register();
    const read = async (expectQueries?: number) => {
      const { res, counts } = await countedGet(on, '/api/user', auth(me.token));
      if (expectQueries !== undefined) assert.equal(counts.query, expectQueries);
      assert.equal(res.text, (await get(off, '/api/user', auth(me.token))).text);
      return JSON.parse(res.text) as { user: { bio: string | null; email: string } };
    };
    await read();
    await read(0);
    assert.equal((await api.put('/api/user', { token: me.token, body: { user: { bio: 'updated bio' } } })).status, 200);
    assert.equal((await read()).user.bio, 'updated bio');
  });

  test('CACHE=off answers byte-identical bodies to CACHE=on for the same requests', async () => {
    const slug = articles[4]!.slug;
    const requests = [
      ...Object.values(urls),
      `/api/articles/${slug}`,
      `/api/articles/${slug}/comments`,
      '/api/articles?limit=3&offset=2',
      '/api/articles?tag=shared&limit=5',
      '/api/articles?tag=tag1',
      `/api/articles?author=${author.username}`,
      `/api/articles?favorited=${reader.username}`,
      `/api/articles?author=${author.username}&tag=tag2&limit=1`,
      '/api/articles?offset=100',
      '/api/articles/no-such-article',
      '/api/articles/no-such-article/comments',
      '/api/profiles/nobody-by-this-name',
      `/api/profiles/${reader.username}`,
    ];
    for (const viewer of [undefined, reader.token, author.token]) {
      const headers = viewer ? auth(viewer) : {};
      // Twice on the cached instance: the miss that fills the entry and the hit.
      for (let round = 0; round < 2; round++) {
        for (const url of requests) {
          const [cached, truth] = [await get(on, url, headers), await get(off, url, headers)];
          assert.equal(cached.status, truth.status, url);
          assert.equal(cached.text, truth.text, `${url} as ${viewer ? 'a user' : 'anonymous'}, round ${round}`);
          assert.equal(cached.headers['content-type'], truth.headers['content-type'], url);
        }
      }
    }
  });
});
