// Response compression for dynamic JSON, with the levels and the order of preference among
// encodings that src/lib/encodings.ts gives (and says why).
import compress from '@fastify/compress';
import zlib from 'node:zlib';
import type { Config } from '../config.ts';
import { compressBody, COMPRESSION_LEVELS, ENCODING_PREFERENCE } from '../lib/encodings.ts';
import type { App } from './app-type.ts';

export async function registerCompression(app: App, config: Pick<Config, 'compression' | 'compressionThresholdBytes'>): Promise<void> {
  if (!config.compression) return;
  // Request decompression only where a body is read. @fastify/compress checks Content-Encoding
  // on every route otherwise, and `GET /api/tags` with `Content-Encoding: x` got a 415 that no
  // GET documents, for a body it never reads (found by test/resilience/fuzz.test.ts). Added
  // before the plugin, so this onRoute hook runs before the plugin's own.
  app.addHook('onRoute', (route) => {
    if (!route.schema?.body) route.decompress = false;
  });
  await app.register(compress, {
    global: true,
    // Below ~1 KB the framing overhead and the CPU cost outweigh the bytes saved.
    threshold: config.compressionThresholdBytes,
    // A body that is already in memory and at most this large is compressed in one call on the
    // event loop, not through a zlib stream on the threadpool. The plugin's default for two cores
    // is 8 KiB, so a 20-article page (~10 KB) would take the stream path; measured on list-auth (a
    // page built per viewer, compressed per response): 1,642 req/s streamed vs 1,995 in one
    // call, GC 4.7% vs 2.2%. 64 KiB of gzip 6 holds the loop for
    // about 1 ms; larger bodies still stream.
    syncThreshold: 64 * 1024,
    // When a client accepts several with equal weight, the cheapest to produce wins.
    encodings: [...ENCODING_PREFERENCE],
    // One-call compression sized to each body (lib/encodings.ts), the same function the cache's
    // variants are made with. The plugin's own levels below are for the bodies it streams (above
    // syncThreshold), through node:zlib's streams.
    zlib: {
      zstdCompressSync: (payload: Buffer | string) => compressBody(payload, 'zstd'),
      gzipSync: (payload: Buffer | string) => compressBody(payload, 'gzip'),
      brotliCompressSync: (payload: Buffer | string) => compressBody(payload, 'br'),
    },
    brotliOptions: {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: COMPRESSION_LEVELS.br,
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
      },
    },
    // @fastify/compress hands the same options to gzip and zstd: each reads its own keys.
    zlibOptions: {
      level: COMPRESSION_LEVELS.gzip,
      params: { [zlib.constants.ZSTD_c_compressionLevel]: COMPRESSION_LEVELS.zstd },
    } as zlib.ZlibOptions,
    // Compressed request bodies are accepted too; the body limit applies after decompression
    // (Fastify counts the bytes the preParsing stream yields), so a decompression bomb gets 413.
  });
}
