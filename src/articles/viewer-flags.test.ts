// SPEC.md "Rules the tests enforce": `favorited` and `following` are computed for the requesting
// user and for each article. A list that computed them for the wrong article or the wrong viewer
// shipped in realworld-axum-sqlx (#16); this file checks every combination on every read path.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, createTestApp, type ArticleJson, type TestApp } from '../../test/harness.ts';
import { listKey } from './articles.cache.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
});
after(() => t.close());

type Name = 'A' | 'B';
type Viewer = Name | 'anonymous';
interface State {
  /** The articles A has favorited. */
  aFavorites: Name[];
  aFollowsB: boolean;
  bFollowsA: boolean;
}

describe('favorited and following for every viewer, article and state', () => {
  // The file's database holds only these two users and two articles (by A and by B), so the
  // unfiltered list is exactly them.
  let users: Record<Name, { username: string; token: string }>;
  let articles: Record<Name, ArticleJson>;
  before(async () => {
    users = { A: await api.register(), B: await api.register() };
    articles = { A: await api.createArticle(users.A.token), B: await api.createArticle(users.B.token) };
  });

  const token = (v: Viewer) => (v === 'anonymous' ? undefined : users[v].token);

  async function setState(s: State): Promise<void> {
    for (const art of ['A', 'B'] as const) {
      const method = s.aFavorites.includes(art) ? 'post' : 'delete';
      assert.equal((await api[method](`/api/articles/${articles[art].slug}/favorite`, { token: users.A.token })).status, 200);
    }
    for (const [follower, followee, on] of [
      ['A', 'B', s.aFollowsB],
      ['B', 'A', s.bFollowsA],
    ] as const) {
      const method = on ? 'post' : 'delete';
      assert.equal((await api[method](`/api/profiles/${users[followee].username}/follow`, { token: users[follower].token })).status, 200);
    }
  }

  /** What `viewer` must see on the article written by `author`. B never favorites. */
  function expected(s: State, viewer: Viewer, author: Name) {
    return {
      favorited: viewer === 'A' && s.aFavorites.includes(author),
      favoritesCount: s.aFavorites.includes(author) ? 1 : 0,
      following: (viewer === 'A' && author === 'B' && s.aFollowsB) || (viewer === 'B' && author === 'A' && s.bFollowsA),
    };
  }

  function check(item: ArticleJson | undefined, s: State, viewer: Viewer, author: Name, where: string): void {
    assert.ok(item, `${where}: article by ${author} missing`);
    const want = expected(s, viewer, author);
    const got = { favorited: item.favorited, favoritesCount: item.favoritesCount, following: item.author.following };
    assert.deepEqual(got, want, `${where}, viewer ${viewer}, article by ${author}, state ${JSON.stringify(s)}`);
  }

  const favoriteSets: Name[][] = [[], ['A'], ['B'], ['A', 'B']];
  for (const aFavorites of favoriteSets) {
    for (const aFollowsB of [false, true]) {
      for (const bFollowsA of [false, true]) {
        const s: State = { aFavorites, aFollowsB, bFollowsA };
        const name =
          `flags are right when A favorited ${aFavorites.length ? aFavorites.map((n) => `${n}'s`).join(' and ') : 'nothing'}, ` +
          `A ${aFollowsB ? 'follows' : 'does not follow'} B and B ${bFollowsA ? 'follows' : 'does not follow'} A`;

        test(name, async () => {
          await setState(s);
          const bySlug = (list: ArticleJson[], n: Name) => list.find((x) => x.slug === articles[n].slug);

          for (const viewer of ['anonymous', 'A', 'B'] as const) {
            const list = await api.get('/api/articles', { token: token(viewer) });
            assert.equal(list.status, 200);
            assert.equal(list.body.articlesCount, 2);
            for (const author of ['A', 'B'] as const) {
              check(bySlug(list.body.articles, author), s, viewer, author, 'GET /api/articles');
              const one = await api.get(`/api/articles/${articles[author].slug}`, { token: token(viewer) });
              check(one.body.article, s, viewer, author, 'GET /api/articles/:slug');
              const byAuthor = await api.get(`/api/articles?author=${users[author].username}`, { token: token(viewer) });
              assert.equal(byAuthor.body.articlesCount, 1);
              check(byAuthor.body.articles[0], s, viewer, author, 'GET /api/articles?author');
            }
            const favored = await api.get(`/api/articles?favorited=${users.A.username}`, { token: token(viewer) });
            assert.deepEqual(favored.body.articles.map((x: ArticleJson) => x.slug).sort(), aFavorites.map((n) => articles[n].slug).sort());
            for (const author of aFavorites) check(bySlug(favored.body.articles, author), s, viewer, author, 'GET /api/articles?favorited');
          }

          for (const [viewer, other, follows] of [
            ['A', 'B', aFollowsB],
            ['B', 'A', bFollowsA],
          ] as const) {
            const feed = await api.get('/api/articles/feed', { token: users[viewer].token });
            assert.equal(feed.status, 200);
            assert.deepEqual(
              feed.body.articles.map((x: ArticleJson) => x.slug),
              follows ? [articles[other].slug] : [],
              `feed of ${viewer}`,
            );
            assert.equal(feed.body.articlesCount, follows ? 1 : 0);
            if (follows) check(feed.body.articles[0], s, viewer, other, 'GET /api/articles/feed');
          }
        });
      }
    }
  }
});

describe('what the cache keeps of a page whose bytes are the response', () => {
  test('the flag ids in the order of the body, not the decoded rows', async () => {
    const author = await api.register();
    const first = await api.createArticle(author.token);
    const second = await api.createArticle(author.token);
    const page = await api.get(`/api/articles?author=${author.username}`);
    assert.deepEqual(
      page.body.articles.map((x: ArticleJson) => x.slug),
      [second.slug, first.slug],
    );
    const ids = await t.db.query<{ id: number; author_id: number }>(
      'select id, author_id from articles where slug = any($1) order by id desc',
      [[first.slug, second.slug]],
    );
    // A hit: the entry the list route stored (the load is not called).
    const entry = await t.ctx.cache!.get(
      listKey({ author: author.username, limit: 20, offset: 0 }),
      () => Promise.reject(new Error('not a hit')),
      () => '',
    );
    assert.deepEqual(entry?.data, {
      articles: ids.rows.map((r) => Number(r.id)),
      authors: ids.rows.map((r) => Number(r.author_id)),
    });
  });
});
