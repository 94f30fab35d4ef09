// Comments on an article: SPEC.md "Endpoints" rows 13-16. Newest first, id as the tie-break.
import { Type } from 'typebox';
import { cachedGet } from '../cache/cached-read.ts';
import { tag } from '../cache/tags.ts';
import type { App, AppContext } from '../context.ts';
import type { Queryable } from '../db/pool.ts';
import { viewerId } from '../http/auth.ts';
import { forbidden, notFound } from '../http/errors.ts';
import { BodyErrors, Errors, IgnoredBodyErrors, NonBlank, PathErrors, Profile, Refusals, Security, Timestamp } from '../http/schemas.ts';

interface CommentRow {
  id: number | null;
  article_id: number;
  author_id: number;
  created_at: Date;
  updated_at: Date;
  body: string;
  author_username: string;
  author_bio: string | null;
  author_image: string | null;
  following: boolean;
}

const Comment = Type.Object({
  id: Type.Integer(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  body: Type.String(),
  author: Profile,
});
const SlugParams = Type.Object({ slug: Type.String({ minLength: 1, maxLength: 256 }) });
const CommentParams = Type.Object({
  slug: Type.String({ minLength: 1, maxLength: 256 }),
  id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
});
const CreateBody = Type.Object({
  comment: Type.Object({ body: NonBlank(65_536) }, { additionalProperties: false }),
});

function toComment(r: CommentRow) {
  return {
    id: r.id!,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    body: r.body,
    author: { username: r.author_username, bio: r.author_bio, image: r.author_image, following: r.following },
  };
}

const COLUMNS = (
  viewer: string,
  articleId = 'c.article_id',
) => `c.id, ${articleId} as article_id, c.author_id, c.created_at, c.updated_at, c.body,
  u.username as author_username, u.bio as author_bio, u.image as author_image,
  exists (select 1 from follows fo where fo.follower_id = ${viewer} and fo.followee_id = c.author_id) as following`;

/** undefined: no such article; otherwise its id and comments (possibly none). One round trip. */
async function listComments(db: Queryable, slug: string, viewer: number | null) {
  const res = await db.query<CommentRow>(
    `select ${COLUMNS('$2::bigint', 'a.id')}
       from articles a
       left join comments c on c.article_id = a.id
       left join users u on u.id = c.author_id
      where a.slug = $1
      order by c.created_at desc, c.id desc`,
    [slug, viewer],
  );
  const first = res.rows[0];
  if (!first) return undefined;
  return { articleId: first.article_id, rows: res.rows.filter((r) => r.id !== null) };
}

async function addComment(db: Queryable, slug: string, author: number, body: string) {
  const res = await db.query<CommentRow>(
    `with ins as (
       insert into comments (article_id, author_id, body)
       -- key share: a concurrent delete of the article waits for this insert (or this insert
       -- waits and finds no article: 404), never a foreign-key error.
       select id, $2, $3 from articles where slug = $1 for key share
       returning id, article_id, created_at, updated_at, body, author_id)
     select ${COLUMNS('$2::bigint')} from ins c join users u on u.id = c.author_id`,
    [slug, author, body],
  );
  return res.rows[0];
}

async function deleteComment(db: Queryable, slug: string, id: number, viewer: number) {
  const res = await db.query<{ article_id: number | null; author_id: number | null; deleted: number }>(
    `with target as (
       select c.id, c.author_id from comments c join articles a on a.id = c.article_id
        where a.slug = $1 and c.id = $2),
          del as (delete from comments where id = (select id from target) and author_id = $3 returning id)
     select (select id from articles where slug = $1) as article_id,
            (select author_id from target) as author_id,
            (select count(*) from del)::int as deleted`,
    [slug, id, viewer],
  );
  return res.rows[0]!;
}

export function registerCommentRoutes(app: App, ctx: AppContext): void {
  const { db, auth } = ctx;
  const tags = ['Comments'];

  cachedGet(app, ctx, {
    url: '/api/articles/:slug/comments',
    onRequest: auth.optional,
    schema: {
      summary: "An article's comments, newest first",
      tags,
      params: SlugParams,
      response: { 200: Type.Object({ comments: Type.Array(Comment) }), 401: Errors[401], 404: Errors[404], ...PathErrors, ...Refusals },
    },
    cache: {
      key: (request) => `comments\u0000${request.params.slug}`,
      load: async (request, viewer) => {
        const list = await listComments(db, request.params.slug, viewer);
        if (!list) return undefined;
        const authors = new Set(list.rows.map((r) => tag.user(r.author_id)));
        return { data: list.rows, tags: [tag.article(list.articleId), tag.comments(list.articleId), ...authors] };
      },
      body: (rows) => ({ comments: rows.map(toComment) }),
      // `author.following` is the viewer's.
      flags: (rows) => ({ articles: [], authors: rows.map((r) => r.author_id) }),
      missing: () => notFound('article'),
    },
  });

  app.post(
    '/api/articles/:slug/comments',
    {
      onRequest: auth.required,
      schema: {
        summary: 'Comment on an article',
        tags,
        security: Security,
        params: SlugParams,
        body: CreateBody,
        response: { 201: Type.Object({ comment: Comment }), 401: Errors[401], 404: Errors[404], ...BodyErrors, ...PathErrors, ...Refusals },
      },
    },
    async (request, reply) => {
      const row = await addComment(db, request.params.slug, viewerId(request), request.body.comment.body);
      if (!row) throw notFound('article');
      await ctx.invalidate([tag.comments(row.article_id)]);
      return reply.code(201).send({ comment: toComment(row) });
    },
  );

  app.delete(
    '/api/articles/:slug/comments/:id',
    {
      onRequest: auth.required,
      schema: {
        summary: 'Delete a comment (its author only)',
        tags,
        security: Security,
        params: CommentParams,
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
      const { article_id, author_id, deleted } = await deleteComment(db, request.params.slug, request.params.id, viewerId(request));
      if (article_id === null) throw notFound('article');
      if (author_id === null) throw notFound('comment');
      // The author's own concurrent delete won the race: for this request the comment is gone.
      if (deleted === 0 && author_id === viewerId(request)) throw notFound('comment');
      if (deleted === 0) throw forbidden('comment');
      await ctx.invalidate([tag.comments(article_id)]);
      return reply.code(204).send(null);
    },
  );
}
