// Cached anonymous reads against the platform limit, measured side by side: the service with
// its hot path (src/cache/hot-path.ts), the service without it (HOT_PATH=off), and the bare
// node:http server answering the same recorded bytes (bench/platform.ts).
//
// `npm run bench` measures each server alone, one after the other; on a shared VM whose speed
// changes from one minute to the next, the platform's run and the service's differ by more than
// what is measured (BENCHMARKS.md "Honest notes"). Here each round runs the service and the
// platform at the same time, each with its own wrk on its own connections, so a change in the
// machine's speed hits both alike; the ratio of their request rates is the ratio of the work
// each does per request (both are CPU-bound). Rounds alternate the two services; the median
// round is reported, with the range.
//
//   node scripts/hot-path-ratio.ts [--scenario list|read-anon] [--rounds 6] [--duration 5]
//                                  [--warmup 5] [--connections 16]
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openEmbedded } from '../bench/databases.ts';
import { record, startPlatform, type PlatformHandle } from '../bench/drive.ts';
import { median } from '../bench/histogram.ts';
import { killAllChildren, startService, type ServiceHandle } from '../bench/processes.ts';
import { buildRequests, SCENARIOS } from '../bench/scenarios.ts';
import { runWrk, wrkPath } from '../bench/wrk.ts';
import { SEED_PASSWORD } from './seed.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'list' },
    rounds: { type: 'string', default: '6' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
  },
});
const scenario = SCENARIOS[values.scenario];
if (!scenario || scenario.auth) throw new Error(`--scenario must be an anonymous scenario (list, read-anon, ...), not ${values.scenario}`);
if (!wrkPath()) throw new Error('wrk is not on PATH (apt-get install wrk)');
const rounds = Number(values.rounds);
const durationSec = Number(values.duration);
const connections = Number(values.connections);

const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-hot-path-ratio-'));
const server = await openEmbedded({ seed: { users: 200, articles: 2000 }, poolUsers: 1, log: (l) => process.stderr.write(`${l}\n`) });
const started: { stop(): Promise<void> }[] = [];
try {
  const requests = buildRequests(scenario, { catalog: server.catalog, tokens: [], emails: [], password: SEED_PASSWORD }, 1);
  const requestsFile = path.join(workDir, 'requests.json');
  await writeFile(requestsFile, JSON.stringify(requests));
  const service = async (env: Record<string, string>): Promise<ServiceHandle> => {
    const db = await server.createRunDatabase();
    const s = await startService({
      NODE_ENV: 'production', JWT_SECRET: randomBytes(32).toString('hex'), DATABASE_URL: db.url, LOG_LEVEL: 'warn',
      DATA_DIR: path.join(workDir, `data-${started.length}`),
      // Counted as in production (the hot path counts too), never reached; a busy machine must
      // not turn answers into 503s either.
      RATE_LIMIT_MAX: '100000000', SHED: 'off',
      // Measured are cached reads: with the default minute, read-anon's entries (all loaded
      // in the warm-up) expired together mid-run and a round measured their reloading.
      CACHE_TTL_MS: '3600000', ...env,
    });
    started.push(s, { stop: () => db.drop() });
    return s;
  };
  const hot = await service({});
  const off = await service({ HOT_PATH: 'off' });
  const { recordings, bad } = await record(hot.url, requests);
  if (bad.length > 0) throw new Error(`${bad.length} requests failed while recording: ${bad[0]!.status} ${bad[0]!.body}`);
  const platform: PlatformHandle = await startPlatform(recordings, workDir, 'platform');
  started.push(platform);

  const load = (url: string, seconds: number) => runWrk({ url, connections, durationSec: seconds, requestsFile, workDir }, () => undefined);
  // Warm-up: every URL loaded into each service's cache (and replayed), JIT settled.
  for (const s of [hot, off, platform]) await load(s.url, Number(values.warmup));

  const ratios: Record<'hot' | 'off', number[]> = { hot: [], off: [] };
  for (let round = 1; round <= rounds; round++) {
    for (const [name, s] of round % 2 ? ([['hot', hot], ['off', off]] as const) : ([['off', off], ['hot', hot]] as const)) {
      const [a, b] = await Promise.all([load(s.url, durationSec), load(platform.url, durationSec)]);
      if (a.non2xx + a.errors > 0) throw new Error(`${name}: ${a.non2xx} non-2xx, ${a.errors} errors`);
      ratios[name].push(a.requestsPerSec / b.requestsPerSec);
      process.stderr.write(`round ${round} ${name === 'hot' ? 'hot path' : 'HOT_PATH=off'}: ${a.requestsPerSec} req/s next to the platform's ${b.requestsPerSec}: ${(a.requestsPerSec / b.requestsPerSec).toFixed(2)} ×\n`);
    }
  }
  const line = (label: string, xs: number[]) =>
    `| ${label} | ${median(xs).toFixed(2)} × | ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} |`;
  process.stdout.write(
    [
      `${values.scenario}: ${rounds} rounds of ${durationSec} s, each service next to the platform server at the same time (${connections} connections each)`,
      '',
      '| service | × platform (median round) | range |',
      '|---|--:|--:|',
      line('hot path (default)', ratios.hot),
      line('HOT_PATH=off', ratios.off),
      '',
    ].join('\n'),
  );
} finally {
  for (const s of started.reverse()) await s.stop().catch(() => undefined);
  killAllChildren('SIGTERM');
  await server.close();
  await rm(workDir, { recursive: true, force: true });
}
