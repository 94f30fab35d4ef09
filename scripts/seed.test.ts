// The seeder: sizes, determinism, invariants the API relies on, and the command itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { slugify } from '../src/articles/slug.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { verifyPassword } from '../src/users/password.ts';
import { Client, createDatabase } from '../test/harness.ts';
import { createSeededApp, type SeededApp } from '../test/seeded.ts';
import { freePort } from '../src/db/embedded.ts';
import { USER_EXISTS_TTL_MS } from '../src/http/auth.ts';
import { createTestAppOn } from '../test/harness.ts';
import { startService } from '../test/service.ts';
import { generate } from './seed.data.ts';
import { NOTHING_OCCUPIED, place } from './seed.place.ts';
import { parseSeedArgs, resolveOptions, seed, SEED_PASSWORD, SeedError, tableChecksums, type SeedOptions } from './seed.ts';

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
      {
        users: t.summary.users,
        articles: t.summary.articles,
        comments: t.summary.comments,
        favorites: t.summary.favorites,
        follows: t.summary.follows,
        tags: t.summary.tags,
      },
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
    const perArticle = await t.db.query<{ n: number }>(
      'select count(*)::int as n from article_tags group by article_id order by 1 desc limit 1',
    );
    assert.ok(perArticle.rows[0]!.n <= 5);
    // Nothing happens before its author or article exists, nor after the data set's "now".
    const epoch = t.summary.epoch;
    assert.equal(
      await count(t.db, `articles a join users u on u.id = a.author_id where a.created_at < u.created_at or a.updated_at < a.created_at`),
      0,
    );
    assert.equal(await count(t.db, `comments c join articles a on a.id = c.article_id where c.created_at < a.created_at`), 0);
    for (const table of ['users', 'articles', 'comments', 'favorites', 'follows']) {
      assert.equal(await count(t.db, `${table} where created_at > '${epoch}'`), 0, table);
    }
  });

  test('concentrates articles, follows, favorites and comments on a few popular users and articles', async () => {
    // The top tenth of authors, followees and articles get far more than a tenth of the
    // attention (Zipf-like popularity); a uniform draw would give them about 0.1.
    const share = async (sql: string, total: number) =>
      (await t.db.query<{ n: number }>(`select sum(n)::float as n from (${sql}) x`)).rows[0]!.n / total;
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
      for (const sql of [
        'select username, email from users order by id',
        'select slug from articles order by id',
        'select name from tags order by id',
      ]) {
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

describe('adding to a database that has data', () => {
  test('keeps every row there, adds the data set after it, and suffixes names and slugs in use', async () => {
    const a = await freshDatabase();
    try {
      const generated = generate(resolveOptions(SMALL));
      const firstName = generated.users[0]!.username;
      const firstSlug = generated.articles[0]!.slug;
      // A user and an article made through the API first, with the names the seed will want.
      const app = await createTestAppOn(a.url);
      const api = new Client(app.app);
      const mine = await api.register({ username: firstName, email: `${firstName}@example.com` });
      const myArticle = await api.createArticle(mine.token, { title: generated.articles[0]!.title, tagList: [generated.tags[0]!] });
      assert.equal(myArticle.slug, firstSlug);
      const before = await tableChecksums(a.db);

      const summary = await seed(a.db, SMALL);

      assert.equal(await count(a.db, 'users'), 41);
      assert.equal(await count(a.db, 'articles'), 201);
      assert.equal(await count(a.db, 'tags'), 20, "the tag in use is the seed's tag of that name, not a second one");
      assert.equal(summary.users, 40);
      const me = await a.db.query('select id, email from users where username = $1', [firstName]);
      assert.deepEqual(me.rows, [{ id: 1, email: `${firstName}@example.com` }], 'the existing user is untouched');
      assert.equal(
        await count(a.db, `users where username = '${firstName}2' and id = 2`),
        1,
        'the seeded one is suffixed, with the next id',
      );
      assert.equal(await count(a.db, `articles where slug = '${firstSlug}-2' and id = 2`), 1);
      assert.equal(await count(a.db, 'article_tags where article_id = 1'), 1);
      // Everyone still logs in and works: the API user with their token, seeded users too.
      assert.equal((await api.get('/api/user', { token: mine.token })).status, 200);
      const seeded = await api.post('/api/users/login', {
        body: { user: { email: summary.sampleUsers[0]!.email, password: SEED_PASSWORD } },
      });
      assert.equal(seeded.status, 200, seeded.text);
      assert.equal(seeded.body.user.username, `${firstName}2`);
      // The API's next insert goes after the seeded ids.
      const later = await api.createArticle(mine.token, { title: 'After the seed' });
      assert.equal((await a.db.query('select id from articles where slug = $1', [later.slug])).rows[0].id, 202);
      await app.close();
      assert.notDeepEqual(await tableChecksums(a.db), before);
    } finally {
      await a.close();
    }
  });

  test('seeding twice with the same flags adds the data twice, unique and the same on any database', async () => {
    const [a, b] = await Promise.all([freshDatabase(), freshDatabase()]);
    try {
      for (const db of [a.db, b.db]) {
        await seed(db, SMALL);
        await seed(db, SMALL);
      }
      assert.equal(await count(a.db, 'users'), 80);
      assert.equal(await count(a.db, 'articles'), 400);
      assert.equal(await count(a.db, 'comments'), 600);
      assert.equal(await count(a.db, 'tags'), 20);
      const unique = await a.db.query('select count(distinct username)::int as u, count(distinct lower(email))::int as e from users');
      assert.deepEqual(unique.rows[0], { u: 80, e: 80 });
      assert.equal(
        await count(a.db, 'articles where favorites_count <> (select count(*) from favorites f where f.article_id = articles.id)'),
        0,
      );
      assert.deepEqual(await tableChecksums(a.db), await tableChecksums(b.db));
      // Every user's token key is their own (the column's random default, per row).
      assert.equal(await count(a.db, '(select distinct token_key from users) k'), 80);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('place() moves ids past the occupied ones and suffixes only names in use', () => {
    const d = generate(resolveOptions({ users: 3, articles: 2, comments: 1, favorites: 1, follows: 1, tags: 2, seed: 3 }));
    assert.deepEqual(place(d, NOTHING_OCCUPIED), d);
    const taken = d.users[1]!;
    const placed = place(d, {
      base: { users: 10, articles: 20, comments: 30, tags: 40 },
      usernames: new Set([taken.username, `${taken.username}2`]),
      emails: new Set(),
      slugs: new Set([d.articles[0]!.slug]),
      tags: new Map([[d.tags[1]!, 7]]),
    });
    assert.deepEqual(
      placed.users.map((u) => u.id),
      [11, 12, 13],
    );
    assert.equal(placed.users[1]!.username, `${taken.username}3`);
    assert.match(placed.users[1]!.email, new RegExp(`^${RegExp.escape(taken.username)}3@`));
    assert.equal(placed.users[0]!.username, d.users[0]!.username);
    // The first free suffix: neither in use nor another generated slug.
    assert.match(placed.articles[0]!.slug, new RegExp(`^${RegExp.escape(d.articles[0]!.slug)}-\\d+$`));
    assert.ok(!d.articles.some((a) => a.slug === placed.articles[0]!.slug));
    assert.equal(placed.articles[1]!.slug, d.articles[1]!.slug);
    assert.deepEqual(
      placed.articles.map((a) => a.id),
      [21, 22],
    );
    assert.ok(placed.articles.every((a) => a.authorId > 10 && a.tagIds.every((t) => t === 41 || t === 7)));
    assert.equal(placed.comments[0]!.id, 31);
  });
});

describe('options', () => {
  test('default to the documented sizes, derived from users and articles', () => {
    assert.deepEqual(parseSeedArgs([]).options, {
      users: 1000,
      articles: 10_000,
      comments: 50_000,
      favorites: 20_000,
      tags: 100,
      follows: 10_000,
      seed: 1,
      reset: false,
    });
    const small = parseSeedArgs(['--users', '3', '--articles=10', '--seed', '42', '--reset']).options;
    assert.deepEqual(small, { users: 3, articles: 10, comments: 50, favorites: 20, tags: 100, follows: 6, seed: 42, reset: true });
  });

  test('reject unknown flags, non-numbers and impossible combinations', () => {
    for (const argv of [
      ['--user', '3'],
      ['--users', '-1'],
      ['--users', 'many'],
      ['--articles', '5', '--users', '0'],
      ['--seed', '4294967296'],
    ]) {
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

  test('prints a JSON summary, adds to a database that has data, and reseeds with --reset', async () => {
    const a = await freshDatabase();
    try {
      const args = ['--users', '5', '--articles', '12', '--json'];
      const first = await run(args, { DATABASE_URL: a.url });
      assert.equal(first.code, 0, first.stderr);
      const summary = JSON.parse(first.stdout);
      assert.equal(summary.articles, 12);
      assert.equal(summary.password, SEED_PASSWORD);
      assert.match(first.stderr, /seeded in \d+\.\ds/);

      const added = await run(args, { DATABASE_URL: a.url });
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stderr, /adding to the data there/);
      assert.equal(await count(a.db, 'articles'), 24);

      const reset = await run([...args, '--reset'], { DATABASE_URL: a.url });
      assert.equal(reset.code, 0, reset.stderr);
      assert.equal(JSON.parse(reset.stdout).checksum, summary.checksum);
      assert.equal(await count(a.db, 'articles'), 12);
    } finally {
      await a.close();
    }
  });

  test('while `npm start` runs on the embedded PostgreSQL: seeds into it, the service serves the data at once, and --reset revokes old tokens', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'conduit-seed-running-'));
    await chmod(dir, 0o755);
    const env = { DATABASE_URL: '', DATA_DIR: path.join(dir, 'data'), EMBEDDED_PG_PORT: String(await freePort()) };
    const service = await startService({ ...env, NODE_ENV: 'development' }, 60_000);
    try {
      // Use the API first, as a new user does: an account, and a list the cache now holds empty.
      const reg = await fetch(`${service.url}/api/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: { username: 'first_hour', email: 'first@example.com', password: 'password123' } }),
      });
      assert.equal(reg.status, 201);
      const { user } = (await reg.json()) as { user: { token: string } };
      const articlesCount = async () =>
        ((await (await fetch(`${service.url}/api/articles`)).json()) as { articlesCount: number }).articlesCount;
      assert.equal(await articlesCount(), 0);

      const seeded = await run(['--users', '5', '--articles', '12', '--json'], env);
      assert.equal(seeded.code, 0, seeded.stderr);
      assert.match(seeded.stderr, /using the embedded PostgreSQL already running/);
      assert.doesNotMatch(seeded.stderr, /starting embedded PostgreSQL/);
      // The cached empty list is dropped by the seed's message, long before CACHE_TTL_MS.
      assert.equal(await articlesCount(), 12);
      const me = await fetch(`${service.url}/api/user`, { headers: { authorization: `Token ${user.token}` } });
      assert.equal(me.status, 200, 'the user made before the seed is still there');

      const reset = await run(['--users', '5', '--articles', '3', '--reset'], env);
      assert.equal(reset.code, 0, reset.stderr);
      assert.equal(await articlesCount(), 3);
      // User id 1 is a seeded user now: the old token names a row that is gone.
      await new Promise((r) => setTimeout(r, USER_EXISTS_TTL_MS + 100));
      const after = await fetch(`${service.url}/api/user`, { headers: { authorization: `Token ${user.token}` } });
      assert.equal(after.status, 401);

      assert.equal(await service.stop('SIGINT'), 0);
    } finally {
      await service.stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('answers a bad flag with the usage and exit 2', async () => {
    const res = await run(['--users', 'lots'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--users must be a non-negative integer[\s\S]*usage: npm run seed/);
  });
});
