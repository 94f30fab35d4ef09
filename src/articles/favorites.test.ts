// SPEC.md "Endpoints" (POST, DELETE /articles/:slug/favorite) and "Rules the tests enforce":
// idempotent, and `favoritesCount` exact after every favorite/unfavorite, also under concurrency.
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

const favorite = (slug: string, token?: string) => api.post(`/api/articles/${slug}/favorite`, { token });
const unfavorite = (slug: string, token?: string) => api.delete(`/api/articles/${slug}/favorite`, { token });

/** The count as stored, and the number of favorites rows behind it: they must always agree. */
async function storedCount(slug: string): Promise<{ counter: number; rows: number }> {
  const res = await t.db.query<{ counter: number; rows: number }>(
    `select a.favorites_count as counter, (select count(*)::int from favorites f where f.article_id = a.id) as rows
       from articles a where a.slug = $1`,
    [slug],
  );
  return res.rows[0]!;
}

/** Users registered one at a time: password hashing is deliberately bounded (503 past it). */
async function registerMany(n: number) {
  const users = [];
  for (let i = 0; i < n; i++) users.push(await api.register());
  return users;
}

describe('favoriting', () => {
  test('returns the full article with favorited true and the count up by one', async () => {
    const author = await api.register();
    const fan = await api.register();
    const a = await api.createArticle(author.token, { tagList: ['fav'] });
    const res = await favorite(a.slug, fan.token);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { article: { ...a, favorited: true, favoritesCount: 1 } });
    assert.deepEqual(await storedCount(a.slug), { counter: 1, rows: 1 });
  });

  test('the favorite is visible to the fan only; others see the count', async () => {
    const author = await api.register();
    const fan = await api.register();
    const other = await api.register();
    const a = await api.createArticle(author.token);
    await favorite(a.slug, fan.token);
    for (const [who, token, expected] of [
      ['fan', fan.token, true],
      ['other', other.token, false],
      ['author', author.token, false],
      ['anonymous', undefined, false],
    ] as const) {
      const res = await api.get(`/api/articles/${a.slug}`, { token });
      assert.equal(res.body.article.favorited, expected, who);
      assert.equal(res.body.article.favoritesCount, 1, who);
    }
  });

  test('favoriting twice is not an error and does not count twice', async () => {
    const author = await api.register();
    const fan = await api.register();
    const a = await api.createArticle(author.token);
    await favorite(a.slug, fan.token);
    const again = await favorite(a.slug, fan.token);
    assert.equal(again.status, 200);
    assert.equal(again.body.article.favorited, true);
    assert.equal(again.body.article.favoritesCount, 1);
    assert.deepEqual(await storedCount(a.slug), { counter: 1, rows: 1 });
  });

  test('authors may favorite their own article', async () => {
    const author = await api.register();
    const a = await api.createArticle(author.token);
    const res = await favorite(a.slug, author.token);
    assert.equal(res.body.article.favorited, true);
    assert.equal(res.body.article.favoritesCount, 1);
  });

  test('a JSON content type with an empty body works, as common clients send it', async () => {
    const author = await api.register();
    const fan = await api.register();
    const a = await api.createArticle(author.token);
    const headers = { 'content-type': 'application/json' };
    const noPayload = await api.post(`/api/articles/${a.slug}/favorite`, { token: fan.token, headers });
    assert.equal(noPayload.status, 200, noPayload.text);
    assert.equal(noPayload.body.article.favorited, true);
    const emptyPayload = await api.post(`/api/articles/${a.slug}/favorite`, { token: fan.token, headers, body: '' });
    assert.equal(emptyPayload.status, 200, emptyPayload.text);
    assert.equal(emptyPayload.body.article.favoritesCount, 1);
    const del = await api.delete(`/api/articles/${a.slug}/favorite`, { token: fan.token, headers, body: '' });
    assert.equal(del.status, 200, del.text);
    assert.equal(del.body.article.favorited, false);
    assert.equal(del.body.article.favoritesCount, 0);
  });

  test('an unknown slug is 404 and no token is 401, for favorite and unfavorite', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    for (const action of [favorite, unfavorite]) {
      const missing = await action('no-such-article', u.token);
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.body, { errors: { article: ['not found'] } });
      const anonymous = await action(a.slug);
      assert.equal(anonymous.status, 401);
      assert.deepEqual(anonymous.body, { errors: { token: ['is missing'] } });
    }
    assert.deepEqual(await storedCount(a.slug), { counter: 0, rows: 0 });
  });
});

describe('unfavoriting', () => {
  test('returns favorited false and the count down by one', async () => {
    const author = await api.register();
    const fan = await api.register();
    const other = await api.register();
    const a = await api.createArticle(author.token);
    await favorite(a.slug, fan.token);
    await favorite(a.slug, other.token);
    const res = await unfavorite(a.slug, fan.token);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { article: { ...a, favorited: false, favoritesCount: 1 } });
    assert.deepEqual(await storedCount(a.slug), { counter: 1, rows: 1 });
    assert.equal((await api.get(`/api/articles/${a.slug}`, { token: other.token })).body.article.favorited, true);
  });

  test('unfavoriting an article not favorited is fine and the count stays', async () => {
    const author = await api.register();
    const fan = await api.register();
    const bystander = await api.register();
    const a = await api.createArticle(author.token);
    await favorite(a.slug, fan.token);
    const res = await unfavorite(a.slug, bystander.token);
    assert.equal(res.status, 200);
    assert.equal(res.body.article.favorited, false);
    assert.equal(res.body.article.favoritesCount, 1);
    const twice = await unfavorite(a.slug, fan.token).then(() => unfavorite(a.slug, fan.token));
    assert.equal(twice.status, 200);
    assert.equal(twice.body.article.favoritesCount, 0);
    assert.deepEqual(await storedCount(a.slug), { counter: 0, rows: 0 });
  });
});

describe('favorites under concurrency', () => {
  test('30 users favoriting at once give exactly 30, and all unfavoriting at once give 0', async () => {
    const author = await api.register();
    const a = await api.createArticle(author.token);
    const fans = await registerMany(30);

    const favs = await Promise.all(fans.map((f) => favorite(a.slug, f.token)));

    assert.deepEqual(
      favs.map((r) => r.status),
      Array(30).fill(200),
    );
    assert.ok(favs.every((r) => r.body.article.favorited === true));
    // Each favorite moved the counter once, under the row lock: every response saw a distinct value.
    assert.deepEqual(
      favs.map((r) => r.body.article.favoritesCount).sort((x, y) => x - y),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.equal((await api.get(`/api/articles/${a.slug}`)).body.article.favoritesCount, 30);
    assert.deepEqual(await storedCount(a.slug), { counter: 30, rows: 30 });

    const unfavs = await Promise.all(fans.map((f) => unfavorite(a.slug, f.token)));

    assert.deepEqual(
      unfavs.map((r) => r.status),
      Array(30).fill(200),
    );
    assert.ok(unfavs.every((r) => r.body.article.favorited === false));
    assert.deepEqual(
      unfavs.map((r) => r.body.article.favoritesCount).sort((x, y) => x - y),
      Array.from({ length: 30 }, (_, i) => i),
    );
    assert.equal((await api.get(`/api/articles/${a.slug}`)).body.article.favoritesCount, 0);
    assert.deepEqual(await storedCount(a.slug), { counter: 0, rows: 0 });
  });

  test('one user favoriting 10 times at once counts once, and unfavoriting 10 times at once gives 0', async () => {
    const author = await api.register();
    const fan = await api.register();
    const a = await api.createArticle(author.token);

    const favs = await Promise.all(Array.from({ length: 10 }, () => favorite(a.slug, fan.token)));

    assert.deepEqual(
      favs.map((r) => r.status),
      Array(10).fill(200),
    );
    assert.ok(favs.every((r) => r.body.article.favorited === true && r.body.article.favoritesCount === 1));
    assert.deepEqual(await storedCount(a.slug), { counter: 1, rows: 1 });

    const unfavs = await Promise.all(Array.from({ length: 10 }, () => unfavorite(a.slug, fan.token)));

    assert.ok(unfavs.every((r) => r.status === 200 && r.body.article.favorited === false && r.body.article.favoritesCount === 0));
    assert.deepEqual(await storedCount(a.slug), { counter: 0, rows: 0 });
  });

  test('favorites and unfavorites by different users at once leave the exact net count', async () => {
    const author = await api.register();
    const a = await api.createArticle(author.token);
    const leaving = await registerMany(10);
    const joining = await registerMany(10);
    for (const u of leaving) await favorite(a.slug, u.token);

    await Promise.all([...leaving.map((u) => unfavorite(a.slug, u.token)), ...joining.map((u) => favorite(a.slug, u.token))]);

    assert.deepEqual(await storedCount(a.slug), { counter: 10, rows: 10 });
    assert.equal((await api.get(`/api/articles/${a.slug}`)).body.article.favoritesCount, 10);
  });

  test('favoriting while the author edits the article always succeeds and keeps the count exact', async () => {
    const author = await api.register();
    const fans = await registerMany(10);
    const a = await api.createArticle(author.token);
    const edits = Array.from({ length: 10 }, (_, i) =>
      api.put(`/api/articles/${a.slug}`, { token: author.token, body: { article: { body: `edit ${i}` } } }),
    );
    const favs = fans.map((f) => favorite(a.slug, f.token));
    const results = await Promise.all([...edits, ...favs]);
    for (const r of results) assert.equal(r.status, 200, r.text);
    assert.deepEqual(await storedCount(a.slug), { counter: 10, rows: 10 });
  });

  test('favoriting an article while its author deletes it gives 200 or 404, never a server error', async () => {
    const author = await api.register();
    const fans = await registerMany(8);
    for (let round = 0; round < 10; round++) {
      const a = await api.createArticle(author.token);
      const [deleted, ...favs] = await Promise.all([
        api.delete(`/api/articles/${a.slug}`, { token: author.token }),
        ...fans.map((f) => favorite(a.slug, f.token)),
      ]);
      assert.equal(deleted?.status, 204);
      for (const r of favs) assert.ok(r.status === 200 || r.status === 404, `round ${round}: ${r.status} ${r.text}`);
    }
  });
});
