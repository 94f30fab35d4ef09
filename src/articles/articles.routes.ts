// Articles and the feed: SPEC.md "Endpoints" rows 7-12 (favorites: favorites.routes.ts). The
// reads are declared with cachedGet (cache/cached-read.ts); what they are built from and what
// each write changes is in articles.cache.ts.
import { cachedGet } from '../cache/cached-read.ts';
import { viewerSets } from '../cache/viewer-flags.ts';
import type { App, AppContext } from '../context.ts';
import { viewerId } from '../http/auth.ts';
import { forbidden, notFound } from '../http/errors.ts';
import { BodyErrors, Errors, IgnoredBodyErrors, PathErrors, QueryErrors, Refusals, Security } from '../http/schemas.ts';
import {
  articleKey,
  articleTags,
  countKey,
  deletionTags,
  editTags,
  feedKey,
  feedTags,
  listKey,
  listTags,
  membershipTags,
  type PublicFilter,
} from './articles.cache.ts';
import { countArticles, listArticles, pageOfArticles } from './articles.listing.ts';
import {
  deleteArticle,
  findArticle,
  insertArticle,
  normaliseTags,
  toArticle,
  toListItem,
  updateArticle,
  type ArticleRow,
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
import { registerFavoriteRoutes } from './favorites.routes.ts';

/**
 * The list filters, picked by name: the query object also carries parameters the schema does not
 * declare (ajv keeps them), and `?followedBy=abc` must not reach the feed filter (a 500, or with
 * a number anyone's feed). Empty filters mean no filter (one cache key for both). Usernames are
 * compared in NFC, the form they are stored in (users/username.ts): 'e' + U+0301 finds 'é''s
 * articles, under the one cache key of both spellings.
 */
function publicFilter(query: { tag?: string; author?: string; favorited?: string; limit: number; offset: number }): PublicFilter {
  return {
    tag: query.tag || undefined,
    author: query.author?.normalize('NFC') || undefined,
    favorited: query.favorited?.normalize('NFC') || undefined,
    limit: query.limit,
    offset: query.offset,
  };
}

const toPage = (page: { rows: readonly ArticleRow[]; total: number }) => ({
  articles: page.rows.map(toListItem),
  articlesCount: page.total,
});
const pageFlags = (page: { rows: readonly ArticleRow[] }) => ({
  articles: page.rows.map((r) => r.id),
  authors: page.rows.map((r) => r.author_id),
});

export function registerArticleRoutes(app: App, ctx: AppContext): void {
  const { db, auth, cache } = ctx;
  const tags = ['Articles'];

  cachedGet(app, ctx, {
    url: '/api/articles',
    onRequest: auth.optional,
    schema: {
      summary: 'List articles, newest first',
      description: 'Filters combine. `articlesCount` is the total matching the filters before limit/offset.',
      tags,
      querystring: ListQuery,
      response: { 200: ArticleListResponse, 401: Errors[401], ...QueryErrors, ...Refusals },
    },
    cache: {
      key: (request) => listKey(publicFilter(request.query)),
      load: async (request, viewer) => {
        const filter = publicFilter(request.query);
        if (!cache) {
          const page = await listArticles(db, filter, viewer);
          return { data: page, tags: listTags(filter, page.rows) };
        }
        // The count is its own entry, tagged with the filter's membership only: after a
        // favorite or an edit drops this page, reloading it costs the page query alone.
        const count = await cache.get(
          countKey(filter),
          async () => ({ data: await countArticles(db, filter), tags: listTags(filter, []) }),
          (n) => String(n),
        );
        const rows = await pageOfArticles(db, filter, viewer);
        return { data: { rows, total: count!.data }, tags: listTags(filter, rows) };
      },
      body: toPage,
      flags: pageFlags,
    },
  });

  cachedGet(app, ctx, {
    url: '/api/articles/feed',
    onRequest: auth.required,
    schema: {
      summary: 'Articles by followed users, newest first',
      tags,
      security: Security,
      querystring: FeedQuery,
      response: { 200: ArticleListResponse, 401: Errors[401], ...QueryErrors, ...Refusals },
    },
    // Cached per viewer, flags included (the whole page is theirs): the feed's count(*) was the
    // most expensive query of logged-in reading (BENCHMARKS.md, read-auth). limit and offset
    // only: `?tag=` and the other list filters are not feed parameters.
    cache: {
      key: (request) => feedKey(viewerId(request), request.query.limit, request.query.offset),
      load: async (request) => {
        const viewer = viewerId(request);
        // The followed authors before the page: a follow from here on invalidates the viewer's
        // tag, so a page built from an older list of authors is answered but not stored.
        const sets = cache && (await viewerSets(db, cache, viewer));
        const page = await listArticles(db, { limit: request.query.limit, offset: request.query.offset, followedBy: viewer }, viewer);
        return { data: page, tags: feedTags(viewer, sets?.following, page.rows) };
      },
      body: toPage,
    },
  });

  cachedGet(app, ctx, {
    url: '/api/articles/:slug',
    onRequest: auth.optional,
    schema: {
      summary: 'Get an article',
      tags,
      params: SlugParams,
      response: { 200: ArticleResponse, 401: Errors[401], 404: Errors[404], ...PathErrors, ...Refusals },
    },
    cache: {
      key: (request) => articleKey(request.params.slug),
      load: async (request, viewer) => {
        const row = await findArticle(db, { slug: request.params.slug }, viewer);
        return row && { data: row, tags: articleTags(row) };
      },
      body: (row) => ({ article: toArticle(row) }),
      flags: (row) => ({ articles: [row.id], authors: [row.author_id] }),
      missing: () => notFound('article'),
    },
  });

  app.post(
    '/api/articles',
    {
      onRequest: auth.required,
      schema: {
        summary: 'Create an article',
        tags,
        security: Security,
        body: CreateArticleBody,
        response: { 201: ArticleResponse, 401: Errors[401], ...BodyErrors, ...Refusals },
      },
    },
    async (request, reply) => {
      const viewer = viewerId(request);
      const { title, description, body, tagList } = request.body.article;
      const row = await insertArticle(db, viewer, { title, description, body, tagList: normaliseTags(tagList ?? []) });
      await ctx.invalidate(membershipTags(viewer, row.author_username, row.tag_list));
      return reply.code(201).send({ article: toArticle(row) });
    },
  );

  app.put(
    '/api/articles/:slug',
    {
      onRequest: auth.required,
      schema: {
        summary: 'Update an article (author only)',
        description: '`tagList` absent keeps the tags, `[]` clears them. A new title gives a new slug.',
        tags,
        security: Security,
        params: SlugParams,
        body: UpdateArticleBody,
        response: { 200: ArticleResponse, 401: Errors[401], 403: Errors[403], 404: Errors[404], ...BodyErrors, ...PathErrors, ...Refusals },
      },
    },
    async (request) => {
      const viewer = viewerId(request);
      const patch = request.body.article;
      const result = await updateArticle(db, request.params.slug, viewer, {
        ...patch,
        tagList: patch.tagList && normaliseTags(patch.tagList),
      });
      if (result.kind === 'missing') throw notFound('article');
      if (result.kind === 'forbidden') throw forbidden('article');
      await ctx.invalidate(editTags(result.row.id, patch.tagList !== undefined, result.oldTags, result.row.tag_list));
      return { article: toArticle(result.row) };
    },
  );

  app.delete(
    '/api/articles/:slug',
    {
      onRequest: auth.required,
      schema: {
        summary: 'Delete an article (author only)',
        tags,
        security: Security,
        params: SlugParams,
        response: {
          204: { type: 'null', description: 'Deleted' },
          401: Errors[401],
          403: Errors[403],
          404: Errors[404],
          ...IgnoredBodyErrors,
          ...PathErrors,
          ...Refusals,
        },
      },
    },
    async (request, reply) => {
      const viewer = viewerId(request);
      const { id, author_id, author_username, tag_list, deleted } = await deleteArticle(db, request.params.slug, viewer);
      if (deleted > 0) {
        await ctx.invalidate(deletionTags(id!, author_id!, author_username!, tag_list ?? []));
        return reply.code(204).send(null);
      }
      // The author's own delete that deleted nothing lost a race to a concurrent delete (the
      // statement's snapshot still saw the row): the article is gone, so 404, not 403.
      if (author_id === null || author_id === viewer) throw notFound('article');
      throw forbidden('article');
    },
  );

  registerFavoriteRoutes(app, ctx);
}
