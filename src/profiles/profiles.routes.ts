// Profiles and following: SPEC.md "Endpoints" rows 5-6. `following` is computed for the viewer
// in the same statement that reads the profile (false when anonymous).
import { Type } from 'typebox';
import { cachedGet } from '../cache/cached-read.ts';
import { tag } from '../cache/tags.ts';
import type { App, AppContext } from '../context.ts';
import type { Queryable } from '../db/pool.ts';
import { viewerId } from '../http/auth.ts';
import { notFound } from '../http/errors.ts';
import { Errors, IgnoredBodyErrors, PathErrors, Profile, Refusals, Security } from '../http/schemas.ts';

export interface ProfileRow {
  id: number;
  username: string;
  bio: string | null;
  image: string | null;
  following: boolean;
}

const Params = Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }) });
const ProfileResponse = Type.Object({ profile: Profile });

async function findProfile(db: Queryable, username: string, viewer: number | null): Promise<ProfileRow | undefined> {
  const res = await db.query<ProfileRow>(
    `select u.id, u.username, u.bio, u.image,
            exists (select 1 from follows f where f.follower_id = $2 and f.followee_id = u.id) as following
       from users u where u.username = $1`,
    // Usernames are stored in NFC (users/username.ts): a decomposed spelling names the same user.
    [username.normalize('NFC'), viewer],
  );
  return res.rows[0];
}

type FollowResult = { profile: Omit<ProfileRow, 'id'>; changed: boolean };

/**
 * Follow (idempotent: following twice is not an error) and return the profile, one round trip.
 * `changed`: a row was written, so the follower's cached follows must be invalidated.
 */
async function follow(db: Queryable, follower: number, username: string): Promise<FollowResult | undefined> {
  const res = await db.query<Omit<ProfileRow, 'id'> & { changed: boolean }>(
    `with target as (select id, username, bio, image from users where username = $2),
          ins as (insert into follows (follower_id, followee_id) select $1, id from target on conflict do nothing returning 1)
     select username, bio, image, true as following, exists (select 1 from ins) as changed from target`,
    [follower, username.normalize('NFC')],
  );
  const row = res.rows[0];
  return row && { profile: { username: row.username, bio: row.bio, image: row.image, following: row.following }, changed: row.changed };
}

async function unfollow(db: Queryable, follower: number, username: string): Promise<FollowResult | undefined> {
  const res = await db.query<Omit<ProfileRow, 'id'> & { changed: boolean }>(
    `with target as (select id, username, bio, image from users where username = $2),
          del as (delete from follows where follower_id = $1 and followee_id = (select id from target) returning 1)
     select username, bio, image, false as following, exists (select 1 from del) as changed from target`,
    [follower, username.normalize('NFC')],
  );
  const row = res.rows[0];
  return row && { profile: { username: row.username, bio: row.bio, image: row.image, following: row.following }, changed: row.changed };
}

export function registerProfileRoutes(app: App, ctx: AppContext): void {
  const { db, auth } = ctx;
  const tags = ['Profile'];
  const response = { 200: ProfileResponse, 401: Errors[401], 404: Errors[404], ...PathErrors, ...Refusals };

  cachedGet(app, ctx, {
    url: '/api/profiles/:username',
    onRequest: auth.optional,
    schema: { summary: 'Get a profile', tags, params: Params, response },
    cache: {
      key: (request) => `profile\u0000${request.params.username.normalize('NFC')}`,
      load: async (request, viewer) => {
        const row = await findProfile(db, request.params.username, viewer);
        return row && { data: row, tags: [tag.user(row.id)] };
      },
      body: ({ username, bio, image, following }) => ({ profile: { username, bio, image, following } }),
      flags: (row) => ({ articles: [], authors: [row.id] }),
      missing: () => notFound('profile'),
    },
  });

  app.post(
    '/api/profiles/:username/follow',
    {
      onRequest: auth.required,
      schema: { summary: 'Follow a user', tags, security: Security, params: Params, response: { ...response, ...IgnoredBodyErrors } },
    },
    async (request) => {
      const viewer = viewerId(request);
      const result = await follow(db, viewer, request.params.username);
      if (!result) throw notFound('profile');
      // The viewer's cached follows (cache/viewer-flags.ts), before the answer: read-your-writes.
      if (result.changed) await ctx.invalidate([tag.viewer(viewer)]);
      return { profile: result.profile };
    },
  );

  app.delete(
    '/api/profiles/:username/follow',
    {
      onRequest: auth.required,
      schema: { summary: 'Unfollow a user', tags, security: Security, params: Params, response: { ...response, ...IgnoredBodyErrors } },
    },
    async (request) => {
      const viewer = viewerId(request);
      const result = await unfollow(db, viewer, request.params.username);
      if (!result) throw notFound('profile');
      // The viewer's cached follows (cache/viewer-flags.ts), before the answer: read-your-writes.
      if (result.changed) await ctx.invalidate([tag.viewer(viewer)]);
      return { profile: result.profile };
    },
  );
}
