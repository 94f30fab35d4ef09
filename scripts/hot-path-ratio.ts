// Cached anonymous reads against the platform limit, measured side by side: the service with
// its hot path (src/cache/hot-path.ts), the service without it (HOT_PATH=off), and the bare
// node:http server answering the same recorded bytes (bench/platform.ts).
//
// `npm run bench` measures each server alone, one after the other; on a shared VM whose speed
// changes from one minute to the next, the platform's run and the service's differ by more than
// what is measured (one configuration measured 11,403 and 3,299 requests/s on read-auth in two
// runs 22 minutes apart). Here each round runs the service and the platform at the same time,
// each with its own wrk on its own connections, so a change in the machine's speed hits both
// alike; the ratio of their request rates is the ratio of the work each does per request (both
// are CPU-bound). Rounds alternate the two services; the median round is reported, with the
// range.
//
// --pin: the other way to keep the machine out of the ratio, and the way to measure latency.
// This process, the load generators and the database run on CPU 0 (taskset); each server in turn
// has CPU 1 to itself. A round measures, for the platform server, the service with its hot path
// and the service without it: the peak rate (wrk), the CPU time per response (from /proc), and the
// latency at half of that peak (bench/paced.ts, evenly paced, spinning on its own core so a
// request goes out within microseconds of its due time, not in the 1 ms batches of its timer).
// Without pinning, the generator and the server share both cores and the latency at half of
// peak is mostly the wait for a core.
//
//   node scripts/hot-path-ratio.ts [--scenario list|read-anon] [--rounds 6] [--duration 5]
//                                  [--warmup 5] [--connections 16] [--pin [--latency-at 0.5]]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openEmbedded } from '../bench/databases.ts';
import { record, startPlatform, type PlatformHandle } from '../bench/drive.ts';
import { median } from '../bench/histogram.ts';
import { runPaced } from '../bench/paced.ts';
import { cpuSeconds, killAllChildren, pinTree, startService, type ServiceHandle } from '../bench/processes.ts';
import { buildRequests, SCENARIOS, type BenchRequest } from '../bench/scenarios.ts';
import { runWrk, wrkPath } from '../bench/wrk.ts';
import { SEED_PASSWORD } from './seed.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'list' },
    rounds: { type: 'string', default: '6' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    pin: { type: 'boolean', default: false },
    'latency-at': { type: 'string', default: '0.5' },
  },
});
const scenario = SCENARIOS[values.scenario];
if (!scenario || scenario.auth) throw new Error(`--scenario must be an anonymous scenario (list, read-anon, ...), not ${values.scenario}`);
if (!wrkPath()) throw new Error('wrk is not on PATH (apt-get install wrk)');
const rounds = Number(values.rounds);
const durationSec = Number(values.duration);
const connections = Number(values.connections);
/** --pin: the latency is measured at this fraction of each server's peak (the issue's: a half). */
const latencyAt = Number(values['latency-at']);
if (!(latencyAt > 0 && latencyAt <= 1)) throw new Error('--latency-at must be a fraction of the peak, in (0, 1]');

if (values.pin) {
  if (os.availableParallelism() < 2) throw new Error('--pin needs two CPUs: one for the server, one for the load');
  // Before anything is started: the database and the load generators inherit CPU 0.
  pinTree(process.pid, '0');
}

// What the machine itself adds: a process that does nothing but turn its event loop, alone on a
// CPU, and the longest it was kept from running. On this VM it is 10-15 ms a few times in 10 s,
// for the platform server as much as for the service: a server kept off its CPU that long answers the
// requests due meanwhile that much later, however little work each one is.
const STALL_PROBE = `
const end = performance.now() + Number(process.argv[1]) * 1000;
let last = performance.now(), worst = 0, over1 = 0;
const turn = () => {
  const now = performance.now();
  if (now - last > 1) over1++;
  worst = Math.max(worst, now - last);
  last = now;
  if (now < end) setImmediate(turn); else console.log(JSON.stringify({ worst, over1 }));
};
turn();`;

type Servers = { platform: PlatformHandle; hot: ServiceHandle; off: ServiceHandle };
const LABELS = { platform: 'platform (bare node:http)', hot: 'hot path (default)', off: 'HOT_PATH=off' } as const;

const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-hot-path-ratio-'));
const server = await openEmbedded({ seed: { users: 200, articles: 2000 }, poolUsers: 1, log: (l) => process.stderr.write(`${l}\n`) });
const started: { stop(): Promise<void> }[] = [];
try {
  const requests = buildRequests(scenario, { catalog: server.catalog, tokens: [], emails: [], password: SEED_PASSWORD }, 1);
  const requestsFile = path.join(workDir, 'requests.json');
  await writeFile(requestsFile, JSON.stringify(requests));
  const service = async (env: Record<string, string>): Promise<ServiceHandle> => {
    const db = await server.createRunDatabase();
    const s = await startService(
      {
        NODE_ENV: 'production',
        // On the API port, as before production's METRICS_PORT default: one port per run, no collisions.
        METRICS_PORT: 'api',
        JWT_SECRET: randomBytes(32).toString('hex'),
        DATABASE_URL: db.url,
        LOG_LEVEL: 'warn',
        DATA_DIR: path.join(workDir, `data-${started.length}`),
        // Counted as in production (the hot path counts too), never reached; a busy machine must
        // not turn answers into 503s either.
        RATE_LIMIT_MAX: '100000000',
        SHED: 'off',
        // Measured are cached reads: with the default minute, read-anon's entries (all loaded
        // in the warm-up) expired together mid-run and a round measured their reloading.
        CACHE_TTL_MS: '3600000',
        ...env,
      },
      60_000,
      { built: true },
    );
    started.push(s, { stop: () => db.drop() });
    return s;
  };
  const hot = await service({});
  const off = await service({ HOT_PATH: 'off' });
  const { recordings, bad } = await record(hot.url, requests);
  if (bad.length > 0) throw new Error(`${bad.length} requests failed while recording: ${bad[0]!.status} ${bad[0]!.body}`);
  const platform: PlatformHandle = await startPlatform(recordings, workDir, 'platform');
  started.push(platform);

  if (values.pin) {
    await pinned({ platform, hot, off }, requestsFile, requests);
  } else {
    await sideBySide({ platform, hot, off }, requestsFile);
  }
} finally {
  for (const s of started.reverse()) await s.stop().catch(() => undefined);
  killAllChildren('SIGTERM');
  await server.close();
  await rm(workDir, { recursive: true, force: true });
}

function load(url: string, seconds: number, requestsFile: string) {
  return runWrk({ url, connections, durationSec: seconds, requestsFile, workDir }, () => undefined);
}

async function sideBySide({ platform, hot, off }: Servers, requestsFile: string): Promise<void> {
  // Warm-up: every URL loaded into each service's cache (and replayed), JIT settled.
  for (const s of [hot, off, platform]) await load(s.url, Number(values.warmup), requestsFile);

  const ratios: Record<'hot' | 'off', number[]> = { hot: [], off: [] };
  for (let round = 1; round <= rounds; round++) {
    for (const [name, s] of round % 2
      ? ([
          ['hot', hot],
          ['off', off],
        ] as const)
      : ([
          ['off', off],
          ['hot', hot],
        ] as const)) {
      const [a, b] = await Promise.all([load(s.url, durationSec, requestsFile), load(platform.url, durationSec, requestsFile)]);
      if (a.non2xx + a.errors > 0) throw new Error(`${name}: ${a.non2xx} non-2xx, ${a.errors} errors`);
      ratios[name].push(a.requestsPerSec / b.requestsPerSec);
      process.stderr.write(
        `round ${round} ${LABELS[name]}: ${a.requestsPerSec} req/s next to the platform's ${b.requestsPerSec}: ${(a.requestsPerSec / b.requestsPerSec).toFixed(2)} ×\n`,
      );
    }
  }
  process.stdout.write(
    [
      `${values.scenario}: ${rounds} rounds of ${durationSec} s, each service next to the platform server at the same time (${connections} connections each)`,
      '',
      '| service | × platform (median round) | range |',
      '|---|--:|--:|',
      `| ${LABELS.hot} | ${spread(ratios.hot)} |`,
      `| ${LABELS.off} | ${spread(ratios.off)} |`,
      '',
    ].join('\n'),
  );
}

/** The median and the range, "0.81 × | 0.74–0.88". */
function spread(xs: number[]): string {
  return `${median(xs).toFixed(2)} × | ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
}

function machineStalls(cpu: string, seconds: number): { worst: number; over1: number } {
  const out = execFileSync('taskset', ['--cpu-list', cpu, process.execPath, '-e', STALL_PROBE, String(seconds)], { encoding: 'utf8' });
  return JSON.parse(out) as { worst: number; over1: number };
}

async function pinned(servers: Servers, requestsFile: string, requests: BenchRequest[]): Promise<void> {
  const names = ['platform', 'hot', 'off'] as const;
  for (const name of names) pinTree(servers[name].pid, '1');
  for (const name of names) await load(servers[name].url, Number(values.warmup), requestsFile);
  const stalls = [machineStalls('1', durationSec)];

  type Round = { rate: number; cpuUs: number; p50: number; p90: number; p99: number; p999: number; lag: number };
  const measured: Record<(typeof names)[number], Round[]> = { platform: [], hot: [], off: [] };
  for (let round = 1; round <= rounds; round++) {
    // The order turns each round, so no server is always measured right after the same one.
    const order = names.map((_, i) => names[(i + round) % names.length]!);
    for (const name of order) {
      const s = servers[name];
      const cpu0 = cpuSeconds(s.pid);
      const peak = await load(s.url, durationSec, requestsFile);
      const cpuUs = ((cpuSeconds(s.pid) - cpu0) * 1e6) / peak.responses;
      // Half (--latency-at) of this server's peak, just measured: each server at its own half.
      const half = await runPaced(requests, {
        url: s.url,
        connections: 64,
        durationSec,
        rate: Math.max(1, Math.round(peak.requestsPerSec * latencyAt)),
        timeoutSec: 10,
        spin: true,
      });
      for (const r of [peak, half])
        if (r.non2xx + r.errors + r.timeouts > 0)
          throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
      const { p50, p90, p99, p999 } = half.latencyMs;
      const lag = half.generatorDelayMs?.max ?? Number.NaN;
      measured[name].push({ rate: peak.requestsPerSec, cpuUs, p50, p90, p99, p999, lag });
      process.stderr.write(
        `round ${round} ${LABELS[name]}: peak ${Math.round(peak.requestsPerSec)} req/s, ${cpuUs.toFixed(1)} µs CPU per response; ` +
          `at ${Math.round(half.requestsPerSec)} req/s p50 ${p50} p90 ${p90} p99 ${p99} p99.9 ${p999} ms; the generator's own longest stall ${lag} ms\n`,
      );
    }
  }
  stalls.push(machineStalls('1', durationSec));
  const ratio = (name: 'hot' | 'off', f: (r: Round) => number) => measured[name].map((r, i) => f(r) / f(measured.platform[i]!));
  const ms = (name: (typeof names)[number], f: (r: Round) => number) => {
    const xs = measured[name].map(f);
    return `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)})`;
  };
  process.stdout.write(
    [
      `${values.scenario}, pinned: each server alone on CPU 1, wrk (${connections} connections), the paced generator (64) and the database on CPU 0; ${rounds} rounds of ${durationSec} s per measurement`,
      '',
      '| service | peak req/s × platform (median round) | range | platform µs ÷ its CPU µs per response | range |',
      '|---|--:|--:|--:|--:|',
      ...(['hot', 'off'] as const).map(
        (n) => `| ${LABELS[n]} | ${spread(ratio(n, (r) => r.rate))} | ${spread(ratio(n, (r) => 1 / r.cpuUs))} |`,
      ),
      '',
      `Latency at ${latencyAt === 0.5 ? 'half' : `${latencyAt} ×`} of each server's own peak, evenly paced (ms, median round and range):`,
      '',
      "| server | p50 | p90 | p99 | p99.9 | generator's longest stall |",
      '|---|--:|--:|--:|--:|--:|',
      ...names.map(
        (n) =>
          `| ${LABELS[n]} | ${ms(n, (r) => r.p50)} | ${ms(n, (r) => r.p90)} | ${ms(n, (r) => r.p99)} | ${ms(n, (r) => r.p999)} | ${ms(n, (r) => r.lag)} |`,
      ),
      '',
      `The machine: a process doing nothing but turn its event loop, alone on CPU 1 for ${durationSec} s, before and after the rounds: ` +
        stalls.map((s) => `kept from running for up to ${s.worst.toFixed(1)} ms, ${s.over1} times over 1 ms`).join('; '),
      '',
    ].join('\n'),
  );
}
