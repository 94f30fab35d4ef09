// The list and feed queries (split from articles.repository.ts as axum split listing.rs).
// One round trip returns the page and `articlesCount`, the total before limit/offset; the count
// comes through even when the page is past the end (the left join keeps its row).
import type { Queryable } from '../db/pool.ts';
import { articleColumns, type ArticleRow } from './articles.repository.ts';

export interface ListFilter {
  tag?: string | undefined;
  author?: string | undefined;
  favorited?: string | undefined;
  /** Articles by the users this user follows (the feed). */
  followedBy?: number | undefined;
  limit: number;
  offset: number;
}

/**
 * The statement `listArticles` sends: exported so tests can EXPLAIN exactly this query.
 * Prepared like every other (db/pool.ts): the feed's shape is chosen so that one plan suits
 * every viewer (feedPage).
 */
export function listArticlesQuery(filter: ListFilter, viewer: number | null): { text: string; values: unknown[] } {
  if (filter.followedBy !== undefined && (filter.tag || filter.author || filter.favorited)) {
    throw new TypeError('the feed takes no other filter');
  }
  const { values, viewerParam, limit, offset, shape } = pageParameters(filter, viewer);
  const w = whereClause(filter, values);
  const text = once(
    `list\0${shape}\0${w}`,
    () => `select c.total, x.*
       from (select count(*)::int as total from articles a ${w}) c
       left join lateral (${
         filter.followedBy === undefined
           ? `select ${articleColumns(viewerParam, { body: false })}
           from articles a join users u on u.id = a.author_id
           ${w}
          order by a.created_at desc, a.id desc
          limit ${limit} offset ${offset}`
           : feedPage(values.length, viewerParam, limit, offset)
       }) x on true`,
  );
  return { text, values };
}

/**
 * The feed's page: each followed author's newest `limit + offset` articles (an index-only scan of
 * articles_author_created_idx apiece), merged by date, and only the page's rows read whole.
 *
 * The plain shape (`author_id in (...)` ordered by date) has two good plans: for a viewer who
 * follows many, walk the newest articles keeping the followed authors'; for few, fetch those
 * authors' articles and sort them. Its one prepared plan is the second for everyone, and reads
 * 3,516 blocks where the viewer's own plan reads 726 for the seeded user who follows the most;
 * planned per call, planning is half its time. This shape has one plan, good for both
 * (src/db/indexes.test.ts; docs/database.md "Plans that stay good" has the measurements).
 * `following` is true on every row: the authors are the followed ones.
 */
function feedPage(followedByParam: number, viewerParam: number | null, limit: string, offset: string): string {
  return `select ${articleColumns(viewerParam, { body: false, following: 'true' })}
           from (select p.id, p.created_at
                   from follows fw
                   cross join lateral (
                     select a.id, a.created_at from articles a
                      where a.author_id = fw.followee_id
                      order by a.created_at desc, a.id desc
                      limit ${limit}::bigint + ${offset}::bigint
                   ) p
                  where fw.follower_id = $${followedByParam}
                  order by p.created_at desc, p.id desc
                  limit ${limit} offset ${offset}) p
           join articles a on a.id = p.id
           join users u on u.id = a.author_id
          order by p.created_at desc, p.id desc`;
}

/**
 * A page's first parameters: the viewer ($1, when there is one: the statement for anonymous
 * readers has constant flags, articles.repository.ts articleColumns), the limit and the offset;
 * the filters' follow.
 */
function pageParameters(filter: ListFilter, viewer: number | null) {
  const anonymous = viewer === null;
  return {
    values: (anonymous ? [filter.limit, filter.offset] : [viewer, filter.limit, filter.offset]) as unknown[],
    viewerParam: anonymous ? null : 1,
    limit: anonymous ? '$1' : '$2',
    offset: anonymous ? '$2' : '$3',
    shape: anonymous ? 'anonymous' : 'viewer',
  };
}

// Each statement text is built once per filter combination (at most 16 of each kind): the same
// string on every call, not a new 1 KB one to build and hash (the driver looks texts up: db/pool.ts).
const texts = new Map<string, string>();
function once(shape: string, build: () => string): string {
  let text = texts.get(shape);
  if (text === undefined) texts.set(shape, (text = build()));
  return text;
}

/**
 * The filters as a WHERE clause, their values appended to `values`. Only the filters in use
 * appear in the SQL, so each query shape gets a plan for exactly its predicates.
 */
function whereClause(filter: Omit<ListFilter, 'limit' | 'offset'>, values: unknown[]): string {
  const where: string[] = [];
  const param = (v: unknown) => `$${values.push(v)}`;
  if (filter.tag) {
    where.push(`a.id in (select at.article_id from article_tags at join tags t on t.id = at.tag_id where t.name = ${param(filter.tag)})`);
  }
  if (filter.author) where.push(`a.author_id = (select id from users where username = ${param(filter.author)})`);
  if (filter.favorited) {
    where.push(
      `a.id in (select f.article_id from favorites f join users fu on fu.id = f.user_id where fu.username = ${param(filter.favorited)})`,
    );
  }
  if (filter.followedBy !== undefined) {
    where.push(`a.author_id in (select followee_id from follows where follower_id = ${param(filter.followedBy)})`);
  }
  return where.length ? `where ${where.join(' and ')}` : '';
}

export async function listArticles(db: Queryable, filter: ListFilter, viewer: number | null) {
  const { text, values } = listArticlesQuery(filter, viewer);
  const res = await db.query<ArticleRow & { total: number }>(text, values);
  const total = res.rows[0]?.total ?? 0;
  const rows = res.rows[0]?.slug === null || res.rows[0]?.slug === undefined ? [] : res.rows;
  return { rows, total };
}

// The page and the count apart, for the cache (articles.routes.ts): a page changes whenever an
// article on it does (a favorite changes its count), the total only when an article joins or
// leaves the filter. Cached separately, a favorite costs the next reader the page query (an
// index scan of `limit` rows) instead of the count over every matching article as well.

/** `articlesCount` for these filters. */
export async function countArticles(db: Queryable, filter: Omit<ListFilter, 'limit' | 'offset'>): Promise<number> {
  const values: unknown[] = [];
  const w = whereClause(filter, values);
  const res = await db.query<{ total: number }>(
    once(`count\0${w}`, () => `select count(*)::int as total from articles a ${w}`),
    values,
  );
  return res.rows[0]!.total;
}

/** The page alone: the same rows, in the same order, as listArticles. */
export async function pageOfArticles(db: Queryable, filter: ListFilter, viewer: number | null): Promise<ArticleRow[]> {
  const { values, viewerParam, limit, offset, shape } = pageParameters(filter, viewer);
  const w = whereClause(filter, values);
  const text = once(
    `page\0${shape}\0${w}`,
    () => `select ${articleColumns(viewerParam, { body: false })}
       from articles a join users u on u.id = a.author_id
       ${w}
      order by a.created_at desc, a.id desc
      limit ${limit} offset ${offset}`,
  );
  const res = await db.query<ArticleRow>(text, values);
  return res.rows;
}
