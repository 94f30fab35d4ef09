// Authentication and the current user: SPEC.md "Endpoints" rows 1-4.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { cachedGet } from '../cache/cached-read.ts';
import { tag } from '../cache/tags.ts';
import type { App, AppContext } from '../context.ts';
import { viewerId } from '../http/auth.ts';
import { AppError, invalidCredentials, tokenInvalid } from '../http/errors.ts';
import { PerKeyLimit } from '../lib/per-key.ts';
import { loginRateLimit, passwordPace, registerRateLimitConfig } from '../http/rate-limit.ts';
import { BodyErrors, Errors, NonBlank, Refusals, Security } from '../http/schemas.ts';
import { needsRehash } from './password.ts';
import { canonicalUsername } from './username.ts';
import { findUserByEmail, findUserById, insertUser, replacePasswordHash, updateUser, type UserRow } from './users.repository.ts';

const Email = NonBlank(254, { pattern: '^[^\\s@]+@[^\\s@]+$' });
// SPEC.md "Rules": 8 to 64 characters. The upper bound also caps the work handed to Argon2.
const Password = Type.String({ minLength: 8, maxLength: 64 });
const Username = NonBlank(64);
const OptionalText = Type.Optional(Type.Union([Type.String({ maxLength: 4096 }), Type.Null()]));

const User = Type.Object({
  email: Type.String(),
  token: Type.String(),
  username: Type.String(),
  bio: Type.Union([Type.String(), Type.Null()]),
  image: Type.Union([Type.String(), Type.Null()]),
});
const UserResponse = Type.Object({ user: User });

const LoginBody = Type.Object({
  user: Type.Object({ email: Email, password: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
});
const RegisterBody = Type.Object({
  user: Type.Object({ username: Username, email: Email, password: Password }, { additionalProperties: false }),
});
const UpdateBody = Type.Object({
  user: Type.Object(
    {
      email: Type.Optional(Email),
      username: Type.Optional(Username),
      password: Type.Optional(Password),
      bio: OptionalText,
      image: OptionalText,
    },
    { additionalProperties: false },
  ),
});

// Every response of these routes carries a token (or refuses one): no cache, shared or private,
// may keep it (OWASP API8, issue 24 item 7). Set before the route runs, so errors carry it too.
const noStore = async (_request: FastifyRequest, reply: FastifyReply): Promise<void> => {
  void reply.header('cache-control', 'no-store');
};

function toUser(row: Pick<UserRow, 'email' | 'username' | 'bio' | 'image'>, token: string) {
  return { user: { email: row.email, token, username: row.username, bio: row.bio, image: row.image } };
}

export function registerUserRoutes(app: App, ctx: AppContext): void {
  const { db, auth } = ctx;
  // Each client address gets at most ARGON2_PER_CLIENT of the hashing slots at once (issue 24
  // item 1): a flood of logins from one address is refused here, 429, and cannot fill the
  // semaphore (users/password.ts) whose refusals, 503, would reach everyone else's logins too.
  const share = new PerKeyLimit(ctx.config.argon2PerClient);
  const busy = () => new AppError(429, { request: ['too many password checks at once from this client, retry later'] }, { retryAfter: 1 });
  // And each address asks for password checks at a pace (RATE_LIMIT_PASSWORD_MAX in 5 s), login
  // and registration together: a flood is refused before it costs a hash.
  const pace = passwordPace(app, ctx.config);
  // A new array per route: the rate-limit plugin appends a route's own limit to its hook array.
  const paced = () => (pace ? [noStore, pace] : [noStore]);
  const passwords = {
    hash: (request: FastifyRequest, password: string) => share.run(request.ip, () => ctx.passwords.hash(password), busy),
    verify: (request: FastifyRequest, password: string, phc: string | undefined) =>
      share.run(request.ip, () => ctx.passwords.verify(password, phc), busy),
  };
  // A hash made with older parameters is replaced at its user's next login, the one moment the
  // password is known, so old hashes stop asking the threadpool for their larger blocks. A hash
  // refused or failed leaves the old one, which still verifies: the login succeeds all the same.
  const rehash = async (request: FastifyRequest, row: UserRow, password: string) => {
    try {
      await replacePasswordHash(db, row.id, row.password_hash, await passwords.hash(request, password));
    } catch (err) {
      request.log.warn({ err }, 'password hash kept with its old parameters');
    }
  };

  app.post(
    '/api/users/login',
    {
      config: loginRateLimit(ctx.config),
      onRequest: paced(),
      schema: {
        summary: 'Log in',
        tags: ['User and Authentication'],
        body: LoginBody,
        response: { 200: UserResponse, 401: Errors[401], ...BodyErrors, ...Refusals },
      },
    },
    async (request) => {
      const { email, password } = request.body.user;
      const row = await findUserByEmail(db, email);
      // Hash even when the email is unknown: the response time must not reveal which emails exist.
      const ok = await passwords.verify(request, password, row?.password_hash);
      if (!row || !ok) throw invalidCredentials();
      if (needsRehash(row.password_hash)) await rehash(request, row, password);
      return toUser(row, auth.sign(row));
    },
  );

  app.post(
    '/api/users',
    {
      config: registerRateLimitConfig(ctx.config),
      onRequest: paced(),
      schema: {
        summary: 'Register',
        tags: ['User and Authentication'],
        body: RegisterBody,
        response: { 201: UserResponse, 409: Errors[409], ...BodyErrors, ...Refusals },
      },
    },
    async (request, reply) => {
      const { email, password } = request.body.user;
      const username = canonicalUsername(request.body.user.username);
      // No "does it exist?" query first: the unique constraints decide, race-free (409).
      const row = await insertUser(db, { username, email, passwordHash: await passwords.hash(request, password) });
      return reply.code(201).send(toUser(row, auth.sign(row)));
    },
  );

  cachedGet(app, ctx, {
    url: '/api/user',
    onRequest: async (request, reply) => {
      await noStore(request, reply);
      await auth.required(request, reply);
    },
    schema: {
      summary: 'Current user',
      tags: ['User and Authentication'],
      security: Security,
      response: { 200: UserResponse, 401: Errors[401], ...Refusals },
    },
    // The front ends ask this on every page load: cached per user, without the password hash.
    // The body carries the request's own token, so it is made per request from the cached row.
    cache: {
      key: (request) => `me\u0000${viewerId(request)}`,
      load: async (request) => {
        const found = await findUserById(db, viewerId(request));
        if (!found) return undefined;
        const { id, email, username, bio, image } = found;
        return { data: { email, username, bio, image }, tags: [tag.user(id)] };
      },
      answer: (row, request) => toUser(row, request.viewer!.token),
      // A valid signature for a user that no longer exists is not a valid identity.
      missing: () => tokenInvalid(),
    },
  });

  app.put(
    '/api/user',
    {
      onRequest: [noStore, auth.required],
      schema: {
        summary: 'Update the current user',
        tags: ['User and Authentication'],
        security: Security,
        body: UpdateBody,
        response: { 200: UserResponse, 401: Errors[401], 409: Errors[409], ...BodyErrors, ...Refusals },
      },
    },
    async (request) => {
      const { email, password, bio, image } = request.body.user;
      const username = request.body.user.username === undefined ? undefined : canonicalUsername(request.body.user.username);
      const row = await updateUser(db, viewerId(request), {
        email,
        username,
        passwordHash: password === undefined ? undefined : await passwords.hash(request, password),
        bio,
        image,
      });
      if (!row) throw tokenInvalid();
      // The profile shows wherever this user is an author; a new username also changes what the
      // author= and favorited= filters match.
      await ctx.invalidate([tag.user(row.id), ...(username !== undefined ? [tag.listByUsername] : [])]);
      // A new password replaced the user's token key (users.repository.ts): the tokens issued
      // before it are refused from now on, here at once.
      if (password !== undefined) auth.keyChanged(row.id);
      // A fresh token: clients replace theirs after a profile change (SPEC.md "Endpoints").
      return toUser(row, auth.sign(row));
    },
  );
}
