import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { compressBody, ENCODING_PREFERENCE, type Encoding } from './encodings.ts';

const decode: Record<Encoding, (b: Buffer) => Buffer> = {
  zstd: (b) => zlib.zstdDecompressSync(b),
  br: (b) => zlib.brotliDecompressSync(b),
  gzip: (b) => zlib.gunzipSync(b),
};

const page = JSON.stringify({
  articles: Array.from({ length: 20 }, (_, i) => ({
    slug: `article-${i}`,
    title: `Title ${i}`,
    description: 'words '.repeat(30),
    favorited: false,
  })),
  articlesCount: 20,
});

for (const encoding of ENCODING_PREFERENCE) {
  test(`${encoding}: a page given as a string or as bytes decodes to itself, in a fraction of its size`, () => {
    for (const input of [page, Buffer.from(page)]) {
      const out = compressBody(input, encoding);
      assert.equal(decode[encoding](out).toString('utf8'), page);
      assert.ok(out.length < page.length / 4, `${out.length} of ${page.length} bytes`);
    }
  });

  test(`${encoding}: a body that does not compress, larger than one output chunk, comes back whole`, () => {
    // The chunk is sized for JSON (a quarter of the body and some): random bytes need several.
    const noise = randomBytes(40_000);
    assert.deepEqual(decode[encoding](compressBody(noise, encoding)), noise);
  });
}
