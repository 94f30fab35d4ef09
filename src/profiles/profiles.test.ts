// SPEC.md "Endpoints" rows 5-6 (profiles, follow/unfollow), "Shapes" (Profile) and the rules
// that `following` is computed for the requesting user and that unfollowing is idempotent.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';

let t: TestApp;
let api: Client;
before(async () => {
  t = await createTestApp();
  api = new Client(t.app);
});
after(() => t.close());

const profileNotFound = { errors: { profile: ['not found'] } };
const tokenMissing = { errors: { token: ['is missing'] } };

describe('reading a profile', () => {
  test('an anonymous reader gets exactly username, bio, image and following=false, with null bio and image for a new user', async () => {
    const u = await api.register();

    const res = await api.get(`/api/profiles/${u.username}`);

    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { profile: { username: u.username, bio: null, image: null, following: false } });
  });

  test('an unknown username is 404 "profile not found"', async () => {
    const res = await api.get('/api/profiles/nobody-has-this-name');

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, profileNotFound);
  });

  test('usernames are matched exactly, not case-insensitively', async () => {
    const u = await api.register();

    const res = await api.get(`/api/profiles/${u.username.toUpperCase()}`);

    assert.equal(res.status, 404);
    assert.deepEqual(res.body, profileNotFound);
  });

  test('a bio and image set with PUT /user show on the profile, and clearing them shows null again', async () => {
    const u = await api.register();
    const put = await api.put('/api/user', {
      token: u.token,
      body: { user: { bio: 'I work at statefarm', image: 'https://i.example/jake.jpg' } },
    });
    assert.equal(put.status, 200);

    const res = await api.get(`/api/profiles/${u.username}`);

    assert.equal(res.status, 200);
    assert.deepEqual(res.body.profile, {
      username: u.username,
      bio: 'I work at statefarm',
      image: 'https://i.example/jake.jpg',
      following: false,
    });

    await api.put('/api/user', { token: put.body.user.token, body: { user: { bio: '', image: null } } });
    const cleared = await api.get(`/api/profiles/${u.username}`);
    assert.equal(cleared.body.profile.bio, null);
    assert.equal(cleared.body.profile.image, null);
  });

  test('after a username change the old name is 404 and the new one is found', async () => {
    const u = await api.register();
    const renamed = `${u.username}-renamed`;
    const put = await api.put('/api/user', { token: u.token, body: { user: { username: renamed } } });
    assert.equal(put.status, 200);

    const old = await api.get(`/api/profiles/${u.username}`);
    const fresh = await api.get(`/api/profiles/${renamed}`);

    assert.equal(old.status, 404);
    assert.deepEqual(old.body, profileNotFound);
    assert.equal(fresh.status, 200);
    assert.equal(fresh.body.profile.username, renamed);
  });

  test('a bad token is 401 on this optional-auth route rather than an anonymous read', async () => {
    const u = await api.register();

    const res = await api.get(`/api/profiles/${u.username}`, { token: 'not-a-jwt' });

    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
  });
});

describe('following', () => {
  test('following a user returns their profile with following=true', async () => {
    const follower = await api.register();
    const celeb = await api.register();

    const res = await api.post(`/api/profiles/${celeb.username}/follow`, { token: follower.token });

    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { profile: { username: celeb.username, bio: null, image: null, following: true } });
    const read = await api.get(`/api/profiles/${celeb.username}`, { token: follower.token });
    assert.equal(read.body.profile.following, true);
  });

  test('following twice is not an error and stores one follow', async () => {
    const follower = await api.register();
    const celeb = await api.register();
    await api.post(`/api/profiles/${celeb.username}/follow`, { token: follower.token });

    const again = await api.post(`/api/profiles/${celeb.username}/follow`, { token: follower.token });

    assert.equal(again.status, 200);
    assert.equal(again.body.profile.following, true);
    const rows = await t.db.query(
      `select count(*)::int as n from follows f join users a on a.id = f.follower_id join users b on b.id = f.followee_id
        where a.username = $1 and b.username = $2`,
      [follower.username, celeb.username],
    );
    assert.equal(rows.rows[0].n, 1);
  });

  test('following works with a JSON content type and an empty body, as common clients send it', async () => {
    const follower = await api.register();
    const celeb = await api.register();

    const res = await api.post(`/api/profiles/${celeb.username}/follow`, {
      token: follower.token,
      headers: { 'content-type': 'application/json' },
    });

    assert.equal(res.status, 200);
    assert.equal(res.body.profile.following, true);
  });

  test('unfollowing returns the profile with following=false and the follow is gone', async () => {
    const follower = await api.register();
    const celeb = await api.register();
    await api.post(`/api/profiles/${celeb.username}/follow`, { token: follower.token });

    const res = await api.delete(`/api/profiles/${celeb.username}/follow`, { token: follower.token });

    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { profile: { username: celeb.username, bio: null, image: null, following: false } });
    const read = await api.get(`/api/profiles/${celeb.username}`, { token: follower.token });
    assert.equal(read.body.profile.following, false);
  });

  test('unfollowing someone not followed is not an error', async () => {
    const follower = await api.register();
    const stranger = await api.register();

    const res = await api.delete(`/api/profiles/${stranger.username}/follow`, { token: follower.token });

    assert.equal(res.status, 200);
    assert.equal(res.body.profile.following, false);
  });

  test('follow and unfollow without a token are 401 "is missing"', async () => {
    const celeb = await api.register();

    const follow = await api.post(`/api/profiles/${celeb.username}/follow`);
    const unfollow = await api.delete(`/api/profiles/${celeb.username}/follow`);

    assert.equal(follow.status, 401);
    assert.deepEqual(follow.body, tokenMissing);
    assert.equal(unfollow.status, 401);
    assert.deepEqual(unfollow.body, tokenMissing);
  });

  test('follow and unfollow of an unknown user are 404 "profile not found" and store nothing', async () => {
    const follower = await api.register();

    const follow = await api.post('/api/profiles/nobody-has-this-name/follow', { token: follower.token });
    const unfollow = await api.delete('/api/profiles/nobody-has-this-name/follow', { token: follower.token });

    assert.equal(follow.status, 404);
    assert.deepEqual(follow.body, profileNotFound);
    assert.equal(unfollow.status, 404);
    assert.deepEqual(unfollow.body, profileNotFound);
    const rows = await t.db.query('select count(*)::int as n from follows f join users u on u.id = f.follower_id where u.username = $1', [
      follower.username,
    ]);
    assert.equal(rows.rows[0].n, 0);
  });

  test('a token whose user was deleted is 401 on follow, not a 500', async () => {
    const ghost = await api.register();
    const celeb = await api.register();
    await t.db.query('delete from users where username = $1', [ghost.username]);

    const res = await api.post(`/api/profiles/${celeb.username}/follow`, { token: ghost.token });

    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { errors: { token: ['is invalid'] } });
  });

  test('following is computed per viewer: true for the follower, false for another user and for anonymous', async () => {
    const a = await api.register();
    const b = await api.register();
    const c = await api.register();
    await api.post(`/api/profiles/${c.username}/follow`, { token: a.token });

    const forA = await api.get(`/api/profiles/${c.username}`, { token: a.token });
    const forB = await api.get(`/api/profiles/${c.username}`, { token: b.token });
    const forAnonymous = await api.get(`/api/profiles/${c.username}`);

    assert.equal(forA.body.profile.following, true);
    assert.equal(forB.body.profile.following, false);
    assert.equal(forAnonymous.body.profile.following, false);
  });

  test('following is directional: C following A does not make A follow C', async () => {
    const a = await api.register();
    const c = await api.register();
    await api.post(`/api/profiles/${a.username}/follow`, { token: c.token });

    const res = await api.get(`/api/profiles/${c.username}`, { token: a.token });

    assert.equal(res.body.profile.following, false);
  });

  test("unfollowing by one viewer leaves another viewer's follow in place", async () => {
    const a = await api.register();
    const b = await api.register();
    const c = await api.register();
    await api.post(`/api/profiles/${c.username}/follow`, { token: a.token });
    await api.post(`/api/profiles/${c.username}/follow`, { token: b.token });

    await api.delete(`/api/profiles/${c.username}/follow`, { token: a.token });

    assert.equal((await api.get(`/api/profiles/${c.username}`, { token: a.token })).body.profile.following, false);
    assert.equal((await api.get(`/api/profiles/${c.username}`, { token: b.token })).body.profile.following, true);
  });

  test("the follow response carries the followed user's current bio and image", async () => {
    const follower = await api.register();
    const celeb = await api.register();
    await api.put('/api/user', { token: celeb.token, body: { user: { bio: 'famous', image: 'https://i.example/c.png' } } });

    const res = await api.post(`/api/profiles/${celeb.username}/follow`, { token: follower.token });

    assert.deepEqual(res.body.profile, { username: celeb.username, bio: 'famous', image: 'https://i.example/c.png', following: true });
  });

  test('concurrent follows of the same user by the same viewer all succeed and store one follow', async () => {
    const follower = await api.register();
    const celeb = await api.register();

    const results = await Promise.all(
      Array.from({ length: 8 }, () => api.post(`/api/profiles/${celeb.username}/follow`, { token: follower.token })),
    );

    assert.deepEqual(
      results.map((r) => r.status),
      Array(8).fill(200),
    );
    const rows = await t.db.query('select count(*)::int as n from follows f join users u on u.id = f.follower_id where u.username = $1', [
      follower.username,
    ]);
    assert.equal(rows.rows[0].n, 1);
  });
});
