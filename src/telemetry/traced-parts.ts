// The response cache and password hashing with spans of their own, built in their place by
// app-context.ts when tracing is on: "cache lookup" with its outcome (a miss's load runs inside
// it), and "hash password" / "verify password", whose time shows the wait for a hashing slot too.
// Each records only under a recording request span; otherwise it is one check and the plain call.
import { context, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { Entry, Loaded } from '../cache/entry.ts';
import { ResponseCache } from '../cache/response-cache.ts';
import type { Passwords } from '../context.ts';
import { AppError } from '../http/errors.ts';
import { inSpan, tracer } from './spans.ts';

const isClientError = (err: unknown) => err instanceof AppError && err.status < 500;
const recording = () => trace.getActiveSpan()?.isRecording() === true;

function fail(span: Span, err: unknown): void {
  if (isClientError(err)) return;
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

export class TracedResponseCache extends ResponseCache {
  override get<T, K = T>(
    key: string,
    load: () => Promise<Loaded<T> | undefined>,
    serialize: (data: T) => string | Buffer | ArrayBuffer,
    keep?: (data: T) => K,
  ): Promise<Entry<K> | undefined> {
    if (!recording()) return super.get(key, load, serialize, keep);
    const end = key.indexOf('\u0000');
    // The kind of entry (list, article, ...), never the key: keys hold usernames.
    const span = tracer().startSpan('cache lookup', { attributes: { 'cache.key_kind': end === -1 ? key : key.slice(0, end) } });
    const { hits, coalesced } = this.stats;
    let result: Promise<Entry<K> | undefined>;
    try {
      result = context.with(trace.setSpan(context.active(), span), () => super.get(key, load, serialize, keep));
    } catch (err) {
      span.end();
      throw err;
    }
    // get() counts its outcome before its first await.
    const outcome = this.stats.hits !== hits ? 'hit' : this.stats.coalesced !== coalesced ? 'coalesced' : 'miss';
    span.setAttributes({ 'cache.hit': outcome === 'hit', 'cache.outcome': outcome });
    if (outcome === 'hit') {
      span.end();
      return result;
    }
    return result.then(
      (entry) => {
        span.end();
        return entry;
      },
      (err: unknown) => {
        fail(span, err);
        span.end();
        throw err;
      },
    );
  }
}

export function tracedPasswords(passwords: Passwords): Passwords {
  return {
    limiter: passwords.limiter,
    hash: (password) =>
      recording() ? inSpan('hash password', {}, () => passwords.hash(password), { isClientError }) : passwords.hash(password),
    verify: (password, phc) =>
      recording()
        ? inSpan('verify password', {}, () => passwords.verify(password, phc), { isClientError })
        : passwords.verify(password, phc),
  };
}
