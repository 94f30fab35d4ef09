// Cross-process invalidation over Redis pub/sub, used instead of LISTEN/NOTIFY when REDIS_URL
// is set (cache/bus.ts explains the bus). Pub/sub delivers at most once, to whoever is
// subscribed at that moment, so:
// - the subscriber has its own connection (a subscribed connection can do nothing else), and
//   each time it (re)subscribes the local cache is dropped: messages sent while it was away
//   are lost. While it is away, entries also expire by CACHE_TTL_MS (README).
// - a publish that fails (Redis unreachable from here) is not retried tag by tag: once Redis
//   answers again this process publishes "drop everything", since the others may have kept
//   entries the lost message would have removed.
// Publishing never throws: the write it follows has committed, and its client gets its answer.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import type { InvalidationBus } from './bus.ts';
import { COMMAND_TIMED_OUT } from './redis-tier.ts';
import type { ResponseCache } from './response-cache.ts';
import { received } from './tags.ts';

/** How long start() waits for the first subscription before going on without it. */
const START_WAIT_MS = 2000;

interface Message {
  /** The publishing process (its own messages are ignored). */
  o: string;
  /** Tags to invalidate. */
  t?: string[];
  /** Drop everything: the publisher lost messages (and do not trust the shared tier). */
  all?: true;
  /** The publisher could not invalidate the shared tier: do not use it until its epoch moves. */
  d?: 1;
}

/** The channel the processes of one deployment (one CACHE_REDIS_PREFIX) share. */
export const redisInvalidationChannel = (prefix: string) => `${prefix}invalidate`;

/** publishDropAll (cache/bus.ts) for a deployment whose bus is Redis. */
export async function publishDropAllRedis(redis: Pick<Redis, 'publish'>, channel: string, origin: string): Promise<void> {
  await redis.publish(channel, JSON.stringify({ o: origin, all: true } satisfies Message));
}

export class RedisInvalidationBus implements InvalidationBus {
  readonly #origin = randomUUID();
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #cache: ResponseCache;
  readonly #log: FastifyBaseLogger | undefined;
  #lostPublish = false;
  #everSubscribed = false;
  #retry: NodeJS.Timeout | undefined;
  #breakerUntil = 0;
  #closed = false;
  #subscribed: (() => void) | undefined;
  #warned = false;
  received = 0;
  connected = false;

  /**
   * `redis`: the connection to publish on (fail-fast options), which the bus closes; a
   * subscriber is made from it.
   */
  constructor(opts: { redis: Redis; channel: string; cache: ResponseCache; log?: FastifyBaseLogger | undefined }) {
    this.#pub = opts.redis;
    this.#channel = opts.channel;
    this.#cache = opts.cache;
    this.#log = opts.log;
    // Resubscribed by hand on each 'ready' (below) to know when the subscription is back.
    this.#sub = opts.redis.duplicate({ autoResubscribe: false, commandTimeout: undefined });
    this.#sub.on('error', (err: Error) => this.#warn(err));
    this.#pub.on('error', (err: Error) => this.#warn(err));
    this.#sub.on('ready', () => void this.#subscribe());
    this.#sub.on('close', () => {
      this.connected = false;
    });
    this.#pub.on('ready', () => void this.#flushLost());
    this.#sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.#receive(channel, payload));
  }

  #warn(err: Error): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#log?.warn(
      { err: err.message },
      'redis unreachable: cache invalidations from other processes wait for it; entries expire by CACHE_TTL_MS',
    );
  }

  #receive(channel: Buffer, payload: Buffer): void {
    if (channel.toString() !== this.#channel) return;
    try {
      const msg = JSON.parse(payload.toString()) as Message;
      if (msg.o === this.#origin) return;
      this.received++;
      if (msg.all) this.#cache.clear();
      else if (Array.isArray(msg.t)) this.#cache.invalidate(received(msg.t));
      if (msg.all || msg.d) this.#cache.shared?.distrust();
    } catch (err) {
      this.#log?.warn({ err }, 'ignoring a malformed cache invalidation message');
    }
  }

  async #subscribe(): Promise<void> {
    try {
      await this.#sub.subscribe(this.#channel);
    } catch (err) {
      // The connection went again; the next 'ready' tries again.
      this.#log?.warn({ err: String(err) }, 'cache invalidation subscription failed');
      return;
    }
    // Anything published while we were not subscribed is lost: start from an empty cache,
    // and (after the first time) distrust the shared tier: a lost message may have said to.
    this.#cache.clear();
    if (this.#everSubscribed) this.#cache.shared?.distrust();
    this.#everSubscribed = true;
    this.connected = true;
    if (this.#warned) this.#log?.info('cache invalidation bus connected again');
    this.#warned = false;
    this.#subscribed?.();
  }

  /**
   * Waits until both connections are ready (subscribed, for the subscriber), or one fails to
   * connect, or START_WAIT_MS: without Redis the service starts anyway, and the bus connects
   * when Redis is there.
   */
  async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let failed: (() => void) | undefined;
    const subscribed = this.connected ? Promise.resolve() : new Promise<void>((resolve) => (this.#subscribed = resolve));
    const published = this.#pub.status === 'ready' ? Promise.resolve() : once(this.#pub, 'ready').then(() => undefined);
    // once() rejects on 'error': that is a failure to connect, and the end of the wait.
    published.catch(() => undefined);
    await new Promise<void>((resolve) => {
      failed = resolve;
      this.#sub.once('error', failed);
      timer = setTimeout(resolve, START_WAIT_MS);
      Promise.all([subscribed, published]).then(
        () => resolve(),
        () => resolve(),
      );
    });
    clearTimeout(timer);
    this.#sub.off('error', failed!);
    this.#subscribed = undefined;
  }

  /** After a lost publish: on reconnect, on the next publish, and every second until it works. */
  async #flushLost(): Promise<void> {
    clearTimeout(this.#retry);
    if (!this.#lostPublish || this.#closed) return;
    this.#lostPublish = false;
    await this.#send({ o: this.#origin, all: true });
  }

  async #send(msg: Message): Promise<void> {
    try {
      if (this.#pub.status !== 'ready') throw new Error(`redis is ${this.#pub.status}`);
      // A Redis that stopped answering costs one command timeout a second, not one per write.
      if (Date.now() < this.#breakerUntil) throw new Error('redis timed out recently');
      await this.#pub.publish(this.#channel, JSON.stringify(msg));
    } catch (err) {
      if (err instanceof Error && err.message === COMMAND_TIMED_OUT) this.#breakerUntil = Date.now() + 1000;
      this.#lostPublish = true;
      this.#log?.warn({ err: String(err) }, 'cache invalidation not published; every process drops its cache when redis answers');
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => void this.#flushLost(), 1000);
      this.#retry.unref();
    }
  }

  async publish(tags: readonly string[], distrustShared = false): Promise<void> {
    if (tags.length === 0) return;
    await this.#flushLost();
    await this.#send({ o: this.#origin, t: [...tags], ...(distrustShared ? { d: 1 as const } : {}) });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.connected = false;
    // Not quit(): nothing pending is worth waiting for, and quit would wait on a stuck Redis.
    this.#sub.disconnect();
    this.#pub.disconnect();
  }
}
