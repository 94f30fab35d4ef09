// Every cache tag there is, built here and nowhere else. An entry names the tags it was built
// from (cache/cached-read.ts declarations); a write invalidates the tags it changed
// (ctx.invalidate). A tag typed by hand could name nothing that is ever invalidated and serve
// stale data without an error, so both sides take a `CacheTag`, which only these builders make:
// a typo is a type error.
//
// The strings themselves travel between processes (the bus, the Redis tier), which carry them
// as plain strings; `received` turns them back into tags on arrival. Changing a string's form is
// a change of that wire format: processes of two versions would then miss each other's
// invalidations until every process runs the new one.

declare const brand: unique symbol;

/** A tag of cache entries, made by `tag` below (or `received` from another process). */
export type CacheTag = string & { readonly [brand]: 'CacheTag' };

const make = (s: string) => s as CacheTag;

export const tag = {
  /** One article: its fields, favorite count and tags, wherever it is shown. */
  article: (id: number) => make(`article:${id}`),
  /** One user's profile (username, bio, image), wherever it is shown (author, profile, GET /api/user). */
  user: (id: number) => make(`user:${id}`),
  /** Which articles the unfiltered list holds (creates and deletes change it). */
  listAll: make('list:all'),
  /** Which articles carry this tag. */
  listTag: (name: string) => make(`list:tag:${name}`),
  /** Which articles this username wrote. */
  listAuthor: (username: string) => make(`list:author:${username}`),
  /** Which articles this username favorited. */
  listFavorited: (username: string) => make(`list:favorited:${username}`),
  /** Every favorited-by list at once (an article's deletion removes it from all of them). */
  listFavoritedAny: make('list:favorited'),
  /** What the username filters (author=, favorited=) match: a rename changes it. */
  listByUsername: make('list:by-username'),
  /** Which articles this user id wrote: the feeds of their followers. */
  articlesBy: (userId: number) => make(`articles-by:${userId}`),
  /** An article's comments. */
  comments: (articleId: number) => make(`comments:${articleId}`),
  /** The set of tags in use (GET /api/tags). */
  tagsInUse: make('tags'),
  /** A viewer's favorites and follows (cache/viewer-flags.ts) and their feed. */
  viewer: (userId: number) => make(`viewer:${userId}`),
} as const;

/**
 * Tags another process built with `tag` and sent over the bus (cache/bus.ts,
 * cache/redis-bus.ts): the only other way a CacheTag comes to be.
 */
export function received(tags: readonly string[]): readonly CacheTag[] {
  return tags as readonly CacheTag[];
}
