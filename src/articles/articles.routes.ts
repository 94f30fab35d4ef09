// Articles, the feed and favorites: SPEC.md "Endpoints" rows 7-12 and 17.
import { sendViewerBody, viewerFlags, viewerSets, viewerTag, withViewerFlags } from '../cache/viewer-flags.ts';
import type { App, AppContext } from '../context.ts';
import { inTransaction } from '../db/pool.ts';
import { viewerId } from '../http/auth.ts';
import { forbidden, notFound } from '../http/errors.ts';
import { BodyErrors, Errors, IgnoredBodyErrors, PathErrors, QueryErrors, Refusals, Security } from '../http/schemas.ts';
import { countArticles, listArticles, pageOfArticles, type ListFilter } from './articles.listing.ts';
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

// Cache keys and tags (see cache/response-cache.ts). A list page is built from its filter's
// membership (which articles match: changed by creates, deletes, tag edits, favorites) and
// from the articles and authors it shows (changed by edits, favorites, profile updates).
type PublicFilter = Pick<ListFilter, 'tag' | 'author' | 'favorited' | 'limit' | 'offset'>;

function listKey(f: PublicFilter): string {
  return `list\u0000${f.tag ?? ''}\u0000${f.author ?? ''}\u0000${f.favorited ?? ''}\u0000${f.limit}\u0000${f.offset}`;
}

function listTags(f: PublicFilter, rows: readonly ArticleRow[]): string[] {
  const tags: string[] = [];
  if (!f.tag && !f.author && !f.favorited) tags.push('list:all');
  if (f.tag) tags.push(`list:tag:${f.tag}`);
  if (f.author) tags.push(`list:author:${f.author}`);
  if (f.favorited) tags.push(`list:favorited:${f.favorited}`, 'list:favorited');
  // Filters name users by username: a rename changes which articles they match.
  if (f.author || f.favorited) tags.push('list:by-username');
  for (const r of rows) tags.push(`article:${r.id}`, `user:${r.author_id}`);
  return tags;
}

/** What creating or deleting an article changes: every list it belongs to, its author's followers' feeds included. */
function membershipTags(authorId: number, authorUsername: string, tagList: readonly string[]): string[] {
  return ['list:all', `list:author:${authorUsername}`, `articles-by:${authorId}`, 'tags', ...tagList.map((t) => `list:tag:${t}`)];
}

/** Above this many followed users, a feed entry is tagged `list:all` instead of one tag per author. */
export const FEED_AUTHOR_TAGS_MAX = 100;

/**
 * What a viewer's feed page is built from: the viewer's follows and favorites (their tag), the
 * articles by each followed author (a new or deleted one changes the page and the count), and
 * the articles and authors shown. A viewer following very many users gets `list:all` instead,
 * which every article creation or deletion invalidates: correct, with fewer hits.
 */
function feedTags(viewer: number, following: ReadonlySet<number> | undefined, rows: readonly ArticleRow[]): string[] {
  const tags = [viewerTag(viewer)];
  if (following && following.size <= FEED_AUTHOR_TAGS_MAX) for (const author of following) tags.push(`articles-by:${author}`);
  else tags.push('list:all');
  for (const r of rows) tags.push(`article:${r.id}`, `user:${r.author_id}`);
  return tags;
}

export function registerArticleRoutes(app: App, ctx: AppContext): void {
  const { db, auth, cache } = ctx;
  const tags = ['Articles'];

  app.get(
    '/api/articles',
    {
      onRequest: auth.optional,
      schema: {
        summary: 'List articles, newest first',
        description: 'Filters combine. `articlesCount` is the total matching the filters before limit/offset.',
        tags,
        querystring: ListQuery,
        response: { 200: ArticleListResponse, 401: Errors[401], ...QueryErrors, ...Refusals },
      },
    },
    async (request, reply) => {
      // Pick the filters by name: the query object also carries parameters the schema does not
      // declare (ajv keeps them), and `?followedBy=abc` must not reach the feed filter (a 500,
      // or with a number anyone's feed). Empty filters mean no filter (one cache key for both).
      const { limit, offset } = request.query;
      const filter = {
        tag: request.query.tag || undefined,
        author: request.query.author || undefined,
        favorited: request.query.favorited || undefined,
        limit,
        offset,
      };
      const viewer = request.viewer?.id ?? null;
      if (!cache) {
        const { rows, total } = await listArticles(db, filter, viewer);
        return { articles: rows.map(toListItem), articlesCount: total };
      }
      // The page is cached as an anonymous viewer sees it; a viewer's flags go on top.
      const entry = await cache.get(
        listKey(filter),
        async () => {
          // The count is its own entry, tagged with the filter's membership only: after a
          // favorite or an edit drops this page, reloading it costs the page query alone.
          const { limit: _limit, offset: _offset, ...counted } = filter;
          const count = await cache.get(
            `count\u0000${counted.tag ?? ''}\u0000${counted.author ?? ''}\u0000${counted.favorited ?? ''}`,
            async () => ({ data: await countArticles(db, counted), tags: listTags(filter, []) }),
            (n) => String(n),
          );
          const page = { rows: await pageOfArticles(db, filter, null), total: count!.data };
          return { data: page, tags: listTags(filter, page.rows) };
        },
        (page) => reply.serialize({ articles: page.rows.map(toListItem), articlesCount: page.total }),
      );
      // Anonymous: the stored bytes as they are, without building the id lists or awaiting anything.
      if (viewer === null) return cache.send(request, reply, entry!);
      const page = entry!.data;
      const flags = await viewerFlags(
        db,
        cache,
        viewer,
        page.rows.map((r) => r.id),
        page.rows.map((r) => r.author_id),
      );
      if (flags.favorited.size === 0 && flags.following.size === 0) return cache.send(request, reply, entry!);
      const body = withViewerFlags(
        entry!.body,
        page.rows.map((r) => flags.favorited.has(r.id)),
        page.rows.map((r) => flags.following.has(r.author_id)),
      );
      if (body) return sendViewerBody(reply, body);
      return {
        articles: page.rows.map((r) =>
          toListItem({ ...r, favorited: flags.favorited.has(r.id), following: flags.following.has(r.author_id) }),
        ),
        articlesCount: page.total,
      };
    },
  );

  app.get(
    '/api/articles/feed',
    {
      onRequest: auth.required,
      schema: {
        summary: 'Articles by followed users, newest first',
        tags,
        security: Security,
        querystring: FeedQuery,
        response: { 200: ArticleListResponse, 401: Errors[401], ...QueryErrors, ...Refusals },
      },
    },
    async (request, reply) => {
      const viewer = viewerId(request);
      // limit and offset only: `?tag=` and the other list filters are not feed parameters.
      const { limit, offset } = request.query;
      const filter = { limit, offset, followedBy: viewer };
      if (!cache) {
        const { rows, total } = await listArticles(db, filter, viewer);
        return { articles: rows.map(toListItem), articlesCount: total };
      }
      // Cached per viewer, flags included (the whole page is theirs): the feed's count(*) was the
      // most expensive query of logged-in reading (BENCHMARKS.md, read-auth).
      const entry = await cache.get(
        `feed\u0000${viewer}\u0000${limit}\u0000${offset}`,
        async () => {
          // The followed authors before the page: a follow from here on invalidates the viewer's
          // tag, so a page built from an older list of authors is answered but not stored.
          const sets = await viewerSets(db, cache, viewer);
          const page = await listArticles(db, filter, viewer);
          return { data: page, tags: feedTags(viewer, sets?.following, page.rows) };
        },
        (page) => reply.serialize({ articles: page.rows.map(toListItem), articlesCount: page.total }),
      );
      return cache.send(request, reply, entry!);
    },
  );

  app.get(
    '/api/articles/:slug',
    {
      onRequest: auth.optional,
      schema: {
        summary: 'Get an article',
        tags,
        params: SlugParams,
        response: { 200: ArticleResponse, 401: Errors[401], 404: Errors[404], ...PathErrors, ...Refusals },
      },
    },
    async (request, reply) => {
      const viewer = request.viewer?.id ?? null;
      if (!cache) {
        const row = await findArticle(db, { slug: request.params.slug }, viewer);
        if (!row) throw notFound('article');
        return { article: toArticle(row) };
      }
      const entry = await cache.get(
        `article\u0000${request.params.slug}`,
        async () => {
          const row = await findArticle(db, { slug: request.params.slug }, null);
          return row && { data: row, tags: [`article:${row.id}`, `user:${row.author_id}`] };
        },
        (row) => reply.serialize({ article: toArticle(row) }),
      );
      if (!entry) throw notFound('article');
      if (viewer === null) return cache.send(request, reply, entry);
      const row = entry.data;
      const flags = await viewerFlags(db, cache, viewer, [row.id], [row.author_id]);
      if (flags.favorited.size === 0 && flags.following.size === 0) return cache.send(request, reply, entry);
      const body = withViewerFlags(entry.body, [flags.favorited.has(row.id)], [flags.following.has(row.author_id)]);
      if (body) return sendViewerBody(reply, body);
      return { article: toArticle({ ...row, favorited: flags.favorited.has(row.id), following: flags.following.has(row.author_id) }) };
    },
  );

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
      const row = await inTransaction(db, async (tx) => {
        // Locked until commit: a concurrent delete or update waits, and the ownership check
        // cannot go stale between the check and the write.
        const current = await lockArticle(tx, request.params.slug);
        if (!current) throw notFound('article');
        if (current.author_id !== viewer) throw forbidden('article');
        await updateArticle(tx, current, { ...patch, tagList: patch.tagList && normaliseTags(patch.tagList) });
        const updated = await findArticle(tx, { id: current.id }, viewer);
        return { updated: updated!, oldTags: current.tag_list };
      });
      // The article itself (every entry showing it, its old slug included), and when its tags
      // changed, the tag lists it left or joined.
      const changedTags = patch.tagList === undefined ? [] : [...new Set([...row.oldTags, ...row.updated.tag_list])];
      await ctx.invalidate([
        `article:${row.updated.id}`,
        ...(changedTags.length || patch.tagList ? ['tags', ...changedTags.map((t) => `list:tag:${t}`)] : []),
      ]);
      return { article: toArticle(row.updated) };
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
        // Its entries, every list it was in (favorited-by lists included: who favorited it is
        // gone with it), and its comments.
        await ctx.invalidate([
          `article:${id}`,
          `comments:${id}`,
          'list:favorited',
          ...membershipTags(author_id!, author_username!, tag_list ?? []),
        ]);
        return reply.code(204).send(null);
      }
      // The author's own delete that deleted nothing lost a race to a concurrent delete (the
      // statement's snapshot still saw the row): the article is gone, so 404, not 403.
      if (author_id === null || author_id === viewer) throw notFound('article');
      throw forbidden('article');
    },
  );

  for (const [method, favorite] of [
    ['POST', true],
    ['DELETE', false],
  ] as const) {
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
        response: { 200: ArticleResponse, 401: Errors[401], 404: Errors[404], ...IgnoredBodyErrors, ...PathErrors, ...Refusals },
      },
      handler: async (request) => {
        const result = await setFavorite(db, request.params.slug, viewerId(request), favorite);
        if (!result) throw notFound('article');
        // The count shows wherever the article does; the viewer's favorited-by list and their
        // cached favorites (cache/viewer-flags.ts) changed.
        if (result.changed) {
          await ctx.invalidate([`article:${result.row.id}`, `list:favorited:${result.viewerUsername}`, viewerTag(viewerId(request))]);
        }
        return { article: toArticle(result.row) };
      },
    });
  }
}
