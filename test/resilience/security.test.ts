// The security matrix (issue #9): every write endpoint attempted on someone else's resources
// (BOLA), every kind of bad token on every authenticated endpoint, mass assignment on every write
// body, SQL injection payloads in every path, query and body string, no internals in any error
// body, login brute force under the rate limit, and user enumeration by login timing. All of it
// against the real app and a real PostgreSQL; the rate limit over a real socket (it keys on the
// client address).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { setImmediate } from 'node:timers/promises';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createSigner } from 'fast-jwt';
import { USER_EXISTS_TTL_MS } from '../../src/http/auth.ts';
import { usernameSkeleton } from '../../src/lib/identity.ts';
import { Client, createTestApp, TEST_JWT_SECRET, type Res, type RequestOptions, type TestApp } from '../harness.ts';
import { median } from '../../bench/histogram.ts';
import { json, listen, request, sleep, type WireResponse } from '../http/socket.ts';
import { throughServer } from '../inject.ts';
import { parsePrometheus } from '../prometheus.ts';

// ---------------------------------------------------------------------------------------------
// No leaks: every response of this file goes through `noLeak`. An error body is the contract's
// `{"errors":…}` and nothing else: no stack frame, source path, SQL text or PostgreSQL code.
// The payloads below are chosen so that none of them contains these patterns itself (a body
// that reflects stored input verbatim must not trip the check).

const LEAKS: [string, RegExp][] = [
  ['a stack frame', /\bat \S+ \(|\n\s+at \S|\bat (?:async )?(?:file:|node:|\/)/],
  ['a source path', /\/src\/|\.ts:\d+|file:\/\//],
  ['node_modules', /node_modules/],
  ['SQL text', /\bselect\s|\binsert\s|\bupdate \w+ set\b|\bdelete from\b|syntax error|\bSQLSTATE\b/i],
  ['a PostgreSQL message', /violates|duplicate key|relation "|column "|invalid input syntax|unterminated quoted/i],
  [
    'a PostgreSQL error code',
    /"code"\s*:|\b(?:22021|22P02|23502|23503|23505|23514|25P02|40001|40P01|42601|42703|42P01|53300|57014|57P01|08006)\b/,
  ],
];

let leakChecks = 0;
function noLeak(text: string, what: string): void {
  for (const [name, re] of LEAKS) assert.doesNotMatch(text, re, `${what}: ${name} in ${text.slice(0, 400)}`);
  leakChecks++;
}

/** An error response: the status, and the contract's shape `{"errors":{"<key>":["<message>"]}}`. */
function assertError(res: Res, status: number | number[], what: string): void {
  const allowed = Array.isArray(status) ? status : [status];
  assert.ok(allowed.includes(res.status), `${what}: status ${res.status} (wanted ${allowed.join(' or ')}): ${res.text.slice(0, 300)}`);
  assert.equal(typeof res.body, 'object', `${what}: body ${res.text.slice(0, 300)}`);
  assert.deepEqual(Object.keys(res.body), ['errors'], `${what}: ${res.text.slice(0, 300)}`);
  const entries = Object.entries(res.body.errors as Record<string, unknown>);
  assert.ok(entries.length > 0, `${what}: empty errors`);
  for (const [key, messages] of entries) {
    assert.ok(Array.isArray(messages) && messages.length > 0 && messages.every((m) => typeof m === 'string'), `${what}: errors.${key}`);
  }
}

function assertWireError(res: WireResponse, status: number, what: string): any {
  const text = res.body.toString('utf8');
  noLeak(text, what);
  assert.equal(res.status, status, `${what}: ${text}`);
  const body = json(res);
  assert.deepEqual(Object.keys(body), ['errors'], `${what}: ${text}`);
  return body;
}

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

// ---------------------------------------------------------------------------------------------
// One app for everything but the rate limit. A and B are the two users of the BOLA matrix; C is a
// third one that A follows and whose article A favorited (private to A: B must never see it).

let t: TestApp;
let api: Client;

async function call(method: string, url: string, opts: RequestOptions = {}): Promise<Res> {
  const res = await api.request(method, url, opts);
  noLeak(res.text, `${method} ${url}`);
  return res;
}

type User = Awaited<ReturnType<Client['register']>> & { id: number };
let A: User;
let B: User;
let C: User;
let aSlug: string;
let bSlug: string;
let cSlug: string;
let aComment: number; // A's comment on A's article
let aCommentOnB: number; // A's comment on B's article
let bComment: number; // B's comment on B's article

async function userId(username: string): Promise<number> {
  const res = await t.db.query<{ id: string }>('select id from users where username = $1', [username]);
  return Number(res.rows[0]!.id);
}

async function registerUser(): Promise<User> {
  const u = await api.register();
  return { ...u, id: await userId(u.username) };
}

async function comment(token: string, slug: string, body: string): Promise<number> {
  const res = await call('POST', `/api/articles/${slug}/comments`, { token, body: { comment: { body } } });
  assert.equal(res.status, 201, res.text);
  return res.body.comment.id as number;
}

/** Row counts of every table of the schema, and the list of tables itself. */
async function tableCounts(): Promise<Record<string, number>> {
  const tables = await t.db.query<{ tablename: string }>(`select tablename from pg_tables where schemaname = 'public' order by 1`);
  const counts: Record<string, number> = {};
  for (const { tablename } of tables.rows) {
    const res = await t.db.query<{ n: number }>(`select count(*)::int as n from "${tablename}"`);
    counts[tablename] = res.rows[0]!.n;
  }
  return counts;
}

before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
  [A, B, C] = [await registerUser(), await registerUser(), await registerUser()];
  aSlug = (await api.createArticle(A.token, { title: 'A private thoughts', tagList: ['bola-a'] })).slug;
  bSlug = (await api.createArticle(B.token, { title: 'B public thoughts', tagList: ['bola-b'] })).slug;
  cSlug = (await api.createArticle(C.token, { title: 'C followed thoughts' })).slug;
  aComment = await comment(A.token, aSlug, 'A on A');
  aCommentOnB = await comment(A.token, bSlug, 'A on B');
  bComment = await comment(B.token, bSlug, 'B on B');
  assert.equal((await call('POST', `/api/profiles/${C.username}/follow`, { token: A.token })).status, 200);
  assert.equal((await call('POST', `/api/articles/${cSlug}/favorite`, { token: A.token })).status, 200);
  assert.equal((await call('POST', `/api/articles/${bSlug}/favorite`, { token: A.token })).status, 200);
});
after(() => t.close());

/** Everything of A's in the database: user row, articles, tags, comments, favorites, follows. */
async function snapshotOf(id: number) {
  const rows = async (sql: string) => (await t.db.query(sql, [id])).rows;
  return {
    user: await rows('select id, username, email, password_hash, bio, image, created_at, updated_at from users where id = $1'),
    articles: await rows(
      'select id, slug, title, description, body, author_id, favorites_count, created_at, updated_at from articles where author_id = $1 order by id',
    ),
    tags: await rows(
      'select at.article_id, t.name from article_tags at join tags t on t.id = at.tag_id join articles a on a.id = at.article_id where a.author_id = $1 order by 1, 2',
    ),
    comments: await rows('select id, article_id, author_id, body, created_at, updated_at from comments where author_id = $1 order by id'),
    favorites: await rows('select user_id, article_id from favorites where user_id = $1 order by 2'),
    follows: await rows('select follower_id, followee_id from follows where follower_id = $1 order by 2'),
  };
}

/** What anyone can read of A's: the article, its comments, the profile (anonymous). */
async function publicViewOfA() {
  const [article, comments, profile] = await Promise.all([
    call('GET', `/api/articles/${aSlug}`),
    call('GET', `/api/articles/${aSlug}/comments`),
    call('GET', `/api/profiles/${A.username}`),
  ]);
  return { article: article.body, comments: comments.body, profile: profile.body };
}

// ---------------------------------------------------------------------------------------------

describe("BOLA: B acting on A's resources", () => {
  test("every write on A's article, comments and account is refused in the error shape and changes nothing of A's", async (ctx) => {
    const before = await snapshotOf(A.id);
    const publicBefore = await publicViewOfA();
    const attempts: [string, string, RequestOptions, number, object][] = [
      [
        'PUT',
        `/api/articles/${aSlug}`,
        { body: { article: { title: 'pwned', description: 'pwned', body: 'pwned', tagList: ['pwned'] } } },
        403,
        { article: ['forbidden'] },
      ],
      ['PUT', `/api/articles/${aSlug}`, { body: { article: { body: 'pwned' } } }, 403, { article: ['forbidden'] }],
      ['PUT', `/api/articles/${aSlug}`, { body: { article: { tagList: [] } } }, 403, { article: ['forbidden'] }],
      ['DELETE', `/api/articles/${aSlug}`, {}, 403, { article: ['forbidden'] }],
      ['DELETE', `/api/articles/${aSlug}/comments/${aComment}`, {}, 403, { comment: ['forbidden'] }],
      // B owns the article, not the comment: owning the article gives no right over others' comments.
      ['DELETE', `/api/articles/${bSlug}/comments/${aCommentOnB}`, {}, 403, { comment: ['forbidden'] }],
      // A's comment addressed through B's own article: the comment is not there (no IDOR by id).
      ['DELETE', `/api/articles/${bSlug}/comments/${aComment}`, {}, 404, { comment: ['not found'] }],
      // The comment id is checked against the article: B's comment id on A's article is not found either.
      ['DELETE', `/api/articles/${aSlug}/comments/${bComment}`, {}, 404, { comment: ['not found'] }],
      // PUT /user acts on the caller only: A's email and username are "taken", never taken over.
      ['PUT', '/api/user', { body: { user: { email: A.email } } }, 409, { email: ['has already been taken'] }],
      ['PUT', '/api/user', { body: { user: { username: A.username } } }, 409, { username: ['has already been taken'] }],
    ];
    for (const [method, url, opts, status, errors] of attempts) {
      const res = await call(method, url, { ...opts, token: B.token });
      assertError(res, status, `${method} ${url}`);
      assert.deepEqual(res.body, { errors }, `${method} ${url}`);
    }
    // B's own comment on B's article is B's to delete: the refusals above are about ownership.
    assert.equal((await call('DELETE', `/api/articles/${bSlug}/comments/${bComment}`, { token: B.token })).status, 204);

    // PUT /user with A's id in the body changes B, never A.
    const me = await call('PUT', '/api/user', { token: B.token, body: { user: { bio: 'B bio', id: A.id, username: `${B.username}x` } } });
    assert.equal(me.status, 200);
    assert.equal(me.body.user.username, `${B.username}x`);
    assert.equal(me.body.user.email, B.email);
    B = { ...B, username: `${B.username}x`, token: me.body.user.token };
    assert.equal((await t.db.query('select bio from users where id = $1', [B.id])).rows[0].bio, 'B bio');

    assert.deepEqual(await snapshotOf(A.id), before, "A's rows after the attempts");
    assert.deepEqual(await publicViewOfA(), publicBefore, "A's public view after the attempts");
    ctx.diagnostic(
      `BOLA: ${attempts.length + 1} write attempts by B on A's resources refused or confined to B; A's rows and public view unchanged`,
    );
  });

  test("favorite and follow act as the caller: B's calls never add or remove A's favorites and follows", async (ctx) => {
    const before = await snapshotOf(A.id);
    const count = async (sql: string, params: unknown[]) => (await t.db.query<{ n: number }>(sql, params)).rows[0]!.n;
    const fav = (user: number, slug: string) =>
      count('select count(*)::int as n from favorites f join articles a on a.id = f.article_id where f.user_id = $1 and a.slug = $2', [
        user,
        slug,
      ]);
    const follows = (a: number, b: number) =>
      count('select count(*)::int as n from follows where follower_id = $1 and followee_id = $2', [a, b]);

    // B unfavorites the articles A favorited and unfollows whom A follows: B's state, not A's.
    for (const slug of [bSlug, cSlug]) {
      const res = await call('DELETE', `/api/articles/${slug}/favorite`, { token: B.token });
      assert.equal(res.status, 200);
      assert.equal(res.body.article.favorited, false);
      assert.equal(res.body.article.favoritesCount, 1, "A's favorite still counts");
    }
    const unfollow = await call('DELETE', `/api/profiles/${C.username}/follow`, { token: B.token });
    assert.equal(unfollow.status, 200);
    assert.equal(unfollow.body.profile.following, false);

    // B favorites A's article and follows A: rows for B, not for A.
    const favA = await call('POST', `/api/articles/${aSlug}/favorite`, { token: B.token });
    assert.equal(favA.status, 200);
    assert.equal(favA.body.article.favorited, true);
    assert.equal(await fav(B.id, aSlug), 1);
    assert.equal(await fav(A.id, aSlug), 0, 'A did not favorite their own article');
    const followA = await call('POST', `/api/profiles/${A.username}/follow`, { token: B.token });
    assert.equal(followA.body.profile.following, true);
    assert.equal(await follows(B.id, A.id), 1);
    assert.equal(await follows(A.id, B.id), 0);

    const after = await snapshotOf(A.id);
    // B's favorite legitimately moved the counter of A's article; nothing else of A's changed.
    assert.deepEqual(
      after.articles.map((a: any) => ({ ...a, favorites_count: 0 })),
      before.articles.map((a: any) => ({ ...a, favorites_count: 0 })),
    );
    assert.deepEqual({ ...after, articles: [] }, { ...before, articles: [] });
    assert.equal(await fav(A.id, bSlug), 1);
    assert.equal(await fav(A.id, cSlug), 1);
    assert.equal(await follows(A.id, C.id), 1);
    // Undo, so later parts see the initial state.
    await call('DELETE', `/api/articles/${aSlug}/favorite`, { token: B.token });
    await call('DELETE', `/api/profiles/${A.username}/follow`, { token: B.token });
    ctx.diagnostic("favorite/follow: 5 calls by B; A's 2 favorites and 1 follow intact");
  });

  test("with B's token nothing private to A can be read: GET /user is B, the feed and flags are B's", async (ctx) => {
    // A reads first, so any per-viewer state that leaked through the response cache would show.
    const aFeed = await call('GET', '/api/articles/feed', { token: A.token });
    assert.deepEqual(
      aFeed.body.articles.map((a: any) => a.slug),
      [cSlug],
    );
    assert.equal((await call('GET', `/api/profiles/${C.username}`, { token: A.token })).body.profile.following, true);
    assert.equal((await call('GET', `/api/articles/${cSlug}`, { token: A.token })).body.article.favorited, true);

    const me = await call('GET', '/api/user', { token: B.token });
    assert.equal(me.status, 200);
    assert.equal(me.body.user.username, B.username);
    assert.notEqual(me.body.user.email, A.email);
    const checks: [string, (r: Res) => void][] = [
      ['/api/articles/feed', (r) => assert.deepEqual(r.body.articles, [])],
      [`/api/profiles/${C.username}`, (r) => assert.equal(r.body.profile.following, false)],
      [`/api/articles/${cSlug}`, (r) => assert.equal(r.body.article.favorited, false)],
      [`/api/articles/${cSlug}`, (r) => assert.equal(r.body.article.author.following, false)],
      [`/api/articles?favorited=${A.username}`, (r) => assert.ok(r.body.articles.every((a: any) => a.favorited === false))],
      [`/api/articles/${cSlug}/comments`, (r) => assert.deepEqual(r.body.comments, [])],
    ];
    for (const [url, check] of checks) {
      const res = await call('GET', url, { token: B.token });
      assert.equal(res.status, 200, url);
      assert.doesNotMatch(res.text, new RegExp(A.email.replace(/[.]/g, '\\.')), `${url} shows A's email`);
      check(res);
    }
    ctx.diagnostic(`private reads: ${checks.length + 1} reads with B's token show B's state only`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('tokens: every bad token on every authenticated endpoint is 401', () => {
  /** Every route that reads a token: required auth first, then optional auth. */
  const endpoints = (): [string, string, RequestOptions['body']][] => [
    ['GET', '/api/user', undefined],
    ['PUT', '/api/user', { user: { bio: 'tampered' } }],
    ['GET', '/api/articles/feed', undefined],
    ['POST', '/api/articles', { article: { title: 'forged', description: 'forged', body: 'forged' } }],
    ['PUT', `/api/articles/${aSlug}`, { article: { body: 'forged' } }],
    ['DELETE', `/api/articles/${aSlug}`, undefined],
    ['POST', `/api/articles/${aSlug}/favorite`, undefined],
    ['DELETE', `/api/articles/${bSlug}/favorite`, undefined],
    ['POST', `/api/articles/${aSlug}/comments`, { comment: { body: 'forged' } }],
    ['DELETE', `/api/articles/${aSlug}/comments/${aComment}`, undefined],
    ['POST', `/api/profiles/${C.username}/follow`, undefined],
    ['DELETE', `/api/profiles/${C.username}/follow`, undefined],
    ['GET', '/api/articles', undefined],
    ['GET', `/api/articles/${aSlug}`, undefined],
    ['GET', `/api/articles/${aSlug}/comments`, undefined],
    ['GET', `/api/profiles/${A.username}`, undefined],
  ];

  /** Authorization header values, each of which must be refused. Built from B's token, aimed at A. */
  function badHeaders(deletedUserToken: string): Record<string, string> {
    const [h, p, s] = B.token.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { sub: string; exp: number };
    const asA = b64({ ...payload, sub: String(A.id) });
    const flipped = `${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const tokens: Record<string, string> = {
      expired: createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256', clockTimestamp: Date.now() - 3_600_000, expiresIn: 1000 })({
        sub: String(B.id),
      }),
      'tampered payload (sub = A, signature kept)': `${h}.${asA}.${s}`,
      'tampered payload (exp pushed out, signature kept)': `${h}.${b64({ ...payload, exp: payload.exp + 10 ** 6 })}.${s}`,
      'tampered signature': `${h}.${p}.${flipped}`,
      'signature removed': `${h}.${p}.`,
      'signed with another secret': createSigner({ key: 'another-secret-another-secret-another', algorithm: 'HS256', expiresIn: 60_000 })({
        sub: String(A.id),
      }),
      'alg none without signature': `${b64({ alg: 'none', typ: 'JWT' })}.${asA}.`,
      'alg none with the original signature': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.${s}`,
      'alg None (case)': `${b64({ alg: 'None', typ: 'JWT' })}.${asA}.`,
      'HS512 with the right secret': createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS512', expiresIn: 60_000 })({ sub: String(A.id) }),
      'header swapped to HS512, signature kept': `${b64({ alg: 'HS512', typ: 'JWT' })}.${p}.${s}`,
      'header swapped to RS256, signature kept': `${b64({ alg: 'RS256', typ: 'JWT' })}.${p}.${s}`,
      'RS256 with an attacker key': createSigner({ key: pem, algorithm: 'RS256', expiresIn: 60_000 })({ sub: String(A.id) }),
      'no sub claim': createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256', expiresIn: 60_000 })({ name: 'x' }),
      'non-numeric sub': createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256', expiresIn: 60_000 })({ sub: `${A.id} or 1=1` }),
      'no exp claim': createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256' })({ sub: String(A.id) }),
      'token of a deleted user': deletedUserToken,
      garbage: 'not-a-jwt',
      'three garbage parts': 'a.b.c',
      'very long': `${h}.${'A'.repeat(8000)}.${s}`,
    };
    const headers: Record<string, string> = {};
    for (const [name, token] of Object.entries(tokens)) headers[name] = `Token ${token}`;
    headers['Bearer, tampered'] = `Bearer ${h}.${asA}.${s}`;
    headers['empty token'] = 'Token ';
    headers['scheme only'] = 'Token';
    headers['empty header'] = '';
    headers['Basic scheme with a valid token'] = `Basic ${B.token}`;
    headers['Basic credentials'] = `Basic ${Buffer.from(`${A.email}:${A.password}`).toString('base64')}`;
    headers['no scheme'] = B.token;
    return headers;
  }

  test('each bad token on each endpoint: 401 "is invalid", and nothing is written', async (ctx) => {
    const D = await registerUser();
    await t.db.query('delete from users where id = $1', [D.id]);
    const headers = badHeaders(D.token);
    const countsBefore = await tableCounts();
    const aBefore = await snapshotOf(A.id);
    let cases = 0;
    const failures: string[] = [];
    for (const [name, authorization] of Object.entries(headers)) {
      for (const [method, url, body] of endpoints()) {
        const res = await call(method, url, { headers: { authorization }, ...(body !== undefined ? { body } : {}) });
        cases++;
        // A bare token is told which schemes there are (http/auth.ts); the rest are "is invalid".
        const message = name === 'no scheme' ? 'must be Token <jwt> or Bearer <jwt>' : 'is invalid';
        if (res.status !== 401 || JSON.stringify(res.body) !== JSON.stringify({ errors: { token: [message] } })) {
          failures.push(`${name}: ${method} ${url} -> ${res.status} ${res.text.slice(0, 120)}`);
        }
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${cases} cases were not 401 "is invalid"`);
    assert.deepEqual(await tableCounts(), countsBefore, 'row counts after the matrix');
    assert.deepEqual(await snapshotOf(A.id), aBefore);
    ctx.diagnostic(
      `tokens: ${Object.keys(headers).length} bad Authorization values x ${endpoints().length} endpoints = ${cases} cases, all 401`,
    );
  });

  test("a token in use stops working within USER_EXISTS_TTL_MS of its user's deletion", async (ctx) => {
    const E = await registerUser();
    const slug = (await api.createArticle(E.token)).slug;
    assert.equal((await call('GET', '/api/user', { token: E.token })).status, 200);
    await t.db.query('delete from users where id = $1', [E.id]);
    const deletedAt = performance.now();
    await sleep(USER_EXISTS_TTL_MS + 200);
    for (const [method, url] of [
      ['GET', '/api/user'],
      ['GET', '/api/articles/feed'],
      ['DELETE', `/api/articles/${slug}`],
      ['GET', '/api/articles'],
    ]) {
      const res = await call(method!, url!, { token: E.token });
      assert.equal(res.status, 401, `${method} ${url}: ${res.text}`);
      assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
    }
    ctx.diagnostic(
      `deleted user: token refused ${(performance.now() - deletedAt).toFixed(0)} ms after the row was deleted (USER_EXISTS_TTL_MS=${USER_EXISTS_TTL_MS})`,
    );
  });

  test('no token on a required-auth endpoint is 401 "is missing"', async (ctx) => {
    const required = endpoints().slice(0, 12);
    for (const [method, url, body] of required) {
      const res = await call(method, url, body !== undefined ? { body } : {});
      assert.equal(res.status, 401, `${method} ${url}`);
      assert.deepEqual(res.body, { errors: { token: ['is missing'] } }, `${method} ${url}`);
    }
    ctx.diagnostic(`missing token: ${required.length} required-auth endpoints, all 401`);
  });

  /** The app's address, listening from the first test that needs a real socket on. */
  let address: string | undefined;
  const listening = async () => (address ??= await listen(t));
  /** Requests the hot path has answered (conduit_cache_replayed_total). */
  const replayed = async () =>
    parsePrometheus((await t.app.inject({ method: 'GET', url: '/metrics' })).body)
      .samples.filter((s) => s.name === 'conduit_cache_replayed_total')
      .reduce((a, s) => a + s.value, 0);

  test('a token remembered as verified is refused once it expires, by the router and by the hot path', async () => {
    const base = await listening();
    const { rows } = await t.db.query<{ token_key: string }>('select token_key from users where id = $1', [B.id]);
    // An exp of its own, two to three seconds out (a signer's expiresIn rounds down to the second).
    const exp = Math.floor(Date.now() / 1000) + 3;
    const shortLived = createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256' })({ sub: String(B.id), key: rows[0]!.token_key, exp });
    const read = (path: string, token = shortLived) => request(`${base}${path}`, { headers: { authorization: `Token ${token}` } });
    // Recorded (an anonymous read), B's sets loaded, then replayed.
    assert.equal((await request(`${base}/api/articles`)).status, 200);
    for (const path of ['/api/user', '/api/articles']) assert.equal((await read(path)).status, 200, path);
    const before = await replayed();
    assert.equal((await read('/api/articles')).status, 200);
    assert.equal(await replayed(), before + 1, 'the short-lived token was answered by the hot path');
    await sleep(Math.max(0, exp * 1000 - Date.now()) + 100);
    // B's key read again (with a token that is still good), so only the expiry can refuse it.
    assert.equal((await read('/api/articles', B.token)).status, 200);
    const after = await replayed();
    for (const path of ['/api/user', '/api/articles']) {
      const res = await read(path);
      assert.equal(res.status, 401, `${path} after the token expired`);
      assert.deepEqual(json(res), { errors: { token: ['is invalid'] } });
    }
    assert.equal(await replayed(), after, 'the expired token was not replayed');
  });

  test('two Authorization headers on one request are refused, not resolved to either', async (ctx) => {
    // Over a real socket: Node's parser keeps only the first Authorization header and drops the
    // rest, so only the raw request shows the ambiguity (a proxy in front may pick the last one).
    const url = await listening();
    const { port } = new URL(url);
    const send = async (lines: string[], path = '/api/user'): Promise<{ status: number; body: string }> => {
      const socket = net.connect(Number(port), '127.0.0.1');
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (received += d));
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${lines.join('\r\n')}\r\n\r\n`);
      await once(socket, 'close');
      const end = received.indexOf('\r\n\r\n');
      return { status: Number(received.slice(9, 12)), body: received.slice(end + 4) };
    };
    const pairs: [string, string[]][] = [
      ['B then A', [`Authorization: Token ${B.token}`, `Authorization: Token ${A.token}`]],
      ['A then B', [`Authorization: Token ${A.token}`, `Authorization: Token ${B.token}`]],
      ['B then garbage', [`Authorization: Token ${B.token}`, 'Authorization: Token garbage']],
      ['B twice', [`Authorization: Token ${B.token}`, `Authorization: Token ${B.token}`]],
    ];
    // /api/articles as well: a signed-in read the hot path answers once it has been read anonymously
    // (recorded) and by B (their sets loaded).
    for (const path of ['/api/user', '/api/articles']) {
      if (path === '/api/articles') assert.equal((await send([], path)).status, 200);
      for (let i = 0; i < 2; i++) assert.equal((await send([`Authorization: Token ${B.token}`], path)).status, 200, path);
      if (path === '/api/articles') {
        const before = await replayed();
        assert.equal((await send([`Authorization: Token ${B.token}`], path)).status, 200);
        assert.equal(await replayed(), before + 1, 'B’s read of /api/articles is a replay');
      }
      for (const [name, lines] of pairs) {
        const res = await send(lines, path);
        noLeak(res.body, name);
        assert.equal(res.status, 401, `${path}, ${name}: ${res.body}`);
        assert.deepEqual(JSON.parse(res.body), { errors: { token: ['is invalid'] } }, `${path}, ${name}`);
      }
      // One header still works over the same path.
      const one = await send([`Authorization: Token ${B.token}`], path);
      assert.equal(one.status, 200, one.body);
    }
    ctx.diagnostic(`duplicate Authorization: ${pairs.length} combinations, all 401`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('mass assignment: extra fields in write bodies are neither stored nor reflected', () => {
  const FORGED_TIME = '2001-02-03T04:05:06.000Z';
  const recent = (iso: string | Date) => Math.abs(Date.now() - new Date(iso).getTime()) < 10 * 60_000;

  test('register, login and PUT /user ignore id, token, password_hash, timestamps and flags', async (ctx) => {
    const n = `${process.pid}${Date.now().toString(36)}`;
    const extras = {
      id: A.id,
      token: 'forged.token.value',
      password_hash: 'plain',
      passwordHash: 'plain',
      createdAt: FORGED_TIME,
      created_at: FORGED_TIME,
      updatedAt: FORGED_TIME,
      following: true,
      admin: true,
      role: 'admin',
      bio: 'forged bio',
      image: 'forged image',
      token_key: '00000000-0000-4000-8000-000000000000',
      username_skeleton: 'forged',
    };
    const reg = await call('POST', '/api/users', {
      body: { user: { username: `mass${n}`, email: `mass${n}@example.com`, password: 'password123', ...extras }, admin: true },
    });
    assert.equal(reg.status, 201, reg.text);
    assert.deepEqual(Object.keys(reg.body.user).sort(), ['bio', 'email', 'image', 'token', 'username']);
    assert.notEqual(reg.body.user.token, extras.token);
    assert.equal(reg.body.user.bio, null);
    assert.equal(reg.body.user.image, null);
    const row = (await t.db.query('select * from users where username = $1', [`mass${n}`])).rows[0];
    assert.notEqual(Number(row.id), A.id);
    assert.match(row.password_hash, /^\$argon2id\$/);
    assert.equal(row.bio, null);
    assert.equal(row.image, null);
    assert.ok(recent(row.created_at) && recent(row.updated_at), "timestamps are the server's");
    assert.deepEqual(
      Object.keys(row).sort(),
      [
        'bio',
        'created_at',
        'email',
        'email_key',
        'id',
        'image',
        'password_hash',
        'token_key',
        'updated_at',
        'username',
        'username_skeleton',
      ],
      'no new columns',
    );
    assert.equal(row.username_skeleton, usernameSkeleton(`mass${n}`), "the skeleton is the server's");
    assert.notEqual(row.token_key, extras.token_key, "the token key is the server's");

    const login = await call('POST', '/api/users/login', {
      body: { user: { email: `mass${n}@example.com`, password: 'password123', ...extras, username: A.username } },
    });
    assert.equal(login.status, 200);
    assert.equal(login.body.user.username, `mass${n}`, 'login is the account of the email, not of a username in the body');
    assert.notEqual(login.body.user.token, extras.token);
    assert.equal((await call('GET', '/api/user', { token: login.body.user.token })).body.user.username, `mass${n}`);

    const upd = await call('PUT', '/api/user', {
      token: reg.body.user.token,
      body: { user: { ...extras, bio: 'real bio', image: undefined } },
    });
    assert.equal(upd.status, 200, upd.text);
    assert.notEqual(upd.body.user.token, extras.token);
    const after = (await t.db.query('select * from users where username = $1', [`mass${n}`])).rows[0];
    assert.equal(after.id, row.id);
    assert.equal(after.password_hash, row.password_hash, 'password_hash in the body is ignored');
    assert.equal(after.bio, 'real bio');
    assert.deepEqual(after.created_at, row.created_at);
    // A's account is untouched by a body naming A's id.
    assert.deepEqual((await snapshotOf(A.id)).user[0].bio, null);
    assert.equal(
      (await call('POST', '/api/users/login', { body: { user: { email: `mass${n}@example.com`, password: 'password123' } } })).status,
      200,
    );
    ctx.diagnostic(`mass assignment (users): ${Object.keys(extras).length} extra fields on register, login and PUT /user`);
  });

  test('create and update article, and add comment, ignore slug, counts, flags, author and timestamps', async (ctx) => {
    const extras = {
      id: 1,
      slug: 'chosen-slug',
      createdAt: FORGED_TIME,
      updatedAt: FORGED_TIME,
      favoritesCount: 1000,
      favorites_count: 1000,
      favorited: true,
      author: { username: A.username, following: true },
      authorId: A.id,
      author_id: A.id,
      email: A.email,
      token: A.token,
    };
    const created = await call('POST', '/api/articles', {
      token: B.token,
      body: { article: { title: 'Mass assigned', description: 'd', body: 'b', tagList: ['mass'], ...extras } },
    });
    assert.equal(created.status, 201, created.text);
    const art = created.body.article;
    assert.deepEqual(Object.keys(art).sort(), [
      'author',
      'body',
      'createdAt',
      'description',
      'favorited',
      'favoritesCount',
      'slug',
      'tagList',
      'title',
      'updatedAt',
    ]);
    assert.match(art.slug, /^mass-assigned/);
    assert.equal(art.favoritesCount, 0);
    assert.equal(art.favorited, false);
    assert.equal(art.author.username, B.username);
    assert.equal(art.author.following, false);
    assert.ok(recent(art.createdAt) && recent(art.updatedAt));
    const row = (await t.db.query('select * from articles where slug = $1', [art.slug])).rows[0];
    assert.equal(Number(row.author_id), B.id);
    assert.equal(row.favorites_count, 0);
    assert.notEqual(Number(row.id), 1);
    assert.equal((await t.db.query('select count(*)::int as n from articles where slug = $1', ['chosen-slug'])).rows[0].n, 0);

    const updated = await call('PUT', `/api/articles/${art.slug}`, { token: B.token, body: { article: { body: 'new body', ...extras } } });
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.body.article.slug, art.slug, 'slug in the body is ignored (only a new title changes it)');
    assert.equal(updated.body.article.favoritesCount, 0);
    assert.equal(updated.body.article.author.username, B.username);
    assert.equal(updated.body.article.createdAt, art.createdAt);
    assert.notEqual(updated.body.article.updatedAt, FORGED_TIME);
    const rowAfter = (await t.db.query('select * from articles where id = $1', [row.id])).rows[0];
    assert.equal(rowAfter.author_id, row.author_id);
    assert.equal(rowAfter.favorites_count, 0);
    assert.deepEqual(rowAfter.created_at, row.created_at);
    assert.equal(rowAfter.body, 'new body');

    const c = await call('POST', `/api/articles/${art.slug}/comments`, {
      token: B.token,
      body: { comment: { body: 'real', ...extras, article_id: 1, articleId: 1 } },
    });
    assert.equal(c.status, 201, c.text);
    assert.deepEqual(Object.keys(c.body.comment).sort(), ['author', 'body', 'createdAt', 'id', 'updatedAt']);
    assert.notEqual(c.body.comment.id, 1);
    assert.equal(c.body.comment.author.username, B.username);
    assert.ok(recent(c.body.comment.createdAt));
    const crow = (await t.db.query('select * from comments where id = $1', [c.body.comment.id])).rows[0];
    assert.equal(Number(crow.author_id), B.id);
    assert.equal(crow.article_id, row.id);
    ctx.diagnostic(`mass assignment (articles, comments): ${Object.keys(extras).length} extra fields on create, update and comment`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('SQL injection: payloads are data, never SQL', () => {
  // None contains a leak pattern itself (see LEAKS), so reflected input cannot trip noLeak.
  const PAYLOADS = [
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    "' OR ''='",
    '" OR ""="',
    "admin'--",
    "1') OR ('1'='1",
    '1) OR (1=1',
    '\\',
    "\\'",
    "'\\",
    '$1',
    '$2::text',
    '$$; DROP TABLE articles; $$',
    '%',
    '_',
    '%%',
    '%_%',
    "'||pg_sleep(5)||'",
    "' AND 1=CAST((CHR(65)) AS int) --",
    '/* comment */',
    '‘ OR 1=1 --',
    '’; DROP TABLE comments; --',
    '“ OR “1“=“1',
    'ʼ OR ʼ1ʼ=ʼ1',
    '＇ OR １=１ --',
    '; TRUNCATE follows',
  ];
  const enc = encodeURIComponent;

  test('in every path and query parameter: 404 or 422, nothing matched, nothing changed', async (ctx) => {
    const before = await tableCounts();
    let cases = 0;
    const expect = async (method: string, url: string, statuses: number[], body?: unknown) => {
      const res = await call(method, url, { token: B.token, ...(body !== undefined ? { body } : {}) });
      cases++;
      if (statuses.includes(200)) {
        assert.equal(res.status, 200, `${method} ${url}: ${res.text}`);
        return res;
      }
      assertError(res, statuses, `${method} ${url}`);
      return res;
    };
    for (const p of PAYLOADS) {
      const e = enc(p);
      await expect('GET', `/api/profiles/${e}`, [404]);
      await expect('POST', `/api/profiles/${e}/follow`, [404]);
      await expect('DELETE', `/api/profiles/${e}/follow`, [404]);
      await expect('GET', `/api/articles/${e}`, [404]);
      await expect('PUT', `/api/articles/${e}`, [404], { article: { body: 'x' } });
      await expect('DELETE', `/api/articles/${e}`, [404]);
      await expect('POST', `/api/articles/${e}/favorite`, [404]);
      await expect('DELETE', `/api/articles/${e}/favorite`, [404]);
      await expect('GET', `/api/articles/${e}/comments`, [404]);
      await expect('POST', `/api/articles/${e}/comments`, [404], { comment: { body: 'x' } });
      await expect('DELETE', `/api/articles/${e}/comments/${aComment}`, [404]);
      await expect('DELETE', `/api/articles/${aSlug}/comments/${e}`, [422]);
      for (const filter of ['tag', 'author', 'favorited']) {
        const res = await expect('GET', `/api/articles?${filter}=${e}`, [200]);
        assert.deepEqual(res.body, { articles: [], articlesCount: 0 }, `${filter}=${p}`);
      }
      await expect('GET', `/api/articles?tag=bola-a&author=${e}`, [200]).then((r) => assert.equal(r.body.articlesCount, 0, `author=${p}`));
      await expect('GET', `/api/articles?limit=${e}`, [422]);
      await expect('GET', `/api/articles?offset=${e}`, [422]);
      await expect('GET', `/api/articles/feed?limit=${e}`, [422]);
      await expect('GET', `/api/articles/feed?offset=${e}`, [422]);
    }
    // LIKE wildcards next to real values: an equality filter must not match on a prefix.
    const wildcards = [
      ['tag', 'bola-%'],
      ['tag', 'bola-_'],
      ['tag', '%a'],
      ['author', `${A.username.slice(0, -1)}_`],
      ['author', `${A.username.slice(0, 4)}%`],
      ['favorited', `${A.username.slice(0, -1)}_`],
      ['favorited', '%'],
    ];
    for (const [filter, value] of wildcards) {
      const res = await expect('GET', `/api/articles?${filter}=${enc(value!)}`, [200]);
      assert.equal(res.body.articlesCount, 0, `${filter}=${value} matched ${res.body.articlesCount}`);
    }
    // The genuine values do match, so the zeros above are about the wildcards.
    assert.equal((await call('GET', '/api/articles?tag=bola-a')).body.articlesCount, 1);
    assert.ok((await call('GET', `/api/articles?favorited=${enc(A.username)}`)).body.articlesCount >= 2);
    for (const p of ['%', `${A.username.slice(0, 4)}%`, `${A.username.slice(0, -1)}_`])
      await expect('GET', `/api/profiles/${enc(p)}`, [404]);
    // NUL cannot be stored in PostgreSQL text: refused as 422 wherever it appears.
    await expect('GET', '/api/profiles/a%00b', [422]);
    await expect('GET', '/api/articles/a%00b', [422]);
    await expect('GET', '/api/articles?tag=a%00b', [422]);
    await expect('GET', '/api/articles?author=%00', [422]);
    assert.deepEqual(await tableCounts(), before, 'row counts after the read-only injections');
    ctx.diagnostic(
      `SQL injection (paths, queries): ${PAYLOADS.length} payloads, ${cases} requests, row counts of ${Object.keys(before).length} tables unchanged`,
    );
  });

  test('in every body string field: stored verbatim and read back identically, or 4xx', async (ctx) => {
    const before = await tableCounts();
    const tablesBefore = Object.keys(before);
    let registered = 0;
    let articles = 0;
    let comments = 0;
    let stored = 0;
    let rejected = 0;
    const newTags = new Set<string>();
    const writer = await registerUser();
    registered++;
    for (const [i, p] of PAYLOADS.entries()) {
      // register: username, email and password carry the payload.
      const username = `${p}${i}`;
      const email = `${p}${i}@example.com`;
      const password = `${p}-password`;
      let reg = await call('POST', '/api/users', { body: { user: { username, email, password } } });
      if (reg.status === 422) {
        // The email pattern refuses whitespace: retry with a plain email, the payload elsewhere.
        assertError(reg, 422, `register ${p}`);
        assert.ok(reg.body.errors.email, `register ${p}: ${reg.text}`);
        rejected++;
        reg = await call('POST', '/api/users', { body: { user: { username, email: `sqli${i}x${process.pid}@example.com`, password } } });
      }
      assert.equal(reg.status, 201, `register ${p}: ${reg.text}`);
      registered++;
      assert.equal(reg.body.user.username, username);
      const row = (await t.db.query('select username, email from users where username = $1', [username])).rows[0];
      assert.equal(row?.username, username, `username ${p} stored verbatim`);
      const profile = await call('GET', `/api/profiles/${enc(username)}`);
      assert.equal(profile.body.profile.username, username);
      const login = await call('POST', '/api/users/login', { body: { user: { email: row.email, password } } });
      assert.equal(login.status, 200, `login with password ${p}: ${login.text}`);
      assert.equal(login.body.user.username, username);
      // A payload as the login email: no account matches it (or it is not an email).
      const probe = await call('POST', '/api/users/login', { body: { user: { email: p, password: p.padEnd(8, 'x') } } });
      assertError(probe, [401, 422], `login email ${p}`);
      const probe2 = await call('POST', '/api/users/login', { body: { user: { email: `${p}@x`, password } } });
      assertError(probe2, [401, 422], `login email ${p}@x`);

      // PUT /user: bio and image.
      const upd = await call('PUT', '/api/user', { token: writer.token, body: { user: { bio: p, image: p } } });
      assert.equal(upd.status, 200, upd.text);
      const me = await call('GET', '/api/user', { token: writer.token });
      assert.equal(me.body.user.bio, p);
      assert.equal(me.body.user.image, p);

      // An article: title, description, body and a tag.
      const created = await call('POST', '/api/articles', {
        token: writer.token,
        body: { article: { title: p, description: p, body: p, tagList: [p] } },
      });
      assert.equal(created.status, 201, `article ${p}: ${created.text}`);
      articles++;
      newTags.add(p);
      const slug = created.body.article.slug as string;
      const read = await call('GET', `/api/articles/${enc(slug)}`);
      assert.deepEqual(
        [read.body.article.title, read.body.article.description, read.body.article.body, read.body.article.tagList],
        [p, p, p, [p]],
        `article ${p}`,
      );
      const byTag = await call('GET', `/api/articles?tag=${enc(p)}`);
      assert.deepEqual(
        byTag.body.articles.map((a: any) => a.slug),
        [slug],
        `tag=${p} finds exactly its article`,
      );
      // Updating with the payload, too.
      const upd2 = await call('PUT', `/api/articles/${enc(slug)}`, { token: writer.token, body: { article: { body: `${p}${p}` } } });
      assert.equal(upd2.status, 200, upd2.text);
      assert.equal(upd2.body.article.body, `${p}${p}`);

      // A comment.
      const c = await call('POST', `/api/articles/${enc(slug)}/comments`, { token: writer.token, body: { comment: { body: p } } });
      assert.equal(c.status, 201, c.text);
      comments++;
      const list = await call('GET', `/api/articles/${enc(slug)}/comments`);
      assert.deepEqual(
        list.body.comments.map((x: any) => x.body),
        [p],
      );
      stored += 11;
    }
    // NUL in any body string: 422 keyed by the field, nothing stored.
    const nul = 'a\u0000b';
    const nulCases: [string, string, unknown, string][] = [
      ['POST', '/api/users', { user: { username: nul, email: 'nul@example.com', password: 'password123' } }, 'username'],
      ['POST', '/api/users', { user: { username: 'nul', email: 'nul@example.com', password: `password${nul}` } }, 'password'],
      ['POST', '/api/users/login', { user: { email: 'nul@example.com', password: `password${nul}` } }, 'password'],
      ['PUT', '/api/user', { user: { bio: nul } }, 'bio'],
      ['PUT', '/api/user', { user: { image: nul } }, 'image'],
      ['POST', '/api/articles', { article: { title: nul, description: 'd', body: 'b' } }, 'title'],
      ['POST', '/api/articles', { article: { title: 't', description: nul, body: 'b' } }, 'description'],
      ['POST', '/api/articles', { article: { title: 't', description: 'd', body: nul } }, 'body'],
      ['POST', '/api/articles', { article: { title: 't', description: 'd', body: 'b', tagList: [nul] } }, 'tagList'],
      ['PUT', `/api/articles/${aSlug}`, { article: { body: nul } }, 'body'],
      ['POST', `/api/articles/${aSlug}/comments`, { comment: { body: nul } }, 'body'],
    ];
    const countsBeforeNul = await tableCounts();
    for (const [method, url, body, field] of nulCases) {
      const res = await call(method, url, { token: url.includes(aSlug) ? A.token : writer.token, body });
      assertError(res, 422, `NUL in ${field} of ${method} ${url}`);
      assert.deepEqual(res.body, { errors: { [field]: ['must not contain NUL characters'] } }, `${method} ${url}`);
    }
    assert.deepEqual(await tableCounts(), countsBeforeNul, 'NUL requests stored nothing');

    const after = await tableCounts();
    assert.deepEqual(Object.keys(after), tablesBefore, 'every table is still there');
    const expected = {
      ...before,
      users: before.users! + registered,
      articles: before.articles! + articles,
      comments: before.comments! + comments,
    };
    assert.deepEqual({ ...after, tags: 0, article_tags: 0 }, { ...expected, tags: 0, article_tags: 0 });
    assert.equal(after.tags, before.tags! + newTags.size);
    assert.equal(after.article_tags, before.article_tags! + articles);
    ctx.diagnostic(
      `SQL injection (bodies): ${PAYLOADS.length} payloads x 11 fields stored verbatim and read back (${stored} checks), ${rejected} emails refused by the pattern, ${nulCases.length} NUL cases 422; ${tablesBefore.length} tables intact with the expected counts`,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('no leaks: error bodies never show internals', () => {
  test('deliberate errors (400, 401, 403, 404, 409, 413, 414, 415, 422) carry the error shape only', async (ctx) => {
    const cases: [string, string, RequestOptions, number][] = [
      ['POST', '/api/users', { body: { user: { username: A.username, email: 'x@example.com', password: 'password123' } } }, 409],
      ['POST', '/api/users', { body: { user: { username: 'someone', email: A.email.toUpperCase(), password: 'password123' } } }, 409],
      ['PUT', '/api/user', { token: B.token, body: { user: { email: A.email } } }, 409],
      [
        'POST',
        '/api/users',
        { body: { user: { username: 'big', email: 'big@example.com', password: 'password123', bio: 'x'.repeat(1_100_000) } } },
        413,
      ],
      ['POST', '/api/users/login', { body: '{"user":{"email":' }, 400],
      ['POST', '/api/users/login', { body: '{"user":{"email":"a@b","password":"x"}' }, 400],
      // Valid JSON with a key that is refused by name (issue 20): 422, not "is not valid JSON".
      ['POST', '/api/articles', { token: B.token, body: '{"__proto__":{"admin":true}}' }, 422],
      ['POST', '/api/articles', { token: B.token, body: '{"article":{"constructor":{"prototype":{"x":1}}}}' }, 422],
      ['POST', '/api/users/login', { body: 'user=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
      ['GET', '/api/profiles/%zz', {}, 400],
      ['GET', `/api/profiles/${'a'.repeat(600)}`, {}, 414],
      ['GET', '/api/no-such-route', {}, 404],
      ['GET', '/api/articles?limit=0', {}, 422],
      ['GET', '/api/articles?limit=1e400', {}, 422],
      ['GET', '/api/articles?offset=-1', {}, 422],
      ['DELETE', `/api/articles/${aSlug}/comments/99999999999999999999`, { token: B.token }, 422],
      ['POST', '/api/articles', { token: B.token, body: { article: { title: 1, description: [], body: {} } } }, 422],
      ['POST', '/api/articles', { token: B.token, body: { article: { title: 't', description: 'd', body: 'b', tagList: 'x' } } }, 422],
      ['POST', '/api/articles', { token: B.token, body: [] }, 422],
      ['POST', '/api/articles', { token: B.token, body: 'null' }, 422],
      ['PUT', `/api/articles/${aSlug}`, { token: B.token, body: { article: { body: 'x' } } }, 403],
      ['GET', '/api/articles/no-such-article', {}, 404],
      ['GET', '/api/user', { headers: { authorization: `Token ${'x'.repeat(5000)}` } }, 401],
    ];
    for (const [method, url, opts, status] of cases) {
      const res = await call(method, url, opts);
      assertError(res, status, `${method} ${url.slice(0, 60)}`);
    }
    ctx.diagnostic(
      `no leaks: ${cases.length} deliberate errors; ${leakChecks} response bodies of this file checked for stack frames, paths, SQL and PostgreSQL codes`,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('brute force: login attempts under RATE_LIMIT=on, over a real socket', () => {
  const LOGIN_MAX = 5;
  const GLOBAL_MAX = 60;
  let rl: TestApp;
  let url: string;
  let victim: User;
  let requests = 0;
  before(async () => {
    rl = await createTestApp({
      RATE_LIMIT: 'on',
      RATE_LIMIT_LOGIN_MAX: String(LOGIN_MAX),
      RATE_LIMIT_MAX: String(GLOBAL_MAX),
      RATE_LIMIT_REGISTER_MAX: '10',
      // The limits under test here are the per-email and the global ones; the pace of password
      // checks (30 in 5 s by default) has its own test below and would answer first.
      RATE_LIMIT_PASSWORD_MAX: '1000',
    });
    const u = await new Client(rl.app).register();
    requests++;
    victim = { ...u, id: 0 };
    url = await listen(rl);
  });
  after(() => rl.close());

  const login = (email: string, password: string, headers: Record<string, string> = {}) => {
    requests++;
    return request(`${url}/api/users/login`, { method: 'POST', body: { user: { email, password } }, headers });
  };

  test('wrong passwords for one email hit 429 with Retry-After; the right password is then refused the same way', async (ctx) => {
    const statuses: number[] = [];
    for (let i = 0; i < LOGIN_MAX; i++) {
      const res = await login(victim.email, `wrong-password-${i}`);
      assert.deepEqual(assertWireError(res, 401, `attempt ${i + 1}`), { errors: { credentials: ['invalid'] } });
      statuses.push(res.status);
    }
    const limited = await login(victim.email, 'wrong-password-x');
    const right = await login(victim.email, victim.password);
    for (const [name, res] of [
      ['wrong password', limited],
      ['right password', right],
    ] as const) {
      assert.deepEqual(assertWireError(res, 429, name), { errors: { request: ['too many requests, retry later'] } });
      const retryAfter = Number(res.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `${name}: retry-after ${res.headers['retry-after']}`);
      assert.equal(res.headers['set-cookie'], undefined);
    }
    // Same status, same body: the refusal says nothing about whether the password was right.
    assert.equal(right.body.toString(), limited.body.toString());
    assert.doesNotMatch(right.body.toString(), /token|eyJ/);
    // Other spellings of the email and a forged X-Forwarded-For (TRUST_PROXY is off) do not
    // get past the limit.
    for (const [email, headers] of [
      [victim.email.toUpperCase(), {}],
      [victim.email, { 'x-forwarded-for': '203.0.113.7' }],
      [victim.email, { 'x-real-ip': '203.0.113.8', 'x-forwarded-for': '203.0.113.9, 10.0.0.1' }],
    ] as const) {
      assertWireError(await login(email, victim.password, headers), 429, `${email} ${JSON.stringify(headers)}`);
    }
    statuses.push(limited.status, right.status);
    ctx.diagnostic(
      `brute force: ${LOGIN_MAX} wrong logins answered 401, then ${statuses.length - LOGIN_MAX + 3} attempts (wrong, right, upper-cased email, forged X-Forwarded-For x2) all 429`,
    );
  });

  test('spraying many emails from one address is stopped by the global per-address limit', async (ctx) => {
    // src/http/rate-limit.ts keys login attempts by address AND email, so each new email starts
    // a fresh login counter: what stops a spray from one address is RATE_LIMIT_MAX. Before the
    // fix there, the login route's own limit replaced the global one and a spray was unlimited.
    const sprayed: number[] = [];
    let firstRefusal = -1;
    for (let i = 0; i < GLOBAL_MAX + 5; i++) {
      const res = await login(`spray${i}@example.com`, 'password123');
      sprayed.push(res.status);
      if (res.status === 429) {
        firstRefusal = i;
        assertWireError(res, 429, `spray ${i}`);
        assert.ok(Number(res.headers['retry-after']) >= 1, `retry-after ${res.headers['retry-after']}`);
        break;
      }
      assertWireError(res, 401, `spray ${i}`);
    }
    assert.ok(
      firstRefusal >= 0,
      `${sprayed.length} sprayed logins from one address were never refused: RATE_LIMIT_MAX did not apply to login`,
    );
    assert.ok(firstRefusal > LOGIN_MAX, `refused after ${firstRefusal} emails: the per-email login limit should not apply across emails`);
    // Every request of this address counted towards the global limit (the registration, the
    // limited logins above and the spray): the refused one is exactly the first past it.
    assert.equal(requests, GLOBAL_MAX + 1, `refused at request ${requests} of this address, RATE_LIMIT_MAX=${GLOBAL_MAX}`);
    // Registration, the other route with a limit of its own, is under the global limit too.
    const reg = await request(`${url}/api/users`, {
      method: 'POST',
      body: { user: { username: 'sprayer', email: 'sprayer@example.com', password: 'password123' } },
    });
    assertWireError(reg, 429, 'registration past the global limit');
    ctx.diagnostic(
      `spray: ${firstRefusal} distinct emails x 1 wrong password from one address answered 401 (login limit ${LOGIN_MAX} per email never reached), then 429 at the global limit (RATE_LIMIT_MAX=${GLOBAL_MAX}: request ${requests} of this address)`,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('password pace: a login and registration flood from one address under RATE_LIMIT=on', () => {
  const PACE = 5;
  let pc: TestApp;
  before(async () => {
    // RATE_LIMIT_MAX out of reach: refusals are cheap, and the flood would reach the global
    // limit's 6,000 a minute within seconds; the pace is the subject here.
    pc = await createTestApp({
      RATE_LIMIT: 'on',
      RATE_LIMIT_MAX: '100000000',
      RATE_LIMIT_PASSWORD_MAX: String(PACE),
      RATE_LIMIT_PASSWORD_WINDOW_MS: '1000',
    });
  });
  after(() => pc.close());

  const post = (remoteAddress: string, url: string, user: object) =>
    throughServer(pc.app, {
      method: 'POST',
      url,
      remoteAddress,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ user }),
    });

  test('gets 429 past the pace, within its first second, while another address logs in every time', async (ctx) => {
    const victim = await new Client(pc.app).register();
    let flooding = true;
    const flood: Record<number, number> = {};
    const started = performance.now();
    // 24 connections, logins with random emails (no per-email limit applies) and registrations.
    const workers = Array.from({ length: 24 }, async (_, w) => {
      for (let i = 0; flooding; i++) {
        const res =
          i % 2 === 0
            ? await post('10.67.0.1', '/api/users/login', { email: `p${w}-${i}@y.io`, password: 'password999' })
            : await post('10.67.0.1', '/api/users', { username: `pace${w}x${i}`, email: `p${w}x${i}@y.io`, password: 'password999' });
        flood[res.statusCode] = (flood[res.statusCode] ?? 0) + 1;
        // A refusal may be answered without a turn of the event loop: yield one, or the flood's
        // promises starve the timers that end it.
        await setImmediate();
        if (res.statusCode === 429) {
          assert.deepEqual(JSON.parse(res.body), {
            errors: { request: ['too many logins and registrations from this client, retry later'] },
          });
          assert.ok(Number(res.headers['retry-after']) >= 1);
        }
      }
    });
    await sleep(100);
    // The other address keeps within the pace itself: 250 ms apart, at most 4 of its logins fall
    // in any window of the pace's 1 s (150 ms apart, a quick run fit 6 in one, and was refused).
    const others: number[] = [];
    for (let i = 0; i < 8; i++) {
      others.push((await post('10.67.0.2', '/api/users/login', { email: victim.email, password: victim.password })).statusCode);
      await sleep(250);
    }
    flooding = false;
    await Promise.all(workers);
    const seconds = (performance.now() - started) / 1000;
    assert.deepEqual(others, Array(8).fill(200), `logins from another address during the flood: ${others.join(' ')}`);
    // Each answer other than 429 cost a hash: at most PACE per window, one window more for the
    // one the flood started in.
    const hashed = (flood[401] ?? 0) + (flood[201] ?? 0);
    const bound = PACE * (Math.ceil(seconds) + 1);
    assert.ok(hashed <= bound, `${hashed} password checks for the flood in ${seconds.toFixed(1)} s, over the pace's ${bound}`);
    assert.ok((flood[429] ?? 0) > 0, `the flood was never refused: ${JSON.stringify(flood)}`);
    ctx.diagnostic(
      `pace ${PACE}/s: flood from one address for ${seconds.toFixed(1)} s: ${JSON.stringify(flood)}; 8 logins from another: all 200`,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('password hashing: a login flood from one address', () => {
  // Two hashing slots and a queue of two: without a per-address share the flood holds all four
  // and every other client's login is 503 "password hashing is busy" (issue 24 item 1). The share
  // is the default one (ARGON2_CONCURRENCY): the flood may fill both slots, never the queue.
  let fl: TestApp;
  before(async () => {
    fl = await createTestApp({ ARGON2_CONCURRENCY: '2', ARGON2_QUEUE: '2', ARGON2_PER_CLIENT: '' });
  });
  after(() => fl.close());

  const login = (remoteAddress: string, email: string, password: string) =>
    throughServer(fl.app, {
      method: 'POST',
      url: '/api/users/login',
      remoteAddress,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ user: { email, password } }),
    });

  test('is refused 429 beyond its share while logins from another address succeed every time', async (ctx) => {
    const victim = await new Client(fl.app).register();
    let flooding = true;
    const flood: Record<number, number> = {};
    // 24 connections, each sending the next login as soon as the last is answered (random emails:
    // no per-email limit applies).
    const workers = Array.from({ length: 24 }, async (_, w) => {
      for (let i = 0; flooding; i++) {
        const res = await login('10.66.0.1', `x${w}-${i}@y.io`, 'password999');
        flood[res.statusCode] = (flood[res.statusCode] ?? 0) + 1;
        if (res.statusCode === 429) {
          assert.deepEqual(JSON.parse(res.body), {
            errors: { request: ['too many password checks at once from this client, retry later'] },
          });
          assert.equal(res.headers['retry-after'], '1');
        }
      }
    });
    await sleep(100);
    const others: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await login('10.66.0.2', victim.email, victim.password);
      others.push(res.statusCode);
      await sleep(50);
    }
    flooding = false;
    await Promise.all(workers);
    assert.deepEqual(others, Array(8).fill(200), `logins from another address during the flood: ${others.join(' ')}`);
    assert.ok((flood[429] ?? 0) > 0, `the flood was never refused: ${JSON.stringify(flood)}`);
    assert.equal(flood[503], undefined, `the flood reached the shared semaphore's refusal: ${JSON.stringify(flood)}`);
    ctx.diagnostic(`flood from one address: ${JSON.stringify(flood)}; 8 logins from another: all 200`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('user enumeration by timing', () => {
  test('a login for an unknown email takes as long as a wrong password for a known one', async (ctx) => {
    const known = await registerUser();
    const attempt = async (email: string) => {
      const started = performance.now();
      const res = await call('POST', '/api/users/login', { body: { user: { email, password: 'definitely-wrong' } } });
      const ms = performance.now() - started;
      assert.deepEqual(res.body, { errors: { credentials: ['invalid'] } }, email);
      return ms;
    };
    // Warm-up: the dummy hash for unknown emails is made on first use; JIT and pool settle.
    for (let i = 0; i < 5; i++) {
      await attempt(`nobody-${i}@example.com`);
      await attempt(known.email);
    }
    const N = 40;
    const batch = async () => {
      const unknown: number[] = [];
      const wrong: number[] = [];
      for (let i = 0; i < N; i++) {
        // Interleaved, and the order flips every round, so drift on a busy machine hits both alike.
        if (i % 2 === 0) {
          unknown.push(await attempt(`nobody-${i}-${process.pid}@example.com`));
          wrong.push(await attempt(known.email));
        } else {
          wrong.push(await attempt(known.email));
          unknown.push(await attempt(`nobody-${i}-${process.pid}@example.com`));
        }
      }
      const mu = median(unknown);
      const mw = median(wrong);
      const ratio = mu / mw;
      ctx.diagnostic(
        `login timing, N=${N} each: unknown email median ${mu.toFixed(1)} ms, known email + wrong password median ${mw.toFixed(1)} ms, ratio ${ratio.toFixed(2)}`,
      );
      return { mu, mw, ratio, unknown, wrong };
    };
    // Both pay an Argon2 verification (~tens of ms); an unknown email that skipped it would
    // answer in about a millisecond, a ratio far below 0.67, in every batch. A batch can fall out
    // of bounds with no lasting cause (0.63 once on CI, known emails 11 ms slower; 0.97 to 1.02 in
    // every local run, alone, in the suite and beside two busy cores): a second batch tells a
    // lasting difference from a passing one, and the first one's samples are printed for whoever
    // looks into it.
    const within = (r: number) => r > 0.67 && r < 1.5;
    let b = await batch();
    if (!within(b.ratio)) {
      ctx.diagnostic(
        `out of bounds; samples, ms: unknown ${b.unknown.map((x) => x.toFixed(1)).join(' ')}; wrong ${b.wrong.map((x) => x.toFixed(1)).join(' ')}`,
      );
      b = await batch();
    }
    assert.ok(within(b.ratio), `median ratio ${b.ratio.toFixed(2)} (unknown ${b.mu.toFixed(1)} ms, wrong ${b.mw.toFixed(1)} ms)`);
  });
});
