// Response compression over a real socket (src/http/compression.ts): each encoding is negotiated
// from Accept-Encoding, says so in Content-Encoding and Vary, and decodes to exactly the JSON of
// the uncompressed response; tiny bodies and COMPRESSION=off are sent as they are.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { Client, createTestApp, type TestApp } from '../harness.ts';
import { json, listen, request } from './socket.ts';

const decoders: Record<string, (b: Buffer) => Buffer> = {
  zstd: (b) => zlib.zstdDecompressSync(b),
  br: (b) => zlib.brotliDecompressSync(b),
  gzip: (b) => zlib.gunzipSync(b),
};

/** Enough articles (without tags, so /api/tags stays empty) that a list page is well over 1 KB. */
async function seedArticles(t: TestApp): Promise<void> {
  const api = new Client(t.app);
  const author = await api.register();
  for (let i = 0; i < 6; i++) {
    await api.createArticle(author.token, { title: `Compressible article ${i}`, description: 'A description that repeats. '.repeat(4) });
  }
}

describe('with compression on (the default)', () => {
  let t: TestApp;
  let url: string;
  let plain: { text: string; bytes: number };
  before(async () => {
    t = await createTestApp();
    await seedArticles(t);
    url = await listen(t);
    const res = await request(`${url}/api/articles`);
    assert.equal(res.status, 200);
    plain = { text: res.body.toString('utf8'), bytes: res.body.length };
  });
  after(() => t.close());

  test('the list page used below is over the 1 KB threshold and is sent uncompressed without Accept-Encoding', async () => {
    const res = await request(`${url}/api/articles`);
    assert.equal(res.headers['content-encoding'], undefined);
    assert.ok(plain.bytes > 1024, `list page is ${plain.bytes} bytes`);
    assert.equal(json(res).articlesCount, 6);
  });

  for (const encoding of ['zstd', 'br', 'gzip']) {
    test(`Accept-Encoding: ${encoding} gets a ${encoding} body that decodes to the same JSON`, async () => {
      const res = await request(`${url}/api/articles`, { headers: { 'accept-encoding': encoding } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], encoding);
      assert.match(String(res.headers.vary), /accept-encoding/i);
      assert.ok(res.body.length < plain.bytes / 2, `${encoding}: ${res.body.length} of ${plain.bytes} bytes`);
      const decoded = decoders[encoding]!(res.body).toString('utf8');
      assert.equal(decoded, plain.text);
      assert.deepEqual(JSON.parse(decoded), JSON.parse(plain.text));
    });
  }

  test('a client accepting zstd, br and gzip gets zstd, the cheapest to produce', async () => {
    const res = await request(`${url}/api/articles`, { headers: { 'accept-encoding': 'zstd, br, gzip' } });
    assert.equal(res.headers['content-encoding'], 'zstd');
    assert.equal(decoders.zstd!(res.body).toString('utf8'), plain.text);
  });

  test('the browsers\' usual "gzip, deflate, br, zstd" also gets zstd', async () => {
    const res = await request(`${url}/api/articles`, { headers: { 'accept-encoding': 'gzip, deflate, br, zstd' } });
    assert.equal(res.headers['content-encoding'], 'zstd');
  });

  test('a client accepting gzip and br alike (curl, older browsers) gets gzip: as small, for less CPU', async () => {
    const res = await request(`${url}/api/articles`, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(decoders.gzip!(res.body).toString('utf8'), plain.text);
  });

  test('a client that weights gzip above the others gets gzip', async () => {
    const res = await request(`${url}/api/articles`, { headers: { 'accept-encoding': 'zstd;q=0.5, br;q=0.5, gzip' } });
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(decoders.gzip!(res.body).toString('utf8'), plain.text);
  });

  test('Accept-Encoding: identity gets the body unencoded', async () => {
    const res = await request(`${url}/api/articles`, { headers: { 'accept-encoding': 'identity' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-encoding'], undefined);
    assert.equal(res.body.toString('utf8'), plain.text);
  });

  test('a page made per viewer (their favorite flagged, compressed per response) decodes to their JSON in each encoding', async () => {
    const api = new Client(t.app);
    const reader = await api.register();
    const { articles } = JSON.parse(plain.text) as { articles: { slug: string }[] };
    const slug = articles[0]!.slug;
    assert.equal((await api.post(`/api/articles/${slug}/favorite`, { token: reader.token })).status, 200);
    for (const encoding of ['zstd', 'br', 'gzip']) {
      const res = await request(`${url}/api/articles`, {
        headers: { 'accept-encoding': encoding, authorization: `Token ${reader.token}` },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], encoding);
      assert.equal(res.headers.etag, undefined, 'a per-viewer body, not the stored one');
      const page = JSON.parse(decoders[encoding]!(res.body).toString('utf8')) as { articles: { slug: string; favorited: boolean }[] };
      assert.deepEqual(
        page.articles.map((a) => a.favorited),
        articles.map((a) => a.slug === slug),
      );
    }
  });

  test('tiny bodies (/healthz, /api/tags on a database without tags) are not compressed', async () => {
    for (const path of ['/healthz', '/api/tags']) {
      const res = await request(`${url}${path}`, { headers: { 'accept-encoding': 'zstd, br, gzip' } });
      assert.equal(res.status, 200, path);
      assert.equal(res.headers['content-encoding'], undefined, path);
      assert.ok(res.body.length < 1024, path);
    }
    const tags = await request(`${url}/api/tags`, { headers: { 'accept-encoding': 'gzip' } });
    assert.deepEqual(json(tags), { tags: [] });
  });
});

describe('with COMPRESSION=off', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ COMPRESSION: 'off' });
    await seedArticles(t);
    url = await listen(t);
  });
  after(() => t.close());

  test('no encoding is ever applied, whatever the client accepts', async () => {
    for (const encoding of ['zstd', 'br', 'gzip', 'zstd, br, gzip']) {
      const res = await request(`${url}/api/articles`, { headers: { 'accept-encoding': encoding } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], undefined, encoding);
      assert.ok(res.body.length > 1024);
      assert.equal(json(res).articlesCount, 6);
    }
  });
});
