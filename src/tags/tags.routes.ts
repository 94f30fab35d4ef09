// GET /api/tags: every tag in use (SPEC.md "Shapes": not a top-N), alphabetically.
import { Type } from 'typebox';
import type { App, AppContext } from '../context.ts';
import { Refusals } from '../http/schemas.ts';

export function registerTagRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/tags',
    {
      schema: {
        summary: 'Every tag in use',
        tags: ['Tags'],
        response: { 200: Type.Object({ tags: Type.Array(Type.String()) }), ...Refusals },
      },
    },
    async (request, reply) => {
      // "In use": a tag whose last article was deleted disappears from the list.
      const load = async () => {
        const res = await ctx.db.query<{ name: string }>(
          `select t.name from tags t where exists (select 1 from article_tags at where at.tag_id = t.id)
          order by t.name collate "C"`,
        );
        return { tags: res.rows.map((r) => r.name) };
      };
      if (!ctx.cache) return load();
      // Invalidated by every write that can change which tags are in use (articles.routes.ts).
      const entry = await ctx.cache.get(
        'tags',
        async () => ({ data: await load(), tags: ['tags'] }),
        (body) => reply.serialize(body),
      );
      return ctx.cache.send(request, reply, entry!);
    },
  );
}
