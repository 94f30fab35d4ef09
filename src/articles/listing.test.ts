// SPEC.md "Shapes" (List: no body, articlesCount before limit/offset) and "Rules the tests
// enforce" (newest first, id as the tie-break, default limit 20, limit >= 1, filters combine).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client, createTestApp, type ArticleJson, type TestApp } from '../../test/harness.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
});
after(() => t.close());

const LIST_ITEM_KEYS = ['author', 'createdAt', 'description', 'favorited', 'favoritesCount', 'slug', 'tagList', 'title', 'updatedAt'];
const slugs = (res: { body: { articles: { slug: string }[] } }) => res.body.articles.map((a) => a.slug);
const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Creates `n` articles in order (oldest first) and returns them newest first, as lists are. */
async function createMany(token: string, n: number, overrides: { tagList?: string[] } = {}): Promise<ArticleJson[]> {
  const made: ArticleJson[] = [];
  for (let i = 0; i < n; i++) made.push(await api.createArticle(token, overrides));
  return made.reverse();
}

describe('the article list', () => {
  test('is newest first, and its items have the list shape without body', async () => {
    const u = await api.register();
    const made = await createMany(u.token, 3, { tagList: ['b-tag', 'a-tag'] });
    const res = await api.get(`/api/articles?author=${u.username}`);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['articles', 'articlesCount']);
    assert.deepEqual(
      slugs(res),
      made.map((a) => a.slug),
    );
    assert.equal(res.body.articlesCount, 3);
    for (const [i, item] of res.body.articles.entries()) {
      assert.deepEqual(Object.keys(item).sort(), LIST_ITEM_KEYS);
      assert.ok(!('body' in item));
      const { body: _body, ...expected } = made[i]!;
      assert.deepEqual(item, expected);
    }
  });

  test('unfiltered, it counts every article and is ordered by createdAt descending', async () => {
    const u = await api.register();
    await createMany(u.token, 2);
    const newest = await api.createArticle(u.token);
    const res = await api.get('/api/articles?limit=100');
    const total = await t.db.query('select count(*)::int as n from articles');
    assert.equal(res.body.articlesCount, total.rows[0].n);
    assert.equal(res.body.articles[0].slug, newest.slug);
    const stamps = res.body.articles.map((a: ArticleJson) => Date.parse(a.createdAt));
    for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i - 1] >= stamps[i], `not newest first at ${i}`);
    assert.ok(res.body.articles.every((a: object) => !('body' in a)));
  });

  test('articles created in the same instant are ordered by id descending, stably across pages', async () => {
    const u = await api.register();
    const made = await createMany(u.token, 4);
    // Oldest of all, so they are the last page of the unfiltered list.
    await t.db.query("update articles set created_at = '2000-01-01T00:00:00.123Z' where slug = any($1)", [made.map((a) => a.slug)]);
    const expected = made.map((a) => a.slug);

    const byAuthor = await api.get(`/api/articles?author=${u.username}`);
    assert.deepEqual(slugs(byAuthor), expected);
    const paged: string[] = [];
    for (let offset = 0; offset < 4; offset++)
      paged.push(...slugs(await api.get(`/api/articles?author=${u.username}&limit=1&offset=${offset}`)));
    assert.deepEqual(paged, expected);

    const total = (await api.get('/api/articles?limit=1')).body.articlesCount as number;
    const tail = await api.get(`/api/articles?limit=4&offset=${total - 4}`);
    assert.deepEqual(slugs(tail), expected);
    assert.ok(tail.body.articles.every((a: ArticleJson) => a.createdAt === '2000-01-01T00:00:00.123Z'));
  });

  test('the default limit is 20 and articlesCount is the total before limit and offset', async () => {
    const u = await api.register();
    const made = await createMany(u.token, 25);
    const res = await api.get(`/api/articles?author=${u.username}`);
    assert.equal(res.body.articles.length, 20);
    assert.equal(res.body.articlesCount, 25);
    assert.deepEqual(
      slugs(res),
      made.slice(0, 20).map((a) => a.slug),
    );
    const unfiltered = await api.get('/api/articles');
    assert.equal(unfiltered.body.articles.length, 20);
  });

  test('limit and offset page through the list without gaps or repeats', async () => {
    const u = await api.register();
    const made = await createMany(u.token, 7);
    const pages: string[] = [];
    for (let offset = 0; offset < 7; offset += 3) {
      const res = await api.get(`/api/articles?author=${u.username}&limit=3&offset=${offset}`);
      assert.equal(res.body.articlesCount, 7);
      assert.ok(res.body.articles.length <= 3);
      pages.push(...slugs(res));
    }
    assert.deepEqual(
      pages,
      made.map((a) => a.slug),
    );
    const one = await api.get(`/api/articles?author=${u.username}&limit=1&offset=6`);
    assert.deepEqual(slugs(one), [made[6]!.slug]);
  });

  test('an offset past the end gives no articles with the right count', async () => {
    const u = await api.register();
    await createMany(u.token, 3);
    for (const offset of [3, 4, 1000]) {
      const res = await api.get(`/api/articles?author=${u.username}&offset=${offset}`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { articles: [], articlesCount: 3 });
    }
  });

  test('limit 1 and limit 100 are accepted', async () => {
    for (const limit of [1, 100]) {
      const res = await api.get(`/api/articles?limit=${limit}`);
      assert.equal(res.status, 200, `limit=${limit}`);
    }
  });

  test('a limit below 1, above 100 or not an integer, and a bad offset, are 422 in the error shape', async () => {
    const u = await api.register();
    const cases = [
      ['limit', '0'],
      ['limit', '-1'],
      ['limit', '101'],
      ['limit', 'abc'],
      ['limit', '1.5'],
      ['limit', ''],
      ['offset', '-1'],
      ['offset', 'abc'],
    ] as const;
    for (const [param, value] of cases) {
      for (const path of ['/api/articles', '/api/articles/feed']) {
        const res = await api.get(`${path}?${param}=${value}`, { token: u.token });
        assert.equal(res.status, 422, `${path}?${param}=${value}`);
        assert.deepEqual(Object.keys(res.body), ['errors']);
        assert.deepEqual(Object.keys(res.body.errors), [param], `${path}?${param}=${value}`);
        assert.equal(res.body.errors[param].length, 1);
        assert.equal(typeof res.body.errors[param][0], 'string');
      }
    }
  });

  test('query parameters that are not filters are ignored', async () => {
    const u = await api.register();
    await api.createArticle(u.token);
    const plain = await api.get('/api/articles?limit=100');
    const { rows } = await t.db.query<{ id: number }>('select id from users where username = $1', [u.username]);
    for (const extra of ['followedBy=abc', `followedBy=${rows[0]!.id}`, 'sort=title', 'viewer=1']) {
      const res = await api.get(`/api/articles?limit=100&${extra}`);
      assert.equal(res.status, 200, extra);
      assert.deepEqual(res.body, plain.body, extra);
    }
  });
});

describe('list filters', () => {
  test('tag, author and favorited filter alone and combined, with complete tagLists and counts', async () => {
    const x = await api.register();
    const y = await api.register();
    const fan = await api.register();
    const [t1, t2] = [unique('one'), unique('two')];
    const a1 = await api.createArticle(x.token, { tagList: [t1] });
    const a2 = await api.createArticle(x.token, { tagList: [t2, t1] });
    const a3 = await api.createArticle(y.token, { tagList: [t1] });
    const a4 = await api.createArticle(y.token);
    await api.post(`/api/articles/${a2.slug}/favorite`, { token: fan.token });
    await api.post(`/api/articles/${a3.slug}/favorite`, { token: fan.token });
    await api.post(`/api/articles/${a4.slug}/favorite`, { token: x.token });

    const cases: [string, ArticleJson[]][] = [
      [`tag=${t1}`, [a3, a2, a1]],
      [`tag=${t2}`, [a2]],
      [`author=${x.username}`, [a2, a1]],
      [`author=${y.username}`, [a4, a3]],
      [`favorited=${fan.username}`, [a3, a2]],
      [`favorited=${x.username}`, [a4]],
      [`tag=${t1}&author=${x.username}`, [a2, a1]],
      [`tag=${t1}&favorited=${fan.username}`, [a3, a2]],
      [`author=${x.username}&favorited=${fan.username}`, [a2]],
      [`tag=${t2}&author=${y.username}`, []],
      [`tag=${t1}&author=${x.username}&favorited=${fan.username}`, [a2]],
      [`tag=${t1}&author=${y.username}&favorited=${fan.username}`, [a3]],
      [`tag=${t2}&author=${x.username}&favorited=${x.username}`, []],
    ];
    for (const [query, expected] of cases) {
      const res = await api.get(`/api/articles?${query}`);
      assert.equal(res.status, 200, query);
      assert.deepEqual(
        slugs(res),
        expected.map((a) => a.slug),
        query,
      );
      assert.equal(res.body.articlesCount, expected.length, query);
    }
    const byT2 = await api.get(`/api/articles?tag=${t2}`);
    assert.deepEqual(byT2.body.articles[0].tagList, [t1, t2].sort());
    const paged = await api.get(`/api/articles?tag=${t1}&limit=1&offset=1`);
    assert.deepEqual(slugs(paged), [a2.slug]);
    assert.equal(paged.body.articlesCount, 3);
  });

  test('an unknown author, tag or favoriting user gives an empty list with count 0', async () => {
    const u = await api.register();
    await api.createArticle(u.token, { tagList: ['known'] });
    for (const query of ['author=nobody-at-all', 'tag=no-such-tag', 'favorited=nobody-at-all', `author=${u.username}&tag=no-such-tag`]) {
      const res = await api.get(`/api/articles?${query}`);
      assert.equal(res.status, 200, query);
      assert.deepEqual(res.body, { articles: [], articlesCount: 0 }, query);
    }
  });

  test('filter values are matched exactly, not as patterns or case-insensitively', async () => {
    const u = await api.register();
    const tag = unique('Exact');
    await api.createArticle(u.token, { tagList: [tag] });
    for (const query of [`tag=${tag.toLowerCase()}`, `tag=${tag.slice(0, -1)}%25`, `author=${u.username.slice(0, -1)}_`]) {
      const res = await api.get(`/api/articles?${query}`);
      assert.equal(res.body.articlesCount, 0, query);
    }
    assert.equal((await api.get(`/api/articles?tag=${tag}`)).body.articlesCount, 1);
  });
});

describe('the feed', () => {
  test('requires authentication', async () => {
    const res = await api.get('/api/articles/feed');
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is missing'] } });
    assert.equal((await api.get('/api/articles/feed', { token: 'garbage' })).status, 401);
  });

  test('is empty for a user who follows nobody', async () => {
    const reader = await api.register();
    const other = await api.register();
    await api.createArticle(other.token);
    await api.createArticle(reader.token);
    const res = await api.get('/api/articles/feed', { token: reader.token });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { articles: [], articlesCount: 0 });
  });

  test("shows only followed authors' articles, newest first, with following true and no body", async () => {
    const reader = await api.register();
    const followed1 = await api.register();
    const followed2 = await api.register();
    const stranger = await api.register();
    const f1a = await api.createArticle(followed1.token);
    await api.createArticle(stranger.token);
    const f2a = await api.createArticle(followed2.token);
    await api.createArticle(reader.token);
    const f1b = await api.createArticle(followed1.token);
    for (const f of [followed1, followed2]) await api.post(`/api/profiles/${f.username}/follow`, { token: reader.token });

    const res = await api.get('/api/articles/feed', { token: reader.token });

    assert.equal(res.status, 200);
    assert.deepEqual(slugs(res), [f1b.slug, f2a.slug, f1a.slug]);
    assert.equal(res.body.articlesCount, 3);
    for (const item of res.body.articles) {
      assert.deepEqual(Object.keys(item).sort(), LIST_ITEM_KEYS);
      assert.equal(item.author.following, true);
      assert.equal(item.favorited, false);
    }
  });

  test('pages with limit and offset and counts before paging', async () => {
    const reader = await api.register();
    const author = await api.register();
    const made = await createMany(author.token, 5);
    await api.post(`/api/profiles/${author.username}/follow`, { token: reader.token });
    const pages: string[] = [];
    for (const offset of [0, 2, 4]) {
      const res = await api.get(`/api/articles/feed?limit=2&offset=${offset}`, { token: reader.token });
      assert.equal(res.body.articlesCount, 5);
      pages.push(...slugs(res));
    }
    assert.deepEqual(
      pages,
      made.map((a) => a.slug),
    );
    const past = await api.get('/api/articles/feed?offset=10', { token: reader.token });
    assert.deepEqual(past.body, { articles: [], articlesCount: 5 });
  });

  test("unfollowing removes the author's articles from the feed", async () => {
    const reader = await api.register();
    const author = await api.register();
    await api.createArticle(author.token);
    await api.post(`/api/profiles/${author.username}/follow`, { token: reader.token });
    assert.equal((await api.get('/api/articles/feed', { token: reader.token })).body.articlesCount, 1);
    await api.delete(`/api/profiles/${author.username}/follow`, { token: reader.token });
    const res = await api.get('/api/articles/feed', { token: reader.token });
    assert.deepEqual(res.body, { articles: [], articlesCount: 0 });
  });

  test("list filters do not apply to the feed, and never reach another user's feed", async () => {
    const reader = await api.register();
    const author = await api.register();
    const a = await api.createArticle(author.token, { tagList: ['feed-tag'] });
    await api.post(`/api/profiles/${author.username}/follow`, { token: reader.token });
    for (const extra of ['tag=other-tag', 'author=nobody-at-all', 'favorited=nobody-at-all', 'followedBy=abc']) {
      const res = await api.get(`/api/articles/feed?${extra}`, { token: reader.token });
      assert.equal(res.status, 200, extra);
      assert.deepEqual(slugs(res), [a.slug], extra);
    }
  });
});

describe('the author= and favorited= filters', () => {
  test('compare the name in NFC, as it is stored: the decomposed spelling finds the composed name', async () => {
    const n = randomBytes(4).toString('hex');
    const author = await api.register({ username: `ren\u00e9${n}` });
    const fan = await api.register({ username: `zo\u00eb${n}` });
    const made = await createMany(author.token, 2);
    const fav = await api.post(`/api/articles/${made[0]!.slug}/favorite`, { token: fan.token });
    assert.equal(fav.status, 200, fav.text);
    for (const name of [`ren\u00e9${n}`, `rene\u0301${n}`]) {
      const res = await api.get(`/api/articles?author=${encodeURIComponent(name)}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(
        slugs(res),
        made.map((a) => a.slug),
        JSON.stringify(name),
      );
    }
    for (const name of [`zo\u00eb${n}`, `zoe\u0308${n}`]) {
      const res = await api.get(`/api/articles?favorited=${encodeURIComponent(name)}`);
      assert.deepEqual(slugs(res), [made[0]!.slug], JSON.stringify(name));
    }
  });
});
