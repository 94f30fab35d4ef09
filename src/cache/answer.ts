// What ResponseCache.send answered a request with, noted on the request for the hot path
// (hot-path.ts) to record once the response has gone out. A module of its own so that the cache
// and the hot path both import it and neither imports the other.
import type { FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Encoding, Entry, FlagIds } from './entry.ts';

const kAnswer = Symbol('conduit.cachedAnswer');

export interface CachedAnswer {
  readonly entry: Entry<unknown>;
  readonly body: Buffer;
  readonly encoding: Encoding | undefined;
  /**
   * Set when every signed-in reader of the route gets the entry's bytes with their own flags set:
   * the articles and authors the body shows (cachedGet's `flags`), or none (a route without an
   * auth hook: everyone's bytes as they are). A signed-in reader of any other route gets a
   * response of its own.
   */
  readonly flagIds: FlagIds | undefined;
  /** `body` is a signed-in reader's copy with their flags set (ResponseCache.sendFlagged), not the entry's bytes. */
  readonly copy: boolean;
}

declare module 'node:http' {
  interface IncomingMessage {
    [kAnswer]?: CachedAnswer;
  }
}

/** Notes on the request that its answer is `body` (in `encoding`, or as stored), from `entry`; returns `body`. */
export function noteCachedAnswer(
  request: FastifyRequest,
  entry: Entry<unknown>,
  body: Buffer,
  encoding?: Encoding,
  flagIds?: FlagIds,
  copy = false,
): Buffer {
  request.raw[kAnswer] = { entry, body, encoding, flagIds, copy };
  return body;
}

/** What noteCachedAnswer noted on this request, if anything. */
export function cachedAnswer(req: IncomingMessage): CachedAnswer | undefined {
  return req[kAnswer];
}
