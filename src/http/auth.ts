// Authentication: HS256 JWTs in `Authorization: Token <jwt>` (the spec's scheme) or
// `Bearer <jwt>`. A present but bad token is always 401, on optional-auth routes too: falling
// back to anonymous would hide a client bug and serve the wrong `favorited`/`following` flags.
import { hash, randomBytes } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config.ts';
import { tokenInvalid, tokenMissing, tokenWithoutScheme } from './errors.ts';

export interface Viewer {
  readonly id: number;
  readonly token: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated user, or null on an anonymous request to an optional-auth route. */
    viewer: Viewer | null;
  }
}

/** A verified token's claims: whom it names, the key it was issued with, and when it expires (ms). */
interface Claims {
  readonly id: number;
  readonly key: string;
  readonly expiresAt: number;
}

/** A request's token and its claims. */
interface Parsed {
  readonly viewer: Viewer;
  readonly key: string;
}

/** Whom a token is issued for: the user's id and their current token key (users.token_key). */
export interface TokenSubject {
  readonly id: number;
  readonly token_key: string;
}

export interface Auth {
  /** A token for this user, carrying their current token key (claim `key`). */
  sign: (user: TokenSubject) => string;
  /**
   * This user's token key changed (a password change): forget the remembered one, so this
   * process refuses the old tokens at once. Other processes refuse them within USER_EXISTS_TTL_MS.
   */
  keyChanged: (userId: number) => void;
  /** onRequest hook: 401 without a valid token. */
  required: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** onRequest hook: anonymous without a header, 401 with a bad one. */
  optional: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /**
   * The id of the user a request's token names, when the hooks above would accept it without the
   * database: one Authorization header, a valid token, and its key the one remembered for the
   * user. Undefined otherwise, where the hooks decide (a 401, or the lookup). The hot path's.
   */
  knownViewer: (req: IncomingMessage) => number | undefined;
}

/** The viewer's id on a route guarded by `auth.required`. */
export function viewerId(request: FastifyRequest): number {
  if (!request.viewer) throw tokenMissing();
  return request.viewer.id;
}

/**
 * How long a user's token key read from the database is trusted. A token outlives its user
 * (users are deleted out of band, in the database) and, in other processes, a password change:
 * past this, a deleted user's token, or a token issued before a password change, is 401.
 */
export const USER_EXISTS_TTL_MS = 1000;

/**
 * Authorization sent more than once. Node keeps only the first and drops the others, so the
 * ambiguity shows only in the raw headers; a proxy in front may have read the last one.
 */
function duplicated(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'authorization') seen++;
  }
  return seen > 1;
}

export function createAuth(
  config: Pick<Config, 'jwtSecret' | 'jwtTtlSeconds'>,
  /** The user's current token key, or undefined when there is no such user. */
  tokenKeyOf: (id: number) => Promise<string | undefined>,
): Auth {
  const key = config.jwtSecret.expose();
  const signer = createSigner({ key, algorithm: 'HS256', expiresIn: config.jwtTtlSeconds * 1000 });
  // Only HS256 is accepted: `alg: none` and algorithm-confusion tokens fail verification.
  const verifier = createVerifier({ key, algorithms: ['HS256'], requiredClaims: ['sub', 'exp', 'key'] });
  // Verified tokens are remembered (bounded, never past their expiry): a client sends the same
  // token on every request, and an HMAC per request is measurable at high rates. By their
  // SHA-256, so no token is kept, as fast-jwt's own cache does; but hashed in one call, where
  // fast-jwt's hashes through a Hash object after decoding the token's header: 0.5 µs a token
  // against 1.9 (docs/caching.md "Signed-in readers"). fast-jwt takes no other hash without
  // printing a security warning at every start.
  const verified = new LRUCache<string, Claims>({ max: 10_000 });
  function claimsOf(token: string): Claims {
    const digest = hash('sha256', token, 'base64');
    const known = verified.get(digest);
    if (known !== undefined) {
      if (Date.now() < known.expiresAt) return known;
      verified.delete(digest);
    }
    let payload: { sub?: unknown; key?: unknown; exp?: unknown };
    try {
      payload = verifier(token) as { sub?: unknown; key?: unknown; exp?: unknown };
    } catch {
      throw tokenInvalid();
    }
    const id = Number(payload.sub);
    if (!Number.isSafeInteger(id) || id <= 0 || typeof payload.key !== 'string') throw tokenInvalid();
    // exp is a required claim, and the verifier refused the token if it had passed.
    const claims = { id, key: payload.key, expiresAt: Number(payload.exp) * 1000 };
    verified.set(digest, claims);
    return claims;
  }

  function parse(header: string | undefined): Parsed | null {
    if (header === undefined) return null;
    const space = header.indexOf(' ');
    const scheme = space === -1 ? '' : header.slice(0, space).toLowerCase();
    const token = header.slice(space + 1).trim();
    // A bare JWT (the commonest mistake: the header set to the token itself) says what is missing.
    if (space === -1 && header !== '' && !/^(token|bearer)$/i.test(header)) throw tokenWithoutScheme();
    if ((scheme !== 'token' && scheme !== 'bearer') || token === '') throw tokenInvalid();
    const claims = claimsOf(token);
    return { viewer: { id: claims.id, token }, key: claims.key };
  }

  // A valid signature is not enough: the token must name a user that exists now, with the key
  // that user has now. A user id alone was not: a token of a deleted user read the feed (empty),
  // unfollowed and unfavorited (200), got 403 rather than 401 on others' articles and read
  // optional-auth routes as if anonymous (test/resilience/security.test.ts); and after
  // `seed --reset` a token issued for user 1 answered 200 as whoever user 1 was then. The key
  // is random per user row and replaced on a password change, so neither a new row with the
  // old id nor an old token after a password change matches. Keys are remembered briefly, so a
  // client's stream of requests costs one indexed lookup per USER_EXISTS_TTL_MS, not one per
  // request; a mismatch is checked against the database before it is refused (the remembered
  // key may be older than the token).
  const keys = new LRUCache<number, string>({ max: 10_000, ttl: USER_EXISTS_TTL_MS });
  async function authenticate(request: FastifyRequest): Promise<Viewer | null> {
    const parsed = parse(request.headers.authorization);
    if (!parsed) return null;
    const { viewer, key: claimed } = parsed;
    // Two Authorization headers name two identities, or one twice: either way, refuse to choose.
    if (duplicated(request.raw)) throw tokenInvalid();
    let current = keys.get(viewer.id);
    if (current !== claimed) {
      current = await tokenKeyOf(viewer.id);
      if (current === undefined) throw tokenInvalid();
      keys.set(viewer.id, current);
      if (current !== claimed) throw tokenInvalid();
    }
    return viewer;
  }

  return {
    // jti makes every token distinct, so a "fresh token" after PUT /user really is new even
    // within the same second as the previous one.
    sign: (user) => signer({ sub: String(user.id), key: user.token_key, jti: randomBytes(9).toString('base64url') }),
    keyChanged: (userId) => void keys.delete(userId),
    knownViewer: (req) => {
      let parsed;
      try {
        parsed = parse(req.headers.authorization);
      } catch {
        return undefined;
      }
      if (!parsed || duplicated(req) || keys.get(parsed.viewer.id) !== parsed.key) return undefined;
      return parsed.viewer.id;
    },
    required: async (request) => {
      const viewer = await authenticate(request);
      if (!viewer) throw tokenMissing();
      request.viewer = viewer;
    },
    optional: async (request) => {
      request.viewer = await authenticate(request);
    },
  };
}
