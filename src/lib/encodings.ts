// Compression levels, the order of preference among encodings, and the one-call compression
// shared by the response compression of dynamic bodies (http/compression.ts) and the cache's
// compressed variants (cache/response-cache.ts), so a cached variant is the bytes the plugin
// would have made.
//
// Levels are chosen for bodies of a few to a few tens of kilobytes compressed once per response
// (`node scripts/compression-cost.ts --limit N`, list pages of N articles, medians of 5 rounds):
//
//   body       zstd 3   gzip 6   brotli 4
//   1.0 KB      30 µs    20 µs     38 µs
//   3.9 KB      38 µs    30 µs     65 µs
//   9.9 KB      51 µs    59 µs    117 µs   (28.2%, 27.3%, 26.9% of the bytes)
//   19.4 KB     69 µs   148 µs    197 µs
//
// Brotli 11 costs 18.5 ms on the 9.9 KB page, for 22%: for static files built once. So among
// encodings a client accepts with equal weight the order is zstd, gzip, brotli. Below about 8 KB
// gzip is the cheaper: each zstd call sets up a new context in node:zlib, about 22 µs whatever the
// body (constructing a ZstdCompress alone, against 3 µs for gzip's), and node:zlib has no public
// way to reuse one for one-call compression. The choice stays one order for every size: the
// compression plugin negotiates before it sees the body, and a 20-article page, the common one,
// sits at the crossing.
import zlib from 'node:zlib';

export type Encoding = 'zstd' | 'br' | 'gzip';

export const COMPRESSION_LEVELS = { zstd: 3, br: 4, gzip: 6 } as const;
/** Cheapest first (measured, above): the server's choice among encodings of equal weight. */
export const ENCODING_PREFERENCE = ['zstd', 'gzip', 'br'] as const;

/**
 * The output chunk for `length` bytes of JSON: room for what it compresses to (28% of a list
 * page) in one chunk, at least 1 KiB. node:zlib's default is 16 KiB per call whatever the body,
 * taken from Buffer's pool before the result is copied out: with it, a signed-in reader's page
 * compressed per response kept V8's full collector busy (docs/memory.md "Compression per
 * response"). Sized, 20,000 one-call zstd compressions of a 9.9 KB page ran 1 full collection
 * instead of 6.
 */
const outputChunk = (length: number) => Math.max(1024, (length >>> 2) + 512);

/** `body` compressed in one call, with an output chunk sized to it (brotli is also told the length). */
export function compressBody(body: Buffer | string, encoding: Encoding): Buffer {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const chunkSize = outputChunk(length);
  switch (encoding) {
    case 'zstd':
      return zlib.zstdCompressSync(body, {
        chunkSize,
        params: { [zlib.constants.ZSTD_c_compressionLevel]: COMPRESSION_LEVELS.zstd },
      });
    case 'br':
      return zlib.brotliCompressSync(body, {
        chunkSize,
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: COMPRESSION_LEVELS.br,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: length,
        },
      });
    case 'gzip':
      return zlib.gzipSync(body, { chunkSize, level: COMPRESSION_LEVELS.gzip });
  }
}
