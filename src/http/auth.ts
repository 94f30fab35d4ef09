// Authentication: HS256 JWTs in `Authorization: Token <jwt>` (the spec's scheme) or
// `Bearer <jwt>`. A present but bad token is always 401, on optional-auth routes too: falling
// back to anonymous would hide a client bug and serve the wrong `favorited`/`following` flags.
import { randomBytes } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';
import { tokenInvalid, tokenMissing } from './errors.ts';

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

export interface Auth {
  sign: (userId: number) => string;
  /** onRequest hook: 401 without a valid token. */
  required: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** onRequest hook: anonymous without a header, 401 with a bad one. */
  optional: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
}

/** The viewer's id on a route guarded by `auth.required`. */
export function viewerId(request: FastifyRequest): number {
  if (!request.viewer) throw tokenMissing();
  return request.viewer.id;
}

export function createAuth(config: Pick<Config, 'jwtSecret' | 'jwtTtlSeconds'>): Auth {
  const key = config.jwtSecret.expose();
  const signer = createSigner({ key, algorithm: 'HS256', expiresIn: config.jwtTtlSeconds * 1000 });
  // Only HS256 is accepted: `alg: none` and algorithm-confusion tokens fail verification.
  // Verified tokens are cached (bounded LRU, never past their expiry): the same client sends
  // the same token on every request, and an HMAC per request is measurable at high rates.
  const verifier = createVerifier({ key, algorithms: ['HS256'], requiredClaims: ['sub', 'exp'], cache: 10_000 });

  function parse(header: string | undefined): Viewer | null {
    if (header === undefined) return null;
    const space = header.indexOf(' ');
    const scheme = space === -1 ? '' : header.slice(0, space).toLowerCase();
    const token = header.slice(space + 1).trim();
    if ((scheme !== 'token' && scheme !== 'bearer') || token === '') throw tokenInvalid();
    let payload: { sub?: unknown };
    try {
      payload = verifier(token) as { sub?: unknown };
    } catch {
      throw tokenInvalid();
    }
    const id = Number(payload.sub);
    if (!Number.isSafeInteger(id) || id <= 0) throw tokenInvalid();
    return { id, token };
  }

  return {
    // jti makes every token distinct, so a "fresh token" after PUT /user really is new even
    // within the same second as the previous one.
    sign: (userId) => signer({ sub: String(userId), jti: randomBytes(9).toString('base64url') }),
    required: async (request) => {
      const viewer = parse(request.headers.authorization);
      if (!viewer) throw tokenMissing();
      request.viewer = viewer;
    },
    optional: async (request) => {
      request.viewer = parse(request.headers.authorization);
    },
  };
}
