// The database's own ceiling for the read path's main query: pgbench running the article list
// page query (the SQL the service sends for GET /api/articles?limit=20&offset=..., imported from
// src/articles/articles.listing.ts, not copied) with the `list` scenario's page distribution and
// as many clients as the service has pooled connections. The service can at best match it; the
// issue's target for the cache-off service is 0.7 x.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { listArticlesQuery } from '../src/articles/articles.listing.ts';
import { exitWithin, spawnTracked, tail } from './processes.ts';

export interface PgbenchRun {
  tps: number;
  latencyMsAvg: number;
}

/**
 * The pgbench script: the statement an anonymous reader's list page sends (its flags are
 * constants, so it has no viewer parameter), with limit ($1) and offset ($2) as pgbench variables.
 */
export function listScript(): string {
  const { text } = listArticlesQuery({ limit: 20, offset: 0 }, null);
  const sql = text.replace(/\$1\b/g, ':limit').replace(/\$2\b/g, ':offset');
  if (/\$\d/.test(sql)) throw new Error('the list query has parameters the pgbench script does not fill in');
  // Page k with probability proportional to 0.5^k, k = 0..9: the same as the scenario (the
  // exponential's parameter is the decay over the whole range, 10 x ln 2).
  return [
    '\\set limit 20',
    '\\set page random_exponential(0, 9, 6.93)',
    '\\set offset :page * :limit',
    `${sql.replace(/\s+/g, ' ').trim()};`,
    '',
  ].join('\n');
}

export async function runPgbench(opts: {
  url: string;
  mode: 'extended' | 'prepared';
  clients: number;
  durationSec: number;
  workDir: string;
  /** Called once pgbench has connected (about a second in). */
  onConnected?: () => Promise<void>;
}): Promise<PgbenchRun> {
  const script = path.join(opts.workDir, 'pgbench-list.sql');
  await writeFile(script, listScript());
  const child = spawnTracked(
    'pgbench',
    [
      '-n',
      '-M',
      opts.mode,
      '-c',
      String(opts.clients),
      '-j',
      '2',
      '-T',
      String(Math.max(1, Math.round(opts.durationSec))),
      '-f',
      script,
      opts.url,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const out = tail(child.stdout);
  const err = tail(child.stderr);
  const connected = opts.onConnected && setTimeout(() => void opts.onConnected!().catch(() => undefined), 1000);
  const code = await exitWithin(child, (opts.durationSec + 60) * 1000, 'pgbench');
  clearTimeout(connected);
  const tps = /tps = ([\d.]+)/.exec(out());
  const lat = /latency average = ([\d.]+) ms/.exec(out());
  if (code !== 0 || !tps) throw new Error(`pgbench failed (exit ${code}): ${err()}${out()}`);
  return { tps: Number(tps[1]), latencyMsAvg: lat ? Number(lat[1]) : 0 };
}

export function pgbenchAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawnTracked('pgbench', ['--version'], { stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}
