// What the shared tier (redis-tier.ts) keeps in Redis, and the three scripts that read and change
// it, each atomic in Redis. The keys, all under the configured prefix:
// - `meta`, a hash: `epoch` (the generation of entries), `clock` (the last stamp handed out, in
//   microseconds of Redis TIME, never going back), `i:<tag>` (the stamp of the tag's last
//   invalidation) and `pruned` (the hash's size when old stamps were last forgotten);
// - `e:<epoch>:<format>:<key>`, a hash per entry: `v` (the entry, serialized), `s` (the stamp
//   its load started at), `t` (its tags, JSON);
// - `t:<tag>`, a set: the entry keys that depend on the tag, for invalidate to delete.
import v8 from 'node:v8';
import type { Redis } from 'ioredis';
import { ownBytes } from '../lib/bytes.ts';
import type { Entry } from './response-cache.ts';

// The serialized form of an entry; a build that changes it changes this, and entries of the
// other form are never read (they expire). Invalidations (meta, tag sets) are shared by all.
const FORMAT = 'v2';

/** The part of an entry's key after the epoch: the format, then the cache key. */
export const entryKey = (key: string): string => `${FORMAT}:${key}`;

interface Stored {
  data: unknown;
  body: Buffer;
  etag: string;
  tags: readonly string[];
}

export function encodeEntry(entry: Entry<unknown>): Buffer {
  return v8.serialize({ data: entry.data, body: entry.body, etag: entry.etag, tags: entry.tags } satisfies Stored);
}

export function decodeEntry(value: Buffer): Entry<unknown> {
  const stored = v8.deserialize(value) as Stored;
  // The body is a view into `value`, itself a slice of the Redis client's read buffer: copied
  // so that a kept entry does not pin those.
  return { data: stored.data, body: ownBytes(stored.body), etag: stored.etag, tags: stored.tags, variants: new Map() };
}

// read: the entry if it is valid, else a stamp for the load that follows.
const READ = `
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'epoch', 'clock')
local epoch = m[1]
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', meta, 'epoch', epoch)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local clock = tonumber(m[2] or '0')
if clock > now then now = clock end
local stamp = string.format('%.0f', now)
redis.call('HSET', meta, 'clock', stamp)
redis.call('PEXPIRE', meta, ARGV[4])
local key = ARGV[1] .. 'e:' .. epoch .. ':' .. ARGV[2]
local e = redis.call('HMGET', key, 'v', 's', 't')
if e[1] then
  local s = tonumber(e[2])
  for _, tag in ipairs(cjson.decode(e[3])) do
    local inv = redis.call('HGET', meta, 'i:' .. tag)
    if inv and tonumber(inv) >= s then
      redis.call('UNLINK', key)
      return {epoch, stamp}
    end
  end
  return {epoch, stamp, e[1], redis.call('PTTL', key)}
end
return {epoch, stamp}
`;

// store: refuses an entry whose load started (stamp) before an invalidation of one of its tags,
// or whose load took longer than the limit it is given, or that belongs to another epoch.
const STORE = `
local meta = KEYS[1]
if redis.call('HGET', meta, 'epoch') ~= ARGV[5] then return 0 end
local started = tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now - started > tonumber(ARGV[7]) then return 0 end
for i = 9, #ARGV do
  local inv = redis.call('HGET', meta, 'i:' .. ARGV[i])
  if inv and tonumber(inv) >= started then return 0 end
end
local key = ARGV[1] .. 'e:' .. ARGV[5] .. ':' .. ARGV[2]
local ttl = tonumber(ARGV[4])
redis.call('DEL', key)
redis.call('HSET', key, 'v', ARGV[3], 's', ARGV[6], 't', ARGV[8])
redis.call('PEXPIRE', key, ttl)
for i = 9, #ARGV do
  local set = ARGV[1] .. 't:' .. ARGV[i]
  redis.call('SADD', set, key)
  if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
end
return 1
`;

// invalidate: stamps each tag with the next value of the clock and deletes the entries listed in
// each tag's set.
const INVALIDATE = `
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'epoch', 'clock', 'pruned')
if not m[1] then redis.call('HSET', meta, 'epoch', ARGV[2]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local clock = tonumber(m[2] or '0')
if now <= clock then now = clock + 1 end
local stamp = string.format('%.0f', now)
redis.call('HSET', meta, 'clock', stamp)
redis.call('PEXPIRE', meta, ARGV[4])
for i = 5, #ARGV do
  redis.call('HSET', meta, 'i:' .. ARGV[i], stamp)
  local set = ARGV[1] .. 't:' .. ARGV[i]
  local keys = redis.call('SMEMBERS', set)
  for j = 1, #keys, 1000 do
    redis.call('UNLINK', unpack(keys, j, math.min(j + 999, #keys)))
  end
  redis.call('UNLINK', set)
end
-- Forget stamps no live entry or storable load can predate. Only when the hash has doubled
-- since the last time: each stamp is looked at a bounded number of times.
local size = redis.call('HLEN', meta)
if size > 1000 and size > 2 * tonumber(m[3] or '0') then
  local cutoff = now - tonumber(ARGV[3])
  local all = redis.call('HGETALL', meta)
  for j = 1, #all, 2 do
    if string.sub(all[j], 1, 2) == 'i:' and tonumber(all[j + 1]) < cutoff then redis.call('HDEL', meta, all[j]) end
  end
  redis.call('HSET', meta, 'pruned', redis.call('HLEN', meta))
end
return stamp
`;

/** A connection the three scripts are defined on, as ioredis's `defineCommand` names them. */
export type Scripted = Redis & {
  cacheReadBuffer(meta: string, prefix: string, key: string, epoch: string, metaTtlMs: number): Promise<[Buffer, Buffer, Buffer?, number?]>;
  cacheStore(meta: string, ...args: (string | Buffer | number)[]): Promise<number>;
  cacheInvalidate(meta: string, ...args: (string | number)[]): Promise<string>;
};

export function withScripts(redis: Redis): Scripted {
  redis.defineCommand('cacheRead', { numberOfKeys: 1, lua: READ });
  redis.defineCommand('cacheStore', { numberOfKeys: 1, lua: STORE });
  redis.defineCommand('cacheInvalidate', { numberOfKeys: 1, lua: INVALIDATE });
  return redis as Scripted;
}
