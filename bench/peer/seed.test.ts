// Peer-mode seeding against the real application: two Conduit instances (each on its own
// database, listening on a real port) seeded from one plan through the public API hold the
// same data, read back through the API; a difference is found; a used database is refused.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../../test/harness.ts';
import { request } from '../drive.ts';
import { makePlan } from './dataset.ts';
import { PEER_SCENARIOS, peerRequests } from './scenarios.ts';
import { catalogOf, loginTokens, seedThroughApi, verifySeeded } from './seed.ts';

const plan = makePlan({ users: 6, articles: 24, comments: 20, favorites: 30, follows: 12, tags: 8, seed: 5, tokenUsers: 3 });

async function listening(): Promise<{ t: TestApp; url: string }> {
  const t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  return { t, url: `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}` };
}

describe('peer mode: seeding through the public API', { timeout: 120_000 }, () => {
  let a: { t: TestApp; url: string };
  let b: { t: TestApp; url: string };
  before(async () => {
    [a, b] = await Promise.all([listening(), listening()]);
  });
  after(async () => {
    await a?.t.close();
    await b?.t.close();
  });

  test('two instances seeded from one plan hold the same catalog, as read back through the API', async () => {
    const [slugsA, slugsB] = await Promise.all([seedThroughApi(a.url, plan), seedThroughApi(b.url, plan)]);
    assert.equal(slugsA.length, 24);
    assert.equal(new Set(slugsA).size, 24);
    assert.deepEqual(await verifySeeded(a.url, plan, slugsA), []);
    assert.deepEqual(await verifySeeded(b.url, plan, slugsB), []);

    // The rows themselves: same titles, authors, tags and counts on both, whatever the slugs.
    const rows = async (t: TestApp) =>
      (
        await t.db.query<{ title: string; author: string; tags: string; favorites: number; comments: number }>(
          `select a.title, u.username as author,
                  coalesce((select string_agg(t.name, ',' order by t.name) from article_tags at join tags t on t.id = at.tag_id where at.article_id = a.id), '') as tags,
                  (select count(*)::int from favorites f where f.article_id = a.id) as favorites,
                  (select count(*)::int from comments c where c.article_id = a.id) as comments
             from articles a join users u on u.id = a.author_id order by a.created_at, a.id`,
        )
      ).rows;
    const rowsA = await rows(a.t);
    assert.deepEqual(rowsA, await rows(b.t));
    assert.deepEqual(
      rowsA.map((r) => r.title),
      plan.articles.map((x) => x.title),
      "created in the plan's order",
    );
    assert.equal(
      rowsA.reduce((s, r) => s + r.comments, 0),
      20,
    );
    const follows = async (t: TestApp) => (await t.db.query<{ n: number }>('select count(*)::int as n from follows')).rows[0]!.n;
    assert.equal(await follows(a.t), plan.follows.length);
    assert.equal(await follows(b.t), plan.follows.length);

    // Tokens issued by each target work there, and the same draws hit the same articles.
    const tokensA = await loginTokens(a.url, plan, slugsA);
    assert.deepEqual(
      tokensA.map((x) => x.username),
      plan.tokenUsers.map((i) => plan.users[i]!.username),
    );
    for (const tk of tokensA) {
      const res = await request(a.url, { method: 'GET', path: '/api/articles/feed', headers: { authorization: `Token ${tk.token}` } });
      assert.equal(res.status, 200);
      assert.ok((JSON.parse(res.body.toString()) as { articlesCount: number }).articlesCount > 0, `${tk.username}'s feed`);
    }
    const reqs = peerRequests(PEER_SCENARIOS.article!, { catalog: catalogOf(plan, slugsA), tokens: [], emails: [], password: '' }, 1, 50);
    for (const r of reqs.slice(0, 10)) assert.equal((await request(a.url, r)).status, 200, r.path);

    // A difference from the plan is found: one favorite more on b.
    const extra = plan.favorites.length ? plan.articles.findIndex((_, i) => !plan.favorites.some(([u, x]) => u === 0 && x === i)) : 0;
    const token = (await loginTokens(b.url, { ...plan, tokenUsers: [0] }, slugsB))[0]!.token;
    assert.equal(
      (
        await request(b.url, {
          method: 'POST',
          path: `/api/articles/${slugsB[extra]}/favorite`,
          headers: { authorization: `Token ${token}` },
        })
      ).status,
      200,
    );
    const problems = await verifySeeded(b.url, plan, slugsB);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, new RegExp(`^article ${extra} \\(.+\\): \\d+ favorites, planned \\d+$`));
  });

  test('a target that already holds the data set is refused, not seeded twice', async () => {
    await assert.rejects(seedThroughApi(a.url, plan), /already has user bench_5_0 .*fresh, empty database/);
  });
});
