// GET /api/tags: every tag in use (SPEC.md "Shapes": not a top-N), alphabetically.
import { Type } from 'typebox';
import { cachedGet } from '../cache/cached-read.ts';
import { tag } from '../cache/tags.ts';
import type { App, AppContext } from '../context.ts';
import { Refusals } from '../http/schemas.ts';

export function registerTagRoutes(app: App, ctx: AppContext): void {
  cachedGet(app, ctx, {
    url: '/api/tags',
    schema: {
      summary: 'Every tag in use',
      tags: ['Tags'],
      response: { 200: Type.Object({ tags: Type.Array(Type.String()) }), ...Refusals },
    },
    cache: {
      key: () => 'tags',
      // "In use": a tag whose last article was deleted disappears from the list. Invalidated by
      // every write that can change which tags are in use (articles/articles.cache.ts).
      load: async () => {
        const res = await ctx.db.query<{ name: string }>(
          `select t.name from tags t where exists (select 1 from article_tags at where at.tag_id = t.id)
          order by t.name collate "C"`,
        );
        return { data: res.rows.map((r) => r.name), tags: [tag.tagsInUse] };
      },
      body: (names) => ({ tags: names }),
    },
  });
}
