// The scenarios: each a named, weighted mix of requests, drawn deterministically (seeded PRNG)
// from the real data set after seeding, with the spread real traffic has: recent articles are
// read more (popularity falls off with age), first pages far more than later ones (each page
// half as likely as the one before), tags and authors in proportion to how many articles they
// have. Each scenario becomes a fixed list of requests that the load generator cycles through;
// the platform limit serves the recorded responses of the same list.
import { Rng, Weighted } from '../scripts/seed.data.ts';
import { COMMENTS, SENTENCES, TOPICS } from '../scripts/seed.words.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface BenchRequest {
  /** The request's kind in the mix (for per-endpoint latencies), e.g. `article`, `list-tag`. */
  kind: string;
  method: Method;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/** What the scenarios draw from: read from the database after seeding. */
export interface Catalog {
  /** Newest first, with their authors. */
  articles: { slug: string; author: string }[];
  tags: { name: string; uses: number }[];
  /** Every user. */
  usernames: string[];
  /** The username behind each of a sample of favorites (so heavy favoriters come up more). */
  favoriters: string[];
}

/** A logged-in user of the token pool (logged in before the run, not timed). */
export interface TokenUser {
  username: string;
  email: string;
  token: string;
  /** Slugs of this user's own articles (for updates). */
  ownSlugs: string[];
}

export interface ScenarioInput {
  catalog: Catalog;
  tokens: TokenUser[];
  /** Emails of the users the login scenario logs in as. */
  emails: string[];
  password: string;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Needs the token pool. */
  readonly auth: boolean;
  /** A cap on connections, where more only add queueing (argon2-bound login). */
  readonly maxConnections?: number;
  /** Run by default (without --scenarios). */
  readonly inDefaultRun: boolean;
  /** Weighted request kinds: [weight, kind]. */
  readonly mix: readonly (readonly [number, Kind])[];
}

type Kind = keyof typeof KINDS;

/**
 * Every request says what browsers say: the service may compress (and the platform limit then
 * replays the compressed bytes), so compression on/off configurations compare something real.
 * Chrome (since 123) and Firefox (since 126) send zstd too; runs before 2026-11-26 sent
 * 'gzip, deflate, br', which made the service gzip (2.6x zstd's CPU per page).
 */
export const ACCEPT_ENCODING = 'gzip, deflate, br, zstd';

/** How many requests each scenario's list holds: enough spread, small enough to record fast. */
const LIST_SIZE = 4000;
const PAGES = 10;

// ---------------------------------------------------------------------------------------------
// Distributions.

class Draw {
  readonly rng: Rng;
  readonly #input: ScenarioInput;
  readonly #byAge: Weighted;
  readonly #tags: Weighted;
  readonly #pages: Weighted;
  #serial = 0;

  constructor(input: ScenarioInput, seed: number, name: string) {
    this.#input = input;
    this.rng = new Rng(seed, `bench:${name}`);
    const n = input.catalog.articles.length;
    // Popularity by age: the i-th newest article weighs 1/sqrt(i+1), so the newest 10% of
    // articles get about a third of the reads, and every article gets some.
    this.#byAge = new Weighted(Float64Array.from({ length: n }, (_, i) => 1 / Math.sqrt(i + 1)));
    this.#tags = new Weighted(input.catalog.tags.map((t) => Math.max(1, t.uses)));
    this.#pages = new Weighted(Float64Array.from({ length: PAGES }, (_, k) => 0.5 ** k));
  }

  get input(): ScenarioInput {
    return this.#input;
  }

  article() {
    return this.#input.catalog.articles[this.#byAge.pick(this.rng)]!;
  }

  tag(): string {
    return this.#input.catalog.tags[this.#tags.pick(this.rng)]!.name;
  }

  /** An author, in proportion to their number of articles. */
  author(): string {
    return this.rng.pick(this.#input.catalog.articles).author;
  }

  favoriter(): string {
    return this.rng.pick(this.#input.catalog.favoriters);
  }

  username(): string {
    return this.rng.pick(this.#input.catalog.usernames);
  }

  user(): TokenUser {
    return this.rng.pick(this.#input.tokens);
  }

  /** `limit=..&offset=..`: the official front end's 10 per page mostly, the API default 20 otherwise. */
  page(limit = this.rng.chance(0.7) ? 10 : 20): string {
    return `limit=${limit}&offset=${this.#pages.pick(this.rng) * limit}`;
  }

  /** A page of exactly 20 (the pgbench comparison runs the same distribution). */
  page20(): string {
    return this.page(20);
  }

  text(sentences: number): string {
    const topic = this.rng.pick(TOPICS);
    const out: string[] = [];
    for (let i = 0; i < sentences; i++) out.push(this.rng.pick(SENTENCES).replace(/\{\w\}/g, topic));
    return out.join(' ');
  }

  comment(): string {
    return this.rng.pick(COMMENTS).replace(/\{\w\}/g, this.rng.pick(TOPICS));
  }

  serial(): number {
    return ++this.#serial;
  }
}

const q = encodeURIComponent;
const json = { 'content-type': 'application/json' };
const authed = (u: TokenUser, extra: Record<string, string> = {}) => ({ authorization: `Token ${u.token}`, ...extra });

type Make = (d: Draw, viewer: TokenUser | undefined) => BenchRequest | undefined;

/** Every request kind a scenario can mix. `viewer` is set in authenticated scenarios. */
const KINDS = {
  // Reads (the front end's home, article, profile and tag pages).
  list: (d, v) => get('list', `/api/articles?${d.page()}`, v),
  'list-20': (d, v) => get('list-20', `/api/articles?${d.page20()}`, v),
  'list-tag': (d, v) => get('list-tag', `/api/articles?tag=${q(d.tag())}&${d.page()}`, v),
  'list-author': (d, v) => get('list-author', `/api/articles?author=${q(d.author())}&${d.page()}`, v),
  'list-favorited': (d, v) => get('list-favorited', `/api/articles?favorited=${q(d.favoriter())}&${d.page()}`, v),
  feed: (d, v) => (v ? get('feed', `/api/articles/feed?${d.page()}`, v) : undefined),
  article: (d, v) => get('article', `/api/articles/${q(d.article().slug)}`, v),
  comments: (d, v) => get('comments', `/api/articles/${q(d.article().slug)}/comments`, v),
  tags: (_d, v) => get('tags', '/api/tags', v),
  profile: (d, v) => get('profile', `/api/profiles/${q(d.username())}`, v),
  user: (_d, v) => (v ? get('user', '/api/user', v) : undefined),
  // Writes.
  favorite: (d, v) => v && { kind: 'favorite', method: 'POST', path: `/api/articles/${q(d.article().slug)}/favorite`, headers: authed(v) },
  unfavorite: (d, v) =>
    v && { kind: 'unfavorite', method: 'DELETE', path: `/api/articles/${q(d.article().slug)}/favorite`, headers: authed(v) },
  'add-comment': (d, v) =>
    v && {
      kind: 'add-comment',
      method: 'POST',
      path: `/api/articles/${q(d.article().slug)}/comments`,
      headers: authed(v, json),
      body: JSON.stringify({ comment: { body: d.comment() } }),
    },
  'create-article': (d, v) =>
    v && {
      kind: 'create-article',
      method: 'POST',
      path: '/api/articles',
      headers: authed(v, json),
      // Titles repeat when the list cycles: the service gives duplicates distinct slugs.
      body: JSON.stringify({
        article: {
          title: `Bench notes ${d.serial()}: ${d.text(1).slice(0, 60)}`,
          description: d.text(1),
          body: [d.text(4), '## Numbers', d.text(5), '## Lessons', d.text(4)].join('\n\n'),
          tagList: [d.tag(), d.tag()],
        },
      }),
    },
  'update-article': (d, v) => {
    if (!v || v.ownSlugs.length === 0) return undefined;
    return {
      kind: 'update-article',
      method: 'PUT',
      path: `/api/articles/${q(d.rng.pick(v.ownSlugs))}`,
      headers: authed(v, json),
      body: JSON.stringify({ article: { body: [d.text(4), '## Update', d.text(3)].join('\n\n') } }),
    };
  },
  follow: (d, v) => v && { kind: 'follow', method: 'POST', path: `/api/profiles/${q(d.username())}/follow`, headers: authed(v) },
  unfollow: (d, v) => v && { kind: 'unfollow', method: 'DELETE', path: `/api/profiles/${q(d.username())}/follow`, headers: authed(v) },
  login: (d) => ({
    kind: 'login',
    method: 'POST',
    path: '/api/users/login',
    headers: json,
    body: JSON.stringify({ user: { email: d.rng.pick(d.input.emails), password: d.input.password } }),
  }),
  // Only in the `broken` self-test: a path no route serves.
  'not-found': (d) => ({ kind: 'not-found', method: 'GET', path: `/api/no-such-route/${d.serial()}` }),
} satisfies Record<string, Make>;

function get(kind: string, path: string, v: TokenUser | undefined): BenchRequest {
  return v ? { kind, method: 'GET', path, headers: authed(v) } : { kind, method: 'GET', path };
}

// ---------------------------------------------------------------------------------------------
// The scenarios. Weights are percentages of requests.

const READ_ANON = [
  [30, 'list'], // the home page's global feed
  [10, 'list-tag'],
  [6, 'list-author'], // a profile page's articles
  [3, 'list-favorited'], // a profile page's "favorited articles" tab
  [24, 'article'],
  [14, 'comments'],
  [8, 'tags'],
  [5, 'profile'],
] as const satisfies readonly (readonly [number, Kind])[];

const READ_AUTH = [
  [18, 'list'],
  [15, 'feed'], // the logged-in home page's "your feed" tab
  [8, 'list-tag'],
  [5, 'list-author'],
  [2, 'list-favorited'],
  [20, 'article'],
  [12, 'comments'],
  [6, 'tags'],
  [5, 'profile'],
  [9, 'user'], // the front end's "who am I" on every page load
] as const satisfies readonly (readonly [number, Kind])[];

export const SCENARIOS: Readonly<Record<string, Scenario>> = {
  'read-anon': {
    name: 'read-anon',
    description: 'anonymous reads: article lists (global, by tag, author, favorited; pages), article pages, comments, tags, profiles',
    auth: false,
    inDefaultRun: true,
    mix: READ_ANON,
  },
  'read-auth': {
    name: 'read-auth',
    description: 'the same reads as logged-in users (a pool of tokens), plus their feeds and GET /api/user',
    auth: true,
    inDefaultRun: true,
    mix: READ_AUTH,
  },
  mixed: {
    name: 'mixed',
    description: '90% logged-in reads (read-auth) and 10% writes: favorite/unfavorite, comment, new article, follow/unfollow',
    auth: true,
    inDefaultRun: true,
    mix: [
      ...READ_AUTH.map(([w, k]) => [w * 0.9, k] as const),
      [3, 'favorite'],
      [2, 'unfavorite'],
      [3, 'add-comment'],
      [1, 'create-article'],
      [0.5, 'follow'],
      [0.5, 'unfollow'],
    ],
  },
  write: {
    name: 'write',
    description: 'write-heavy: 80% writes (favorites, comments, new and edited articles, follows), 20% reads of the articles written to',
    auth: true,
    inDefaultRun: true,
    mix: [
      [20, 'favorite'],
      [15, 'unfavorite'],
      [25, 'add-comment'],
      [8, 'create-article'],
      [7, 'update-article'],
      [3, 'follow'],
      [2, 'unfollow'],
      [12, 'article'],
      [8, 'comments'],
    ],
  },
  login: {
    name: 'login',
    description: 'POST /api/users/login with the right password: bound by argon2id (m=7 MiB, t=5) on the CPU',
    auth: false,
    // The service admits ARGON2_CONCURRENCY hashes at once (at least 4), and one client address
    // may hold every slot but never wait in the queue (ARGON2_PER_CLIENT): from the bench's one
    // address, a connection beyond the slots would be answered 429 by design.
    maxConnections: 4,
    inDefaultRun: true,
    mix: [[100, 'login']],
  },
  list: {
    name: 'list',
    description: 'only the global article list, 20 per page (the query --pgbench runs in pgbench)',
    auth: false,
    inDefaultRun: false,
    mix: [[100, 'list-20']],
  },
  // Single hot paths, for `npm run profile` (allocations and CPU per request of one path,
  // docs/observability.md "Under a benchmark scenario") and for a focused bench run.
  article: {
    name: 'article',
    description: 'only article pages (GET /api/articles/:slug), anonymous: a cached entry each after the first',
    auth: false,
    inDefaultRun: false,
    mix: [[100, 'article']],
  },
  'list-auth': {
    name: 'list-auth',
    description: "only the global article list, 20 per page, as logged-in users: the cached page plus the viewer's flags",
    auth: true,
    inDefaultRun: false,
    mix: [[100, 'list-20']],
  },
  favorite: {
    name: 'favorite',
    description: 'only favorite and unfavorite, as logged-in users: a write, its invalidations and the fresh article',
    auth: true,
    inDefaultRun: false,
    mix: [
      [50, 'favorite'],
      [50, 'unfavorite'],
    ],
  },
  broken: {
    name: 'broken',
    description: 'self-test of the harness: read-anon plus 10% requests to a route that does not exist (404); the run must fail',
    auth: false,
    inDefaultRun: false,
    mix: [...READ_ANON.map(([w, k]) => [w * 0.9, k] as const), [10, 'not-found']],
  },
};

export function selectScenarios(names: readonly string[] | undefined): Scenario[] {
  const selected =
    names ??
    Object.values(SCENARIOS)
      .filter((s) => s.inDefaultRun)
      .map((s) => s.name);
  return [...new Set(selected)].map((n) => {
    const s = SCENARIOS[n];
    if (!s) throw new Error(`unknown scenario "${n}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
    return s;
  });
}

/** The scenario's request list: the same input and seed give the same list. */
export function buildRequests(scenario: Scenario, input: ScenarioInput, seed: number, size = LIST_SIZE): BenchRequest[] {
  if (scenario.auth && input.tokens.length === 0) throw new Error(`scenario ${scenario.name} needs logged-in users`);
  const d = new Draw(input, seed, scenario.name);
  const kinds = new Weighted(scenario.mix.map(([w]) => w));
  const out: BenchRequest[] = [];
  let misses = 0;
  while (out.length < size) {
    const kind = scenario.mix[kinds.pick(d.rng)]![1];
    const req: BenchRequest | undefined = KINDS[kind](d, scenario.auth ? d.user() : undefined);
    if (req) out.push({ ...req, headers: { 'accept-encoding': ACCEPT_ENCODING, ...req.headers } });
    else if (++misses > size * 10) throw new Error(`scenario ${scenario.name}: cannot draw ${kind} requests from this data set`);
  }
  return out;
}

/** The share of each kind in a list, for the report. */
export function kindShares(requests: readonly BenchRequest[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of requests) counts[r.kind] = (counts[r.kind] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).map(([k, n]) => [k, Math.round((n / requests.length) * 1000) / 10]));
}
