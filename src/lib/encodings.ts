// Compression levels, the order of preference among encodings, and the one-call compression
// shared by the response compression of dynamic bodies (http/compression.ts) and the cache's
// compressed variants (cache/response-cache.ts), so a cached variant is the bytes the plugin
// would have made.
//
// Levels are chosen for bodies of a few to a few tens of kilobytes compressed once per response.
// On a 9.9 KB list page (`node scripts/compression-cost.ts`): zstd 3
// costs 60 µs for 28.2% of the bytes, gzip 6 154 µs for 27.3%, brotli 4 290 µs for 26.9%; brotli
// 11 costs 18.5 ms for 22%, which is for static files built once. So among encodings a client
// accepts with equal weight the order is zstd, gzip, brotli: brotli's last 0.4% is not worth 1.9x
// gzip's CPU on a response made per request.
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
