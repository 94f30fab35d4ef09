// Cached reads, declared: a route says what its response depends on, and cachedGet does the
// caching. The route's own code is its domain logic and SQL: a key (everything the response
// depends on in the request), a load (the data and the tags it was built from, cache/tags.ts), the
// body the data makes, and, if the body shows articles or authors, which ones (the viewer's
// favorited/following flags go on top of the stored anonymous bytes).
//
// What cachedGet owns, for every such route alike:
//   - CACHE=off: load as the viewer sees it, answer.
//   - a hit or a load (single flight, the race guard, the Redis tier: response-cache.ts);
//   - anonymous: the stored bytes, sent as they are (ResponseCache.send: the ETag, 304, the
//     compressed variants, the note the hot path replays from). Nothing else is built on this
//     path: it is the one the benchmark's cached reads take;
//   - signed in: the viewer's flags (cache/viewer-flags.ts, no query once their sets are cached)
//     written into a copy of the stored bytes (its compressed bytes kept: ResponseCache.sendFlagged),
//     or the stored bytes when none is theirs; noted with the flag ids, so the hot path answers
//     the next signed-in readers of the page the same way;
//   - the registry the coherence test enumerates (ResponseCache.routes): a route declared here
//     and not exercised by test/coherence.ts fails that test.
//
// A helper rather than route options (`config: { cache }` read by an onRoute hook): the
// declaration's functions take the request as the route's schema types it (params, query),
// which route config cannot express; and the caching is a function a reader can open, not a
// hook that rewrites handlers out of sight.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteGenericInterface,
} from 'fastify';
import type { Static, TSchema } from 'typebox';
import type { App } from '../context.ts';
import type { Queryable } from '../db/pool.ts';
import type { DeclaredRoute, FlagIds, Loaded } from './entry.ts';
import type { ResponseCache } from './response-cache.ts';
import { viewerFlags, viewerOffsets } from './viewer-flags.ts';

/** The request as the route's schema types it. */
export type RequestOf<S extends FastifySchema> = FastifyRequest<
  RouteGenericInterface,
  RawServerDefault,
  RawRequestDefaultExpression,
  S,
  TypeBoxTypeProvider
>;

/** The body of the route's 200 response, as its schema types it. */
type Ok<S> = S extends { response: { 200: infer R extends TSchema } } ? Static<R> : never;

interface Common<S extends FastifySchema, T> {
  /** Everything the stored response depends on in the request: one entry per distinct key. */
  key: (request: RequestOf<S>) => string;
  /**
   * The response's data as `viewer` sees it (null: anonymous) and the tags it was built from;
   * undefined when there is nothing (`missing` is thrown). With `flags` declared the cache
   * loads as anonymous and adds the viewer's flags on top; without, it loads as the request's
   * viewer, so a response that differs by viewer must have the viewer in its key.
   */
  load: (request: RequestOf<S>, viewer: number | null) => Promise<Loaded<T> | undefined>;
  /** The error for "nothing loaded" (a 404). */
  missing?: () => Error;
}

/** The stored bytes are the response (serialized by the route's response schema). */
interface Stored<S extends FastifySchema, T> extends Common<S, T> {
  body: (data: T) => Ok<S>;
  /** The body shows these articles' `favorited` and authors' `following`: the viewer's go on top. */
  flags?: (data: T) => FlagIds;
}

/** The response holds something of the request's own (its token): made per request from the cached data. */
interface Answered<S extends FastifySchema, T> extends Common<S, T> {
  answer: (data: T, request: RequestOf<S>) => Ok<S>;
}

export type ReadDeclaration<S extends FastifySchema, T> = Stored<S, T> | Answered<S, T>;

export interface CachedGet<S extends FastifySchema, T> {
  url: string;
  /** Authentication (http/auth.ts `auth.optional` or `auth.required`). */
  onRequest?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  schema: S;
  cache: ReadDeclaration<S, T>;
}

const NO_IDS: FlagIds = { articles: [], authors: [] };

/** Registers `GET route.url`, answered through the cache as `route.cache` declares. */
export function cachedGet<S extends FastifySchema, T>(
  app: App,
  ctx: { readonly db: Queryable; readonly cache: ResponseCache | undefined },
  route: CachedGet<S, T>,
): void {
  const { db, cache } = ctx;
  const read = route.cache;
  const answer = 'answer' in read ? read.answer : undefined;
  const body = 'body' in read ? read.body : undefined;
  const flags = 'flags' in read ? read.flags : undefined;
  const missing = read.missing ?? (() => new Error(`GET ${route.url}: nothing was loaded and no error is declared for it`));
  const declared: DeclaredRoute = { method: 'GET', url: route.url, viewerFlags: flags !== undefined, served: { anonymous: 0, viewer: 0 } };
  cache?.routes.push(declared);
  const respond = (data: T, request: RequestOf<S>) => (answer ? answer(data, request) : body!(data));
  // A route without an auth hook never has a viewer: a signed-in reader gets everyone's bytes,
  // which show no one's flags (noted so, for the hot path).
  const everyones = route.onRequest === undefined ? NO_IDS : undefined;
  const count = (viewer: number | null) => {
    if (viewer === null) declared.served.anonymous++;
    else declared.served.viewer++;
  };
  // Fastify cannot resolve the request's or the reply's types from a schema that is still a
  // type parameter here: the route is registered with the schema as any schema, and the
  // declaration's functions are typed by the route's own (CachedGet).
  const schema: FastifySchema = route.schema;

  app.route({
    method: 'GET',
    url: route.url,
    ...(route.onRequest && { onRequest: route.onRequest }),
    schema,
    handler: async (untyped, reply) => {
      const request = untyped as RequestOf<S>;
      const viewer = request.viewer?.id ?? null;
      if (!cache) {
        const loaded = await read.load(request, viewer);
        if (!loaded) throw missing();
        return respond(loaded.data, request);
      }
      if (answer) {
        const entry = await cache.get(
          read.key(request),
          () => read.load(request, viewer),
          // Never sent: the bytes are there for the byte bound and the Redis tier.
          (data) => JSON.stringify(data),
        );
        if (!entry) throw missing();
        count(viewer);
        return answer(entry.data, request);
      }
      // The stored bytes are the response: the entry keeps of the data only the flag ids.
      const entry = await cache.get(
        read.key(request),
        () => read.load(request, flags ? null : viewer),
        (data) => reply.serialize(body!(data)),
        (data) => (flags ? flags(data) : NO_IDS),
      );
      if (!entry) throw missing();
      count(viewer);
      if (!flags) return cache.send(request, reply, entry, everyones);
      // Noted with the ids, so the hot path may answer signed-in readers of these bytes too.
      const ids = entry.data;
      if (viewer === null) return cache.send(request, reply, entry, ids);
      const theirs = await viewerFlags(db, cache, viewer, ids.articles, ids.authors);
      const changed = viewerOffsets(entry.body, ids, theirs);
      if (changed?.length === 0) return cache.send(request, reply, entry, ids);
      if (changed) return cache.sendFlagged(request, reply, entry, changed, ids);
      // The stored bytes do not hold the keys where the declaration says (a serializer whose shape
      // changed): this viewer's response is loaded instead, and the mismatch logged.
      request.log.warn({ route: route.url }, 'cached body and declared flags disagree: loading the response for the viewer');
      const own = await read.load(request, viewer);
      if (!own) throw missing();
      return respond(own.data, request);
    },
  });
}
