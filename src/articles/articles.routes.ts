// Articles, the feed and favorites: SPEC.md "Endpoints" rows 7-12 and 17.
import type { App, AppContext } from '../context.ts';
import { inTransaction } from '../db/pool.ts';
import { viewerId } from '../http/auth.ts';
import { forbidden, notFound } from '../http/errors.ts';
import { Errors, Security } from '../http/schemas.ts';
import { listArticles } from './articles.listing.ts';
import {
  deleteArticle,
  findArticle,
  insertArticle,
  lockArticle,
  normaliseTags,
  setFavorite,
  toArticle,
  toListItem,
  updateArticle,
} from './articles.repository.ts';
import {
  ArticleListResponse,
  ArticleResponse,
  CreateArticleBody,
  FeedQuery,
  ListQuery,
  SlugParams,
  UpdateArticleBody,
} from './articles.schemas.ts';

export function registerArticleRoutes(app: App, ctx: AppContext): void {
  const { db, auth } = ctx;
  const tags = ['Articles'];

  app.get('/api/articles', {
    onRequest: auth.optional,
    schema: {
      summary: 'List articles, newest first',
      description: 'Filters combine. `articlesCount` is the total matching the filters before limit/offset.',
      tags,
      querystring: ListQuery,
      response: { 200: ArticleListResponse, 401: Errors[401], 422: Errors[422] },
    },
  }, async (request) => {
    // Pick the filters by name: the query object also carries parameters the schema does not
    // declare (ajv keeps them), and `?followedBy=abc` must not reach the feed filter (a 500,
    // or with a number anyone's feed).
    const { tag, author, favorited, limit, offset } = request.query;
    const { rows, total } = await listArticles(db, { tag, author, favorited, limit, offset }, request.viewer?.id ?? null);
    return { articles: rows.map(toListItem), articlesCount: total };
  });

  app.get('/api/articles/feed', {
    onRequest: auth.required,
    schema: {
      summary: 'Articles by followed users, newest first',
      tags,
      security: Security,
      querystring: FeedQuery,
      response: { 200: ArticleListResponse, 401: Errors[401], 422: Errors[422] },
    },
  }, async (request) => {
    const viewer = viewerId(request);
    // limit and offset only: `?tag=` and the other list filters are not feed parameters.
    const { limit, offset } = request.query;
    const { rows, total } = await listArticles(db, { limit, offset, followedBy: viewer }, viewer);
    return { articles: rows.map(toListItem), articlesCount: total };
  });

  app.get('/api/articles/:slug', {
    onRequest: auth.optional,
    schema: {
      summary: 'Get an article',
      tags,
      params: SlugParams,
      response: { 200: ArticleResponse, 401: Errors[401], 404: Errors[404] },
    },
  }, async (request) => {
    const row = await findArticle(db, { slug: request.params.slug }, request.viewer?.id ?? null);
    if (!row) throw notFound('article');
    return { article: toArticle(row) };
  });

  app.post('/api/articles', {
    onRequest: auth.required,
    schema: {
      summary: 'Create an article',
      tags,
      security: Security,
      body: CreateArticleBody,
      response: { 201: ArticleResponse, 401: Errors[401], 422: Errors[422] },
    },
  }, async (request, reply) => {
    const viewer = viewerId(request);
    const { title, description, body, tagList } = request.body.article;
    const row = await inTransaction(db, async (tx) => {
      const id = await insertArticle(tx, viewer, { title, description, body, tagList: normaliseTags(tagList ?? []) });
      return findArticle(tx, { id }, viewer);
    });
    return reply.code(201).send({ article: toArticle(row!) });
  });

  app.put('/api/articles/:slug', {
    onRequest: auth.required,
    schema: {
      summary: 'Update an article (author only)',
      description: '`tagList` absent keeps the tags, `[]` clears them. A new title gives a new slug.',
      tags,
      security: Security,
      params: SlugParams,
      body: UpdateArticleBody,
      response: { 200: ArticleResponse, 401: Errors[401], 403: Errors[403], 404: Errors[404], 422: Errors[422] },
    },
  }, async (request) => {
    const viewer = viewerId(request);
    const patch = request.body.article;
    const row = await inTransaction(db, async (tx) => {
      // Locked until commit: a concurrent delete or update waits, and the ownership check
      // cannot go stale between the check and the write.
      const current = await lockArticle(tx, request.params.slug);
      if (!current) throw notFound('article');
      if (current.author_id !== viewer) throw forbidden('article');
      await updateArticle(tx, current, { ...patch, tagList: patch.tagList && normaliseTags(patch.tagList) });
      return findArticle(tx, { id: current.id }, viewer);
    });
    return { article: toArticle(row!) };
  });

  app.delete('/api/articles/:slug', {
    onRequest: auth.required,
    schema: {
      summary: 'Delete an article (author only)',
      tags,
      security: Security,
      params: SlugParams,
      response: { 204: { type: 'null', description: 'Deleted' }, 401: Errors[401], 403: Errors[403], 404: Errors[404] },
    },
  }, async (request, reply) => {
    const viewer = viewerId(request);
    const { author_id, deleted } = await deleteArticle(db, request.params.slug, viewer);
    if (deleted > 0) return reply.code(204).send(null);
    // The author's own delete that deleted nothing lost a race to a concurrent delete (the
    // statement's snapshot still saw the row): the article is gone, so 404, not 403.
    if (author_id === null || author_id === viewer) throw notFound('article');
    throw forbidden('article');
  });

  for (const [method, favorite] of [['POST', true], ['DELETE', false]] as const) {
    app.route({
      method,
      url: '/api/articles/:slug/favorite',
      onRequest: auth.required,
      schema: {
        summary: favorite ? 'Favorite an article' : 'Unfavorite an article',
        description: 'Idempotent: the response shows the resulting state.',
        tags: ['Favorites'],
        security: Security,
        params: SlugParams,
        response: { 200: ArticleResponse, 401: Errors[401], 404: Errors[404] },
      },
      handler: async (request) => {
        const row = await setFavorite(db, request.params.slug, viewerId(request), favorite);
        if (!row) throw notFound('article');
        return { article: toArticle(row) };
      },
    });
  }
}
