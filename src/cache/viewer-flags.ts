// The per-viewer part of a cached response: which of these articles the viewer favorited and
// which of these authors the viewer follows. One small indexed query (primary keys of favorites
// and follows) for a whole page; anonymous viewers need none.
import type { Queryable } from '../db/pool.ts';

export interface ViewerFlags {
  favorited: ReadonlySet<number>;
  following: ReadonlySet<number>;
}

export const NO_FLAGS: ViewerFlags = { favorited: new Set(), following: new Set() };

export async function viewerFlags(
  db: Queryable,
  viewer: number | null | undefined,
  articleIds: readonly number[],
  authorIds: readonly number[],
): Promise<ViewerFlags> {
  if (!viewer || (articleIds.length === 0 && authorIds.length === 0)) return NO_FLAGS;
  const res = await db.query<{ favorited: number[]; following: number[] }>(
    `select array(select article_id from favorites where user_id = $1 and article_id = any($2::bigint[])) as favorited,
            array(select followee_id from follows where follower_id = $1 and followee_id = any($3::bigint[])) as following`,
    [viewer, articleIds, authorIds],
  );
  const row = res.rows[0];
  if (!row || (row.favorited.length === 0 && row.following.length === 0)) return NO_FLAGS;
  return { favorited: new Set(row.favorited), following: new Set(row.following) };
}
