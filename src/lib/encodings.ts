// Compression levels and the order of preference among encodings, shared by the response
// compression of dynamic bodies (http/compression.ts) and the cache's compressed variants
// (cache/response-cache.ts), so a cached variant is the bytes the plugin would have made.
//
// Levels are chosen for bodies of a few to a few tens of kilobytes compressed once per response.
// On a 9.9 KB list page (`node scripts/compression-cost.ts`): zstd 3
// costs 60 µs for 28.2% of the bytes, gzip 6 154 µs for 27.3%, brotli 4 290 µs for 26.9%; brotli
// 11 costs 18.5 ms for 22%, which is for static files built once. So among encodings a client
// accepts with equal weight the order is zstd, gzip, brotli: brotli's last 0.4% is not worth 1.9x
// gzip's CPU on a response made per request.
export const COMPRESSION_LEVELS = { zstd: 3, br: 4, gzip: 6 } as const;
/** Cheapest first (measured, above): the server's choice among encodings of equal weight. */
export const ENCODING_PREFERENCE = ['zstd', 'gzip', 'br'] as const;
