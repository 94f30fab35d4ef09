// What bounds the work one process takes on: load shedding, the rate limits, and the threads and
// queue of password hashing.
import { availableParallelism } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { bool, int, keyPrefix, type Env } from './parse.ts';

/**
 * libuv's threadpool, unless UV_THREADPOOL_SIZE says otherwise: one thread per CPU the process
 * may use (the container's CPU limit counts), and at least two, so that one password hash never
 * holds up zlib and fs work alone. Argon2, the pool's main work, is CPU-bound: a thread beyond
 * the CPUs adds no hashes a second, and each thread that ran a hash keeps its block (7 MiB) in its
 * own malloc arena for good (docs/memory.md "Password hashing").
 */
export const defaultThreadpoolSize = (): number => Math.max(2, availableParallelism());

/** From this heap limit V8 lets the old generation grow by 60% or more; under it, it caps the factor lower itself. */
const CAPPED_HEAP_LIMIT = 1024 ** 3;
const CAPPED_GROWING_PERCENT = 40;

/**
 * V8's old generation may grow by this much after a full collection before the next one, in
 * percent; 0 leaves the factor to V8. V8 picks between 1.1 and 4 from how fast it collects (4 on
 * this service's load), capped by the heap limit: 1.3 at 256 MB, 1.6 at 1 GB, 2 from 2 GB.
 * Unset, it is 40 on a heap limit of 1 GB or more: V8's own 4 let promoted garbage, and the
 * Buffers behind it, add 8 to 24 MB to the peaks of read-auth and write; 60% took most of that
 * off and 40% a few MB more on write and mixed, each at a CPU cost within the runs' spread
 * (docs/memory.md "The default: 40% on a heap of 1 GB or more"); 30% and 20% cost more. Under a
 * smaller limit (a container's) V8's own cap is lower, and it is left to V8. src/runtime.ts sets
 * it at start: V8 reads it at every full collection, and Node refuses it in NODE_OPTIONS.
 */
export const heapGrowingPercent = (env: Env, heapLimitBytes: number = getHeapStatistics().heap_size_limit): number =>
  int(env, 'HEAP_GROWING_PERCENT', heapLimitBytes >= CAPPED_HEAP_LIMIT ? CAPPED_GROWING_PERCENT : 0, 0, 300);

export interface LimitsConfig {
  readonly shed: boolean;
  readonly shedMaxEventLoopDelayMs: number;
  readonly shedMaxHeapUsedBytes: number;
  readonly shedMaxInFlight: number;
  readonly shedQueueTimeoutMs: number;
  readonly rateLimit: boolean;
  readonly rateLimitMax: number;
  readonly rateLimitLoginMax: number;
  readonly rateLimitRegisterMax: number;
  readonly rateLimitWindowMs: number;
  /** Password checks (logins and registrations together) per client address per window below. */
  readonly rateLimitPasswordMax: number;
  readonly rateLimitPasswordWindowMs: number;
  readonly rateLimitPrefix: string;
  readonly uvThreadpoolSize: number;
  readonly heapGrowingPercent: number;
  /** One full, memory-reducing collection once started, before listening (src/runtime.ts). */
  readonly startupGc: boolean;
  readonly argon2Concurrency: number;
  readonly argon2Queue: number;
  readonly argon2MaxWaitMs: number;
  /** Password hashes one client address may have running or waiting at once; 0: no per-address bound. */
  readonly argon2PerClient: number;
}

export function limitsConfig(env: Env): LimitsConfig {
  // src/runtime.ts applies the same default before the threadpool starts.
  const uvThreadpoolSize = int(env, 'UV_THREADPOOL_SIZE', defaultThreadpoolSize(), 1, 1024);
  // Hashes admitted at once: one per thread, and at least four. The per-address bound and the
  // queue follow it, so a client sending a few logins at once, or a NAT of them, is not refused
  // on a small machine. A hash admitted past the threads waits in libuv's queue, bounded by these
  // permits; it takes its block only once a thread runs it.
  const argon2Concurrency = int(env, 'ARGON2_CONCURRENCY', Math.max(4, uvThreadpoolSize), 1, 1024);
  return {
    shed: bool(env, 'SHED', true),
    // A saturated loop shows as event-loop delay: every timer fires this late, every request
    // waits this long before its handler runs. See BENCHMARKS.md for the load test behind it.
    shedMaxEventLoopDelayMs: int(env, 'SHED_MAX_EVENT_LOOP_DELAY_MS', 200, 0, 60_000),
    // 0: no heap threshold (V8's own limit applies).
    shedMaxHeapUsedBytes: int(env, 'SHED_MAX_HEAP_USED_BYTES', 0, 0, Number.MAX_SAFE_INTEGER),
    // Requests admitted at once per process: a request that needs the database waits for the pool
    // (DB_POOL_MAX, DB_ACQUIRE_TIMEOUT_MS) long before 256 pile up. 0: no bound.
    shedMaxInFlight: int(env, 'SHED_MAX_IN_FLIGHT', 256, 0, 1_000_000),
    // Past it a request waits for a place, in arrival order, this long at most, then gets 503:
    // as long as one waiting for a database connection does (DB_ACQUIRE_TIMEOUT_MS). A 503 at
    // once (0) is what a client that retries at once turns into more load (http/waiting.ts).
    shedQueueTimeoutMs: int(env, 'SHED_QUEUE_TIMEOUT_MS', 2000, 0, 60_000),
    rateLimit: bool(env, 'RATE_LIMIT', true),
    // Per client IP per minute across all routes: generous (a busy front end makes a few
    // requests per second), there to stop one client from taking the whole service.
    rateLimitMax: int(env, 'RATE_LIMIT_MAX', 6000, 1, 100_000_000),
    // Login attempts per minute per IP and email: slows password guessing to a crawl while a
    // user who mistypes a few times is never blocked.
    rateLimitLoginMax: int(env, 'RATE_LIMIT_LOGIN_MAX', 20, 1, 100_000_000),
    // Registrations per minute per IP: enough for a conformance suite run from one machine.
    rateLimitRegisterMax: int(env, 'RATE_LIMIT_REGISTER_MAX', 100, 1, 100_000_000),
    // The window every limit above counts in. A minute: long enough that a guesser is slowed to
    // a crawl, short enough that a locked-out user retries soon. Tests set ~1 s to see it reset.
    rateLimitWindowMs: int(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1000, 24 * 3600 * 1000),
    // The pace of password hashing one address may ask for, whatever the emails (the per-email
    // login limit does not see random ones): 30 in 5 s windows. A flood is 429 after its first 30
    // and gets 6 hashes a second on average, 60 in any 5 s at most (two windows' worth across a
    // boundary); a hash costs about 30 ms of a core (median of 20, crypto.argon2 with the OWASP
    // parameters, on the 2-core test machine), so about 0.2 of a core, the rest everyone else's.
    // A burst of 30 lets a conformance suite register and log in its users back to back (and in
    // parallel files), and a person, or a NAT of them, never meets it. The minute-long limits
    // above let a minute's worth through in one burst (issue 24 item 1).
    rateLimitPasswordMax: int(env, 'RATE_LIMIT_PASSWORD_MAX', 30, 1, 100_000_000),
    rateLimitPasswordWindowMs: int(env, 'RATE_LIMIT_PASSWORD_WINDOW_MS', 5000, 100, 24 * 3600 * 1000),
    // Namespace of the counters in Redis: deployments sharing one Redis (staging and production,
    // or parallel test runs) set different prefixes so they do not count each other's requests.
    rateLimitPrefix: keyPrefix(env, 'RATE_LIMIT_PREFIX', 'conduit:ratelimit:'),
    uvThreadpoolSize,
    heapGrowingPercent: heapGrowingPercent(env),
    startupGc: bool(env, 'STARTUP_GC', true),
    // Argon2 runs on the threadpool, where nothing bounds what waits: these permits do, and a
    // short queue beside them absorbs bursts.
    argon2Concurrency,
    argon2Queue: int(env, 'ARGON2_QUEUE', 2 * argon2Concurrency, 0, 100_000),
    argon2MaxWaitMs: int(env, 'ARGON2_MAX_WAIT_MS', 1000, 1, 60_000),
    // One address may fill the hashing slots but never wait in the queue beside them: a flood from
    // one client then leaves the queue to everyone else, who take each slot as it frees (FIFO),
    // while a client behind a NAT or sending a few logins at once is not refused.
    argon2PerClient: int(env, 'ARGON2_PER_CLIENT', argon2Concurrency, 0, 1024),
  };
}
