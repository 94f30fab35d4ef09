// Generates the demo data set in memory, deterministically: the same options give the same data,
// byte for byte, on any machine. Randomness comes only from the seeded PRNG below (never
// Math.random) and time only from EPOCH (never the clock). Each part of the data set draws from
// its own stream, so asking for more comments does not change the articles.
import { slugify } from '../src/articles/slug.ts';
import * as W from './seed.words.ts';

/** The fixed "now" of the data set: every timestamp falls in the year before it. */
export const EPOCH = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const YEAR = 365 * DAY;

export interface GenerateOptions {
  users: number;
  articles: number;
  comments: number;
  favorites: number;
  tags: number;
  follows: number;
  seed: number;
}

export interface UserData {
  id: number;
  username: string;
  email: string;
  bio: string | null;
  image: string | null;
  createdAt: number;
  updatedAt: number;
}
export interface ArticleData {
  id: number;
  slug: string;
  title: string;
  description: string;
  body: string;
  authorId: number;
  favoritesCount: number;
  createdAt: number;
  updatedAt: number;
  tagIds: number[];
}
export interface FollowData {
  followerId: number;
  followeeId: number;
  createdAt: number;
}
export interface FavoriteData {
  userId: number;
  articleId: number;
  createdAt: number;
}
export interface CommentData {
  id: number;
  articleId: number;
  authorId: number;
  body: string;
  createdAt: number;
  updatedAt: number;
}

export interface Dataset {
  users: UserData[];
  /** Tag names; a tag's id is its index + 1. */
  tags: string[];
  articles: ArticleData[];
  follows: FollowData[];
  favorites: FavoriteData[];
  comments: CommentData[];
}

// ---------------------------------------------------------------------------------------------
// PRNG: sfc32 (Chris Doty-Humphrey's small fast chaotic generator; passes PractRand), seeded
// through splitmix32 from the user's seed and a stream name.

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number, stream: string) {
    let h = 0x811c9dc5; // FNV-1a of the stream name, so each stream starts elsewhere.
    for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193);
    let x = (seed ^ h) >>> 0;
    const splitmix = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.#a = splitmix();
    this.#b = splitmix();
    this.#c = splitmix();
    this.#d = splitmix();
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}

/** Draws indexes with probability proportional to their weight (binary search on the running sum). */
export class Weighted {
  readonly #cumulative: Float64Array;

  constructor(weights: ArrayLike<number>) {
    this.#cumulative = new Float64Array(weights.length);
    let sum = 0;
    for (let i = 0; i < weights.length; i++) this.#cumulative[i] = sum += weights[i]!;
  }

  pick(rng: Rng): number {
    const c = this.#cumulative;
    const target = rng.next() * c[c.length - 1]!;
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** Zipf-like weights: the item ranked r (from `rank`, or its index) weighs 1 / (r + 1)^s. */
function zipf(n: number, s: number, rank?: Uint32Array): Float64Array {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = 1 / Math.pow((rank ? rank[i]! : i) + 1, s);
  return w;
}

// ---------------------------------------------------------------------------------------------
// Text.

function plural(noun: string): string {
  if (/[^aeiou]y$/.test(noun)) return `${noun.slice(0, -1)}ies`;
  return /(s|x|ch|sh)$/.test(noun) ? `${noun}es` : `${noun}s`;
}

function fill(template: string, rng: Rng, topic: string = rng.pick(W.TOPICS)): string {
  const text = template.replace(/\{(\w)\}/g, (_, k: string) => {
    switch (k) {
      case 'T':
        return topic;
      case 'U': {
        let other = rng.pick(W.TOPICS);
        while (other === topic) other = rng.pick(W.TOPICS);
        return other;
      }
      case 'X':
        return rng.pick(W.THINGS);
      case 'S':
        return plural(rng.pick(W.THINGS));
      case 'A':
        return rng.pick(W.ADJECTIVES);
      case 'a':
        return rng.pick(W.ADJECTIVES).toLowerCase();
      case 'V':
        return rng.pick(W.VERBS);
      case 'G':
        return rng.pick(W.GERUNDS);
      case 'N':
        return rng.pick(W.NUMBERS);
      default:
        throw new Error(`unknown template slot {${k}}`);
    }
  });
  // "a Index" -> "an Index"; the word lists have no silent h or "you"-sounding u.
  return text.replace(/\b([Aa]) (?=[AEIOUaeiou])/g, '$1n ');
}

function paragraph(rng: Rng, topic: string): string {
  const n = 2 + rng.int(4);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(fill(rng.pick(W.SENTENCES), rng, topic));
  return out.join(' ');
}

function articleBody(rng: Rng, topic: string): string {
  const sections = 2 + rng.int(3);
  const parts: string[] = [];
  for (let s = 0; s < sections; s++) {
    parts.push(`## ${W.HEADINGS[(s + rng.int(2)) % W.HEADINGS.length]!}`);
    const paragraphs = 1 + rng.int(2);
    for (let p = 0; p < paragraphs; p++) parts.push(paragraph(rng, topic));
    if (rng.chance(0.15)) parts.push('```sh\nnpm run bench -- --scenario read-heavy\n```');
  }
  return parts.join('\n\n');
}

/** Tag names: the word list, then hyphenated pairs of it, then numbered tags if still short. */
function tagNames(n: number): string[] {
  const names = W.TAGS.slice(0, n) as string[];
  for (let i = 0; names.length < n && i < W.TAGS.length; i++) {
    for (let j = 0; names.length < n && j < W.TAGS.length; j++) if (i !== j) names.push(`${W.TAGS[i]}-${W.TAGS[j]}`);
  }
  for (let k = 1; names.length < n; k++) names.push(`topic-${k}`);
  return names;
}

/** A time uniformly between `from` and EPOCH. */
function after(rng: Rng, from: number): number {
  return from + Math.floor(rng.next() * (EPOCH - from));
}

/** Sort by time (stable, so ties keep generation order) and number 1..n in that order. */
function numberByTime<T extends { createdAt: number }>(rows: T[]): (T & { id: number })[] {
  return rows
    .map((r, i) => ({ r, i }))
    .sort((x, y) => x.r.createdAt - y.r.createdAt || x.i - y.i)
    .map(({ r }, i) => Object.assign(r, { id: i + 1 }));
}

// ---------------------------------------------------------------------------------------------

export function generate(o: GenerateOptions): Dataset {
  // Popularity. Authors and followees share one ranking (people with readers write more);
  // activity (who favorites and comments) is a second, flatter one.
  const people = new Rng(o.seed, 'popularity');
  const fame = zipf(o.users, 0.8, people.permutation(o.users));
  const byFame = new Weighted(fame);
  const byActivity = new Weighted(zipf(o.users, 0.5, people.permutation(o.users)));

  const users = makeUsers(o, new Rng(o.seed, 'users'));
  const tags = tagNames(o.tags);
  const articles = makeArticles(o, new Rng(o.seed, 'articles'), users, byFame, tags.length);

  // Articles are popular in proportion to their own luck and, more gently, their author's fame
  // (both weights are at most 1).
  const luck = zipf(o.articles, 0.8, new Rng(o.seed, 'article-luck').permutation(o.articles));
  const byInterest = new Weighted(articles.map((a, i) => luck[i]! * Math.sqrt(fame[a.authorId - 1]!)));

  const follows = makeFollows(o, new Rng(o.seed, 'follows'), users, byFame, byActivity);
  const favorites = makeFavorites(o, new Rng(o.seed, 'favorites'), users, articles, byInterest, byActivity);
  const comments = makeComments(o, new Rng(o.seed, 'comments'), users, articles, byInterest, byActivity);
  return { users, tags, articles, follows, favorites, comments };
}

function makeUsers(o: GenerateOptions, rng: Rng): UserData[] {
  const created = Array.from({ length: o.users }, () => ({ createdAt: EPOCH - YEAR + rng.int(YEAR - DAY) }));
  const taken = new Set<string>();
  return numberByTime(created).map((u) => {
    const first = rng.pick(W.FIRST_NAMES).toLowerCase();
    const last = rng.pick(W.LAST_NAMES).toLowerCase();
    const styles = [`${first}.${last}`, `${first}${last}`, `${first}_${last}`, `${first[0]!}${last}`, `${first}${10 + rng.int(90)}`];
    const base = rng.pick(styles);
    let username = base;
    for (let k = 2; taken.has(username); k++) username = `${base}${k}`;
    taken.add(username);
    return {
      id: u.id,
      username,
      email: `${username}@${rng.pick(W.EMAIL_DOMAINS)}`,
      bio: rng.chance(0.6) ? `${rng.pick(W.ROLES)}. Into ${rng.pick(W.INTERESTS)} and ${rng.pick(W.INTERESTS)}.` : null,
      image: rng.chance(0.7) ? `https://example.com/avatars/${username}.png` : null,
      createdAt: u.createdAt,
      updatedAt: rng.chance(0.2) ? after(rng, u.createdAt) : u.createdAt,
    };
  });
}

// How many tags an article has (0-5): most have two or three.
const TAG_COUNT = new Weighted([8, 20, 28, 24, 13, 7]);

function makeArticles(o: GenerateOptions, rng: Rng, users: UserData[], byFame: Weighted, tagCount: number): ArticleData[] {
  const tagPopularity = new Weighted(zipf(tagCount, 0.9));
  const titles: string[] = [];
  const drafts = Array.from({ length: o.articles }, () => {
    const author = users[byFame.pick(rng)]!;
    const topic = rng.pick(W.TOPICS);
    // Some titles repeat on purpose (reposts, common phrasings): their slugs must still differ.
    const title = titles.length > 0 && rng.chance(0.03) ? rng.pick(titles) : fill(rng.pick(W.TITLE_TEMPLATES), rng, topic);
    titles.push(title);
    const createdAt = after(rng, author.createdAt);
    const k = Math.min(TAG_COUNT.pick(rng), tagCount);
    const tagIds = new Set<number>();
    while (tagIds.size < k) tagIds.add(tagPopularity.pick(rng) + 1);
    return {
      title,
      description: fill(rng.pick(W.SENTENCES), rng, topic),
      body: articleBody(rng, topic),
      authorId: author.id,
      favoritesCount: 0,
      createdAt,
      updatedAt: rng.chance(0.25) ? after(rng, createdAt) : createdAt,
      tagIds: [...tagIds].sort((a, b) => a - b),
      slug: '',
    };
  });
  // Slugs follow the app's rules (slugify); the earliest article keeps the plain slug and later
  // duplicates count up (-2, -3, ...), skipping any slug another title already produced.
  const slugs = new Set<string>();
  return numberByTime(drafts).map((a) => {
    const base = slugify(a.title);
    let slug = base;
    for (let k = 2; slugs.has(slug); k++) slug = `${base}-${k}`;
    slugs.add(slug);
    a.slug = slug;
    return a;
  });
}

/**
 * Draws `total` distinct (source, target) pairs: the target by `targets`, the source by `sources`.
 * A drawn pair that exists already, or is excluded, moves on to the next source; a full target
 * moves on to the next target; so every draw ends even when the pairs are nearly exhausted.
 */
function distinctPairs(
  total: number,
  rng: Rng,
  nSources: number,
  nTargets: number,
  targets: Weighted,
  sources: Weighted,
  excluded: (source: number, target: number) => boolean,
  capacity: (target: number) => number,
): [number, number][] {
  const seen = new Set<number>();
  const used = new Uint32Array(nTargets);
  const pairs: [number, number][] = [];
  while (pairs.length < total) {
    let t = targets.pick(rng);
    for (let retry = 0; used[t]! >= capacity(t) && retry < 8; retry++) t = targets.pick(rng);
    while (used[t]! >= capacity(t)) t = (t + 1) % nTargets;
    let s = sources.pick(rng);
    while (seen.has(t * nSources + s) || excluded(s, t)) s = (s + 1) % nSources;
    seen.add(t * nSources + s);
    used[t]!++;
    pairs.push([s, t]);
  }
  return pairs;
}

function makeFollows(o: GenerateOptions, rng: Rng, users: UserData[], byFame: Weighted, byActivity: Weighted): FollowData[] {
  const total = Math.min(o.follows, o.users * (o.users - 1));
  const pairs = distinctPairs(
    total,
    rng,
    o.users,
    o.users,
    byFame,
    byActivity,
    (s, t) => s === t,
    () => o.users - 1,
  );
  return pairs.map(([s, t]) => ({
    followerId: s + 1,
    followeeId: t + 1,
    createdAt: after(rng, Math.max(users[s]!.createdAt, users[t]!.createdAt)),
  }));
}

function makeFavorites(
  o: GenerateOptions,
  rng: Rng,
  users: UserData[],
  articles: ArticleData[],
  byInterest: Weighted,
  byActivity: Weighted,
): FavoriteData[] {
  const total = Math.min(o.favorites, o.users * o.articles);
  const pairs = distinctPairs(
    total,
    rng,
    o.users,
    o.articles,
    byInterest,
    byActivity,
    () => false,
    () => o.users,
  );
  return pairs.map(([s, t]) => {
    const article = articles[t]!;
    article.favoritesCount++;
    return { userId: s + 1, articleId: article.id, createdAt: after(rng, Math.max(users[s]!.createdAt, article.createdAt)) };
  });
}

function makeComments(
  o: GenerateOptions,
  rng: Rng,
  users: UserData[],
  articles: ArticleData[],
  byInterest: Weighted,
  byActivity: Weighted,
): CommentData[] {
  const drafts = Array.from({ length: o.comments }, () => {
    const article = articles[byInterest.pick(rng)]!;
    // Authors answer in their own threads now and then.
    const author = rng.chance(0.12) ? users[article.authorId - 1]! : users[byActivity.pick(rng)]!;
    const createdAt = after(rng, Math.max(author.createdAt, article.createdAt));
    const n = 1 + rng.int(3);
    const body = Array.from({ length: n }, () => fill(rng.pick(W.COMMENTS), rng)).join(' ');
    return { articleId: article.id, authorId: author.id, body, createdAt, updatedAt: createdAt };
  });
  return numberByTime(drafts);
}
