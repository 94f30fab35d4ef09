// The indexes in migrations/ serve the queries the API sends. On a seeded database (enough rows
// that the planner prefers an index honestly, no `enable_seqscan = off`), each request below
// runs through the real app; every statement it sends is captured and EXPLAINed with its own
// parameters, and the plan must use the expected indexes and scan no large table sequentially.
// The statements are prepared once per connection and planned once, generically (pool.ts):
// each prepared statement is checked again under the plan a connection keeps once it has run the
// statement repeatedly, against its indexes and against the blocks the plan made for its values
// reads.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { listArticlesQuery } from '../articles/articles.listing.ts';
import { Client, type Res } from '../../test/harness.ts';
import { createSeededApp, type SeededApp } from '../../test/seeded.ts';
import pg from 'pg';
import type { Pool } from './pool.ts';

// The tables that grow with use. `tags` is not here: a hundred rows fit in one page, and a
// sequential scan of one page is the right plan.
const LARGE_TABLES = new Set(['users', 'articles', 'article_tags', 'favorites', 'comments', 'follows']);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function* walk(node: PlanNode): Generator<PlanNode> {
  yield node;
  for (const child of node.Plans ?? []) yield* walk(child);
}

function render(node: PlanNode, depth = 0): string {
  const on = node['Relation Name'] ? ` on ${node['Relation Name']}` : '';
  const using = node['Index Name'] ? ` using ${node['Index Name']}` : '';
  return [`${'  '.repeat(depth)}${node['Node Type']}${on}${using}`, ...(node.Plans ?? []).map((c) => render(c, depth + 1))].join('\n');
}

interface Statement {
  text: string;
  values: unknown[];
}

/** Whether the pool prepares this statement rather than planning it per call: it has parameters (pool.ts). */
function isPrepared(s: Statement): boolean {
  return s.values.length > 0;
}

/**
 * Runs `work` while recording the statements sent through `pool.query`. The statements still run
 * (against the real database): this only listens, so the test sees exactly the SQL the app sends.
 */
async function recordQueries<T>(pool: Pool, work: () => Promise<T>): Promise<{ result: T; statements: Statement[] }> {
  const statements: Statement[] = [];
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const own = Object.getOwnPropertyDescriptor(pool, 'query');
  pool.query = ((...args: unknown[]) => {
    const [q, v] = args;
    if (typeof q === 'string') statements.push({ text: q, values: Array.isArray(v) ? v : [] });
    return query(...args);
  }) as Pool['query'];
  try {
    return { result: await work(), statements };
  } finally {
    if (own) Object.defineProperty(pool, 'query', own);
    else delete (pool as { query?: unknown }).query;
  }
}

async function explain(pool: Pool, s: Statement): Promise<PlanNode> {
  const res = await pool.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`explain (format json) ${s.text}`, s.values);
  return res.rows[0]!['QUERY PLAN'][0].Plan;
}

function literal(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return pg.escapeLiteral(`{${v.map((x) => JSON.stringify(x)).join(',')}}`);
  if (typeof v === 'string') return pg.escapeLiteral(v);
  throw new Error(`no literal for ${typeof v}`);
}

/** Executions after which PostgreSQL chooses between custom plans and a generic one (plancache.c). */
const PLAN_CACHE_EXECUTIONS = 5;

type AnalyzeRow = { 'QUERY PLAN': [{ Plan: PlanNode & Record<string, unknown> }] };

interface Analyzed {
  plan: PlanNode;
  /** Shared buffers hit or read: the plan's work, as a count that does not drift with the machine. */
  blocks: number;
}

function analyzed(row: AnalyzeRow): Analyzed {
  const plan = row['QUERY PLAN'][0].Plan;
  return { plan, blocks: Number(plan['Shared Hit Blocks'] ?? 0) + Number(plan['Shared Read Blocks'] ?? 0) };
}

/**
 * The plan a pooled connection keeps for this statement and the one made for its values: the
 * statement runs as the app sends it (prepared under its name) more times than the plan cache
 * waits, then the next EXECUTE is analyzed, and the same text with the same values planned afresh.
 */
async function keptAndCustom(pool: Pool, s: Statement): Promise<{ kept: Analyzed; custom: Analyzed }> {
  const client = await pool.connect();
  try {
    for (let i = 0; i <= PLAN_CACHE_EXECUTIONS; i++) await client.query(s.text, s.values);
    const prepared = await client.query<{ name: string }>('select name from pg_prepared_statements where statement = $1', [s.text]);
    const name = prepared.rows[0]?.name;
    assert.ok(name, 'the statement is not prepared on the connection');
    const options = '(analyze, buffers, format json)';
    const kept = await client.query<AnalyzeRow>(
      `explain ${options} execute ${pg.escapeIdentifier(name)}(${s.values.map(literal).join(', ')})`,
    );
    const custom = await client.query<AnalyzeRow>(`explain ${options} ${s.text}`, s.values);
    return { kept: analyzed(kept.rows[0]!), custom: analyzed(custom.rows[0]!) };
  } finally {
    client.release();
  }
}

/** EXPLAINs every statement a request sends; asserts the request succeeded and sent some SQL. */
async function plansOf(pool: Pool, request: () => Promise<Res>): Promise<{ plans: PlanNode[]; statements: Statement[] }> {
  const { result, statements } = await recordQueries(pool, request);
  assert.ok(result.status < 300, `request failed: ${result.status} ${result.text}`);
  assert.ok(statements.length > 0, 'the request sent no SQL through the pool (served from a cache, or from a pooled client?)');
  return { plans: await Promise.all(statements.map((s) => explain(pool, s))), statements };
}

function assertIndexed(plans: PlanNode[], indexes: readonly string[]): void {
  const shown = plans.map((p) => render(p)).join('\n---\n');
  const nodes = plans.flatMap((p) => [...walk(p)]);
  const seqScans = nodes.filter((n) => n['Node Type'] === 'Seq Scan' && LARGE_TABLES.has(n['Relation Name'] ?? ''));
  assert.deepEqual(
    seqScans.map((n) => n['Relation Name']),
    [],
    `sequential scan of a large table:\n${shown}`,
  );
  const used = new Set(nodes.map((n) => n['Index Name']).filter(Boolean));
  for (const index of indexes) assert.ok(used.has(index), `${index} is not used:\n${shown}`);
}

// 3000 users and 6000 articles, with the seeder's default ratios (5 comments and 2 favorites per
// article, 10 follows per user). Measured: with 1000 users PostgreSQL rightly reads the whole users
// table (31 pages) for the feed's author join instead of probing it a few dozen times; from about
// 2000 users on the index wins, and 3000 leaves a margin.
const SIZE = { users: 3000, articles: 6000, tags: 100, seed: 1 };

interface Fixture {
  /** Follows the most people: the largest feed, and `following` true on many rows. */
  token: string;
  /** Follows as many people as the median user. */
  typicalToken: string;
  popularTag: string;
  rareTag: string;
  prolificAuthor: string;
  casualAuthor: string;
  favoriter: string;
  busiestSlug: string;
  email: string;
}

let t: SeededApp;
let api: Client;
let f: Fixture;

before(async () => {
  // Cache off: every request must reach the database, so each query it sends can be explained.
  t = await createSeededApp(SIZE, { CACHE: 'off' });
  api = new Client(t.app);
  const one = async <T>(sql: string) => (await t.db.query<T & object>(sql)).rows[0]!;
  const login = async (email: string) => {
    const res = await api.post('/api/users/login', { body: { user: { email, password: t.summary.password } } });
    assert.equal(res.status, 200, res.text);
    return res.body.user.token as string;
  };
  const tagsByUse = `select t.name from tags t join article_tags at on at.tag_id = t.id group by t.id order by count(*) desc, t.id`;
  const authorsByOutput = `select u.username from users u join articles a on a.author_id = u.id group by u.id order by count(*) desc, u.id`;
  const followersByFollows = `select u.email from users u join follows f on f.follower_id = u.id group by u.id order by count(*) desc, u.id`;
  const viewer = await one<{ email: string }>(`${followersByFollows} limit 1`);
  const typical = await one<{ email: string }>(`${followersByFollows} offset ${Math.floor(SIZE.users / 2)} limit 1`);
  f = {
    token: await login(viewer.email),
    typicalToken: await login(typical.email),
    popularTag: (await one<{ name: string }>(`${tagsByUse} limit 1`)).name,
    rareTag: (await one<{ name: string }>(`${tagsByUse} offset 60 limit 1`)).name,
    prolificAuthor: (await one<{ username: string }>(`${authorsByOutput} limit 1`)).username,
    casualAuthor: (await one<{ username: string }>(`${authorsByOutput} offset 200 limit 1`)).username,
    favoriter: (
      await one<{ username: string }>(
        `select u.username from users u join favorites f on f.user_id = u.id group by u.id order by count(*) desc, u.id limit 1`,
      )
    ).username,
    busiestSlug: (
      await one<{ slug: string }>(
        `select a.slug from articles a join comments c on c.article_id = a.id group by a.id order by count(*) desc, a.id limit 1`,
      )
    ).slug,
    email: viewer.email,
  };
});
after(() => t.close());

describe('the list, feed and filter queries use the indexes', () => {
  const cases: [name: string, indexes: string[], request: () => Promise<Res>][] = [
    ['the global list, anonymous', ['articles_created_idx'], () => api.get('/api/articles')],
    [
      'the global list, signed in',
      ['articles_created_idx', 'favorites_pkey', 'follows_pkey'],
      () => api.get('/api/articles', { token: f.token }),
    ],
    // A fifth of the way down. Much deeper, reading the whole table and sorting it is cheaper than
    // walking most of the index, and the planner says so.
    [
      'a deep page of the global list',
      ['articles_created_idx'],
      () => api.get(`/api/articles?limit=20&offset=${SIZE.articles / 5}`, { token: f.token }),
    ],
    [
      'the most used tag',
      ['article_tags_tag_idx'],
      () => api.get(`/api/articles?tag=${encodeURIComponent(f.popularTag)}`, { token: f.token }),
    ],
    [
      'a rarely used tag',
      ['article_tags_tag_idx'],
      () => api.get(`/api/articles?tag=${encodeURIComponent(f.rareTag)}`, { token: f.token }),
    ],
    [
      'the most prolific author',
      ['users_username_key', 'articles_author_created_idx'],
      () => api.get(`/api/articles?author=${encodeURIComponent(f.prolificAuthor)}`, { token: f.token }),
    ],
    [
      'a casual author',
      ['users_username_key', 'articles_author_created_idx'],
      () => api.get(`/api/articles?author=${encodeURIComponent(f.casualAuthor)}`, { token: f.token }),
    ],
    [
      'favorited by the keenest user',
      ['users_username_key', 'favorites_pkey'],
      () => api.get(`/api/articles?favorited=${encodeURIComponent(f.favoriter)}`, { token: f.token }),
    ],
    [
      'tag and author together',
      ['users_username_key', 'articles_author_created_idx'],
      () =>
        api.get(`/api/articles?tag=${encodeURIComponent(f.popularTag)}&author=${encodeURIComponent(f.prolificAuthor)}`, { token: f.token }),
    ],
    [
      'the feed of the user who follows the most',
      ['follows_pkey', 'articles_author_created_idx'],
      () => api.get('/api/articles/feed', { token: f.token }),
    ],
    [
      'the feed of a user who follows a median number of people',
      ['follows_pkey', 'articles_author_created_idx'],
      () => api.get('/api/articles/feed', { token: f.typicalToken }),
    ],
    [
      'a deep page of the feed of the user who follows the most',
      ['follows_pkey', 'articles_author_created_idx'],
      () => api.get('/api/articles/feed?limit=20&offset=100', { token: f.token }),
    ],
    [
      'an article by slug',
      ['articles_slug_key', 'users_pkey'],
      () => api.get(`/api/articles/${encodeURIComponent(f.busiestSlug)}`, { token: f.token }),
    ],
    [
      'the comments of the most commented article',
      ['articles_slug_key', 'comments_article_idx'],
      () => api.get(`/api/articles/${encodeURIComponent(f.busiestSlug)}/comments`, { token: f.token }),
    ],
    [
      'a profile by username',
      ['users_username_key'],
      () => api.get(`/api/profiles/${encodeURIComponent(f.prolificAuthor)}`, { token: f.token }),
    ],
    [
      'login by email, in any case',
      ['users_email_key_nf'],
      () => api.post('/api/users/login', { body: { user: { email: f.email.toUpperCase(), password: t.summary.password } } }),
    ],
  ];
  for (const [name, indexes, request] of cases) {
    test(`${name}: ${indexes.join(', ')}, and no sequential scan of a large table`, async () => {
      const { plans } = await plansOf(t.db, request);
      assertIndexed(plans, indexes);
    });
    test(`${name}, prepared and run repeatedly: the plan kept uses the same indexes and reads no more than the plan for its values`, async () => {
      const { statements } = await plansOf(t.db, request);
      for (const s of statements.filter(isPrepared)) {
        const { kept, custom } = await keptAndCustom(t.db, s);
        assertIndexed(
          [kept.plan],
          indexes.filter((i) => [...walk(custom.plan)].some((n) => n['Index Name'] === i)),
        );
        // The same plan reads the same blocks; a little room for an equivalent join order.
        assert.ok(
          kept.blocks <= custom.blocks * 1.25 + 8,
          `the plan kept reads ${kept.blocks} blocks, the plan for these values ${custom.blocks}:\n${render(kept.plan)}\n---\n${render(custom.plan)}`,
        );
      }
    });
  }

  test("the feed is prepared, reads each followed author's newest articles from the index alone, and only the page's rows whole", async () => {
    const { result, statements } = await recordQueries(t.db, () => api.get('/api/articles/feed', { token: f.token }));
    assert.equal(result.status, 200, result.text);
    // The page with its count (and, once a second, the check that the viewer still exists).
    const feed = statements.filter((s) => s.text.includes('c.total'));
    assert.equal(feed.length, 1);
    assert.ok(isPrepared(feed[0]!), 'the feed is not prepared');
    const { kept } = await keptAndCustom(t.db, feed[0]!);
    const nodes = [...walk(kept.plan)] as (PlanNode & { 'Actual Loops': number; 'Actual Rows': number })[];
    const perAuthor = nodes.filter((n) => n['Index Name'] === 'articles_author_created_idx');
    assert.ok(perAuthor.length > 0, render(kept.plan));
    assert.ok(
      perAuthor.every((n) => n['Node Type'] === 'Index Only Scan'),
      `a followed author's articles are read from the table:\n${render(kept.plan)}`,
    );
    // Read whole: the page's rows, by their key, once each.
    const whole = nodes.filter((n) => n['Relation Name'] === 'articles' && n['Node Type'] !== 'Index Only Scan');
    assert.deepEqual(
      whole.map((n) => [n['Index Name'], n['Actual Loops'] * n['Actual Rows']]),
      [['articles_pkey', result.body.articles.length]],
      render(kept.plan),
    );
    assert.ok(result.body.articles.every((a: { author: { following: boolean } }) => a.author.following));
  });

  test('the list endpoint sends exactly the SQL of listArticlesQuery', async () => {
    const { statements } = await recordQueries(t.db, () => api.get(`/api/articles?tag=${encodeURIComponent(f.popularTag)}&limit=5`));
    const expected = listArticlesQuery({ tag: f.popularTag, limit: 5, offset: 0 }, null);
    assert.deepEqual(statements, [expected]);
  });
});
