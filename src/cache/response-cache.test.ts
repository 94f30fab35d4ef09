// The in-process cache on its own: single flight, the byte bound, tag invalidation, and the
// race between a load and a write.
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { decodeEntry, encodeEntry } from './redis-scripts.ts';
import { ResponseCache } from './response-cache.ts';
import { tag, type CacheTag } from './tags.ts';
import { flagOffsets } from './flag-bytes.ts';

const options = { ttlMs: 60_000, maxBytes: 1024 * 1024, compression: true, compressionThresholdBytes: 1024 };
const serialize = (data: unknown) => JSON.stringify(data);

test('100 concurrent misses for one key run one load, and the others wait for it', async () => {
  const cache = new ResponseCache(options);
  let loads = 0;
  const load = async () => {
    loads++;
    await new Promise((r) => setTimeout(r, 20));
    return { data: { n: 1 }, tags: [tag.listAll] };
  };
  const entries = await Promise.all(Array.from({ length: 100 }, () => cache.get('k', load, serialize)));
  assert.equal(loads, 1);
  assert.ok(entries.every((e) => e === entries[0]));
  assert.equal(cache.stats.misses, 1);
  assert.equal(cache.stats.coalesced, 99);
  await cache.get('k', load, serialize);
  assert.equal(cache.stats.hits, 1);
  assert.equal(loads, 1);
});

test('the byte bound holds under a flood of distinct keys, by evicting the least recently used', async () => {
  const cache = new ResponseCache({ ...options, maxBytes: 100_000 });
  const body = 'x'.repeat(1000);
  for (let i = 0; i < 5000; i++) await cache.get(`k${i}`, async () => ({ data: body, tags: [tag.article(i)] }), serialize);
  assert.ok(cache.bytes <= 100_000, `${cache.bytes} bytes cached`);
  assert.ok(cache.size > 0 && cache.size < 5000);
  assert.ok(cache.stats.evictions > 4000);
});

test('invalidating a tag drops exactly the entries built from it', async () => {
  const cache = new ResponseCache(options);
  await cache.get('a', async () => ({ data: 'a', tags: [tag.article(1), tag.user(1)] }), serialize);
  await cache.get('b', async () => ({ data: 'b', tags: [tag.article(2), tag.user(1)] }), serialize);
  await cache.get('c', async () => ({ data: 'c', tags: [tag.article(3)] }), serialize);
  cache.invalidate([tag.user(1)]);
  assert.equal(cache.size, 1);
  let loads = 0;
  await cache.get(
    'c',
    async () => {
      loads++;
      return { data: 'c', tags: [] as CacheTag[] };
    },
    serialize,
  );
  assert.equal(loads, 0, 'c survived');
});

test('a load that raced with an invalidation of its tags is answered but not stored', async () => {
  const cache = new ResponseCache(options);
  let release!: () => void;
  const slow = cache.get(
    'k',
    async () => {
      await new Promise<void>((r) => (release = r));
      return { data: 'old', tags: [tag.article(1)] };
    },
    serialize,
  );
  await new Promise((r) => setImmediate(r));
  cache.invalidate([tag.article(1)]);
  release();
  assert.equal((await slow)?.data, 'old');
  assert.equal(cache.size, 0);
  assert.equal(cache.stats.raced, 1);
  // And a reader arriving after the write did not join the old load.
  const fresh = await cache.get('k', async () => ({ data: 'new', tags: [tag.article(1)] }), serialize);
  assert.equal(fresh?.data, 'new');
});

test('a reader arriving after an invalidation does not join a load that started before it', async () => {
  const cache = new ResponseCache(options);
  let release!: () => void;
  const before = cache.get(
    'k',
    async () => {
      await new Promise<void>((r) => (release = r));
      return { data: 'before the write', tags: [tag.tagsInUse] };
    },
    serialize,
  );
  await new Promise((r) => setImmediate(r));
  cache.invalidate([tag.user(99)]);
  const after = cache.get('k', async () => ({ data: 'after the write', tags: [tag.tagsInUse] }), serialize);
  release();
  assert.equal((await before)?.data, 'before the write');
  assert.equal((await after)?.data, 'after the write');
});

test('not-found results are not cached', async () => {
  const cache = new ResponseCache(options);
  let loads = 0;
  const load = async () => {
    loads++;
    return undefined;
  };
  assert.equal(await cache.get('missing', load, serialize), undefined);
  assert.equal(await cache.get('missing', load, serialize), undefined);
  assert.equal(loads, 2);
});

test('clear() drops everything and refuses to store loads that started before it', async () => {
  const cache = new ResponseCache(options);
  await cache.get('a', async () => ({ data: 'a', tags: [] }), serialize);
  let release!: () => void;
  const inFlight = cache.get(
    'b',
    async () => {
      await new Promise<void>((r) => (release = r));
      return { data: 'b', tags: [] };
    },
    serialize,
  );
  await new Promise((r) => setImmediate(r));
  cache.clear();
  release();
  await inFlight;
  assert.equal(cache.size, 0);
});

test('an entry keeps its body and compressed variants in memory of their own size, not views of 64 KiB slabs', async () => {
  const cache = new ResponseCache(options);
  const owns = (b: Buffer) => b.byteOffset === 0 && b.buffer.byteLength === b.length;
  const data = { articles: Array.from({ length: 20 }, (_, i) => ({ slug: `a-${i}`, body: 'lorem ipsum '.repeat(20) })) };
  const entry = (await cache.get('list', async () => ({ data, tags: [tag.listAll] }), serialize))!;
  assert.ok(owns(entry.body), `body of ${entry.body.length} bytes held in ${entry.body.buffer.byteLength}`);
  assert.equal(entry.body.toString(), JSON.stringify(data));
  const app = Fastify();
  app.get('/list', (request, reply) => cache.send(request, reply, entry));
  try {
    for (const encoding of ['zstd', 'gzip', 'br'] as const) {
      const res = await app.inject({ url: '/list', headers: { 'accept-encoding': encoding } });
      assert.equal(res.headers['content-encoding'], encoding);
      const variant = entry.variants.get(encoding)!;
      assert.ok(owns(variant), `${encoding} variant of ${variant.length} bytes held in ${variant.buffer.byteLength}`);
      assert.deepEqual(res.rawPayload, variant);
    }
  } finally {
    await app.close();
  }
});

test("viewers' compressed copies are kept by what they are made of, and with the entries stay within the byte bound", async () => {
  const cache = new ResponseCache({ ...options, maxBytes: 200_000 });
  const data = {
    articles: Array.from({ length: 20 }, (_, i) => ({ slug: `a-${i}`, favorited: false, body: `${i} lorem ipsum `.repeat(20) })),
  };
  const entry = (await cache.get('list', async () => ({ data, tags: [tag.listAll] }), serialize))!;
  // Copy n has the articles whose bit is set in n favorited.
  const favorited = (n: number) => data.articles.map((_, i) => ((n >> i) & 1) === 1);
  const app = Fastify();
  app.get('/copy/:n', (request, reply) =>
    cache.sendFlagged(request, reply, entry, flagOffsets(entry.body, favorited(Number((request.params as { n: string }).n)), [])!, {
      articles: data.articles.map((_, i) => i),
      authors: [],
    }),
  );
  const asSerialized = (n: number) => JSON.stringify({ articles: data.articles.map((a, i) => ({ ...a, favorited: favorited(n)[i] })) });
  try {
    const zstd = { 'accept-encoding': 'zstd' };
    const first = await app.inject({ url: '/copy/5', headers: zstd });
    assert.equal(first.headers['content-encoding'], 'zstd');
    assert.equal(first.headers.etag, undefined, 'a copy is not the entry: no ETag');
    assert.match(String(first.headers.vary), /Accept-Encoding/);
    assert.equal(zlib.zstdDecompressSync(first.rawPayload).toString(), asSerialized(5));
    const again = await app.inject({ url: '/copy/5', headers: zstd });
    assert.deepEqual(again.rawPayload, first.rawPayload);
    assert.deepEqual([cache.stats.copyMisses, cache.stats.copyHits], [1, 1], 'the same copy in the same encoding is compressed once');
    const gzip = await app.inject({ url: '/copy/5', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(zlib.gunzipSync(gzip.rawPayload).toString(), asSerialized(5));
    assert.equal(cache.stats.copyMisses, 2, 'another encoding is another copy');
    const plain = await app.inject({ url: '/copy/5' });
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.body, asSerialized(5));

    for (let n = 6; n < 2000; n++) await app.inject({ url: `/copy/${n}`, headers: zstd });
    assert.ok(cache.bytes <= 200_000, `${cache.bytes} bytes for the entry and the copies`);
    assert.ok(cache.bytes > entry.body.length * 2 + 20_000, `${cache.bytes} bytes: the copies are counted`);
    assert.equal(cache.size, 1, 'the copies did not evict the entry');
    const before = cache.stats.copyMisses;
    await app.inject({ url: '/copy/6', headers: zstd });
    assert.equal(cache.stats.copyMisses, before + 1, 'the oldest copies made room for the newer ones');
  } finally {
    await app.close();
  }
});

test('an entry read back from the shared tier keeps its body in memory of its own, not a view into what Redis sent', () => {
  const body = Buffer.from(JSON.stringify({ tags: ['a', 'b'] }));
  const sent = Buffer.concat([
    Buffer.alloc(100),
    encodeEntry({ data: { tags: ['a', 'b'] }, body, etag: '"e"', tags: [tag.listAll], variants: new Map() }),
  ]);
  const entry = decodeEntry(sent.subarray(100));
  assert.deepEqual(entry.body, body);
  assert.ok(entry.body.byteOffset === 0 && entry.body.buffer.byteLength === entry.body.length);
});
