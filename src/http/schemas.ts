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

const err = (description: string) =>
  Type.Object({ errors: Type.Record(Type.String(), Type.Array(Type.String())) }, { description });
export const Errors = {
  400: err('Malformed JSON'),
  401: err('Missing or invalid token'),
  403: err('Not the owner'),
  404: err('Not found'),
  409: err('Already taken'),
  413: err('Body too large'),
  415: err('Content type is not application/json'),
  422: err('Validation failed'),
  429: err('Too many requests; retry after Retry-After seconds'),
  504: err('The request ran out of time (REQUEST_TIMEOUT_MS)'),
  503: err('Temporarily unavailable (database); retry after Retry-After seconds'),
} as const;

export const Security = [{ Token: [] as string[] }];
