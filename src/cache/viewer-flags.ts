// The per-viewer part of a cached response: which of these articles the viewer favorited and
// which of these authors the viewer follows. Anonymous viewers need nothing.
//
// With the cache on, a viewer's whole sets (every article they favorited, every user they
// follow) are one cache entry, `viewer\0<id>`, tagged `tag.viewer(id)` (cache/tags.ts): loaded
// once with one query on the primary keys, then every authenticated read of that viewer needs no
// query at all.
// Favorite, unfavorite, follow and unfollow invalidate the tag before they answer (read-your-
// writes), and the bus carries it to the other processes like any other tag. An article's
// deletion leaves its id in its favoriters' sets until they expire: harmless, since no response
// can show that article any more.
//
// A viewer with more than MAX_SET_SIZE favorites or follows gets the per-page query instead
// (the entry would be large and every page reads only 20 ids of it). Without the cache, and
// for such viewers, the flags are one small indexed query per page.
import type { Queryable } from '../db/pool.ts';
import type { FlagIds } from './entry.ts';
import { flagOffsets } from './flag-bytes.ts';
import type { ResponseCache } from './response-cache.ts';
import { tag } from './tags.ts';

export interface ViewerFlags {
  favorited: ReadonlySet<number>;
  following: ReadonlySet<number>;
}

export const NO_FLAGS: ViewerFlags = { favorited: new Set(), following: new Set() };

/** Above this many favorites or follows, a viewer's sets are not cached. */
export const MAX_SET_SIZE = 10_000;

/** What is cached (plain arrays: the shared Redis tier stores entries as JSON). */
interface ViewerSets {
  favorited: number[];
  following: number[];
  /** More than MAX_SET_SIZE of either: use the per-page query. */
  tooMany: boolean;
}

// Sets made once per cached entry (entries are immutable; a new load is a new object).
const asSets = new WeakMap<ViewerSets, { favorited: Set<number>; following: Set<number> }>();

async function loadSets(db: Queryable, viewer: number): Promise<ViewerSets> {
  const res = await db.query<{ favorited: number[]; following: number[] }>(
    `select array(select article_id from favorites where user_id = $1 limit $2) as favorited,
            array(select followee_id from follows where follower_id = $1 limit $2) as following`,
    [viewer, MAX_SET_SIZE + 1],
  );
  const row = res.rows[0]!;
  const tooMany = row.favorited.length > MAX_SET_SIZE || row.following.length > MAX_SET_SIZE;
  return tooMany ? { favorited: [], following: [], tooMany } : { favorited: row.favorited, following: row.following, tooMany };
}

/** Whether any of `ids` is in `set`. */
function hasAny(set: ReadonlySet<number>, ids: readonly number[]): boolean {
  for (const id of ids) if (set.has(id)) return true;
  return false;
}

/**
 * Where `flags` go in `body`, a cached page showing `ids` (flag-bytes.ts flagOffsets): empty when
 * none of them shows; undefined when the body does not hold the keys the ids say it does. `flags`
 * may be the viewer's whole sets or the part of them on the page (viewerFlags).
 */
export function viewerOffsets(body: Buffer, ids: FlagIds, flags: ViewerFlags): number[] | undefined {
  if (!hasAny(flags.favorited, ids.articles) && !hasAny(flags.following, ids.authors)) return [];
  return flagOffsets(
    body,
    ids.articles.map((id) => flags.favorited.has(id)),
    ids.authors.map((id) => flags.following.has(id)),
  );
}

/** The members of `ids` that are in `set`; undefined when none are (no allocation then). */
function pick(set: ReadonlySet<number>, ids: readonly number[]): Set<number> | undefined {
  let out: Set<number> | undefined;
  for (const id of ids) if (set.has(id)) (out ??= new Set()).add(id);
  return out;
}

async function queryFlags(
  db: Queryable,
  viewer: number,
  articleIds: readonly number[],
  authorIds: readonly number[],
): Promise<ViewerFlags> {
  const res = await db.query<{ favorited: number[]; following: number[] }>(
    `select array(select article_id from favorites where user_id = $1 and article_id = any($2::bigint[])) as favorited,
            array(select followee_id from follows where follower_id = $1 and followee_id = any($3::bigint[])) as following`,
    [viewer, articleIds, authorIds],
  );
  const row = res.rows[0];
  if (!row || (row.favorited.length === 0 && row.following.length === 0)) return NO_FLAGS;
  return { favorited: new Set(row.favorited), following: new Set(row.following) };
}

/**
 * Every article the viewer favorited and every user they follow, from the cache (one query on
 * the first call, none after until the viewer changes them); undefined for a viewer with more
 * than MAX_SET_SIZE of either.
 */
export async function viewerSets(db: Queryable, cache: ResponseCache, viewer: number): Promise<ViewerFlags | undefined> {
  const entry = await cache.get(
    setsKey(viewer),
    async () => ({ data: await loadSets(db, viewer), tags: [tag.viewer(viewer)] }),
    (sets) => JSON.stringify(sets),
  );
  return asViewerFlags(entry!.data);
}

/**
 * The viewer's sets if this process holds them now, with no query and no wait (the hot path);
 * undefined when it does not, or for a viewer with more than MAX_SET_SIZE of either.
 */
export function heldViewerSets(cache: ResponseCache, viewer: number): ViewerFlags | undefined {
  const entry = cache.held<ViewerSets>(setsKey(viewer));
  return entry && asViewerFlags(entry.data);
}

const setsKey = (viewer: number) => `viewer\u0000${viewer}`;

function asViewerFlags(data: ViewerSets): ViewerFlags | undefined {
  if (data.tooMany) return undefined;
  let sets = asSets.get(data);
  if (!sets) asSets.set(data, (sets = { favorited: new Set(data.favorited), following: new Set(data.following) }));
  return sets;
}

export async function viewerFlags(
  db: Queryable,
  cache: ResponseCache | undefined,
  viewer: number | null | undefined,
  articleIds: readonly number[],
  authorIds: readonly number[],
): Promise<ViewerFlags> {
  if (!viewer || (articleIds.length === 0 && authorIds.length === 0)) return NO_FLAGS;
  const sets = cache && (await viewerSets(db, cache, viewer));
  if (!sets) return queryFlags(db, viewer, articleIds, authorIds);
  const favorited = pick(sets.favorited, articleIds);
  const following = pick(sets.following, authorIds);
  if (!favorited && !following) return NO_FLAGS;
  return { favorited: favorited ?? NO_FLAGS.favorited, following: following ?? NO_FLAGS.following };
}
