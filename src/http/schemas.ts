// Schemas shared by several resources. Each resource folder owns its own request and response
// schemas; these are the pieces they have in common.
import { Type } from 'typebox';

export const Profile = Type.Object({
  username: Type.String(),
  bio: Type.Union([Type.String(), Type.Null()]),
  image: Type.Union([Type.String(), Type.Null()]),
  following: Type.Boolean(),
});

/** A required text field: missing, null, "" and whitespace-only are all "can't be blank". */
export const NonBlank = (maxLength: number, extra: Record<string, unknown> = {}) =>
  Type.String({ minLength: 1, maxLength, pattern: '\\S', ...extra });

export const Timestamp = Type.String({ format: 'date-time' });

// The one error shape, `{"errors":{"<key>":["<message>"]}}` (http/errors.ts), described per status.
// `additionalProperties`, not Type.Record: a Record is `patternProperties: {"^.*$": ...}`, and
// the serializer dropped every key that regex does not match, i.e. keys holding a line
// terminator. Such keys come from the client (a query key "a\nb" with a NUL value), and the
// answer was `{"errors":{}}`: no message at all (found by test/resilience/fuzz.test.ts).
const err = (description: string, options: Record<string, unknown> = {}) =>
  Type.Object({ errors: Type.Object({}, { additionalProperties: Type.Array(Type.String()) }) }, { description, ...options });
// A response schema's `headers` become the response's headers in the OpenAPI document
// (@fastify/swagger); the serializer ignores them.
const retryAfter = { headers: { 'retry-after': Type.Integer({ minimum: 1, description: 'Seconds to wait before retrying' }) } };
export const Errors = {
  400: err('Malformed request: a body that is not valid JSON, or a badly percent-encoded URL'),
  401: err('Missing or invalid token'),
  403: err('Not the owner'),
  404: err('Not found'),
  409: err('Already taken'),
  413: err('Body too large'),
  414: err('A path parameter is over 512 characters'),
  415: err('Content type is not application/json'),
  422: err(
    'Validation failed: every invalid field (at most 10 messages), or a `__proto__` / `constructor` key in the body ("is not allowed")',
  ),
  429: err('Too many requests from this client (rate limit); retry after Retry-After seconds', retryAfter),
  503: err(
    'Temporarily unavailable: the process is overloaded (load shedding), the database is unreachable, or no ' +
      'password-hashing slot is free; retry after Retry-After seconds',
    retryAfter,
  ),
  504: err('The request ran out of time (REQUEST_TIMEOUT_MS); retry after Retry-After seconds', retryAfter),
} as const;

/** GET /readyz's refusal: draining, or the database unreachable, slow or not migrated. No Retry-After. */
export const NotReady = err('Not ready: shutting down, or the database is unreachable, slow to answer or not migrated');

// Groups of statuses, spread into each route's `response` so that the document names every
// status a route can answer (src/http/openapi.test.ts checks the rules below).

/**
 * Any API route: refused by the rate limit (429) or by load shedding (503), the database
 * unavailable (503), or the request out of time (504).
 */
export const Refusals = { 429: Errors[429], 503: Errors[503], 504: Errors[504] } as const;
/** A route with a JSON body: not valid JSON (400), too large (413), not JSON (415), invalid (422). */
export const BodyErrors = { 400: Errors[400], 413: Errors[413], 415: Errors[415], 422: Errors[422] } as const;
/** A route with path parameters: badly percent-encoded (400), one over 512 characters (414), invalid (422). */
export const PathErrors = { 400: Errors[400], 414: Errors[414], 422: Errors[422] } as const;
/**
 * A route that takes no body, but whose method can carry one (POST, PUT, DELETE): Fastify still
 * parses a body that is sent, so a malformed (400), too large (413) or non-JSON (415) one is
 * refused, and one with a `__proto__` or `constructor.prototype` key is 422. Found by test/resilience/fuzz.test.ts: these routes answered statuses they did not document.
 */
export const IgnoredBodyErrors = { 400: Errors[400], 413: Errors[413], 415: Errors[415], 422: Errors[422] } as const;
/** A route with query parameters: invalid (422). */
export const QueryErrors = { 422: Errors[422] } as const;

export const Security = [{ Token: [] as string[] }];
