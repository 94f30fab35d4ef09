// Cross-process invalidation over PostgreSQL LISTEN/NOTIFY: always available wherever the
// database is, so several workers and instances stay coherent with no extra infrastructure.
// Each process publishes the tags its writes invalidate; every other process drops them.
// The listener reconnects by itself with backoff. Notifications sent while it was disconnected
// are lost, so on reconnect the whole local cache is dropped; while it is down, entries also
// expire by CACHE_TTL_MS.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { FastifyBaseLogger } from 'fastify';
import type { Queryable } from '../db/pool.ts';
import type { ResponseCache } from './response-cache.ts';
import { received } from './tags.ts';

const CHANNEL = 'conduit_cache';
// NOTIFY payloads are limited to 8000 bytes; stay well below with room for the JSON framing.
const MAX_PAYLOAD = 7000;
const NOTIFY = 'select pg_notify($1, $2)';

export interface InvalidationBus {
  /**
   * `distrustShared`: this process could not invalidate the shared tier (cache/redis-tier.ts),
   * so the others must not use it until its epoch has moved.
   */
  publish(tags: readonly string[], distrustShared?: boolean): Promise<void>;
  close(): Promise<void>;
  /** Notifications received from other processes. */
  readonly received: number;
  readonly connected: boolean;
}

interface Batch {
  tags: Set<string>;
  distrust: boolean;
  sent: Promise<void>;
}

/**
 * Tells every process listening on this database to drop its whole cache (and to distrust the
 * shared tier): for writers outside the service, such as `npm run seed`, whose rows no cached
 * response knows about. The origin names the sender; no listener has it as its own.
 */
export async function publishDropAll(db: Queryable, origin: string): Promise<void> {
  await db.query(NOTIFY, [CHANNEL, JSON.stringify({ o: origin, all: true })]);
}

export class PgInvalidationBus implements InvalidationBus {
  readonly #origin = randomUUID();
  readonly #url: string;
  readonly #db: Queryable;
  readonly #cache: ResponseCache;
  readonly #log: FastifyBaseLogger | undefined;
  #client: pg.Client | undefined;
  #closed = false;
  #retryMs = 100;
  #timer: NodeJS.Timeout | undefined;
  #everConnected = false;
  #lostPublish = false;
  #lostTimer: NodeJS.Timeout | undefined;
  /** The batch taking tags now; sent once the batch before it has been. */
  #open: Batch | undefined;
  /** Settles when the last batch has been sent (never rejects). */
  #sending: Promise<void> = Promise.resolve();
  received = 0;
  connected = false;

  constructor(opts: { url: string; db: Queryable; cache: ResponseCache; log?: FastifyBaseLogger | undefined }) {
    this.#url = opts.url;
    this.#db = opts.db;
    this.#cache = opts.cache;
    this.#log = opts.log;
  }

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#url, application_name: 'conduit-cache-bus' });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('connection ended')));
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL || !msg.payload) return;
      try {
        const { o, t, all, d } = JSON.parse(msg.payload) as { o: string; t?: string[]; all?: true; d?: 1 };
        if (o === this.#origin) return;
        this.received++;
        if (all) this.#cache.clear();
        else if (Array.isArray(t)) this.#cache.invalidate(received(t));
        if (all || d) this.#cache.shared?.distrust();
      } catch (err) {
        this.#log?.warn({ err }, 'ignoring a malformed cache invalidation message');
      }
    });
    await client.connect();
    await client.query(`listen ${CHANNEL}`);
    this.#client = client;
    this.connected = true;
    this.#retryMs = 100;
    // Anything published while we were away is lost: start from an empty cache.
    if (this.#everConnected) {
      this.#cache.clear();
      this.#cache.shared?.distrust();
    }
    this.#everConnected = true;
    void this.#flushLost();
  }

  #lost(client: pg.Client, err: Error): void {
    if (this.#client !== client && this.#client !== undefined) return;
    this.#client = undefined;
    this.connected = false;
    client.removeAllListeners('end');
    void client.end().catch(() => undefined);
    if (this.#closed) return;
    this.#log?.warn({ err: err.message }, `cache invalidation bus disconnected; retrying in ${this.#retryMs} ms`);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.start().catch((err: unknown) => {
        this.#log?.warn({ err: String(err) }, 'cache invalidation bus reconnect failed');
        this.#retryMs = Math.min(this.#retryMs * 2, 5000);
        this.#scheduleReconnect();
      });
    }, this.#retryMs);
    this.#timer.unref();
  }

  /**
   * Never throws: the write it follows has committed and its client must get its answer (an
   * error here once made a committed write answer 500, and a retried create a duplicate). A
   * message that could not be sent is made up for by "drop everything", sent as soon as it can
   * be (the next publish, the listener's reconnect, or a retry each second): until then the
   * other processes may serve what it would have invalidated.
   */
  async publish(tags: readonly string[], distrustShared = false): Promise<void> {
    if (tags.length === 0) return;
    await this.#flushLost();
    // Group commit: writes that finish while the previous NOTIFY is on its way share the next
    // one, so under load a write costs PostgreSQL a fraction of a statement besides its own.
    // Not a pg_notify in the write's own statement: a transaction that notifies holds one
    // cluster-wide lock from before its commit until after it (PreCommit_Notify in
    // PostgreSQL's async.c), so every write would commit, WAL flush included, one at a time.
    let batch = this.#open;
    if (!batch) {
      const next: Batch = { tags: new Set(), distrust: false, sent: Promise.resolve() };
      // setImmediate: the writes whose results arrived in this turn of the event loop join too.
      next.sent = this.#sending
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(() => {
          if (this.#open === next) this.#open = undefined;
          return this.#sendBatch(next);
        });
      this.#sending = next.sent;
      this.#open = batch = next;
    }
    for (const tag of tags) batch.tags.add(tag);
    if (distrustShared) batch.distrust = true;
    await batch.sent;
  }

  /** One NOTIFY per chunk that fits the payload limit. */
  async #sendBatch(batch: Batch): Promise<void> {
    let chunk: string[] = [];
    let size = 0;
    const send = async () => {
      if (chunk.length === 0) return;
      await this.#send(JSON.stringify({ o: this.#origin, t: chunk, ...(batch.distrust ? { d: 1 } : {}) }));
      chunk = [];
      size = 0;
    };
    for (const tag of batch.tags) {
      if (size + tag.length + 3 > MAX_PAYLOAD) await send();
      chunk.push(tag);
      size += tag.length + 3;
    }
    await send();
  }

  /**
   * On the listener's own connection while it is up (no pool checkout), through the pool while it
   * reconnects. Always the one statement with the payload as a parameter, prepared once per
   * connection: a NOTIFY with its payload in the text is a new statement to PostgreSQL each time,
   * and pg_stat_statements keeps one entry per text, so every write batch would push out an entry
   * for the statements that matter and make the extension evict and sort its table.
   */
  async #send(payload: string, via: pg.Client | undefined = this.#client): Promise<boolean> {
    try {
      if (via) await via.query({ name: 'conduit_notify', text: NOTIFY, values: [CHANNEL, payload] });
      else await this.#db.query(NOTIFY, [CHANNEL, payload]);
      return true;
    } catch (err) {
      this.#lostPublish = true;
      this.#log?.warn({ err: String(err) }, 'cache invalidation not published; every process drops its cache once it can be');
      clearTimeout(this.#lostTimer);
      if (!this.#closed) {
        this.#lostTimer = setTimeout(() => void this.#flushLost(), 1000);
        this.#lostTimer.unref();
      }
      return false;
    }
  }

  async #flushLost(): Promise<void> {
    if (!this.#lostPublish || this.#closed) return;
    clearTimeout(this.#lostTimer);
    this.#lostPublish = false;
    // Through the listener's own connection when there is one (#send): it does not depend on the
    // pool (which may be what failed) nor on any request's deadline.
    await this.#send(JSON.stringify({ o: this.#origin, all: true }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#lostTimer);
    const client = this.#client;
    this.#client = undefined;
    this.connected = false;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
