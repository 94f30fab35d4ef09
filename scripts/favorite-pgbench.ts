// What a favorite costs PostgreSQL: Conduit's one statement (setFavorite: the row, the counter
// under the article's row lock, and the article as the viewer now sees it) against the Rust
// reference's two (its counter update, then the article read, here Conduit's findArticle), and
// Conduit's without its `for key share`. pgbench runs each as a transaction script, a favorite
// and an unfavorite of a random article by a random user, in alternating rounds, and prints
// transactions a second per round and the median.
//
//   node scripts/favorite-pgbench.ts [--url postgres://postgres@127.0.0.1:5432/ab_a]
//                                    [--clients 8] [--duration 8] [--rounds 3]
//
// The database must be seeded (`npm run seed`): a favorite that is there already and an
// unfavorite of one that is not change nothing, so the seeded data stays as it was. Needs pgbench.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { findArticle, setFavorite } from '../src/articles/articles.repository.ts';
import { captureQuery } from './capture-query.ts';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/ab_a' },
    clients: { type: 'string', default: '8' },
    duration: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});

// The reference's statements: its favorite and unfavorite handlers' SQL (the Rust reference's articles module).
const REFERENCE = {
  favorite: `WITH a AS (SELECT id FROM articles WHERE slug = $1),
    ins AS (INSERT INTO favorites (user_id, article_id) SELECT $2, id FROM a ON CONFLICT DO NOTHING RETURNING article_id)
    UPDATE articles SET favorites_count = favorites_count + 1 WHERE id IN (SELECT article_id FROM ins)`,
  unfavorite: `WITH a AS (SELECT id FROM articles WHERE slug = $1),
    del AS (DELETE FROM favorites WHERE user_id = $2 AND article_id IN (SELECT id FROM a) RETURNING article_id)
    UPDATE articles SET favorites_count = favorites_count - 1 WHERE id IN (SELECT article_id FROM del)`,
};

/** A pgbench script: the statements, one after another, with $1 (a slug) and $2 (a user) drawn at random. */
function script(texts: string[]): string {
  const bind = (text: string) =>
    `${text.replace(/\s+/g, ' ').replaceAll('$1', '(select slug from articles where id = :aid)').replaceAll('$2', ':uid')};`;
  return ['\\set aid random(1, :articles)', '\\set uid random(1, :users)', ...texts.map(bind)].join('\n') + '\n';
}

async function main(): Promise<void> {
  const fav = await captureQuery((db) => setFavorite(db, 'slug', 42, true));
  const unfav = await captureQuery((db) => setFavorite(db, 'slug', 42, false));
  const read = await captureQuery((db) => findArticle(db, { slug: 'slug' }, 42));
  for (const q of [fav, unfav, read]) {
    if (JSON.stringify(q.values) !== JSON.stringify(['slug', 42]))
      throw new Error(`a statement's parameters changed: ${JSON.stringify(q.values)}`);
  }
  if (!fav.text.includes('for key share')) throw new Error("setFavorite's statement no longer locks the article: update this script");
  const variants: Record<string, string> = {
    conduit: script([fav.text, unfav.text]),
    reference: script([REFERENCE.favorite, read.text, REFERENCE.unfavorite, read.text]),
    'conduit without for key share': script([fav.text.replace('for key share', ''), unfav.text.replace('for key share', '')]),
  };

  const db = new pg.Client({ connectionString: args.url });
  await db.connect();
  const counts = await db.query<{ users: number; articles: number }>(
    'select (select max(id) from users)::int as users, (select max(id) from articles)::int as articles',
  );
  await db.end();
  const { users, articles } = counts.rows[0]!;
  if (!users || !articles) throw new Error(`${args.url} holds no seeded users and articles: run npm run seed against it`);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'favorite-pgbench-'));
  const tps: Record<string, number[]> = {};
  try {
    const names = Object.keys(variants);
    for (const name of names) writeFileSync(path.join(dir, `${names.indexOf(name)}.sql`), variants[name]!);
    for (let round = 0; round < Number(args.rounds); round++) {
      // The order rotates each round, so a change in the machine's load hits every variant.
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + round) % names.length]!;
        const out = execFileSync(
          'pgbench',
          [
            '-n',
            '-M',
            'prepared',
            '-c',
            args.clients,
            '-j',
            '2',
            '-T',
            args.duration,
            '-D',
            `users=${users}`,
            '-D',
            `articles=${articles}`,
            '-f',
            path.join(dir, `${names.indexOf(name)}.sql`),
            args.url,
          ],
          { encoding: 'utf8' },
        );
        const value = Number(/^tps = ([\d.]+)/m.exec(out)?.[1]);
        (tps[name] ??= []).push(value);
        console.log(`round ${round + 1} ${name}: ${value.toFixed(0)} transactions/s`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, xs] of Object.entries(tps))
    console.log(`${name}: median ${median(xs).toFixed(0)} transactions/s (${xs.map((x) => x.toFixed(0)).join(', ')})`);
}

await main();
