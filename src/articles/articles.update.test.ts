// SPEC.md "Endpoints" (PUT /articles/:slug) and "Rules the tests enforce": partial updates,
// slug follows title, createdAt fixed, updatedAt moves on every update, tagList absent/[]/null.
import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import { after, before, describe, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
});
after(() => t.close());

const put = (slug: string, token: string | undefined, article: unknown) => api.put(`/api/articles/${slug}`, { token, body: { article } });

describe('updating an article', () => {
  test('a partial update changes only the given field and keeps slug, tags and createdAt', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { title: 'Partial', description: 'old description', body: 'old body', tagList: ['x', 'y'] });
    const res = await put(a.slug, u.token, { body: 'new body' });
    assert.equal(res.status, 200);
    const b = res.body.article;
    assert.deepEqual(Object.keys(b).sort(), [
      'author',
      'body',
      'createdAt',
      'description',
      'favorited',
      'favoritesCount',
      'slug',
      'tagList',
      'title',
      'updatedAt',
    ]);
    assert.equal(b.body, 'new body');
    assert.equal(b.title, 'Partial');
    assert.equal(b.slug, a.slug);
    assert.equal(b.description, 'old description');
    assert.deepEqual(b.tagList, ['x', 'y']);
    assert.equal(b.createdAt, a.createdAt);
    assert.deepEqual(b.author, a.author);
    const stored = await api.get(`/api/articles/${a.slug}`);
    assert.deepEqual(stored.body.article, b);
  });

  test('each field can be changed on its own', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { title: 'Fields', description: 'd0', body: 'b0' });
    const d = await put(a.slug, u.token, { description: 'd1' });
    assert.equal(d.body.article.description, 'd1');
    assert.equal(d.body.article.body, 'b0');
    const b = await put(a.slug, u.token, { body: 'b1' });
    assert.equal(b.body.article.description, 'd1');
    assert.equal(b.body.article.body, 'b1');
  });

  test('changing the title changes the slug: the old slug is then 404 and the new one works', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { title: 'Before Rename', body: 'kept' });
    const res = await put(a.slug, u.token, { title: 'After Rename' });
    assert.equal(res.status, 200);
    assert.equal(res.body.article.title, 'After Rename');
    assert.equal(res.body.article.slug, 'after-rename');
    const old = await api.get(`/api/articles/${a.slug}`);
    assert.equal(old.status, 404);
    assert.deepEqual(old.body, { errors: { article: ['not found'] } });
    const fresh = await api.get('/api/articles/after-rename');
    assert.equal(fresh.status, 200);
    assert.equal(fresh.body.article.body, 'kept');
    assert.equal(fresh.body.article.createdAt, a.createdAt);
  });

  test('a new title that another article already uses gets a distinct slug', async () => {
    const u = await api.register();
    const taken = await api.createArticle(u.token, { title: 'Taken Title' });
    const a = await api.createArticle(u.token, { title: 'Free Title' });
    const res = await put(a.slug, u.token, { title: 'Taken Title' });
    assert.equal(res.status, 200);
    assert.notEqual(res.body.article.slug, taken.slug);
    assert.match(res.body.article.slug, /^taken-title-/);
    assert.equal((await api.get(`/api/articles/${taken.slug}`)).body.article.title, 'Taken Title');
    assert.equal((await api.get(`/api/articles/${res.body.article.slug}`)).body.article.title, 'Taken Title');
  });

  test('two articles renamed to the same title at once both succeed with distinct slugs', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    const b = await api.createArticle(u.token);
    const [ra, rb] = await Promise.all([
      put(a.slug, u.token, { title: 'Concurrent Rename' }),
      put(b.slug, u.token, { title: 'Concurrent Rename' }),
    ]);
    assert.equal(ra.status, 200);
    assert.equal(rb.status, 200);
    assert.notEqual(ra.body.article.slug, rb.body.article.slug);
  });

  test('createdAt never changes and updatedAt moves forward on every update, even in quick succession', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    const seen = [a.updatedAt];
    for (let i = 0; i < 5; i++) {
      const res = await put(a.slug, u.token, { body: `revision ${i}` });
      assert.equal(res.status, 200);
      assert.equal(res.body.article.createdAt, a.createdAt);
      assert.match(res.body.article.updatedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      seen.push(res.body.article.updatedAt);
    }
    for (let i = 1; i < seen.length; i++) {
      assert.ok(Date.parse(seen[i]!) > Date.parse(seen[i - 1]!), `updatedAt did not move: ${seen.join(', ')}`);
    }
    const stored = await api.get(`/api/articles/${a.slug}`);
    assert.equal(stored.body.article.updatedAt, seen.at(-1));
    assert.equal(stored.body.article.createdAt, a.createdAt);
  });

  test('updatedAt moves even when two updates run at the same moment', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    const results = await Promise.all([put(a.slug, u.token, { body: 'one' }), put(a.slug, u.token, { body: 'two' })]);
    const stamps = results.map((r) => r.body.article.updatedAt);
    assert.notEqual(stamps[0], stamps[1]);
    for (const s of stamps) assert.ok(Date.parse(s) > Date.parse(a.updatedAt));
  });

  test('tagList absent keeps the tags, [] clears them, a new list replaces them', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['keep-1', 'keep-2'] });
    const absent = await put(a.slug, u.token, { body: 'changed' });
    assert.deepEqual(absent.body.article.tagList, ['keep-1', 'keep-2']);
    const replaced = await put(a.slug, u.token, { tagList: ['zz-new', 'keep-1', 'zz-new', 'aa-new'] });
    assert.deepEqual(replaced.body.article.tagList, ['aa-new', 'keep-1', 'zz-new']);
    const cleared = await put(a.slug, u.token, { tagList: [] });
    assert.equal(cleared.status, 200);
    assert.deepEqual(cleared.body.article.tagList, []);
    assert.deepEqual((await api.get(`/api/articles/${a.slug}`)).body.article.tagList, []);
  });

  test('tags added by an update appear in GET /api/tags and tags no longer used disappear', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['update-old-tag'] });
    await put(a.slug, u.token, { tagList: ['update-new-tag'] });
    const tags = (await api.get('/api/tags')).body.tags as string[];
    assert.ok(tags.includes('update-new-tag'));
    assert.ok(!tags.includes('update-old-tag'));
  });

  test('a null tagList is 422 and leaves the tags as they were', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['still-here'] });
    const res = await put(a.slug, u.token, { tagList: null });
    assert.equal(res.status, 422);
    assert.deepEqual(Object.keys(res.body.errors), ['tagList']);
    assert.deepEqual((await api.get(`/api/articles/${a.slug}`)).body.article.tagList, ['still-here']);
  });

  test('empty, blank or null title, description and body are 422 "can\'t be blank" and change nothing', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    for (const field of ['title', 'description', 'body']) {
      for (const value of ['', '  ', null]) {
        const res = await put(a.slug, u.token, { [field]: value });
        assert.equal(res.status, 422, `${field}=${JSON.stringify(value)}`);
        assert.deepEqual(res.body, { errors: { [field]: ["can't be blank"] } });
      }
    }
    const stored = await api.get(`/api/articles/${a.slug}`);
    assert.deepEqual(stored.body.article, a);
  });

  test('a body without the article wrapper is 422 in the error shape', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    const res = await api.put(`/api/articles/${a.slug}`, { token: u.token, body: { title: 'unwrapped' } });
    assert.equal(res.status, 422);
    assert.deepEqual(res.body, { errors: { article: ["can't be blank"] } });
  });

  test('server-owned fields in the request are ignored', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token);
    const res = await put(a.slug, u.token, { body: 'x', slug: 'hijacked', favoritesCount: 50, createdAt: '2000-01-01T00:00:00.000Z' });
    assert.equal(res.status, 200);
    assert.equal(res.body.article.slug, a.slug);
    assert.equal(res.body.article.favoritesCount, 0);
    assert.equal(res.body.article.createdAt, a.createdAt);
  });

  test('another user gets 403 "article forbidden" and the article is unchanged', async () => {
    const author = await api.register();
    const intruder = await api.register();
    const a = await api.createArticle(author.token, { tagList: ['mine'] });
    const res = await put(a.slug, intruder.token, { title: 'Hijacked', body: 'hijacked', tagList: [] });
    assert.equal(res.status, 403);
    assert.deepEqual(res.body, { errors: { article: ['forbidden'] } });
    const stored = await api.get(`/api/articles/${a.slug}`);
    assert.deepEqual(stored.body.article, a);
  });

  test('an unknown slug is 404 and no token is 401', async () => {
    const u = await api.register();
    const missing = await put('no-such-article', u.token, { body: 'x' });
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { errors: { article: ['not found'] } });
    const a = await api.createArticle(u.token);
    const anonymous = await put(a.slug, undefined, { body: 'x' });
    assert.equal(anonymous.status, 401);
    assert.deepEqual(anonymous.body, { errors: { token: ['is missing'] } });
  });

  test("the update response shows the author's own flags: favorited and count are kept", async () => {
    const author = await api.register();
    const fan = await api.register();
    const a = await api.createArticle(author.token);
    await api.post(`/api/articles/${a.slug}/favorite`, { token: fan.token });
    await api.post(`/api/articles/${a.slug}/favorite`, { token: author.token });
    const res = await put(a.slug, author.token, { title: 'Renamed With Favorites' });
    assert.equal(res.body.article.favorited, true);
    assert.equal(res.body.article.favoritesCount, 2);
    const asFan = await api.get(`/api/articles/${res.body.article.slug}`, { token: fan.token });
    assert.equal(asFan.body.article.favorited, true);
    assert.equal(asFan.body.article.favoritesCount, 2);
  });

  test('concurrent edits of one article each apply whole: the tags end as one edit set them, never a mix', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['start'] });
    const lists = Array.from({ length: 8 }, (_, i) => [`race-${i}-a`, `race-${i}-b`]);
    const results = await Promise.all(lists.map((tagList, i) => put(a.slug, u.token, { tagList, body: `edit ${i}` })));
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.article.tagList, lists[i]);
    }
    const stored = (await api.get(`/api/articles/${a.slug}`)).body.article;
    const last = lists[Number(stored.body.slice('edit '.length))]!;
    // The edit whose body won wrote the tags too: a tag delete that missed links inserted after
    // its snapshot would leave another edit's tags beside these.
    assert.deepEqual(stored.tagList, last);
  });

  test('an edit of title, body and tags is one statement, no transaction', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['one-statement'] });
    // Every statement the driver sends, begin and commit included (postgres.js publishes each).
    const sent: string[] = [];
    const onQuery = (message: unknown) => sent.push(String((message as { query: string | null }).query));
    dc.subscribe('tracing:postgres:query:start', onQuery);
    try {
      // Through the pool, as the route sends it; no cached read in between.
      const res = await put(a.slug, u.token, { title: 'One Statement Edit', body: 'new', tagList: ['one-statement', 'two'] });
      assert.equal(res.status, 200);
      const before = sent.length;
      const again = await put(res.body.article.slug, u.token, { title: 'One Statement Again', tagList: [] });
      assert.equal(again.status, 200);
      const edit = sent.slice(before).filter((q) => !/\bfrom users\b.*\btoken_key\b/s.test(q));
      assert.equal(edit.length, 1, `statements for one edit:\n${edit.join('\n---\n')}`);
      assert.match(edit[0]!, /^with target as/);
    } finally {
      dc.unsubscribe('tracing:postgres:query:start', onQuery);
    }
  });
});
