// The seeder: sizes, determinism, invariants the API relies on, and the command itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { slugify } from '../src/articles/slug.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { verifyPassword } from '../src/users/password.ts';
import { Client, createDatabase } from '../test/harness.ts';
import { createSeededApp, type SeededApp } from '../test/seeded.ts';
import { parseSeedArgs, seed, SEED_PASSWORD, SeedError, tableChecksums, type SeedOptions } from './seed.ts';

const SMALL: Partial<SeedOptions> = { users: 40, articles: 200, comments: 300, favorites: 400, follows: 150, tags: 20, seed: 7 };

/** A fresh migrated database with a pool; closed (and dropped) by the returned function. */
async function freshDatabase(): Promise<{ db: Pool; url: string; close(): Promise<void> }> {
  const database = await createDatabase();
  const db = createPool(database.url, { dbPoolMax: 2, dbAcquireTimeoutMs: 10_000 });
  return {
    db,
    url: database.url,
    close: async () => {
      await db.end();
      await database.drop();
    },
  };
}

async function count(db: Pool, table: string): Promise<number> {
  const res = await db.query<{ n: number }>(`select count(*)::int as n from ${table}`);
  return res.rows[0]!.n;
}

describe('a seeded database', () => {
  let t: SeededApp;
  before(async () => {
    t = await createSeededApp(SMALL);
  });
  after(() => t.close());

  test('has exactly the requested number of rows in every table', async () => {
    const expected = { users: 40, articles: 200, comments: 300, favorites: 400, follows: 150, tags: 20 };
    for (const [table, n] of Object.entries(expected)) assert.equal(await count(t.db, table), n, table);
    assert.equal(await count(t.db, 'article_tags'), t.summary.articleTags);
    assert.deepEqual(
      { users: t.summary.users, articles: t.summary.articles, comments: t.summary.comments, favorites: t.summary.favorites, follows: t.summary.follows, tags: t.summary.tags },
      expected,
    );
  });

  test('stores favorites_count equal to the favorites rows of each article', async () => {
    const res = await t.db.query<{ slug: string }>(
      `select a.slug from articles a
        where a.favorites_count <> (select count(*) from favorites f where f.article_id = a.id)`,
    );
    assert.deepEqual(res.rows, []);
    const total = await t.db.query<{ n: number }>('select sum(favorites_count)::int as n from articles');
    assert.equal(total.rows[0]!.n, 400);
  });

  test('gives duplicate titles distinct slugs derived from the title as the API does', async () => {
    const dupes = await t.db.query<{ title: string; slugs: string[] }>(
      `select title, array_agg(slug order by id) as slugs from articles group by title having count(*) > 1`,
    );
    assert.ok(dupes.rows.length > 0, 'the data set has duplicate titles on purpose');
    for (const { title, slugs } of dupes.rows) {
      assert.equal(new Set(slugs).size, slugs.length, `slugs of "${title}"`);
      // The earliest article keeps the plain slug; the others count up from -2.
      assert.equal(slugs[0], slugify(title));
      for (const s of slugs.slice(1)) assert.match(s, new RegExp(`^${RegExp.escape(slugify(title))}-\\d+$`));
    }
    const all = await t.db.query<{ title: string; slug: string }>('select title, slug from articles');
    for (const { title, slug } of all.rows) assert.ok(slug === slugify(title) || slug.startsWith(`${slugify(title)}-`), slug);
  });

  test('has unique usernames and case-insensitively unique emails', async () => {
    const res = await t.db.query<{ names: number; emails: number }>(
      'select count(distinct username)::int as names, count(distinct lower(email))::int as emails from users',
    );
    assert.deepEqual(res.rows[0], { names: 40, emails: 40 });
  });

  test('has no self-follows, at most five tags per article, and nothing before its cause or after the epoch', async () => {
    assert.equal(await count(t.db, 'follows where follower_id = followee_id'), 0);
    const perArticle = await t.db.query<{ n: number }>('select count(*)::int as n from article_tags group by article_id order by 1 desc limit 1');
    assert.ok(perArticle.rows[0]!.n <= 5);
    // Nothing happens before its author or article exists, nor after the data set's "now".
    const epoch = t.summary.epoch;
    assert.equal(await count(t.db, `articles a join users u on u.id = a.author_id where a.created_at < u.created_at or a.updated_at < a.created_at`), 0);
    assert.equal(await count(t.db, `comments c join articles a on a.id = c.article_id where c.created_at < a.created_at`), 0);
    for (const table of ['users', 'articles', 'comments', 'favorites', 'follows']) {
      assert.equal(await count(t.db, `${table} where created_at > '${epoch}'`), 0, table);
    }
  });

  test('concentrates articles, follows, favorites and comments on a few popular users and articles', async () => {
    // The top tenth of authors, followees and articles get far more than a tenth of the
    // attention (Zipf-like popularity); a uniform draw would give them about 0.1.
    const share = async (sql: string, total: number) => (await t.db.query<{ n: number }>(`select sum(n)::float as n from (${sql}) x`)).rows[0]!.n / total;
    const articles = await share('select count(*) as n from articles group by author_id order by 1 desc limit 4', 200);
    const follows = await share('select count(*) as n from follows group by followee_id order by 1 desc limit 4', 150);
    const favorites = await share('select favorites_count as n from articles order by 1 desc limit 20', 400);
    const comments = await share('select count(*) as n from comments group by article_id order by 1 desc limit 20', 300);
    assert.ok(articles > 0.3, `top authors' share of articles ${articles}`);
    assert.ok(follows > 0.3, `top followees' share of follows ${follows}`);
    assert.ok(favorites > 0.3, `top articles' share of favorites ${favorites}`);
    assert.ok(comments > 0.3, `top articles' share of comments ${comments}`);
  });

  test('gives every user one shared hash of the documented password', async () => {
    const res = await t.db.query<{ password_hash: string }>('select distinct password_hash from users');
    assert.equal(res.rows.length, 1);
    assert.equal(t.summary.password, SEED_PASSWORD);
    assert.ok(await verifyPassword(SEED_PASSWORD, res.rows[0]!.password_hash));
  });

  test('lets a seeded user log in through the API and read the feed of whom they follow', async () => {
    const api = new Client(t.app);
    const follower = await t.db.query<{ email: string; username: string; follows: number }>(
      `select u.email, u.username, count(*)::int as follows from users u join follows f on f.follower_id = u.id
        group by u.id order by 3 desc, u.id limit 1`,
    );
    const { email, username } = follower.rows[0]!;
    const login = await api.post('/api/users/login', { body: { user: { email, password: t.summary.password } } });
    assert.equal(login.status, 200, login.text);
    assert.equal(login.body.user.username, username);
    const feed = await api.get('/api/articles/feed', { token: login.body.user.token });
    assert.equal(feed.status, 200);
    assert.ok(feed.body.articlesCount > 0);
    assert.ok(feed.body.articles.every((a: any) => a.author.following === true));
  });

  test('leaves the identity sequences past the seeded ids, so the API can insert', async () => {
    const api = new Client(t.app);
    const user = await api.register();
    const article = await api.createArticle(user.token, { title: 'After the seed' });
    const res = await t.db.query<{ id: number }>('select id from articles where slug = $1', [article.slug]);
    assert.equal(res.rows[0]!.id, 201);
  });
});

describe('determinism', () => {
  test('two fresh databases seeded with the same flags hold identical rows', async () => {
    const [a, b] = await Promise.all([freshDatabase(), freshDatabase()]);
    try {
      const [sa, sb] = await Promise.all([seed(a.db, SMALL), seed(b.db, SMALL)]);
      assert.deepEqual(await tableChecksums(a.db), await tableChecksums(b.db));
      assert.equal(sa.checksum, sb.checksum);
      // Spot checks that the checksums cover what matters: names, slugs, tags.
      for (const sql of ['select username, email from users order by id', 'select slug from articles order by id', 'select name from tags order by id']) {
        assert.deepEqual((await a.db.query(sql)).rows, (await b.db.query(sql)).rows, sql);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('another seed gives other data, and --reset replaces it with the first again', async () => {
    const a = await freshDatabase();
    try {
      const first = await seed(a.db, SMALL);
      await assert.rejects(seed(a.db, SMALL), (err: unknown) => err instanceof SeedError && /--reset/.test(err.message));
      const other = await seed(a.db, { ...SMALL, seed: 8, reset: true });
      assert.notEqual(other.checksum, first.checksum);
      const again = await seed(a.db, { ...SMALL, reset: true });
      assert.equal(again.checksum, first.checksum);
      assert.equal(await count(a.db, 'users'), 40);
    } finally {
      await a.close();
    }
  });
});

describe('options', () => {
  test('default to the documented sizes, derived from users and articles', () => {
    assert.deepEqual(parseSeedArgs([]).options, {
      users: 1000, articles: 10_000, comments: 50_000, favorites: 20_000, tags: 100, follows: 10_000, seed: 1, reset: false,
    });
    const small = parseSeedArgs(['--users', '3', '--articles=10', '--seed', '42', '--reset']).options;
    assert.deepEqual(small, { users: 3, articles: 10, comments: 50, favorites: 20, tags: 100, follows: 6, seed: 42, reset: true });
  });

  test('reject unknown flags, non-numbers and impossible combinations', () => {
    for (const argv of [['--user', '3'], ['--users', '-1'], ['--users', 'many'], ['--articles', '5', '--users', '0'], ['--seed', '4294967296']]) {
      assert.throws(() => parseSeedArgs(argv), SeedError, argv.join(' '));
    }
  });

  test('cap favorites and follows at the pairs that exist', async () => {
    const a = await freshDatabase();
    try {
      const s = await seed(a.db, { users: 3, articles: 4, comments: 2, favorites: 100, follows: 100, tags: 2 });
      assert.equal(s.favorites, 12);
      assert.equal(s.follows, 6);
    } finally {
      await a.close();
    }
  });
});

describe('npm run seed', () => {
  const script = path.join(import.meta.dirname, 'seed.ts');
  function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [script, ...args], {
        env: { ...process.env, NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  test('prints a JSON summary, refuses a non-empty database with exit 1, and reseeds with --reset', async () => {
    const a = await freshDatabase();
    try {
      const args = ['--users', '5', '--articles', '12', '--json'];
      const first = await run(args, { DATABASE_URL: a.url });
      assert.equal(first.code, 0, first.stderr);
      const summary = JSON.parse(first.stdout);
      assert.equal(summary.articles, 12);
      assert.equal(summary.password, SEED_PASSWORD);
      assert.match(first.stderr, /seeded in \d+\.\ds/);

      const refused = await run(args, { DATABASE_URL: a.url });
      assert.equal(refused.code, 1);
      assert.equal(refused.stdout, '');
      assert.match(refused.stderr, /already has data; run with --reset/);

      const reset = await run([...args, '--reset'], { DATABASE_URL: a.url });
      assert.equal(reset.code, 0, reset.stderr);
      assert.equal(JSON.parse(reset.stdout).checksum, summary.checksum);
    } finally {
      await a.close();
    }
  });

  test('answers a bad flag with the usage and exit 2', async () => {
    const res = await run(['--users', 'lots'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--users must be a non-negative integer[\s\S]*usage: npm run seed/);
  });
});
