// What the articles' cached responses are built from (their keys and tags, cache/tags.ts), and
// what each write changes. A list page is built from its filter's membership (which articles
// match: changed by creates, deletes, tag edits, favorites) and from the articles and authors it
// shows (changed by edits, favorites, profile updates).
import { tag, type CacheTag } from '../cache/tags.ts';
import type { ListFilter } from './articles.listing.ts';
import type { ArticleRow } from './articles.repository.ts';

export type PublicFilter = Pick<ListFilter, 'tag' | 'author' | 'favorited' | 'limit' | 'offset'>;

export function listKey(f: PublicFilter): string {
  return `list\u0000${f.tag ?? ''}\u0000${f.author ?? ''}\u0000${f.favorited ?? ''}\u0000${f.limit}\u0000${f.offset}`;
}

/** A filter's `articlesCount`: an entry of its own, tagged with the filter's membership only. */
export function countKey(f: PublicFilter): string {
  return `count\u0000${f.tag ?? ''}\u0000${f.author ?? ''}\u0000${f.favorited ?? ''}`;
}

/** The articles and authors a page shows: an edit, a favorite or a profile update changes it. */
function shownTags(tags: CacheTag[], rows: readonly Pick<ArticleRow, 'id' | 'author_id'>[]): CacheTag[] {
  for (const r of rows) tags.push(tag.article(r.id), tag.user(r.author_id));
  return tags;
}

export function listTags(f: PublicFilter, rows: readonly ArticleRow[]): CacheTag[] {
  const tags: CacheTag[] = [];
  if (!f.tag && !f.author && !f.favorited) tags.push(tag.listAll);
  if (f.tag) tags.push(tag.listTag(f.tag));
  if (f.author) tags.push(tag.listAuthor(f.author));
  if (f.favorited) tags.push(tag.listFavorited(f.favorited), tag.listFavoritedAny);
  // Filters name users by username: a rename changes which articles they match.
  if (f.author || f.favorited) tags.push(tag.listByUsername);
  return shownTags(tags, rows);
}

export function articleTags(row: Pick<ArticleRow, 'id' | 'author_id'>): CacheTag[] {
  return [tag.article(row.id), tag.user(row.author_id)];
}

/** Above this many followed users, a feed entry is tagged `list:all` instead of one tag per author. */
export const FEED_AUTHOR_TAGS_MAX = 100;

/**
 * What a viewer's feed page is built from: the viewer's follows and favorites (their tag), the
 * articles by each followed author (a new or deleted one changes the page and the count), and
 * the articles and authors shown. A viewer following very many users gets `list:all` instead,
 * which every article creation or deletion invalidates: correct, with fewer hits.
 */
export function feedTags(viewer: number, following: ReadonlySet<number> | undefined, rows: readonly ArticleRow[]): CacheTag[] {
  const tags = [tag.viewer(viewer)];
  if (following && following.size <= FEED_AUTHOR_TAGS_MAX) for (const author of following) tags.push(tag.articlesBy(author));
  else tags.push(tag.listAll);
  return shownTags(tags, rows);
}

/** What creating or deleting an article changes: every list it belongs to, its author's followers' feeds included. */
export function membershipTags(authorId: number, authorUsername: string, tagList: readonly string[]): CacheTag[] {
  return [tag.listAll, tag.listAuthor(authorUsername), tag.articlesBy(authorId), tag.tagsInUse, ...tagList.map(tag.listTag)];
}

/** An edit: the article wherever it shows (its old slug's entry included) and, when its tags changed, the lists it left or joined. */
export function editTags(id: number, tagsChanged: boolean, oldTags: readonly string[], newTags: readonly string[]): CacheTag[] {
  if (!tagsChanged) return [tag.article(id)];
  return [tag.article(id), tag.tagsInUse, ...new Set([...oldTags, ...newTags].map(tag.listTag))];
}

/** A deletion: its entries, every list it was in (favorited-by lists included: who favorited it is gone with it), its comments. */
export function deletionTags(id: number, authorId: number, authorUsername: string, tagList: readonly string[]): CacheTag[] {
  return [tag.article(id), tag.comments(id), tag.listFavoritedAny, ...membershipTags(authorId, authorUsername, tagList)];
}

/**
 * A favorite or unfavorite: the count shows wherever the article does; the viewer's favorited-by
 * list (none without a username: no such user, so no such list) and cached favorites changed.
 */
export function favoriteTags(articleId: number, viewer: number, viewerUsername: string | null): CacheTag[] {
  const tags = [tag.article(articleId), tag.viewer(viewer)];
  if (viewerUsername !== null) tags.push(tag.listFavorited(viewerUsername));
  return tags;
}

export const articleKey = (slug: string) => `article\u0000${slug}`;

export const feedKey = (viewer: number, limit: number, offset: number) => `feed\u0000${viewer}\u0000${limit}\u0000${offset}`;
