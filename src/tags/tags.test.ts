// SPEC.md "Endpoints" row 17 and "Shapes": `{tags:[...]}` is every tag in use (not a top-N),
// including ones just created; sorted alphabetically like `tagList`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';

// Every test here looks at the whole tag list, so each gets its own database.
let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
});
after(() => t.close());

async function tags(): Promise<string[]> {
  const res = await api.get('/api/tags');
  assert.equal(res.status, 200);
  assert.deepEqual(Object.keys(res.body), ['tags']);
  return res.body.tags as string[];
}

describe('GET /api/tags', () => {
  // Runs first, while the file's database is still empty.
  test('an empty database has {"tags":[]}', async () => {
    const res = await api.get('/api/tags');

    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.body, { tags: [] });
  });

  test('needs no token, and ignores one (it is not an auth route)', async () => {
    const u = await api.register();

    const withToken = await api.get('/api/tags', { token: u.token });

    assert.equal(withToken.status, 200);
  });

  test('lists every tag in use once, alphabetically, including ones just created', async () => {
    const u = await api.register();
    await api.createArticle(u.token, { tagList: ['mango', 'apple'] });
    assert.deepEqual(await tags(), ['apple', 'mango']);

    await api.createArticle(u.token, { tagList: ['kiwi', 'apple', 'banana'] });

    assert.deepEqual(await tags(), ['apple', 'banana', 'kiwi', 'mango']);
  });

  test('more than 20 distinct tags all appear: the list is not a top-N', async () => {
    const u = await api.register();
    const many = Array.from({ length: 45 }, (_, i) => `many-${String(i).padStart(2, '0')}`);
    // Spread over articles of at most 32 tags (the per-article cap), one article per tag for some.
    await api.createArticle(u.token, { tagList: many.slice(0, 30) });
    for (const tag of many.slice(30)) await api.createArticle(u.token, { tagList: [tag] });

    const listed = await tags();

    for (const tag of many) assert.ok(listed.includes(tag), `missing ${tag}`);
    assert.deepEqual(
      listed.filter((x) => x.startsWith('many-')),
      many,
    );
  });

  test('a tag used by several articles appears once', async () => {
    const u = await api.register();
    for (let i = 0; i < 3; i++) await api.createArticle(u.token, { tagList: ['shared-tag'] });

    const listed = await tags();

    assert.equal(listed.filter((x) => x === 'shared-tag').length, 1);
  });

  test('a tag whose only article was deleted disappears; one still used elsewhere stays', async () => {
    const u = await api.register();
    const gone = await api.createArticle(u.token, { tagList: ['only-on-deleted', 'on-both'] });
    await api.createArticle(u.token, { tagList: ['on-both'] });

    const del = await api.delete(`/api/articles/${gone.slug}`, { token: u.token });
    assert.equal(del.status, 204);

    const listed = await tags();
    assert.ok(!listed.includes('only-on-deleted'));
    assert.ok(listed.includes('on-both'));
  });

  test('tags cleared from their only article with tagList: [] disappear', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['cleared-one', 'cleared-two'] });
    assert.ok((await tags()).includes('cleared-one'));

    const put = await api.put(`/api/articles/${a.slug}`, { token: u.token, body: { article: { tagList: [] } } });
    assert.equal(put.status, 200);

    const listed = await tags();
    assert.ok(!listed.includes('cleared-one'));
    assert.ok(!listed.includes('cleared-two'));
  });

  test('a tag replaced on its only article disappears and its replacement appears', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['replaced-old'] });

    await api.put(`/api/articles/${a.slug}`, { token: u.token, body: { article: { tagList: ['replaced-new'] } } });

    const listed = await tags();
    assert.ok(!listed.includes('replaced-old'));
    assert.ok(listed.includes('replaced-new'));
  });

  test('a tag that was unused comes back when an article uses it again', async () => {
    const u = await api.register();
    const a = await api.createArticle(u.token, { tagList: ['phoenix'] });
    await api.delete(`/api/articles/${a.slug}`, { token: u.token });
    assert.ok(!(await tags()).includes('phoenix'));

    await api.createArticle(u.token, { tagList: ['phoenix'] });

    assert.ok((await tags()).includes('phoenix'));
  });

  test('the whole list is sorted and has no duplicates', async () => {
    const u = await api.register();
    await api.createArticle(u.token, { tagList: ['zulu', 'alpha', 'mike'] });

    const listed = await tags();

    assert.deepEqual(listed, [...listed].sort());
    assert.equal(new Set(listed).size, listed.length);
  });
});
