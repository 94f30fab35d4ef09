// The peer mode's data set, as a plan of public API calls: the same seed gives the same users,
// articles (in creation order), tags, follows, favorites and comments, so every implementation
// seeded from it holds the same data, told apart only by the slugs and ids it chose itself.
import { Rng, Weighted } from '../../scripts/seed.data.ts';
import { COMMENTS, SENTENCES, TAGS, TOPICS } from '../../scripts/seed.words.ts';

export interface PlanOptions {
  users: number;
  articles: number;
  comments?: number | undefined;
  favorites?: number | undefined;
  follows?: number | undefined;
  tags?: number | undefined;
  seed: number;
  /** Users the authenticated scenarios act as (spread over all users). */
  tokenUsers: number;
}

export interface PlanUser {
  username: string;
  email: string;
  password: string;
}

export interface PlanArticle {
  /** Index into users. */
  author: number;
  title: string;
  description: string;
  body: string;
  /** Sorted, distinct. */
  tagList: string[];
}

export interface Plan {
  seed: number;
  users: PlanUser[];
  /** Oldest first: created one after another in this order. */
  articles: PlanArticle[];
  tags: string[];
  /** [follower, followee], distinct. */
  follows: [number, number][];
  /** [user, article], distinct. */
  favorites: [number, number][];
  comments: { user: number; article: number; body: string }[];
  /** Indexes of the users logged in for the authenticated scenarios. */
  tokenUsers: number[];
}

export const PLAN_PASSWORD = 'bench-password-123';

function text(rng: Rng, sentences: number): string {
  const topic = rng.pick(TOPICS);
  return Array.from({ length: sentences }, () => rng.pick(SENTENCES).replace(/\{\w\}/g, topic)).join(' ');
}

/** Zipf-like weights: the i-th item weighs 1 / (i + 1)^s. */
const zipf = (n: number, s: number) => Float64Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s);

/** Up to `want` distinct pairs drawn by `draw` (gives up after many repeats: small data sets). */
function distinctPairs(want: number, draw: () => [number, number] | undefined): [number, number][] {
  const seen = new Set<string>();
  const out: [number, number][] = [];
  for (let tries = 0; out.length < want && tries < want * 20; tries++) {
    const p = draw();
    if (!p || seen.has(`${p[0]}:${p[1]}`)) continue;
    seen.add(`${p[0]}:${p[1]}`);
    out.push(p);
  }
  return out;
}

export function makePlan(o: PlanOptions): Plan {
  if (o.users < 2 || o.articles < 1) throw new Error('the peer data set needs at least 2 users and 1 article');
  const rng = new Rng(o.seed, 'bench:peer');
  const users = Array.from({ length: o.users }, (_, i) => ({
    username: `bench_${o.seed}_${i}`,
    email: `bench${o.seed}.${i}@example.com`,
    password: PLAN_PASSWORD,
  }));
  const tags = TAGS.slice(0, Math.min(TAGS.length, o.tags ?? 20));
  // A few prolific authors and a long tail, as on any blogging site; the same for tags.
  const byAuthor = new Weighted(zipf(o.users, 0.8));
  const byTag = new Weighted(zipf(tags.length, 1));
  const articles = Array.from({ length: o.articles }, (_, i): PlanArticle => {
    const tagList = [...new Set(Array.from({ length: 1 + rng.int(3) }, () => tags[byTag.pick(rng)]!))].sort();
    return {
      author: byAuthor.pick(rng),
      // The index keeps titles (and so slugs) distinct on every implementation.
      title: `${rng.pick(TOPICS)} in practice ${i + 1}`,
      description: text(rng, 1),
      body: [text(rng, 3), '## Numbers', text(rng, 3)].join('\n\n'),
      tagList,
    };
  });
  const k = Math.min(o.tokenUsers, o.users);
  const tokenUsers = Array.from({ length: k }, (_, i) => Math.floor((i * o.users) / k));
  // Every logged-in user follows a few prolific authors first, so their feeds have articles.
  const followSeeds: [number, number][] = tokenUsers.flatMap((u) =>
    [0, 1, 2, 3].filter((a) => a !== u && a < o.users).map((a): [number, number] => [u, a]),
  );
  const follows = distinctPairs(Math.max(o.follows ?? o.users * 4, followSeeds.length), () => {
    const seeded = followSeeds.shift();
    if (seeded) return seeded;
    const a = rng.int(o.users);
    const b = byAuthor.pick(rng);
    return a === b ? undefined : [a, b];
  });
  const byAge = new Weighted(Float64Array.from({ length: o.articles }, (_, i) => Math.sqrt(i + 1)));
  const favorites = distinctPairs(o.favorites ?? o.articles * 2, () => [byAuthor.pick(rng), byAge.pick(rng)]);
  const comments = Array.from({ length: o.comments ?? o.articles * 2 }, () => ({
    user: rng.int(o.users),
    article: byAge.pick(rng),
    body: rng.pick(COMMENTS).replace(/\{\w\}/g, rng.pick(TOPICS)),
  }));
  return {
    seed: o.seed,
    users,
    articles,
    tags: tags.filter((t) => articles.some((a) => a.tagList.includes(t))),
    follows,
    favorites,
    comments,
    tokenUsers,
  };
}
