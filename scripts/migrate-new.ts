// `npm run migrate:new -- NAME`: creates src/db/migrations/<UTC timestamp>_NAME.sql, which sorts
// after every existing migration. Timestamps rather than the next number, so two branches that
// each add a migration do not both create 002_*.sql. Write it by the expand/contract rule
// (docs/migrations.md); once applied anywhere, a migration is never edited.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createMigration } from '../src/db/migrate.ts';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { dir: { type: 'string' } } });
const [name] = positionals;
if (positionals.length !== 1 || name === undefined) {
  process.stderr.write('usage: npm run migrate:new -- NAME   (lower-case letters, digits and _, e.g. add_articles_author_idx)\n');
  process.exit(2);
}
try {
  const file = await createMigration(name, values.dir === undefined ? {} : { dir: path.resolve(values.dir) });
  process.stdout.write(`${path.relative(process.cwd(), file)}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
