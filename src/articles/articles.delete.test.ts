// SPEC.md "Endpoints" (DELETE /articles/:slug), "Errors" (403, 404) and the schema's cascades;
// plus ownership under concurrency: another user's writes never land, whatever the timing.
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

async function countFor(table: 'comments' | 'favorites' | 'article_tags', articleId: number): Promise<number> {
  const res = await t.db.query<{ n: number }>(`select count(*)::int as n from ${table} where article_id = $1`, [articleId]);
  return res.rows[0]!.n;
}

describe('deleting an article', () => {
  test('the author gets 204 with an empty body, and the article is then 404', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    const res = await api.delete(`/api/articles/${a.slug}`, { token: u.token });
    assert.equal(res.status, 204);
    assert.equal(res.text, '');
    const gone = await api.get(`/api/articles/${a.slug}`);
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.body, { errors: { article: ['not found'] } });
    const again = await api.delete(`/api/articles/${a.slug}`, { token: u.token });
    assert.equal(again.status, 404);
  });

  test('deleting removes its comments, favorites and tag links, and unused tags leave /api/tags', async () => {
    const author = await api.register();
    const fan = await api.register();
    const a = await api.createArticle(author.token, { tagList: ['delete-only-tag', 'delete-shared-tag'] });
    const kept = await api.createArticle(author.token, { tagList: ['delete-shared-tag'] });
    assert.equal(
      (await api.post(`/api/articles/${a.slug}/comments`, { token: fan.token, body: { comment: { body: 'nice' } } })).status,
      201,
    );
    assert.equal((await api.post(`/api/articles/${a.slug}/favorite`, { token: fan.token })).status, 200);
    const { rows } = await t.db.query<{ id: number }>('select id from articles where slug = $1', [a.slug]);
    const id = rows[0]!.id;
    assert.equal(await countFor('comments', id), 1);
    assert.equal(await countFor('favorites', id), 1);
    assert.equal(await countFor('article_tags', id), 2);

    const res = await api.delete(`/api/articles/${a.slug}`, { token: author.token });

    assert.equal(res.status, 204);
    assert.equal(await countFor('comments', id), 0);
    assert.equal(await countFor('favorites', id), 0);
    assert.equal(await countFor('article_tags', id), 0);
    assert.equal((await api.get(`/api/articles/${a.slug}/comments`)).status, 404);
    const favorited = await api.get(`/api/articles?favorited=${fan.username}`);
    assert.deepEqual(favorited.body, { articles: [], articlesCount: 0 });
    const tags = (await api.get('/api/tags')).body.tags as string[];
    assert.ok(!tags.includes('delete-only-tag'));
    assert.ok(tags.includes('delete-shared-tag'));
    const byTag = await api.get('/api/articles?tag=delete-shared-tag');
    assert.deepEqual(
      byTag.body.articles.map((x: { slug: string }) => x.slug),
      [kept.slug],
    );
    assert.equal(byTag.body.articlesCount, 1);
  });

  test('another user gets 403 "article forbidden" and the article stays', async () => {
    const author = await api.register();
    const intruder = await api.register();
    const a = await api.createArticle(author.token);
    const res = await api.delete(`/api/articles/${a.slug}`, { token: intruder.token });
    assert.equal(res.status, 403);
    assert.deepEqual(res.body, { errors: { article: ['forbidden'] } });
    const stored = await api.get(`/api/articles/${a.slug}`);
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.body.article, a);
  });

  test('an unknown slug is 404 and no token is 401', async () => {
    const u = await api.register();
    const missing = await api.delete('/api/articles/no-such-article', { token: u.token });
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { errors: { article: ['not found'] } });
    const a = await api.createArticle(u.token);
    const anonymous = await api.delete(`/api/articles/${a.slug}`);
    assert.equal(anonymous.status, 401);
    assert.deepEqual(anonymous.body, { errors: { token: ['is missing'] } });
    assert.equal((await api.get(`/api/articles/${a.slug}`)).status, 200);
  });

  test('of several concurrent deletes by the author one succeeds and the others are 404, never 403', async () => {
    const u = await api.register();
    for (let round = 0; round < 20; round++) {
      const a = await api.createArticle(u.token);
      const results = await Promise.all(Array.from({ length: 4 }, () => api.delete(`/api/articles/${a.slug}`, { token: u.token })));
      assert.deepEqual(results.map((r) => r.status).sort(), [204, 404, 404, 404], `round ${round}`);
    }
  });
});

describe('ownership under concurrency', () => {
  test("while the author updates repeatedly, another user's concurrent updates and deletes are all 403 and never land", async () => {
    const author = await api.register();
    const intruder = await api.register();
    const a = await api.createArticle(author.token, { body: 'original', tagList: ['owned'] });
    const rounds = 15;

    const authorWrites = Array.from({ length: rounds }, (_, i) =>
      api.put(`/api/articles/${a.slug}`, { token: author.token, body: { article: { body: `author ${i}`, description: `author ${i}` } } }),
    );
    const intruderWrites = Array.from({ length: rounds }, (_, i) => [
      api.put(`/api/articles/${a.slug}`, {
        token: intruder.token,
        body: { article: { body: `intruder ${i}`, title: `Intruder ${i}`, tagList: [] } },
      }),
      api.delete(`/api/articles/${a.slug}`, { token: intruder.token }),
    ]).flat();
    const [mine, theirs] = await Promise.all([Promise.all(authorWrites), Promise.all(intruderWrites)]);

    assert.deepEqual(
      mine.map((r) => r.status),
      Array(rounds).fill(200),
    );
    assert.deepEqual(
      theirs.map((r) => r.status),
      Array(rounds * 2).fill(403),
    );
    for (const r of theirs) assert.deepEqual(r.body, { errors: { article: ['forbidden'] } });
    const stored = await api.get(`/api/articles/${a.slug}`);
    assert.equal(stored.status, 200);
    assert.match(stored.body.article.body, /^author \d+$/);
    assert.equal(stored.body.article.description, stored.body.article.body);
    assert.equal(stored.body.article.title, a.title);
    assert.deepEqual(stored.body.article.tagList, ['owned']);
    assert.equal(stored.body.article.author.username, author.username);
    const intruded = await t.db.query("select count(*)::int as n from articles where body like 'intruder%' or title like 'Intruder%'");
    assert.equal(intruded.rows[0].n, 0);
  });
});
