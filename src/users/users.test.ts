// SPEC.md "Endpoints" rows 1-4, "Auth", and the PUT /user rules.
import assert from 'node:assert/strict';
import { argon2, randomBytes, randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { createSigner } from 'fast-jwt';
import { Client, createTestApp, TEST_JWT_SECRET, type TestApp } from '../../test/harness.ts';
import { MIGRATIONS_DIR } from '../db/migrate.ts';
import { USER_EXISTS_TTL_MS } from '../http/auth.ts';
import { usernameSkeleton } from '../lib/identity.ts';
import { fillUsernameSkeletons } from './users.repository.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
});
after(() => t.close());

describe('registration', () => {
  test('a new user gets 201 with a token and null bio and image', async () => {
    const res = await api.post('/api/users', {
      body: { user: { username: 'alice', email: 'alice@example.com', password: 'password123' } },
    });
    assert.equal(res.status, 201);
    assert.deepEqual(Object.keys(res.body.user).sort(), ['bio', 'email', 'image', 'token', 'username']);
    assert.equal(res.body.user.username, 'alice');
    assert.equal(res.body.user.email, 'alice@example.com');
    assert.equal(res.body.user.bio, null);
    assert.equal(res.body.user.image, null);
    assert.match(res.body.user.token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  test('a taken username or email is 409 with the field named', async () => {
    const u = await api.register();
    const byName = await api.post('/api/users', {
      body: { user: { username: u.username, email: 'other@example.com', password: 'password123' } },
    });
    assert.equal(byName.status, 409);
    assert.deepEqual(byName.body, { errors: { username: ['has already been taken'] } });
    const byEmail = await api.post('/api/users', {
      body: { user: { username: 'someone-else', email: u.email.toUpperCase(), password: 'password123' } },
    });
    assert.equal(byEmail.status, 409);
    assert.deepEqual(byEmail.body, { errors: { email: ['has already been taken'] } });
  });

  test('missing, empty and null required fields are 422 "can\'t be blank"', async () => {
    const base = { username: 'bob', email: 'bob@example.com', password: 'password123' };
    for (const field of ['username', 'email', 'password'] as const) {
      for (const value of [undefined, '', null]) {
        const user: Record<string, unknown> = { ...base };
        if (value === undefined) delete user[field];
        else user[field] = value;
        const res = await api.post('/api/users', { body: { user } });
        assert.equal(res.status, 422, `${field}=${String(value)}`);
        assert.deepEqual(res.body, { errors: { [field]: ["can't be blank"] } }, `${field}=${String(value)}`);
      }
    }
  });

  test('a body without the user wrapper makes every required field blank', async () => {
    const res = await api.post('/api/users', { body: { username: 'x', email: 'x@example.com', password: 'password123' } });
    assert.equal(res.status, 422);
    assert.deepEqual(res.body, { errors: { username: ["can't be blank"], email: ["can't be blank"], password: ["can't be blank"] } });
  });

  test('passwords of 8 to 64 characters are accepted and others are 422', async () => {
    for (const [len, status] of [
      [7, 422],
      [8, 201],
      [64, 201],
      [65, 422],
    ] as const) {
      const n = `${len}x${Date.now()}`;
      const res = await api.post('/api/users', {
        body: { user: { username: `p${n}`, email: `p${n}@example.com`, password: 'p'.repeat(len) } },
      });
      assert.equal(res.status, status, `length ${len}`);
      if (status === 422) assert.ok(res.body.errors.password, `length ${len}`);
    }
  });

  test('unknown fields are ignored, never stored', async () => {
    const res = await api.post('/api/users', {
      body: { user: { username: 'mallory', email: 'mallory@example.com', password: 'password123', bio: 'injected', id: 1, admin: true } },
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.user.bio, null);
    const row = await t.db.query('select bio from users where username = $1', ['mallory']);
    assert.equal(row.rows[0].bio, null);
  });
});

describe('login', () => {
  test('the right password returns the user with a token that works', async () => {
    const u = await api.register();
    const res = await api.post('/api/users/login', { body: { user: { email: u.email, password: u.password } } });
    assert.equal(res.status, 200);
    assert.equal(res.body.user.username, u.username);
    const me = await api.get('/api/user', { token: res.body.user.token });
    assert.equal(me.status, 200);
    assert.equal(me.body.user.email, u.email);
  });

  test('a wrong password or unknown email is 401 "credentials invalid"', async () => {
    const u = await api.register();
    for (const user of [
      { email: u.email, password: 'wrong-password' },
      { email: 'nobody@example.com', password: 'password123' },
    ]) {
      const res = await api.post('/api/users/login', { body: { user } });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body, { errors: { credentials: ['invalid'] } });
    }
  });

  test('blank login fields are 422', async () => {
    const res = await api.post('/api/users/login', { body: { user: { email: '', password: 'x' } } });
    assert.equal(res.status, 422);
    assert.deepEqual(res.body, { errors: { email: ["can't be blank"] } });
  });
});

describe('authentication', () => {
  test('GET /user accepts both the Token and the Bearer scheme', async () => {
    const u = await api.register();
    for (const scheme of ['Token', 'Bearer']) {
      const res = await api.get('/api/user', { headers: { authorization: `${scheme} ${u.token}` } });
      assert.equal(res.status, 200, scheme);
      assert.equal(res.body.user.username, u.username);
      assert.equal(res.body.user.token, u.token);
    }
  });

  test('no token is 401 "is missing"', async () => {
    const res = await api.get('/api/user');
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is missing'] } });
  });

  test('malformed, tampered, expired, alg:none and foreign-secret tokens are 401 "is invalid"', async () => {
    const u = await api.register();
    const [h, p, s] = u.token.split('.') as [string, string, string];
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { sub: string };
    const expired = createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256', clockTimestamp: Date.now() - 3_600_000, expiresIn: 1000 })({
      sub: payload.sub,
    });
    const bad = {
      malformed: 'not-a-jwt',
      tampered: `${h}.${b64({ ...payload, sub: '999' })}.${s}`,
      expired,
      algNone: `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
      otherSecret: createSigner({ key: 'another-secret-another-secret-another', algorithm: 'HS256', expiresIn: 60_000 })({
        sub: payload.sub,
      }),
    };
    for (const [name, token] of Object.entries(bad)) {
      const res = await api.get('/api/user', { token });
      assert.equal(res.status, 401, name);
      assert.deepEqual(res.body, { errors: { token: ['is invalid'] } }, name);
      // Optional-auth routes refuse a bad token too; they never fall back to anonymous.
      const list = await api.get('/api/articles', { token });
      assert.equal(list.status, 401, `${name} on an optional-auth route`);
    }
    const scheme = await api.get('/api/user', { headers: { authorization: `Basic ${u.token}` } });
    assert.equal(scheme.status, 401);
    assert.deepEqual(scheme.body, { errors: { token: ['is invalid'] } });
  });

  test('a token without a scheme is 401 naming the two schemes', async () => {
    const u = await api.register();
    for (const url of ['/api/user', '/api/articles']) {
      const res = await api.get(url, { headers: { authorization: u.token } });
      assert.equal(res.status, 401, url);
      assert.deepEqual(res.body, { errors: { token: ['must be Token <jwt> or Bearer <jwt>'] } }, url);
    }
    // A scheme with no token is not a token without a scheme.
    for (const authorization of ['Token', 'Bearer', 'Token ']) {
      const res = await api.get('/api/user', { headers: { authorization } });
      assert.deepEqual(res.body, { errors: { token: ['is invalid'] } }, authorization);
    }
  });

  test('a token of a user deleted and re-created with the same id (a database reset) is 401', async () => {
    const u = await api.register();
    assert.equal((await api.get('/api/user', { token: u.token })).status, 200);
    // What `seed --reset` did: the rows go, and a new user gets the old id.
    const { rows } = await t.db.query<{ id: number }>('delete from users where username = $1 returning id', [u.username]);
    await t.db.query(`insert into users (id, username, email, password_hash) overriding system value values ($1, $2, $3, 'not-a-hash')`, [
      rows[0]!.id,
      `${u.username}-new`,
      `new-${u.email}`,
    ]);
    // The key remembered from the first request is trusted for USER_EXISTS_TTL_MS.
    await new Promise((r) => setTimeout(r, USER_EXISTS_TTL_MS + 100));
    const res = await api.get('/api/user', { token: u.token });
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
    assert.equal((await api.get('/api/articles', { token: u.token })).status, 401, 'on an optional-auth route too');
  });

  test('a validly signed token without the key claim, or with another key, is 401', async () => {
    const u = await api.register();
    const { sub } = JSON.parse(Buffer.from(u.token.split('.')[1]!, 'base64url').toString()) as { sub: string };
    const sign = createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256', expiresIn: 60_000 });
    for (const token of [sign({ sub }), sign({ sub, key: '00000000-0000-4000-8000-000000000000' }), sign({ sub, key: 7 })]) {
      const res = await api.get('/api/user', { token });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
    }
  });

  test('a token of a user that no longer exists is 401', async () => {
    const u = await api.register();
    await t.db.query('delete from users where username = $1', [u.username]);
    const res = await api.get('/api/user', { token: u.token });
    assert.equal(res.status, 401);
    const write = await api.post('/api/articles', { token: u.token, body: { article: { title: 't', description: 'd', body: 'b' } } });
    assert.equal(write.status, 401);
  });
});

describe('updating the current user', () => {
  test('a partial update changes only the given fields and returns a fresh token', async () => {
    const u = await api.register();
    const res = await api.put('/api/user', {
      token: u.token,
      body: { user: { bio: 'I like to skateboard', image: 'https://i.example/x.jpg' } },
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.user.bio, 'I like to skateboard');
    assert.equal(res.body.user.image, 'https://i.example/x.jpg');
    assert.equal(res.body.user.username, u.username);
    assert.equal(res.body.user.email, u.email);
    assert.notEqual(res.body.user.token, u.token);
    assert.equal((await api.get('/api/user', { token: res.body.user.token })).status, 200);
  });

  test('bio and image set to "" are stored as null, and null is accepted', async () => {
    const u = await api.register();
    await api.put('/api/user', { token: u.token, body: { user: { bio: 'x', image: 'y' } } });
    const empty = await api.put('/api/user', { token: u.token, body: { user: { bio: '', image: '' } } });
    assert.equal(empty.status, 200);
    assert.equal(empty.body.user.bio, null);
    assert.equal(empty.body.user.image, null);
    await api.put('/api/user', { token: u.token, body: { user: { bio: 'x' } } });
    const nulls = await api.put('/api/user', { token: u.token, body: { user: { bio: null } } });
    assert.equal(nulls.status, 200);
    assert.equal(nulls.body.user.bio, null);
  });

  test('empty or null email and username, and bad passwords, are 422', async () => {
    const u = await api.register();
    const cases: [Record<string, unknown>, string][] = [
      [{ email: '' }, 'email'],
      [{ email: null }, 'email'],
      [{ username: '' }, 'username'],
      [{ username: null }, 'username'],
      [{ password: '' }, 'password'],
      [{ password: null }, 'password'],
      [{ password: 'short' }, 'password'],
    ];
    for (const [user, field] of cases) {
      const res = await api.put('/api/user', { token: u.token, body: { user } });
      assert.equal(res.status, 422, JSON.stringify(user));
      assert.ok(res.body.errors[field], JSON.stringify(user));
    }
  });

  test("re-sending your own email and username is not a conflict; someone else's is 409", async () => {
    const u = await api.register();
    const other = await api.register();
    const same = await api.put('/api/user', { token: u.token, body: { user: { email: u.email, username: u.username } } });
    assert.equal(same.status, 200);
    const taken = await api.put('/api/user', { token: u.token, body: { user: { username: other.username } } });
    assert.equal(taken.status, 409);
    assert.deepEqual(taken.body, { errors: { username: ['has already been taken'] } });
    const takenEmail = await api.put('/api/user', { token: u.token, body: { user: { email: other.email } } });
    assert.deepEqual(takenEmail.body, { errors: { email: ['has already been taken'] } });
  });

  test('a new password replaces the old one for login', async () => {
    const u = await api.register();
    await api.put('/api/user', { token: u.token, body: { user: { password: 'a-new-password' } } });
    const old = await api.post('/api/users/login', { body: { user: { email: u.email, password: u.password } } });
    assert.equal(old.status, 401);
    const fresh = await api.post('/api/users/login', { body: { user: { email: u.email, password: 'a-new-password' } } });
    assert.equal(fresh.status, 200);
  });

  test('a password change revokes every token issued before it; the token it returns works', async () => {
    const u = await api.register();
    const second = await api.post('/api/users/login', { body: { user: { email: u.email, password: u.password } } });
    const before = second.body.user.token as string;
    assert.equal((await api.get('/api/user', { token: before })).status, 200, 'the token is remembered as valid');

    const changed = await api.put('/api/user', { token: u.token, body: { user: { password: 'a-new-password' } } });
    assert.equal(changed.status, 200);
    const fresh = changed.body.user.token as string;

    for (const old of [u.token, before]) {
      const res = await api.get('/api/user', { token: old });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
    }
    const me = await api.get('/api/user', { token: fresh });
    assert.equal(me.status, 200);
    assert.equal(me.body.user.username, u.username);
  });

  test('a profile change without a new password keeps the other tokens valid', async () => {
    const u = await api.register();
    const res = await api.put('/api/user', { token: u.token, body: { user: { bio: 'still me' } } });
    assert.equal(res.status, 200);
    assert.notEqual(res.body.user.token, u.token);
    assert.equal((await api.get('/api/user', { token: u.token })).status, 200);
    assert.equal((await api.get('/api/user', { token: res.body.user.token })).status, 200);
  });

  test('the password is stored as an argon2id hash and never returned', async () => {
    const u = await api.register();
    const row = await t.db.query('select password_hash from users where username = $1', [u.username]);
    assert.match(row.rows[0].password_hash, /^\$argon2id\$v=19\$m=7168,t=5,p=1\$/);
    const me = await api.get('/api/user', { token: u.token });
    assert.ok(!me.text.includes('password'));
    assert.ok(!me.text.includes('argon2'));
  });
});

describe('a hash made with older parameters', () => {
  test("still logs its user in, and that login replaces it with one of today's parameters", async () => {
    const u = await api.register();
    const nonce = randomBytes(16);
    const params = { memory: 19_456, passes: 2, parallelism: 1, tagLength: 32 };
    const tag = await promisify(argon2)('argon2id', { message: u.password, nonce, ...params });
    const old = `$argon2id$v=19$m=19456,t=2,p=1$${nonce.toString('base64url')}$${tag.toString('base64url')}`;
    await t.db.query('update users set password_hash = $1 where username = $2', [old, u.username]);
    const stored = async () =>
      (await t.db.query('select password_hash from users where username = $1', [u.username])).rows[0].password_hash;
    const login = (password: string) => api.post('/api/users/login', { body: { user: { email: u.email, password } } });

    assert.equal((await login('not-the-password')).status, 401);
    assert.equal(await stored(), old, 'a failed login leaves the hash alone');

    assert.equal((await login(u.password)).status, 200);
    const upgraded = await stored();
    assert.match(upgraded, /^\$argon2id\$v=19\$m=7168,t=5,p=1\$/);

    // The same password, so the same tokens: only the hash's parameters changed.
    assert.equal((await api.get('/api/user', { token: u.token })).status, 200);
    assert.equal((await login(u.password)).status, 200);
    assert.equal(await stored(), upgraded, 'a current hash is not replaced');
    assert.equal((await login('not-the-password')).status, 401);
  });
});

describe('responses that carry a token', () => {
  test('register, login, GET and PUT /api/user are Cache-Control: no-store', async () => {
    const u = await api.register();
    const responses = {
      register: await api.post('/api/users', {
        body: { user: { username: `ns${Date.now()}`, email: `ns${Date.now()}@example.com`, password: 'password123' } },
      }),
      login: await api.post('/api/users/login', { body: { user: { email: u.email, password: u.password } } }),
      // Twice: the second GET is answered from the response cache.
      get: await api.get('/api/user', { token: u.token }),
      getCached: await api.get('/api/user', { token: u.token }),
      put: await api.put('/api/user', { token: u.token, body: { user: { bio: 'hello' } } }),
    };
    for (const [name, res] of Object.entries(responses)) {
      assert.ok(res.status === 200 || res.status === 201, `${name}: ${res.status} ${res.text}`);
      assert.ok(res.body.user.token, name);
      assert.equal(res.headers['cache-control'], 'no-store', name);
    }
  });
});

describe('one normal form for identities', () => {
  const register = (username: string, email = `nf${Date.now()}${Math.random().toString(36).slice(2)}@example.com`) =>
    api.post('/api/users', { body: { user: { username, email, password: 'password123' } } });

  test('an email that PostgreSQL and JavaScript lowercase differently reaches no other account', async () => {
    const n = Date.now();
    const u = await api.register({ email: `alice${n}@x.io` });
    // U+0130: PostgreSQL's lower() makes it 'i', JavaScript's toLowerCase() 'i' + U+0307.
    const res = await api.post('/api/users/login', { body: { user: { email: `al\u0130ce${n}@x.io`, password: u.password } } });
    assert.equal(res.status, 401, res.text);
    const upper = await api.post('/api/users/login', { body: { user: { email: `ALICE${n}@X.IO`, password: u.password } } });
    assert.equal(upper.status, 200, upper.text);
  });

  test('compatibility forms of an email are one address (NFKC)', async () => {
    const n = Date.now();
    const u = await api.register({ email: `\uFB01le${n}@x.io` }); // the ligature 'ﬁ'
    const res = await api.post('/api/users/login', { body: { user: { email: `file${n}@x.io`, password: u.password } } });
    assert.equal(res.status, 200, res.text);
    const again = await register(`other${n}`, `FILE${n}@x.io`);
    assert.equal(again.status, 409, again.text);
    assert.deepEqual(again.body, { errors: { email: ['has already been taken'] } });
  });

  test('look-alike usernames are 422 with the reason', async () => {
    const n = Date.now();
    for (const [name, message] of [
      [`alice${n}\u200b`, 'must not contain control, zero-width or bidirectional formatting characters'],
      [`\u202eecila${n}`, 'must not contain control, zero-width or bidirectional formatting characters'],
      [`ali\u0007ce${n}`, 'must not contain control, zero-width or bidirectional formatting characters'],
      [`alice${n} `, 'must not begin or end with whitespace'],
      [` alice${n}`, 'must not begin or end with whitespace'],
      [`\u0430lice${n}`, 'must use letters of one script only (not, e.g., Latin and Cyrillic together)'],
    ]) {
      const res = await register(name!);
      assert.equal(res.status, 422, `${JSON.stringify(name)}: ${res.text}`);
      assert.deepEqual(res.body, { errors: { username: [message] } }, JSON.stringify(name));
    }
    const u = await api.register();
    const put = await api.put('/api/user', { token: u.token, body: { user: { username: `b\u043Eb${n}` } } });
    assert.equal(put.status, 422, put.text);
    assert.deepEqual(Object.keys(put.body.errors), ['username']);
  });

  test('composed and decomposed spellings are one name (NFC)', async () => {
    const n = Date.now();
    const first = await register(`caf\u00e9${n}`);
    assert.equal(first.status, 201, first.text);
    const second = await register(`cafe\u0301${n}`);
    assert.equal(second.status, 409, second.text);
    assert.deepEqual(second.body, { errors: { username: ['has already been taken'] } });
  });

  test('a look-alike of a name in use is 409: case, whole-script confusables, rn and m (UTS #39 skeleton)', async () => {
    // Digits only: Latin letters in it would make the Cyrillic name below mixed-script (422).
    const n = randomInt(1e9);
    assert.equal((await register(`cocoa_${n}`)).status, 201);
    // All Cyrillic (one script: the mixed-script rule lets it through), and Latin variants.
    for (const name of [`\u0441\u043e\u0441\u043e\u0430_${n}`, `Cocoa_${n}`, `COCOA_${n}`.replace('O', '0')]) {
      const res = await register(name);
      assert.equal(res.status, 409, `${JSON.stringify(name)}: ${res.text}`);
      assert.deepEqual(res.body, { errors: { username: ['has already been taken'] } });
    }
    assert.equal((await register(`mike_${n}`)).status, 201);
    assert.equal((await register(`rnike_${n}`)).status, 409);
    // A rename to a look-alike is refused the same way; a rename of one's own name's case is not
    // a look-alike of someone else's.
    const u = await api.register();
    const put = await api.put('/api/user', { token: u.token, body: { user: { username: `Mike_${n}` } } });
    assert.equal(put.status, 409, put.text);
    const own = await api.put('/api/user', { token: u.token, body: { user: { username: u.username.toUpperCase() } } });
    assert.equal(own.status, 200, own.text);
  });

  test("the migration's backfill computes the service's skeleton for plain ASCII names", async () => {
    const sql = await readFile(path.join(MIGRATIONS_DIR, '20261206000547_username_skeleton.sql'), 'utf8');
    const expr: string | undefined = /select id, (.+) as skeleton/.exec(sql)?.[1];
    assert.ok(expr, 'the backfill expression');
    for (const name of ['alice', 'Alice', 'ILL_1', 'user0', 'Mike.M-m', 'a b', 'auth_42', 'ZZ_top']) {
      const query: string = `select ${expr} as s from (values ($1::text)) as users(username)`;
      const { rows } = await t.db.query<{ s: string }>(query, [name]);
      assert.equal(rows[0]?.s, usernameSkeleton(name), name);
    }
  });

  test('rows without a skeleton (non-ASCII names before the migration, older releases) get one after the migrations; a look-alike stays null', async () => {
    const n = Date.now();
    const insert = (username: string, email: string) =>
      t.db.query<{ id: number }>("insert into users (username, email, email_key, password_hash) values ($1, $2, $2, 'x') returning id", [
        username,
        email,
      ]);
    const cyrillic = (await insert(`Алиса${n}`, `skel-a-${n}@example.com`)).rows[0]!.id;
    const copy = (await insert(`алиса${n}`, `skel-b-${n}@example.com`)).rows[0]!.id;
    const result = await fillUsernameSkeletons(t.db);
    assert.ok(result.filled >= 1 && result.lookAlikes >= 1, JSON.stringify(result));
    const { rows } = await t.db.query<{ id: number; username_skeleton: string | null }>(
      'select id, username_skeleton from users where id = any($1) order by id',
      [[cyrillic, copy]],
    );
    assert.deepEqual(
      rows.map((r) => r.username_skeleton),
      [usernameSkeleton(`Алиса${n}`), null],
    );
  });

  test('ASCII names with _ - . and single-script names in other alphabets are accepted', async () => {
    const n = Date.now();
    for (const name of [
      `auth_${n}`,
      `a.b-c_${n}`,
      `Ölaf${n}`,
      `Алиса${n}`,
      `山田たろう${n}`,
      `Ελένη${n}`,
      `jean luc${n}`,
      `o\u02BCbrien${n}`,
    ]) {
      const res = await register(name);
      assert.equal(res.status, 201, `${name}: ${res.text}`);
      assert.equal(res.body.user.username, name);
    }
  });
});

test('a profile is found under the decomposed spelling of its name', async () => {
  const n = Date.now();
  const res = await api.post('/api/users', {
    body: { user: { username: `ren\u00e9${n}`, email: `rene${n}@example.com`, password: 'password123' } },
  });
  assert.equal(res.status, 201, res.text);
  const profile = await api.get(`/api/profiles/${encodeURIComponent(`rene\u0301${n}`)}`);
  assert.equal(profile.status, 200, profile.text);
  assert.equal(profile.body.profile.username, `ren\u00e9${n}`);
});

test('a user row written without the service (a script, psql) gets its email key from the database', async () => {
  const n = Date.now();
  await t.db.query(`insert into users (username, email, password_hash) values ($1, $2, 'x')`, [`raw${n}`, `Raw${n}@Example.com`]);
  const inserted = await t.db.query<{ email_key: string }>('select email_key from users where username = $1', [`raw${n}`]);
  assert.equal(inserted.rows[0]?.email_key, `raw${n}@example.com`);
  await t.db.query('update users set email = $2 where username = $1', [`raw${n}`, `Moved${n}@Example.com`]);
  const updated = await t.db.query<{ email_key: string }>('select email_key from users where username = $1', [`raw${n}`]);
  assert.equal(updated.rows[0]?.email_key, `moved${n}@example.com`);
});
