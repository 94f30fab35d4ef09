// Favorites: SPEC.md "Endpoints" row 17. Idempotent; what a change invalidates is in articles.cache.ts.
import type { App, AppContext } from '../context.ts';
import { viewerId } from '../http/auth.ts';
import { notFound } from '../http/errors.ts';
import { Errors, IgnoredBodyErrors, PathErrors, Refusals, Security } from '../http/schemas.ts';
import { favoriteTags } from './articles.cache.ts';
import { setFavorite, toArticle } from './articles.repository.ts';
import { ArticleResponse, SlugParams } from './articles.schemas.ts';

export function registerFavoriteRoutes(app: App, ctx: AppContext): void {
  const { db, auth } = ctx;
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
        if (result.changed) await ctx.invalidate(favoriteTags(result.row.id, viewerId(request), result.viewerUsername));
        return { article: toArticle(result.row) };
      },
    });
  }
}
