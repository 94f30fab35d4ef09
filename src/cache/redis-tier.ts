// The shared tier: a Redis cache behind each process's in-process one (REDIS_URL with
// CACHE_REDIS on), so a new instance starts warm and N instances load each entry once.
//
// It must be as never-wrong as the in-process cache, with writers and loaders in different
// processes. Three scripts (redis-scripts.ts, with the keys they use) keep it so, each atomic
// in Redis:
// - invalidate: stamps each tag with the next value of a monotonic clock (Redis TIME, never
//   going back) in the `meta` hash, and deletes the entries listed in each tag's set. Run by
//   the writer before it answers and before it publishes on the bus (cache/bus.ts order in
//   app-context.ts), so no reader anywhere can find an entry the write made stale.
// - read: the entry if it is valid, else a stamp for the load that follows.
// - store: refuses an entry whose load started (stamp) before an invalidation of one of its
//   tags: the race guard of the in-process cache, across processes.
// An entry also records its stamp and tags, and `read` re-checks them against the tags'
// invalidation stamps, so an entry whose tag set was lost (evicted) still cannot be served.
// The `epoch` in `meta` names the generation of entries: a Redis restart or an expired or
// evicted `meta` gives a new epoch (every older entry and every load in flight becomes
// unusable), and so does `reset()`. An instance that failed to run an invalidation (Redis
// unreachable, or a command timeout on a stalled event loop) moves the epoch at once if it can;
// if it cannot, it stops using the tier until it has, and its bus message tells every other
// process to do the same (`distrust`: each moves the epoch itself). Only a process that reaches
// Redis but not the bus, while the writer reaches neither, can still read what that write
// should have removed: until the writer's "drop everything" message gets through (cache/bus.ts).
//
// Every call fails fast (no offline queue, a short command timeout, a breaker after timeouts):
// with Redis away the service answers from PostgreSQL, and counts the errors.
// The scripts touch keys they compute from the prefix: a standalone Redis (or one primary), not
// Redis Cluster.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { decodeEntry, encodeEntry, entryKey, withScripts, type Scripted } from './redis-scripts.ts';
import type { CacheStats, Entry, SharedRead, SharedTier } from './response-cache.ts';

// A load that took longer than this is not stored: its stamp may predate invalidations that
// have already been forgotten. Far above the request deadline (REQUEST_TIMEOUT_MS, 5 s).
const MAX_LOAD_MS = 30_000;
// After a command timeout (Redis stuck, not down), calls are skipped this long: one slow
// request per second at most, not one per cache miss.
const BREAKER_MS = 1000;
/** ioredis's error for a command past its commandTimeout. */
export const COMMAND_TIMED_OUT = 'Command timed out';

interface Ticket {
  epoch: string;
  stamp: string;
  at: number;
}

const freshEpoch = () => randomBytes(9).toString('base64url');

export class RedisTier implements SharedTier {
  readonly #redis: Scripted;
  readonly #prefix: string;
  readonly #meta: string;
  readonly #ttlMs: number;
  // `meta` outlives every entry and storable load that depends on it, and no more: an idle
  // deployment leaves nothing behind, and a `meta` that expired is a new epoch (safe).
  readonly #metaTtlMs: number;
  readonly #stats: CacheStats;
  readonly #log: FastifyBaseLogger | undefined;
  // Invalidations that may not have happened (failed here), and how many of them an epoch
  // change has covered: while some are owed, the tier is not used.
  #owed = 0;
  #covered = 0;
  #recovering = false;
  #retry: NodeJS.Timeout | undefined;
  #breakerUntil = 0;
  #closed = false;

  /** `redis`: a connection for the cache alone, with enableOfflineQueue false and a command timeout. */
  constructor(opts: { redis: Redis; prefix: string; ttlMs: number; stats: CacheStats; log?: FastifyBaseLogger | undefined }) {
    this.#redis = withScripts(opts.redis);
    this.#prefix = opts.prefix;
    this.#meta = `${opts.prefix}meta`;
    this.#ttlMs = opts.ttlMs;
    this.#metaTtlMs = opts.ttlMs + 2 * MAX_LOAD_MS;
    this.#stats = opts.stats;
    this.#log = opts.log;
    this.#redis.on('ready', () => void this.#recover());
  }

  /** False while Redis is unreachable, stuck, or owed an invalidation. */
  get usable(): boolean {
    return this.#owed === this.#covered && this.#redis.status === 'ready' && Date.now() >= this.#breakerUntil;
  }

  #failed(err: unknown, what: string): void {
    this.#stats.redisErrors++;
    if (err instanceof Error && err.message === COMMAND_TIMED_OUT) this.#breakerUntil = Date.now() + BREAKER_MS;
    this.#log?.warn({ err: err instanceof Error ? err.message : String(err) }, `redis cache ${what} failed`);
  }

  async read(key: string): Promise<SharedRead> {
    if (!this.usable) {
      this.#stats.redisErrors++;
      return undefined;
    }
    try {
      const [epoch, stamp, value, ttlMs] = await this.#redis.cacheReadBuffer(
        this.#meta,
        this.#prefix,
        entryKey(key),
        freshEpoch(),
        this.#metaTtlMs,
      );
      const ticket: Ticket = { epoch: epoch.toString(), stamp: stamp.toString(), at: performance.now() };
      if (!value) return { ticket };
      return {
        ticket,
        entry: decodeEntry(value),
        ...(typeof ttlMs === 'number' && ttlMs > 0 ? { ttlMs } : {}),
      };
    } catch (err) {
      this.#failed(err, 'read');
      return undefined;
    }
  }

  async store(key: string, entry: Entry<unknown>, ticket: unknown): Promise<boolean> {
    const t = ticket as Ticket;
    if (!this.usable || performance.now() - t.at > MAX_LOAD_MS / 2) return false;
    const value = encodeEntry(entry);
    const tags = [...new Set(entry.tags)];
    try {
      const stored = await this.#redis.cacheStore(
        this.#meta,
        this.#prefix,
        entryKey(key),
        value,
        this.#ttlMs,
        t.epoch,
        t.stamp,
        MAX_LOAD_MS * 1000,
        JSON.stringify(tags),
        ...tags,
      );
      if (stored === 1) this.#stats.redisStores++;
      return stored === 1;
    } catch (err) {
      this.#failed(err, 'store');
      return false;
    }
  }

  /**
   * Never throws. On a failure the epoch is moved at once if Redis lets us (every entry and
   * every load in flight becomes unusable everywhere); if not, the tier is unusable here until
   * it has moved, and the answer is false so that the bus tells the others (`distrust`).
   */
  async invalidate(tags: readonly string[]): Promise<boolean> {
    if (tags.length === 0) return true;
    // Forget a tag's stamp only once no entry and no storable load can predate it.
    const forgetAfterUs = this.#metaTtlMs * 1000;
    try {
      if (this.#redis.status !== 'ready') throw new Error(`redis is ${this.#redis.status}`);
      if (Date.now() < this.#breakerUntil) throw new Error('redis timed out recently');
      await this.#redis.cacheInvalidate(this.#meta, this.#prefix, freshEpoch(), forgetAfterUs, this.#metaTtlMs, ...new Set(tags));
      return true;
    } catch (err) {
      this.#failed(err, 'invalidation');
      this.#owed++;
      await this.#recover();
      return this.#owed === this.#covered;
    }
  }

  distrust(): void {
    this.#owed++;
    void this.#recover();
  }

  /** Makes every entry unreachable (a new epoch). */
  async reset(): Promise<void> {
    const results = await this.#redis.multi().hset(this.#meta, 'epoch', freshEpoch()).pexpire(this.#meta, this.#metaTtlMs).exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('epoch change aborted');
  }

  /**
   * Moves the epoch for the invalidations owed so far; again if more failed meanwhile (the
   * epoch may have moved before their writes committed). On 'ready', and each second until done.
   */
  async #recover(): Promise<void> {
    if (this.#closed || this.#recovering || this.#owed === this.#covered) return;
    if (this.#redis.status !== 'ready' || Date.now() < this.#breakerUntil) {
      this.#scheduleRecovery();
      return;
    }
    clearTimeout(this.#retry);
    this.#recovering = true;
    const owed = this.#owed;
    try {
      await this.reset();
      this.#covered = owed;
      this.#log?.info('redis cache usable again (new epoch)');
    } catch (err) {
      this.#failed(err, 'epoch change');
    } finally {
      this.#recovering = false;
    }
    if (this.#owed !== this.#covered) this.#scheduleRecovery();
  }

  #scheduleRecovery(): void {
    if (this.#closed) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#recover(), BREAKER_MS);
    this.#retry.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
  }
}
