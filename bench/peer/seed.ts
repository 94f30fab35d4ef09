// Seeding any RealWorld implementation through its public API from a plan, then what the
// scenarios draw from on it: its catalog (the plan's articles with this target's slugs) and its
// tokens (logged in on it). And a read-back check that it holds exactly the plan's data.
import { pool, requestPatiently, type RawResponse } from '../drive.ts';
import type { Catalog, TokenUser } from '../scenarios.ts';
import type { Plan } from './dataset.ts';

const json = { 'content-type': 'application/json' };
const q = encodeURIComponent;

async function call(url: string, method: 'GET' | 'POST', path: string, token?: string, body?: unknown): Promise<RawResponse> {
  const headers: Record<string, string> = { ...json, ...(token ? { authorization: `Token ${token}` } : {}) };
  return requestPatiently(url, { method, path, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
}

function expect2xx(res: RawResponse, what: string): unknown {
  if (res.status < 200 || res.status > 299) throw new Error(`${what}: ${res.status} ${res.body.toString().slice(0, 300)}`);
  return JSON.parse(res.body.toString()) as unknown;
}

/**
 * Creates the plan's data on the target: users, then articles one after another (so creation
 * times follow the plan's order, and lists show the same articles on every target), then
 * follows, favorites and comments. Returns the target's slug of each article, by plan index.
 */
export async function seedThroughApi(url: string, plan: Plan, log: (line: string) => void = () => undefined): Promise<string[]> {
  const started = performance.now();
  const first = await call(url, 'POST', '/api/users', undefined, { user: plan.users[0] });
  if (first.status === 409 || first.status === 422) {
    throw new Error(
      `${url} already has user ${plan.users[0]!.username} (${first.status}): peer mode needs a fresh, empty database behind each peer`,
    );
  }
  const tokens: string[] = [(expect2xx(first, 'register') as { user: { token: string } }).user.token];
  // Registration hashes a password (argon2, bcrypt): a few at a time.
  const rest = await pool(
    plan.users.slice(1),
    4,
    async (u) =>
      (expect2xx(await call(url, 'POST', '/api/users', undefined, { user: u }), `register ${u.username}`) as { user: { token: string } })
        .user.token,
  );
  tokens.push(...rest);
  const slugs: string[] = [];
  for (const [i, a] of plan.articles.entries()) {
    const { author, ...article } = a;
    const res = expect2xx(await call(url, 'POST', '/api/articles', tokens[author], { article }), `create article ${i}`) as {
      article: { slug: string };
    };
    slugs.push(res.article.slug);
  }
  await pool(plan.follows, 8, async ([a, b]) =>
    expect2xx(await call(url, 'POST', `/api/profiles/${q(plan.users[b]!.username)}/follow`, tokens[a]), `follow ${a}→${b}`),
  );
  await pool(plan.favorites, 8, async ([u, a]) =>
    expect2xx(await call(url, 'POST', `/api/articles/${q(slugs[a]!)}/favorite`, tokens[u]), `favorite ${u}→${a}`),
  );
  await pool(plan.comments, 8, async (c) =>
    expect2xx(
      await call(url, 'POST', `/api/articles/${q(slugs[c.article]!)}/comments`, tokens[c.user], { comment: { body: c.body } }),
      `comment on ${c.article}`,
    ),
  );
  log(
    `seeded ${url} through its API: ${plan.users.length} users, ${plan.articles.length} articles, ${plan.follows.length} follows, ` +
      `${plan.favorites.length} favorites, ${plan.comments.length} comments in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return slugs;
}

/** The plan's token users, logged in on this target (the tokens it issues itself). */
export async function loginTokens(url: string, plan: Plan, slugs: readonly string[]): Promise<TokenUser[]> {
  return pool(plan.tokenUsers, 4, async (i) => {
    const u = plan.users[i]!;
    const res = expect2xx(
      await call(url, 'POST', '/api/users/login', undefined, { user: { email: u.email, password: u.password } }),
      `login as ${u.email}`,
    ) as { user: { token: string } };
    const ownSlugs = plan.articles.flatMap((a, k) => (a.author === i ? [slugs[k]!] : []));
    return { username: u.username, email: u.email, token: res.user.token, ownSlugs };
  });
}

/** What the scenarios draw from, in the plan's order: the same picks on every target. */
export function catalogOf(plan: Plan, slugs: readonly string[]): Catalog {
  const articles = plan.articles.map((a, i) => ({ slug: slugs[i]!, author: plan.users[a.author]!.username })).reverse();
  const tags = plan.tags.map((name) => ({ name, uses: plan.articles.filter((a) => a.tagList.includes(name)).length }));
  return {
    articles,
    tags,
    usernames: plan.users.map((u) => u.username),
    favoriters: plan.favorites.map(([u]) => plan.users[u]!.username),
  };
}

interface ListedArticle {
  slug: string;
  tagList: string[];
  favoritesCount: number;
  author: { username: string };
}

/**
 * Reads the target's articles and tags back through its API and lists every difference from
 * the plan: count, newest-first order, authors, tags, favorite counts, follows of the first
 * logged-in user (their feed). Empty: the target holds the plan's data.
 */
export async function verifySeeded(url: string, plan: Plan, slugs: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  const listed: ListedArticle[] = [];
  let count = -1;
  for (let offset = 0; offset === 0 || offset < count; offset += 100) {
    const page = expect2xx(await call(url, 'GET', `/api/articles?limit=100&offset=${offset}`), 'list articles') as {
      articles: ListedArticle[];
      articlesCount: number;
    };
    count = page.articlesCount;
    listed.push(...page.articles);
    if (page.articles.length === 0) break;
  }
  if (count !== plan.articles.length) problems.push(`articlesCount ${count}, planned ${plan.articles.length}`);
  const favs = new Map<number, number>();
  for (const [, a] of plan.favorites) favs.set(a, (favs.get(a) ?? 0) + 1);
  for (const [k, got] of listed.entries()) {
    const i = plan.articles.length - 1 - k;
    const want = plan.articles[i];
    if (!want) break;
    const where = `article ${i} (${got.slug})`;
    if (got.slug !== slugs[i]) problems.push(`${where}: listed at position ${k}, expected ${slugs[i]} there`);
    if (got.author.username !== plan.users[want.author]!.username) problems.push(`${where}: author ${got.author.username}`);
    if ([...got.tagList].sort().join(',') !== want.tagList.join(','))
      problems.push(`${where}: tags ${got.tagList.join(',')}, planned ${want.tagList.join(',')}`);
    if (got.favoritesCount !== (favs.get(i) ?? 0)) problems.push(`${where}: ${got.favoritesCount} favorites, planned ${favs.get(i) ?? 0}`);
  }
  const tags = (expect2xx(await call(url, 'GET', '/api/tags'), 'tags') as { tags: string[] }).tags;
  if ([...tags].sort().join(',') !== [...plan.tags].sort().join(','))
    problems.push(`tags ${[...tags].sort().join(',')}, planned ${[...plan.tags].sort().join(',')}`);
  const reader = plan.tokenUsers[0];
  if (reader !== undefined) {
    const following = new Set(plan.follows.filter(([a]) => a === reader).map(([, b]) => plan.users[b]!.username));
    const token = (await loginTokens(url, { ...plan, tokenUsers: [reader] }, slugs))[0]!.token;
    for (const name of plan.users.map((u) => u.username)) {
      const p = (
        expect2xx(await call(url, 'GET', `/api/profiles/${q(name)}`, token), `profile ${name}`) as { profile: { following: boolean } }
      ).profile;
      if (p.following !== following.has(name))
        problems.push(`user ${reader} following ${name}: ${p.following}, planned ${following.has(name)}`);
    }
  }
  return problems.slice(0, 20);
}
