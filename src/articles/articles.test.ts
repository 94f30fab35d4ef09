// SPEC.md "Endpoints" (POST /articles, GET /articles/:slug), "Shapes" (Article) and "Errors".
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
});
after(() => t.close());

const ARTICLE_KEYS = ['author', 'body', 'createdAt', 'description', 'favorited', 'favoritesCount', 'slug', 'tagList', 'title', 'updatedAt'];
const PROFILE_KEYS = ['bio', 'following', 'image', 'username'];
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('creating an article', () => {
  test('returns 201 with the full Article shape and the author profile', async () => {
    const u = await api.register();
    const res = await api.post('/api/articles', {
      token: u.token,
      body: {
        article: {
          title: 'How to train your dragon',
          description: 'Ever wonder how?',
          body: 'You have to believe',
          tagList: ['dragons', 'training'],
        },
      },
    });
    assert.equal(res.status, 201);
    const a = res.body.article;
    assert.deepEqual(Object.keys(res.body), ['article']);
    assert.deepEqual(Object.keys(a).sort(), ARTICLE_KEYS);
    assert.deepEqual(Object.keys(a.author).sort(), PROFILE_KEYS);
    assert.equal(a.slug, 'how-to-train-your-dragon');
    assert.equal(a.title, 'How to train your dragon');
    assert.equal(a.description, 'Ever wonder how?');
    assert.equal(a.body, 'You have to believe');
    assert.deepEqual(a.tagList, ['dragons', 'training']);
    assert.equal(a.favorited, false);
    assert.equal(a.favoritesCount, 0);
    assert.ok(Number.isInteger(a.favoritesCount));
    assert.deepEqual(a.author, { username: u.username, bio: null, image: null, following: false });
  });

  test('timestamps are ISO-8601 with milliseconds, close to now, and equal on creation', async () => {
    const u = await api.register();
    const before = Date.now();
    const a = await api.createArticle(u.token);
    const afterwards = Date.now();
    assert.match(a.createdAt, ISO_MS);
    assert.match(a.updatedAt, ISO_MS);
    assert.equal(a.createdAt, a.updatedAt);
    const created = Date.parse(a.createdAt);
    assert.ok(created >= before - 1000 && created <= afterwards + 1000, `${a.createdAt} is not about now`);
  });

  test('tagList is sorted alphabetically and de-duplicated, and stored that way', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['zebra', 'training', 'dragons', 'training', 'Angular', 'dragons'] });
    assert.deepEqual(a.tagList, ['Angular', 'dragons', 'training', 'zebra']);
    const links = await t.db.query(
      'select count(*)::int as n from article_tags at join articles a on a.id = at.article_id where a.slug = $1',
      [a.slug],
    );
    assert.equal(links.rows[0].n, 4);
    const got = await api.get(`/api/articles/${a.slug}`);
    assert.deepEqual(got.body.article.tagList, ['Angular', 'dragons', 'training', 'zebra']);
  });

  test('a missing or empty tagList gives an empty list', async () => {
    const u = await api.register();
    const missing = await api.createArticle(u.token);
    const empty = await api.createArticle(u.token, { tagList: [] });
    assert.deepEqual(missing.tagList, []);
    assert.deepEqual(empty.tagList, []);
  });

  test('new tags appear in GET /api/tags', async () => {
    const u = await api.register();
    await api.createArticle(u.token, { tagList: ['brand-new-tag-1', 'brand-new-tag-2'] });
    const tags = await api.get('/api/tags');
    assert.equal(tags.status, 200);
    assert.ok(tags.body.tags.includes('brand-new-tag-1'));
    assert.ok(tags.body.tags.includes('brand-new-tag-2'));
  });

  test('duplicate titles are allowed and get distinct slugs, each reading its own article', async () => {
    const u = await api.register();
    const first = await api.createArticle(u.token, { title: 'Same Title', body: 'first body' });
    const second = await api.createArticle(u.token, { title: 'Same Title', body: 'second body' });
    assert.equal(first.slug, 'same-title');
    assert.notEqual(second.slug, first.slug);
    assert.match(second.slug, /^same-title-/);
    assert.equal((await api.get(`/api/articles/${first.slug}`)).body.article.body, 'first body');
    assert.equal((await api.get(`/api/articles/${second.slug}`)).body.article.body, 'second body');
  });

  test('ten concurrent articles with one title all succeed with distinct slugs', async () => {
    const u = await api.register();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        api.post('/api/articles', { token: u.token, body: { article: { title: 'Race Title', description: 'd', body: 'b' } } }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      Array(10).fill(201),
    );
    const slugs = new Set(results.map((r) => r.body.article.slug));
    assert.equal(slugs.size, 10);
  });

  test('concurrent articles introducing the same new tags each get the complete tag list', async () => {
    const u = await api.register();
    const tagList = ['race-tag-b', 'race-tag-a', 'race-tag-c'];
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        api.post('/api/articles', { token: u.token, body: { article: { title: 'Tag Race', description: 'd', body: 'b', tagList } } }),
      ),
    );
    for (const r of results) {
      assert.equal(r.status, 201, r.text);
      assert.deepEqual(r.body.article.tagList, ['race-tag-a', 'race-tag-b', 'race-tag-c']);
    }
    const tags = await t.db.query("select count(*)::int as n from tags where name like 'race-tag-%'");
    assert.equal(tags.rows[0].n, 3);
    assert.equal((await api.get('/api/articles?tag=race-tag-a')).body.articlesCount, 8);
  });

  test('slugs are URL-safe, keep non-Latin letters, and the reserved word "feed" stays readable', async () => {
    const u = await api.register();
    const punct = await api.createArticle(u.token, { title: '  Hello,  World!! Ça va? ' });
    assert.equal(punct.slug, 'hello-world-ca-va');
    const japanese = await api.createArticle(u.token, { title: '日本語 タイトル' });
    assert.equal(japanese.slug, '日本語-タイトル');
    const got = await api.get(`/api/articles/${encodeURIComponent(japanese.slug)}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.article.title, '日本語 タイトル');
    const punctuationOnly = await api.createArticle(u.token, { title: '!!! ???' });
    assert.match(punctuationOnly.slug, /^[\p{L}\p{N}-]+$/u);
    assert.equal((await api.get(`/api/articles/${punctuationOnly.slug}`)).body.article.title, '!!! ???');
    const feed = await api.createArticle(u.token, { title: 'Feed' });
    assert.notEqual(feed.slug, 'feed');
    assert.equal((await api.get(`/api/articles/${feed.slug}`)).body.article.title, 'Feed');
  });

  test('a long title of astral letters never yields a broken character in the slug', async () => {
    const u = await api.register();
    // U+20000 is a CJK letter outside the BMP: two UTF-16 code units each. The leading "a"
    // puts a pair across the length cut whatever its exact position.
    for (const title of ['a' + '\u{20000}'.repeat(100), '\u{20000}'.repeat(100)]) {
      const a = await api.createArticle(u.token, { title });
      assert.ok(!a.slug.includes('\uFFFD'), `slug has a replacement character: ${a.slug}`);
      assert.ok(a.slug.isWellFormed(), 'slug is not well-formed UTF-16');
      assert.equal((await api.get(`/api/articles/${encodeURIComponent(a.slug)}`)).status, 200);
    }
  });

  test('missing, empty, blank and null required fields are 422 "can\'t be blank" keyed by field', async () => {
    const u = await api.register();
    const base = { title: 't', description: 'd', body: 'b' };
    for (const field of ['title', 'description', 'body'] as const) {
      for (const value of [undefined, '', '   ', null]) {
        const article: Record<string, unknown> = { ...base, [field]: value };
        if (value === undefined) delete article[field];
        const res = await api.post('/api/articles', { token: u.token, body: { article } });
        assert.equal(res.status, 422, `${field}=${JSON.stringify(value)}`);
        assert.deepEqual(res.body, { errors: { [field]: ["can't be blank"] } }, `${field}=${JSON.stringify(value)}`);
      }
    }
  });

  test('a body without the article wrapper makes all three required fields blank', async () => {
    const u = await api.register();
    for (const body of [{}, { title: 't', description: 'd', body: 'b' }, { article: null }]) {
      const res = await api.post('/api/articles', { token: u.token, body });
      assert.equal(res.status, 422, JSON.stringify(body));
      assert.deepEqual(res.body, { errors: { title: ["can't be blank"], description: ["can't be blank"], body: ["can't be blank"] } });
    }
  });

  test('a null tagList, a non-array tagList or a blank tag is 422 keyed by tagList', async () => {
    const u = await api.register();
    const tooMany = Array.from({ length: 33 }, (_, i) => `tag-${i}`);
    for (const tagList of [null, 'dragons', ['ok', ''], ['ok', '   '], ['ok', 42], tooMany]) {
      const res = await api.post('/api/articles', {
        token: u.token,
        body: { article: { title: 't', description: 'd', body: 'b', tagList } },
      });
      assert.equal(res.status, 422, JSON.stringify(tagList));
      assert.deepEqual(Object.keys(res.body.errors), ['tagList'], JSON.stringify(tagList));
      assert.ok(res.body.errors.tagList.every((m: unknown) => typeof m === 'string'));
    }
    const nothing = await t.db.query("select count(*)::int as n from articles where title = 't'");
    assert.equal(nothing.rows[0].n, 0);
  });

  test('fields of the wrong type are 422 and nothing is stored', async () => {
    const u = await api.register();
    const res = await api.post('/api/articles', { token: u.token, body: { article: { title: 123, description: 'd', body: 'b' } } });
    assert.equal(res.status, 422);
    assert.deepEqual(Object.keys(res.body.errors), ['title']);
  });

  test('server-owned fields in the request are ignored', async () => {
    const u = await api.register();
    const other = await api.register();
    const res = await api.post('/api/articles', {
      token: u.token,
      body: {
        article: {
          title: 'Owned',
          description: 'd',
          body: 'b',
          slug: 'custom-slug',
          favoritesCount: 99,
          favorited: true,
          createdAt: '2000-01-01T00:00:00.000Z',
          author: { username: other.username },
        },
      },
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.article.slug, 'owned');
    assert.equal(res.body.article.favoritesCount, 0);
    assert.equal(res.body.article.favorited, false);
    assert.notEqual(res.body.article.createdAt, '2000-01-01T00:00:00.000Z');
    assert.equal(res.body.article.author.username, u.username);
  });

  test('requires authentication: 401 "is missing" without a token, 401 with a bad one', async () => {
    const article = { title: 'Anonymous', description: 'd', body: 'b' };
    const res = await api.post('/api/articles', { body: { article } });
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is missing'] } });
    const bad = await api.post('/api/articles', { token: 'not-a-jwt', body: { article } });
    assert.equal(bad.status, 401);
    const stored = await t.db.query("select count(*)::int as n from articles where title = 'Anonymous'");
    assert.equal(stored.rows[0].n, 0);
  });
});

describe('reading one article', () => {
  test('anonymous readers get the full article with favorited and following false', async () => {
    const u = await api.register();
    const created = await api.createArticle(u.token, { tagList: ['b', 'a'] });
    const res = await api.get(`/api/articles/${created.slug}`);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body.article).sort(), ARTICLE_KEYS);
    assert.deepEqual(res.body.article, created);
  });

  test('an authenticated reader gets the same article, flags computed for them', async () => {
    const author = await api.register();
    const reader = await api.register();
    const created = await api.createArticle(author.token);
    await api.post(`/api/profiles/${author.username}/follow`, { token: reader.token });
    await api.post(`/api/articles/${created.slug}/favorite`, { token: reader.token });
    const res = await api.get(`/api/articles/${created.slug}`, { token: reader.token });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.article, { ...created, favorited: true, favoritesCount: 1, author: { ...created.author, following: true } });
    const byAuthor = await api.get(`/api/articles/${created.slug}`, { token: author.token });
    assert.equal(byAuthor.body.article.favorited, false);
    assert.equal(byAuthor.body.article.author.following, false);
    assert.equal(byAuthor.body.article.favoritesCount, 1);
  });

  test("the author profile shows the author's current bio and image", async () => {
    const u = await api.register();
    const created = await api.createArticle(u.token);
    await api.put('/api/user', { token: u.token, body: { user: { bio: 'A bio', image: 'https://i.example/a.png' } } });
    const res = await api.get(`/api/articles/${created.slug}`);
    assert.deepEqual(res.body.article.author, { username: u.username, bio: 'A bio', image: 'https://i.example/a.png', following: false });
  });

  test('an unknown slug is 404 "article not found", for anonymous and authenticated readers', async () => {
    const u = await api.register();
    for (const token of [undefined, u.token]) {
      const res = await api.get('/api/articles/no-such-article', { token });
      assert.equal(res.status, 404);
      assert.deepEqual(res.body, { errors: { article: ['not found'] } });
    }
  });

  test('a bad token on GET by slug is 401, never anonymous', async () => {
    const u = await api.register();
    const created = await api.createArticle(u.token);
    const res = await api.get(`/api/articles/${created.slug}`, { token: 'garbage' });
    assert.equal(res.status, 401);
  });
});
