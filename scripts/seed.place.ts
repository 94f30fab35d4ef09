// Where a generated data set goes in a database that already has rows (`npm run seed` without
// --reset adds). Pure: the same data set and the same occupied names and ids give the same rows.
//
//   ids       each table's generated ids 1..n become base+1..base+n, base being past every id
//             in use and every id the table's identity has handed out (seed.ts reserves the
//             range first, so the running service's inserts go on after it);
//   usernames a name in use gets the generator's own suffix, counted up from 2 (alice.smith ->
//             alice.smith2), skipping every name in use or generated; its email (and avatar)
//             follows the new name, and must be free too (case-insensitively);
//   slugs     a slug in use gets the API's suffix, counted up from -2;
//   tags      a tag name in use is that tag (its id); the others are new tags.
import type { Dataset } from './seed.data.ts';

export interface Occupied {
  /** The highest id in use or handed out, per table (0 for none). */
  base: { users: number; articles: number; comments: number; tags: number };
  usernames: ReadonlySet<string>;
  /** Lower-cased, as the unique index compares them. */
  emails: ReadonlySet<string>;
  slugs: ReadonlySet<string>;
  /** Tag name -> id. */
  tags: ReadonlyMap<string, number>;
}

export const NOTHING_OCCUPIED: Occupied = {
  base: { users: 0, articles: 0, comments: 0, tags: 0 },
  usernames: new Set(),
  emails: new Set(),
  slugs: new Set(),
  tags: new Map(),
};

/** Tag names of the data set that are not in the database yet, in order. */
export function newTagNames(d: Dataset, occupied: Pick<Occupied, 'tags'>): string[] {
  return d.tags.filter((name) => !occupied.tags.has(name));
}

export function place(d: Dataset, o: Occupied): Dataset {
  const user = (id: number) => id + o.base.users;
  const article = (id: number) => id + o.base.articles;

  const names = new Set([...o.usernames, ...d.users.map((u) => u.username)]);
  const emails = new Set([...o.emails, ...d.users.map((u) => u.email.toLowerCase())]);
  const users = d.users.map((u) => {
    if (!o.usernames.has(u.username) && !o.emails.has(u.email.toLowerCase())) return { ...u, id: user(u.id) };
    const domain = u.email.slice(u.email.indexOf('@'));
    let username = u.username;
    for (let k = 2; names.has(username) || emails.has(`${username}${domain}`.toLowerCase()); k++) username = `${u.username}${k}`;
    names.add(username);
    emails.add(`${username}${domain}`.toLowerCase());
    return {
      ...u,
      id: user(u.id),
      username,
      email: `${username}${domain}`,
      image: u.image === null ? null : u.image.replace(`/${u.username}.png`, `/${username}.png`),
    };
  });

  // Tag ids: those of names in use, new ids after the base for the others.
  const tagIds = new Map<number, number>();
  let next = o.base.tags;
  d.tags.forEach((name, i) => tagIds.set(i + 1, o.tags.get(name) ?? ++next));

  const slugs = new Set([...o.slugs, ...d.articles.map((a) => a.slug)]);
  const articles = d.articles.map((a) => {
    let slug = a.slug;
    if (o.slugs.has(slug)) {
      for (let k = 2; slugs.has(slug); k++) slug = `${a.slug}-${k}`;
      slugs.add(slug);
    }
    return { ...a, id: article(a.id), slug, authorId: user(a.authorId), tagIds: a.tagIds.map((t) => tagIds.get(t)!) };
  });

  return {
    users,
    tags: d.tags,
    articles,
    follows: d.follows.map((f) => ({ ...f, followerId: user(f.followerId), followeeId: user(f.followeeId) })),
    favorites: d.favorites.map((f) => ({ ...f, userId: user(f.userId), articleId: article(f.articleId) })),
    comments: d.comments.map((c) => ({ ...c, id: c.id + o.base.comments, articleId: article(c.articleId), authorId: user(c.authorId) })),
  };
}
