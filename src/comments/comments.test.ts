// SPEC.md "Endpoints" rows 13-15 (comments), "Shapes" (Comment), "Errors" (403/404 strings) and
// "Rules" (newest first with an id tie-break; `following` computed for the requesting user).
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

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const articleNotFound = { errors: { article: ['not found'] } };
const commentNotFound = { errors: { comment: ['not found'] } };

/** An author with an article, and a second user to comment on it. */
async function articleWithCommenter() {
  const author = await api.register();
  const commenter = await api.register();
  const article = await api.createArticle(author.token);
  return { author, commenter, article };
}

async function addComment(slug: string, token: string, body: string) {
  const res = await api.post(`/api/articles/${slug}/comments`, { token, body: { comment: { body } } });
  assert.equal(res.status, 201, res.text);
  return res.body.comment as { id: number; body: string; createdAt: string; updatedAt: string };
}

describe('adding a comment', () => {
  test('returns 201 with an integer id, ISO timestamps, the body and the author profile', async () => {
    const { commenter, article } = await articleWithCommenter();

    const res = await api.post(`/api/articles/${article.slug}/comments`, {
      token: commenter.token,
      body: { comment: { body: 'Thank you so much!' } },
    });

    assert.equal(res.status, 201);
    const c = res.body.comment;
    assert.deepEqual(Object.keys(c).sort(), ['author', 'body', 'createdAt', 'id', 'updatedAt']);
    assert.ok(Number.isInteger(c.id) && c.id > 0, `id ${String(c.id)}`);
    assert.match(c.createdAt, ISO);
    assert.match(c.updatedAt, ISO);
    assert.equal(c.updatedAt, c.createdAt);
    assert.equal(c.body, 'Thank you so much!');
    assert.deepEqual(c.author, { username: commenter.username, bio: null, image: null, following: false });
  });

  test('the body is stored verbatim, Markdown and Unicode included', async () => {
    const { commenter, article } = await articleWithCommenter();
    const body = '  **bold** _and_ émojis 🎉\nsecond line  ';

    const c = await addComment(article.slug, commenter.token, body);
    const listed = await api.get(`/api/articles/${article.slug}/comments`);

    assert.equal(c.body, body);
    assert.equal(listed.body.comments[0].body, body);
  });

  test('a missing, empty, whitespace-only or null body is 422 "can\'t be blank"', async () => {
    const { commenter, article } = await articleWithCommenter();
    for (const comment of [{}, { body: '' }, { body: '   \n\t' }, { body: null }]) {
      const res = await api.post(`/api/articles/${article.slug}/comments`, { token: commenter.token, body: { comment } });

      assert.equal(res.status, 422, JSON.stringify(comment));
      assert.deepEqual(res.body, { errors: { body: ["can't be blank"] } }, JSON.stringify(comment));
    }
    const stored = await t.db.query('select count(*)::int as n from comments c join articles a on a.id = c.article_id where a.slug = $1', [
      article.slug,
    ]);
    assert.equal(stored.rows[0].n, 0);
  });

  test('a body without the comment wrapper, or with a null wrapper, is 422 "can\'t be blank"', async () => {
    const { commenter, article } = await articleWithCommenter();
    for (const body of [{ body: 'unwrapped' }, { comment: null }, {}]) {
      const res = await api.post(`/api/articles/${article.slug}/comments`, { token: commenter.token, body });

      assert.equal(res.status, 422, JSON.stringify(body));
      assert.deepEqual(res.body, { errors: { body: ["can't be blank"] } }, JSON.stringify(body));
    }
  });

  test('a body that is not a string is 422 keyed by body', async () => {
    const { commenter, article } = await articleWithCommenter();

    const res = await api.post(`/api/articles/${article.slug}/comments`, { token: commenter.token, body: { comment: { body: 42 } } });

    assert.equal(res.status, 422);
    assert.deepEqual(res.body, { errors: { body: ['must be a string'] } });
  });

  test('a body containing a NUL character is 422 keyed by body, not a database error', async () => {
    const { commenter, article } = await articleWithCommenter();

    const res = await api.post(`/api/articles/${article.slug}/comments`, {
      token: commenter.token,
      body: { comment: { body: 'a\u0000b' } },
    });

    assert.equal(res.status, 422);
    assert.deepEqual(res.body, { errors: { body: ['must not contain NUL characters'] } });
  });

  test('a body over 65,536 characters is 422 "too long" and one of exactly 65,536 is accepted', async () => {
    const { commenter, article } = await articleWithCommenter();

    const tooLong = await api.post(`/api/articles/${article.slug}/comments`, {
      token: commenter.token,
      body: { comment: { body: 'x'.repeat(65_537) } },
    });
    const longest = await api.post(`/api/articles/${article.slug}/comments`, {
      token: commenter.token,
      body: { comment: { body: 'x'.repeat(65_536) } },
    });

    assert.equal(tooLong.status, 422);
    assert.deepEqual(tooLong.body, { errors: { body: ['is too long (maximum is 65536 characters)'] } });
    assert.equal(longest.status, 201);
  });

  test('unknown fields such as id or author are ignored', async () => {
    const { author, commenter, article } = await articleWithCommenter();

    const res = await api.post(`/api/articles/${article.slug}/comments`, {
      token: commenter.token,
      body: { comment: { body: 'hello', id: 999_999, author: { username: author.username }, createdAt: '2000-01-01T00:00:00.000Z' } },
    });

    assert.equal(res.status, 201);
    assert.notEqual(res.body.comment.id, 999_999);
    assert.equal(res.body.comment.author.username, commenter.username);
    assert.notEqual(res.body.comment.createdAt, '2000-01-01T00:00:00.000Z');
  });

  test('commenting on an unknown article is 404 "article not found"', async () => {
    const u = await api.register();

    const res = await api.post('/api/articles/no-such-article/comments', { token: u.token, body: { comment: { body: 'hello' } } });

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, articleNotFound);
  });

  test('commenting without a token is 401 "is missing" and with a bad token 401 "is invalid"', async () => {
    const { article } = await articleWithCommenter();

    const missing = await api.post(`/api/articles/${article.slug}/comments`, { body: { comment: { body: 'hello' } } });
    const invalid = await api.post(`/api/articles/${article.slug}/comments`, { token: 'a.b.c', body: { comment: { body: 'hello' } } });

    assert.equal(missing.status, 401);
    assert.deepEqual(missing.body, { errors: { token: ['is missing'] } });
    assert.equal(invalid.status, 401);
    assert.deepEqual(invalid.body, { errors: { token: ['is invalid'] } });
  });

  test('a token whose user was deleted is 401 when commenting, not a 500', async () => {
    const { commenter, article } = await articleWithCommenter();
    await t.db.query('delete from users where username = $1', [commenter.username]);

    const res = await api.post(`/api/articles/${article.slug}/comments`, { token: commenter.token, body: { comment: { body: 'hello' } } });

    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
  });
});

describe('listing comments', () => {
  test('an article without comments lists {"comments":[]}', async () => {
    const { article } = await articleWithCommenter();

    const res = await api.get(`/api/articles/${article.slug}/comments`);

    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { comments: [] });
  });

  test('comments are listed newest first, for anonymous and authenticated readers alike', async () => {
    const { author, commenter, article } = await articleWithCommenter();
    const first = await addComment(article.slug, commenter.token, 'first');
    const second = await addComment(article.slug, author.token, 'second');
    const third = await addComment(article.slug, commenter.token, 'third');

    const anonymous = await api.get(`/api/articles/${article.slug}/comments`);
    const authenticated = await api.get(`/api/articles/${article.slug}/comments`, { token: author.token });

    for (const res of [anonymous, authenticated]) {
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.body.comments.map((c: { id: number }) => c.id),
        [third.id, second.id, first.id],
      );
      assert.deepEqual(
        res.body.comments.map((c: { body: string }) => c.body),
        ['third', 'second', 'first'],
      );
    }
    assert.deepEqual(anonymous.body.comments[2], {
      ...first,
      author: { username: commenter.username, bio: null, image: null, following: false },
    });
  });

  test('comments created at the same instant are ordered by id, highest first', async () => {
    const { commenter, article } = await articleWithCommenter();
    const ids: number[] = [];
    for (const body of ['a', 'b', 'c', 'd']) ids.push((await addComment(article.slug, commenter.token, body)).id);
    await t.db.query(`update comments set created_at = '2026-01-01T00:00:00Z' where id = any($1::bigint[])`, [ids]);

    const res = await api.get(`/api/articles/${article.slug}/comments`);

    assert.deepEqual(
      res.body.comments.map((c: { id: number }) => c.id),
      [...ids].sort((x, y) => y - x),
    );
  });

  test("only the requested article's comments are listed", async () => {
    const { author, commenter, article } = await articleWithCommenter();
    const other = await api.createArticle(author.token);
    const mine = await addComment(article.slug, commenter.token, 'on the first article');
    await addComment(other.slug, commenter.token, 'on the other article');

    const res = await api.get(`/api/articles/${article.slug}/comments`);

    assert.deepEqual(
      res.body.comments.map((c: { id: number }) => c.id),
      [mine.id],
    );
  });

  test('author.following is computed per viewer and per comment author', async () => {
    const { author, commenter, article } = await articleWithCommenter();
    const follower = await api.register();
    const stranger = await api.register();
    await addComment(article.slug, commenter.token, 'by the commenter');
    await addComment(article.slug, author.token, 'by the author');
    await api.post(`/api/profiles/${commenter.username}/follow`, { token: follower.token });

    const forFollower = await api.get(`/api/articles/${article.slug}/comments`, { token: follower.token });
    const forStranger = await api.get(`/api/articles/${article.slug}/comments`, { token: stranger.token });
    const forAnonymous = await api.get(`/api/articles/${article.slug}/comments`);

    const following = (res: typeof forFollower) =>
      Object.fromEntries(
        res.body.comments.map((c: { author: { username: string; following: boolean } }) => [c.author.username, c.author.following]),
      );
    assert.deepEqual(following(forFollower), { [commenter.username]: true, [author.username]: false });
    assert.deepEqual(following(forStranger), { [commenter.username]: false, [author.username]: false });
    assert.deepEqual(following(forAnonymous), { [commenter.username]: false, [author.username]: false });
  });

  test('the comment author profile shows their current bio and image', async () => {
    const { commenter, article } = await articleWithCommenter();
    await addComment(article.slug, commenter.token, 'hello');
    await api.put('/api/user', { token: commenter.token, body: { user: { bio: 'new bio', image: 'https://i.example/me.png' } } });

    const res = await api.get(`/api/articles/${article.slug}/comments`);

    assert.deepEqual(res.body.comments[0].author, {
      username: commenter.username,
      bio: 'new bio',
      image: 'https://i.example/me.png',
      following: false,
    });
  });

  test('listing the comments of an unknown article is 404 "article not found"', async () => {
    const res = await api.get('/api/articles/no-such-article/comments');

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, articleNotFound);
  });

  test('a bad token is 401 on this optional-auth route rather than an anonymous read', async () => {
    const { article } = await articleWithCommenter();

    const res = await api.get(`/api/articles/${article.slug}/comments`, { token: 'not-a-jwt' });

    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
  });
});

describe('deleting a comment', () => {
  test('its author gets 204 with an empty body, and the comment is gone', async () => {
    const { commenter, article } = await articleWithCommenter();
    const keep = await addComment(article.slug, commenter.token, 'keep');
    const c = await addComment(article.slug, commenter.token, 'delete me');

    const res = await api.delete(`/api/articles/${article.slug}/comments/${c.id}`, { token: commenter.token });

    assert.equal(res.status, 204);
    assert.equal(res.text, '');
    const listed = await api.get(`/api/articles/${article.slug}/comments`);
    assert.deepEqual(
      listed.body.comments.map((x: { id: number }) => x.id),
      [keep.id],
    );
  });

  test('someone else\'s comment is 403 "comment forbidden" and stays, even for the article\'s author', async () => {
    const { author, commenter, article } = await articleWithCommenter();
    const stranger = await api.register();
    const c = await addComment(article.slug, commenter.token, 'mine');

    for (const who of [stranger, author]) {
      const res = await api.delete(`/api/articles/${article.slug}/comments/${c.id}`, { token: who.token });

      assert.equal(res.status, 403);
      assert.deepEqual(res.body, { errors: { comment: ['forbidden'] } });
    }
    const listed = await api.get(`/api/articles/${article.slug}/comments`);
    assert.deepEqual(
      listed.body.comments.map((x: { id: number }) => x.id),
      [c.id],
    );
  });

  test('an unknown comment id is 404 "comment not found"', async () => {
    const { commenter, article } = await articleWithCommenter();

    const res = await api.delete(`/api/articles/${article.slug}/comments/987654321`, { token: commenter.token });

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, commentNotFound);
  });

  test('deleting the same comment twice is 404 the second time', async () => {
    const { commenter, article } = await articleWithCommenter();
    const c = await addComment(article.slug, commenter.token, 'once');
    await api.delete(`/api/articles/${article.slug}/comments/${c.id}`, { token: commenter.token });

    const res = await api.delete(`/api/articles/${article.slug}/comments/${c.id}`, { token: commenter.token });

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, commentNotFound);
  });

  test('a comment id that belongs to another article is 404 "comment not found" and is not deleted', async () => {
    const { author, commenter, article } = await articleWithCommenter();
    const other = await api.createArticle(author.token);
    const c = await addComment(other.slug, commenter.token, 'on the other article');

    const res = await api.delete(`/api/articles/${article.slug}/comments/${c.id}`, { token: commenter.token });

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, commentNotFound);
    const listed = await api.get(`/api/articles/${other.slug}/comments`);
    assert.deepEqual(
      listed.body.comments.map((x: { id: number }) => x.id),
      [c.id],
    );
  });

  test('a comment on an unknown article is 404 "article not found"', async () => {
    const { commenter, article } = await articleWithCommenter();
    const c = await addComment(article.slug, commenter.token, 'hello');

    const res = await api.delete(`/api/articles/no-such-article/comments/${c.id}`, { token: commenter.token });

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, articleNotFound);
  });

  test('deleting without a token is 401 "is missing" and the comment stays', async () => {
    const { commenter, article } = await articleWithCommenter();
    const c = await addComment(article.slug, commenter.token, 'hello');

    const res = await api.delete(`/api/articles/${article.slug}/comments/${c.id}`);

    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is missing'] } });
    assert.equal((await api.get(`/api/articles/${article.slug}/comments`)).body.comments.length, 1);
  });

  test('an id that is not a positive integer is 422 keyed by id', async () => {
    const { commenter, article } = await articleWithCommenter();
    for (const [id, message] of [
      ['abc', 'must be an integer'],
      ['1.5', 'must be an integer'],
      ['0', 'must be greater than or equal to 1'],
      ['-3', 'must be greater than or equal to 1'],
    ] as const) {
      const res = await api.delete(`/api/articles/${article.slug}/comments/${id}`, { token: commenter.token });

      assert.equal(res.status, 422, id);
      assert.deepEqual(res.body, { errors: { id: [message] } }, id);
    }
  });
});

describe('comments and their article', () => {
  test('deleting the article removes its comments', async () => {
    const { author, commenter, article } = await articleWithCommenter();
    const c1 = await addComment(article.slug, commenter.token, 'one');
    const c2 = await addComment(article.slug, author.token, 'two');

    const del = await api.delete(`/api/articles/${article.slug}`, { token: author.token });

    assert.equal(del.status, 204);
    const rows = await t.db.query('select count(*)::int as n from comments where id = any($1::bigint[])', [[c1.id, c2.id]]);
    assert.equal(rows.rows[0].n, 0);
    const listed = await api.get(`/api/articles/${article.slug}/comments`);
    assert.equal(listed.status, 404);
    assert.deepEqual(listed.body, articleNotFound);
  });

  test('comments follow the article when its title, and so its slug, changes', async () => {
    const { author, commenter, article } = await articleWithCommenter();
    const c = await addComment(article.slug, commenter.token, 'still here');

    const put = await api.put(`/api/articles/${article.slug}`, { token: author.token, body: { article: { title: 'A brand new title' } } });
    assert.equal(put.status, 200);
    assert.notEqual(put.body.article.slug, article.slug);

    const listed = await api.get(`/api/articles/${put.body.article.slug}/comments`);
    assert.deepEqual(
      listed.body.comments.map((x: { id: number }) => x.id),
      [c.id],
    );
    const old = await api.get(`/api/articles/${article.slug}/comments`);
    assert.equal(old.status, 404);
  });
});

describe('comments under concurrency', () => {
  test('an author deleting one comment several times at once gets one 204 and otherwise 404, never 403', async () => {
    const { commenter, article } = await articleWithCommenter();
    const c = await addComment(article.slug, commenter.token, 'going');

    const results = await Promise.all(
      Array.from({ length: 6 }, () => api.delete(`/api/articles/${article.slug}/comments/${c.id}`, { token: commenter.token })),
    );

    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [204, 404, 404, 404, 404, 404]);
  });

  test('commenting while the article is deleted in a concurrent transaction gives 404, not a server error', async () => {
    const { commenter, article } = await articleWithCommenter();
    const client = await t.db.connect();
    try {
      await client.query('begin');
      await client.query('delete from articles where slug = $1', [article.slug]);
      // The comment insert now waits on the deleting transaction's row lock.
      const pending = api.post(`/api/articles/${article.slug}/comments`, { token: commenter.token, body: { comment: { body: 'late' } } });
      await new Promise((r) => setTimeout(r, 100));
      await client.query('commit');
      const res = await pending;
      assert.equal(res.status, 404);
      assert.deepEqual(res.body, articleNotFound);
    } finally {
      client.release();
    }
  });
});
