// What compressing a list page costs, per encoding and level: the CPU time of one compression of
// a real `GET /api/articles` body (20 articles of the benchmark's data set, in the API's shape),
// the bytes it saves, and so the pages per second one core could compress. Single-threaded and
// synchronous, as the response cache compresses a new variant (src/cache/response-cache.ts);
// levels interleaved over rounds so a change in the machine's load hits them all alike.
//
//   node scripts/compression-cost.ts [--rounds 5] [--iterations 200] [--limit 20]
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import { COMPRESSION_LEVELS } from '../src/lib/encodings.ts';
import { generate } from './seed.data.ts';

type Encoding = 'gzip' | 'br' | 'zstd';

const LEVELS: Record<Encoding, number[]> = {
  gzip: [1, 3, 6, 9],
  br: [1, 4, 6, 9, 11],
  zstd: [1, 3, 6, 12, 19],
};

function compressor(encoding: Encoding, level: number): (b: Buffer) => Buffer {
  switch (encoding) {
    case 'gzip':
      return (b) => zlib.gzipSync(b, { level });
    case 'br':
      return (b) =>
        zlib.brotliCompressSync(b, {
          params: {
            [zlib.constants.BROTLI_PARAM_QUALITY]: level,
            [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
            [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length,
          },
        });
    case 'zstd':
      return (b) => zlib.zstdCompressSync(b, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
  }
}

/** A list page as the service sends it (toListItem's shape), newest first. */
function listPage(limit: number): Buffer {
  const d = generate({ users: 1000, articles: 10_000, comments: 50_000, favorites: 20_000, tags: 100, follows: 10_000, seed: 1 });
  const users = new Map(d.users.map((u) => [u.id, u]));
  const newest = [...d.articles].sort((a, b) => b.createdAt - a.createdAt).slice(0, limit);
  const articles = newest.map((a) => {
    const u = users.get(a.authorId)!;
    return {
      slug: a.slug,
      title: a.title,
      description: a.description,
      tagList: a.tagIds.map((id) => d.tags[id - 1]!).sort(),
      createdAt: new Date(a.createdAt).toISOString(),
      updatedAt: new Date(a.updatedAt).toISOString(),
      favorited: false,
      favoritesCount: a.favoritesCount,
      author: { username: u.username, bio: u.bio, image: u.image, following: false },
    };
  });
  return Buffer.from(JSON.stringify({ articles, articlesCount: d.articles.length }));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      iterations: { type: 'string', default: '200' },
      limit: { type: 'string', default: '20' },
    },
  });
  const rounds = Number(values.rounds);
  const iterations = Number(values.iterations);
  const body = listPage(Number(values.limit));
  const cases = (Object.keys(LEVELS) as Encoding[]).flatMap((e) =>
    LEVELS[e].map((level) => ({ encoding: e, level, run: compressor(e, level), us: [] as number[], size: 0 })),
  );
  for (const c of cases) c.size = c.run(body).length; // also warms each up
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iterations; i++) c.run(body);
      c.us.push(Number(process.hrtime.bigint() - t0) / 1000 / iterations);
    }
  }
  const used = COMPRESSION_LEVELS as Record<Encoding, number>;
  const lines = [
    `A list page of ${body.length.toLocaleString('en-US')} bytes (${values.limit} articles); median of ${rounds} rounds of ${iterations} compressions; Node ${process.version}.`,
    '',
    '| encoding | level | µs per page | pages/s per core | bytes | of the original | |',
    '|---|--:|--:|--:|--:|--:|---|',
    ...cases.map((c) => {
      const us = median(c.us);
      return `| ${c.encoding} | ${c.level} | ${us.toFixed(0)} | ${Math.round(1e6 / us).toLocaleString('en-US')} | ${c.size.toLocaleString('en-US')} | ${((c.size / body.length) * 100).toFixed(1)}% | ${used[c.encoding] === c.level ? "the service's level" : ''} |`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
