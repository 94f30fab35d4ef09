// A new cached endpoint is added in its resource's folder alone: declared with cachedGet, tagged
// with the typed builders (cache/tags.ts), it is served from the cache and invalidated by the
// writes that already invalidate those tags (here the comment and article routes, unchanged).
// Nothing outside this file is edited for it; the coherence model (test/coherence.ts) names it
// as a route it does not exercise yet, which fails that test until it is modelled.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Type } from 'typebox';
import { buildApp } from '../app.ts';
import { cachedGet } from '../cache/cached-read.ts';
import { tag } from '../cache/tags.ts';
import { loadConfig } from '../config.ts';
import { closeContext, createContext } from '../app-context.ts';
import type { App, AppContext } from '../context.ts';
import { listMigrations } from '../db/migrate.ts';
import { createPool } from '../db/pool.ts';
import { notFound } from '../http/errors.ts';
import { Errors, Refusals } from '../http/schemas.ts';
import { unmodelled } from '../../test/coherence.ts';
import { Client, createDatabase, TEST_JWT_SECRET } from '../../test/harness.ts';
import { SlugParams } from './articles.schemas.ts';

/** The test-only endpoint: an article's title and how many comments it has. */
function registerSummaryRoute(app: App, ctx: AppContext): void {
  cachedGet(app, ctx, {
    url: '/api/articles/:slug/summary',
    schema: {
      params: SlugParams,
      response: {
        200: Type.Object({ summary: Type.Object({ title: Type.String(), comments: Type.Integer() }) }),
        404: Errors[404],
        ...Refusals,
      },
    },
    cache: {
      key: (request) => `summary\u0000${request.params.slug}`,
      load: async (request) => {
        const res = await ctx.db.query<{ id: number; title: string; comments: number }>(
          `select a.id, a.title, (select count(*)::int from comments c where c.article_id = a.id) as comments
             from articles a where a.slug = $1`,
          [request.params.slug],
        );
        const row = res.rows[0];
        return row && { data: row, tags: [tag.article(row.id), tag.comments(row.id)] };
      },
      body: ({ title, comments }) => ({ summary: { title, comments } }),
      missing: () => notFound('article'),
    },
  });
}

/**
 * A declaration whose flags disagree with its body (two articles declared, one shown): the
 * stored bytes cannot take the viewer's flags, so the viewer's response is loaded instead.
 */
function registerMisdeclaredRoute(app: App, ctx: AppContext): void {
  cachedGet(app, ctx, {
    url: '/api/articles/:slug/favorited',
    onRequest: ctx.auth.optional,
    schema: { params: SlugParams, response: { 200: Type.Object({ favorited: Type.Boolean() }), 404: Errors[404], ...Refusals } },
    cache: {
      key: (request) => `favorited\u0000${request.params.slug}`,
      load: async (request, viewer) => {
        const res = await ctx.db.query<{ id: number; favorited: boolean }>(
          `select a.id, exists (select 1 from favorites f where f.article_id = a.id and f.user_id = $2) as favorited
             from articles a where a.slug = $1`,
          [request.params.slug, viewer],
        );
        const row = res.rows[0];
        return row && { data: row, tags: [tag.article(row.id)] };
      },
      body: ({ favorited }) => ({ favorited }),
      flags: (row) => ({ articles: [row.id, row.id], authors: [] }),
      missing: () => notFound('article'),
    },
  });
}

describe('a cached endpoint declared in a test file', () => {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  let ctx: AppContext;
  let app: App;
  let api: Client;

  before(async () => {
    database = await createDatabase();
    const config = loadConfig({
      NODE_ENV: 'test',
      JWT_SECRET: TEST_JWT_SECRET,
      DATABASE_URL: database.url,
      RATE_LIMIT: 'off',
      SHED: 'off',
    });
    ctx = await createContext({
      config,
      db: createPool(database.url, config),
      databaseUrl: database.url,
      migrations: await listMigrations(),
    });
    app = await buildApp(ctx);
    registerSummaryRoute(app, ctx);
    registerMisdeclaredRoute(app, ctx);
    await app.ready();
    api = new Client(app);
  });
  after(async () => {
    await app?.close();
    if (ctx) await closeContext(ctx);
    await ctx?.db.end();
    await database?.drop();
  });

  test('is served from the cache, and a write of one of its tags refreshes it at once', async () => {
    const author = await api.register();
    const article = await api.createArticle(author.token, { title: 'Summarised' });
    const url = `/api/articles/${article.slug}/summary`;
    const stats = ctx.cache!.stats;

    const first = await api.get(url);
    assert.deepEqual(first.body, { summary: { title: 'Summarised', comments: 0 } });
    const hitsBefore = stats.hits;
    const again = await api.get(url);
    assert.equal(stats.hits, hitsBefore + 1, 'the repeat was a cache hit');
    assert.equal(again.text, first.text);
    assert.equal(again.headers.etag, first.headers.etag, 'the stored bytes, with their ETag');

    // The comment route invalidates tag.comments(id): this endpoint's entry goes with it.
    assert.equal(
      (await api.post(`/api/articles/${article.slug}/comments`, { token: author.token, body: { comment: { body: 'hi' } } })).status,
      201,
    );
    assert.deepEqual((await api.get(url)).body, { summary: { title: 'Summarised', comments: 1 } });
    // A title changed behind the cache's back shows only once a write invalidates the entry:
    // the article route's edit invalidates tag.article(id).
    await ctx.db.query('update articles set title = $1 where slug = $2', ['Retitled', article.slug]);
    assert.equal((await api.get(url)).body.summary.title, 'Summarised', 'cached until a write invalidates it');
    const edit = await api.put(`/api/articles/${article.slug}`, { token: author.token, body: { article: { body: 'new body' } } });
    assert.equal(edit.status, 200);
    assert.equal((await api.get(url)).body.summary.title, 'Retitled');

    assert.equal((await api.get('/api/articles/no-such-article/summary')).status, 404);
  });

  test('is declared to the cache, and the coherence model reports it until it is modelled', () => {
    const declared = ctx.cache!.routes.map((r) => r.url);
    assert.ok(declared.includes('/api/articles/:slug/summary'));
    assert.deepEqual(unmodelled(ctx.cache!.routes), ['GET /api/articles/:slug/summary', 'GET /api/articles/:slug/favorited']);
  });

  test("a declaration whose flags do not match its body still answers the viewer's own flags", async () => {
    const author = await api.register();
    const fan = await api.register();
    const article = await api.createArticle(author.token);
    assert.equal((await api.post(`/api/articles/${article.slug}/favorite`, { token: fan.token })).status, 200);
    const url = `/api/articles/${article.slug}/favorited`;
    assert.deepEqual((await api.get(url)).body, { favorited: false });
    assert.deepEqual((await api.get(url, { token: fan.token })).body, { favorited: true });
    assert.deepEqual((await api.get(url, { token: author.token })).body, { favorited: false });
  });
});
