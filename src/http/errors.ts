// One error model. Domain code throws `AppError`s (or lets PostgreSQL raise constraint errors; the
// layers below HTTP throw their own errors: db/deadline.ts `DeadlineExceeded`, lib/semaphore.ts
// `Busy`); `errorHandler` is the single place that turns anything thrown into the contract's
// `{"errors":{"<key>":["<message>"]}}` shape with an honest status. 5xx bodies are opaque: the
// cause is logged with the request id, and only the id reaches the client.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { DeadlineExceeded } from '../db/deadline.ts';
import { databaseError } from '../db/pool.ts';
import { Busy } from '../lib/semaphore.ts';
import { setSecurityHeaders } from './security.ts';
import { validationErrors } from './validation.ts';

export type ErrorMap = Record<string, string[]>;

export class AppError extends Error {
  readonly status: number;
  readonly errors: ErrorMap;
  /** Seconds, for 429/503: sent as Retry-After. */
  readonly retryAfter: number | undefined;
  constructor(status: number, errors: ErrorMap, options?: { cause?: unknown; retryAfter?: number }) {
    super(
      Object.entries(errors)
        .map(([k, v]) => `${k} ${v.join(', ')}`)
        .join('; '),
      { cause: options?.cause },
    );
    this.name = 'AppError';
    this.status = status;
    this.errors = errors;
    this.retryAfter = options?.retryAfter;
  }
}

type Resource = 'article' | 'profile' | 'comment' | 'user';

// The exact strings come from SPEC.md ("Errors"); the official suite compares them.
export const notFound = (what: Resource) => new AppError(404, { [what]: ['not found'] });
export const forbidden = (what: Resource) => new AppError(403, { [what]: ['forbidden'] });
export const taken = (field: 'username' | 'email') => new AppError(409, { [field]: ['has already been taken'] });
export const tokenMissing = () => new AppError(401, { token: ['is missing'] });
export const tokenInvalid = () => new AppError(401, { token: ['is invalid'] });
export const tokenWithoutScheme = () => new AppError(401, { token: ['must be Token <jwt> or Bearer <jwt>'] });
export const invalidCredentials = () => new AppError(401, { credentials: ['invalid'] });
export const unprocessable = (errors: ErrorMap) => new AppError(422, errors);

/**
 * Fastify's JSON parser (secure-json-parse) refuses a `__proto__` or `constructor.prototype` key
 * as if the body were malformed. Called on that refusal: undefined when the body really is not
 * JSON (400 stays), else 422 `{"errors":{"__proto__":["is not allowed"]}}` (or `constructor`),
 * keyed by the refused key wherever it is in the body: valid JSON with a key Conduit will not
 * take. Plain JSON.parse is safe here: it makes `__proto__` an own property, not the prototype.
 */
export function forbiddenKey(body: string): AppError | undefined {
  let proto = false;
  try {
    // A stack, not recursion: the body may be nested deeper than the call stack goes.
    const stack: unknown[] = [JSON.parse(body)];
    while (!proto && stack.length > 0) {
      const v = stack.pop();
      if (v === null || typeof v !== 'object') continue;
      proto = Object.hasOwn(v, '__proto__');
      for (const child of Object.values(v)) stack.push(child);
    }
  } catch {
    return undefined;
  }
  return new AppError(422, Object.fromEntries([[proto ? '__proto__' : 'constructor', ['is not allowed']]]));
}

/** Unique constraints (by name, see migrations) that mean "this value is taken". */
const TAKEN_BY_CONSTRAINT: Record<string, 'username' | 'email'> = {
  users_username_key: 'username',
  // A look-alike of a name in use (lib/identity.ts usernameSkeleton): its look is taken.
  users_username_skeleton: 'username',
  users_email_key: 'email',
  users_email_key_nf: 'email',
};

/** Foreign keys whose referencing column is the acting user. */
const VIEWER_FKEYS = new Set(['follows_follower_id_fkey', 'articles_author_id_fkey', 'favorites_user_id_fkey', 'comments_author_id_fkey']);

// SQLSTATEs that mean the database is unreachable or going away, not that the request is wrong:
// the client may retry, so 503 with Retry-After rather than an opaque 500.
const DB_UNAVAILABLE = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '53300']);
const NET_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND']);
// postgres.js's own: no connection within DB_ACQUIRE_TIMEOUT_MS (QUEUE_TIMEOUT) or at all, a
// connection lost with queries on it, or a pool ended (shutdown in progress).
const DRIVER_UNAVAILABLE = new Set(['QUEUE_TIMEOUT', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED']);

function isDbUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (DB_UNAVAILABLE.has(code) || NET_UNAVAILABLE.has(code) || DRIVER_UNAVAILABLE.has(code));
}

/** Maps what Fastify itself throws (parsing, limits) to the error shape. */
function frameworkError(err: FastifyError): AppError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError(415, { 'content-type': ['must be application/json'] });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError(413, { body: ['is too large'] });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError(400, { body: ["can't be empty when content-type is application/json"] });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError(400, { body: ['is not valid JSON'] });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError(400, { 'content-length': ['does not match the body'] });
    // These two reach errorHandler through the `frameworkErrors` option (app.ts); without it
    // Fastify answered them in its own `{"error","code","message","statusCode"}` shape.
    case 'FST_ERR_BAD_URL':
      return new AppError(400, { url: ['is not validly percent-encoded'] });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new AppError(414, { url: ['is too long'] });
    default:
      break;
  }
  // The JSON parser's SyntaxError (secure-json-parse's prototype-poisoning refusal is a 422
  // made in the parser, app.ts).
  if (err instanceof SyntaxError || err.name === 'SyntaxError') {
    return new AppError(400, { body: ['is not valid JSON'] });
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new AppError(err.statusCode, { request: [err.message] });
  }
  return undefined;
}

export function toAppError(err: unknown, request: FastifyRequest): AppError | undefined {
  if (err instanceof AppError) return err;
  // The request's deadline ran out before it got a connection (db/deadline.ts).
  if (err instanceof DeadlineExceeded) return new AppError(504, { request: ['timed out'] }, { cause: err, retryAfter: 1 });
  // A deliberate refusal with no underlying failure: no cause, so it is not logged as a warning.
  if (err instanceof Busy) return new AppError(503, { [err.resource]: ['is busy, retry later'] }, { retryAfter: 1 });
  const fe = err as FastifyError;
  if (fe?.validation) return unprocessable(validationErrors(fe.validation, fe.validationContext, request));
  const db = databaseError(err);
  if (db?.code === '23505' && db.constraint) {
    const field = TAKEN_BY_CONSTRAINT[db.constraint];
    if (field) return taken(field);
  }
  // query_canceled: the request deadline cancelled the statement (db/pool.ts), or the
  // server-side statement_timeout backstop did. Either way the request ran out of time.
  // postgres.js gives a query withdrawn before it was sent the same code, without a severity.
  if (db?.code === '57014' || (err as { code?: unknown } | null)?.code === '57014') {
    return new AppError(504, { request: ['timed out'] }, { cause: err, retryAfter: 1 });
  }
  // The acting user was deleted after their token was issued: the token names nobody.
  if (db?.code === '23503' && db.constraint && VIEWER_FKEYS.has(db.constraint)) {
    return tokenInvalid();
  }
  if (isDbUnavailable(err)) return new AppError(503, { database: ['is unavailable, retry later'] }, { cause: err, retryAfter: 1 });
  if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('FST_')) {
    return frameworkError(fe);
  }
  if (err instanceof SyntaxError) return frameworkError(fe);
  return undefined;
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  // Errors raised before helmet's hook ran (router errors, shed requests) lacked the security
  // headers; every error response carries them (security.ts).
  setSecurityHeaders(request, reply);
  const mapped = toAppError(err, request);
  if (mapped) {
    // A deliberate refusal (shed, hashing queue full: a 503 with Retry-After and no underlying
    // error) is counted in conduit_requests_refused_total; logging each with a stack trace was
    // more work exactly when the process is overloaded. Failures with a cause keep their warning.
    if (mapped.status >= 500 && (mapped.cause !== undefined || mapped.retryAfter === undefined)) {
      request.log.warn({ err: mapped.cause ?? err }, mapped.message);
    } else if (mapped.status >= 500) {
      request.log.debug({ refused: mapped.errors }, mapped.message);
    }
    if (mapped.retryAfter !== undefined) void reply.header('retry-after', String(mapped.retryAfter));
    return reply.code(mapped.status).send({ errors: mapped.errors });
  }
  // Unexpected: log the whole cause chain; the client gets only the request id to quote.
  request.log.error({ err }, 'unhandled error');
  return reply.code(500).send({ errors: { server: [`internal error (request id ${request.id})`] } });
}

export function notFoundHandler(_request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(404).send({ errors: { route: ['not found'] } });
}

/**
 * Errors Node raises on a connection before any route runs: the headers or whole-request timeout
 * (slowloris, slow uploads), oversized headers, unparsable requests. Fastify's default handler
 * answers them in its own `{"error","message","statusCode"}` body; this answers in the error
 * shape (test/timing/timeouts.test.ts). Like Node's own handler, it writes nothing once a
 * response has started: a second status line in the middle of a body would corrupt it.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, errors] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, { request: ['timed out'] }]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, { headers: ['are too large'] }]
        : [400, { request: ['is malformed'] }];
  const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !started) {
    const body = JSON.stringify({ errors });
    const reason = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[status];
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
