// Password hashing with Argon2id from Node 24's own crypto (no native addon), stored as a PHC
// string so the parameters travel with the hash and can be raised later without a migration.
import { argon2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { Semaphore } from '../lib/semaphore.ts';

const argon2Async = promisify(argon2);

// OWASP Password Storage Cheat Sheet, Argon2id's fifth configuration: m=7 MiB, t=5, p=1, which the
// sheet rates an equal defense to its 19 MiB, t=2 and the rest of its list, a trade of memory for
// passes. Each libuv thread that runs a hash keeps its block for good (docs/memory.md "Password
// hashing"): 7 MiB instead of 19 per thread.
const PARAMS = { memory: 7_168, passes: 5, parallelism: 1, tagLength: 32 } as const;
const CURRENT = `$argon2id$v=19$m=${PARAMS.memory},t=${PARAMS.passes},p=${PARAMS.parallelism}$`;

export async function hashPassword(password: string): Promise<string> {
  const nonce = randomBytes(16);
  const tag = await argon2Async('argon2id', { message: password, nonce, ...PARAMS });
  return `${CURRENT}${nonce.toString('base64url')}$${tag.toString('base64url')}`;
}

/** A hash made with other parameters than today's: the login that verifies it stores a new one. */
export function needsRehash(phc: string): boolean {
  return !phc.startsWith(CURRENT);
}

const PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([\w-]+)\$([\w-]+)$/;

export async function verifyPassword(password: string, phc: string): Promise<boolean> {
  const m = PHC.exec(phc);
  if (!m) return false;
  // Every group of PHC is mandatory, so a match has all five: the defaults only tell the compiler.
  const [, memory = '', passes = '', parallelism = '', nonce = '', expected = ''] = m;
  const want = Buffer.from(expected, 'base64url');
  const got = await argon2Async('argon2id', {
    message: password,
    nonce: Buffer.from(nonce, 'base64url'),
    memory: Number(memory),
    passes: Number(passes),
    parallelism: Number(parallelism),
    tagLength: want.length,
  });
  return got.length === want.length && timingSafeEqual(got, want);
}

// Verified against when the email is unknown, so a login for a non-existent account costs the
// same as one with a wrong password (no user enumeration by timing).
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
  return dummyHash;
}

/** Hashing and verification behind a semaphore sized to the threadpool (see config.ts). */
export interface Passwords {
  hash(password: string): Promise<string>;
  /** Verifies against the stored hash, or against a dummy one when there is no user. */
  verify(password: string, phc: string | undefined): Promise<boolean>;
  readonly limiter: Semaphore;
}

export function createPasswords(opts: { concurrency: number; queue: number; maxWaitMs: number }): Passwords {
  const limiter = new Semaphore({ permits: opts.concurrency, queue: opts.queue, maxWaitMs: opts.maxWaitMs, name: 'password hashing' });
  return {
    limiter,
    hash: (password) => limiter.run(() => hashPassword(password)),
    verify: (password, phc) =>
      limiter.run(async () => {
        const ok = await verifyPassword(password, phc ?? (await dummyPasswordHash()));
        return phc !== undefined && ok;
      }),
  };
}
