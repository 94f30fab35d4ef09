// What observability costs: throughput of one cached anonymous read with tracing off, on at 1%
// sampling and on at 100% (metrics are always on), side by side on one machine in one run.
// Spans go over OTLP to a receiver on 127.0.0.1 that this script runs and that drops them, so the
// export's work (batching, protobuf encoding, HTTP) is all measured. Configurations are
// interleaved over several rounds, so a change in the machine's load hits them all alike; the
// median round is reported, and each "vs tracing off" is the median of the rounds' own ratios.
//
//   node scripts/telemetry-cost.ts [--duration 10] [--warmup 2] [--rounds 3] [--connections 32]
//                                  [--path /api/articles?limit=10] [--baseline <dir>]
//                                  [--engine autocannon|wrk] [--together]
//
// --engine wrk: the C load generator (apt-get install wrk), which leaves more of the two cores
// to the service than autocannon does.
//
// --together: every configuration runs at the same time, each under its share of the
// connections, for each round. On a machine whose speed changes from one minute to the next (a
// shared VM), runs one after another differ by more than what is measured; runs at the same
// time are slowed alike, and their per-round ratio is what this mode reports. Each round starts
// every service anew (and warms it up), so one process's luck does not decide the result.
//
// --baseline <dir>: also run the service found in <dir> (another checkout, e.g. one without
// the telemetry wired in) with the same settings, as a fourth configuration.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openEmbedded } from '../bench/databases.ts';
import { LoadSession } from '../bench/drive.ts';
import { startOtlpSink } from '../bench/otlp-sink.ts';
import { ACCEPT_ENCODING } from '../bench/scenarios.ts';
import { freePort } from '../src/db/embedded.ts';
import { exitWithin, killAllChildren, spawnTracked, tail } from '../bench/processes.ts';

const ROOT = path.join(import.meta.dirname, '..');

interface Target {
  name: string;
  root: string;
  env: Record<string, string>;
}

interface Run {
  name: string;
  round: number;
  requestsPerSec: number;
  p50: number;
  p99: number;
  cpuPercent: number;
  /** Service CPU time per response: steadier than req/s on a machine that is busy otherwise. */
  cpuUsPerRequest: number;
  non2xx: number;
  exports: number;
}

async function start(target: Target, env: Record<string, string>) {
  const port = await freePort();
  const child = spawnTracked(process.execPath, ['--import', './src/telemetry/tracing.ts', 'src/main.ts'], {
    cwd: target.root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, ...target.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = tail(child.stderr);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${target.name} exited while starting: ${logs()}`);
    if (Date.now() > deadline) throw new Error(`${target.name} did not become ready: ${logs()}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await exitWithin(child, 20_000, target.name).catch(() => undefined);
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '32' },
      path: { type: 'string', default: '/api/articles?limit=10' },
      baseline: { type: 'string' },
      engine: { type: 'string', default: 'autocannon' },
      together: { type: 'boolean', default: false },
    },
  });
  const durationSec = Number(values.duration);
  const warmupSec = Number(values.warmup);
  const rounds = Number(values.rounds);
  const connections = Number(values.connections);
  if (values.engine !== 'autocannon' && values.engine !== 'wrk') throw new Error(`--engine: autocannon or wrk, not ${values.engine}`);
  const engine = values.engine;
  const together = values.together;
  const otlp = { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio' };
  const targets: Target[] = [
    ...(values.baseline ? [{ name: 'baseline', root: path.resolve(values.baseline), env: {} }] : []),
    { name: 'tracing off', root: ROOT, env: {} },
    // The SDK and the hooks with nothing sampled: the fixed cost every request pays.
    { name: 'tracing 0%', root: ROOT, env: { ...otlp, OTEL_TRACES_SAMPLER_ARG: '0' } },
    { name: 'tracing 1%', root: ROOT, env: { ...otlp, OTEL_TRACES_SAMPLER_ARG: '0.01' } },
    { name: 'tracing 100%', root: ROOT, env: { ...otlp, OTEL_TRACES_SAMPLER_ARG: '1' } },
  ];
  // --together: each configuration's share of the connections.
  const share = Math.max(1, Math.ceil(connections / targets.length));
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-telemetry-cost-'));
  const server = await openEmbedded({ seed: { users: 100, articles: 1000 }, poolUsers: 1, log: (l) => process.stderr.write(`${l}\n`) });
  const requestsFile = path.join(workDir, 'requests.json');
  await writeFile(requestsFile, JSON.stringify([{ kind: 'read', method: 'GET', path: values.path, headers: { 'accept-encoding': ACCEPT_ENCODING } }]));
  const serviceEnv = (dbUrl: string) => ({
    NODE_ENV: 'production',
    JWT_SECRET: randomBytes(32).toString('hex'),
    DATABASE_URL: dbUrl,
    LOG_LEVEL: 'warn',
    DATA_DIR: path.join(workDir, 'data'),
    RATE_LIMIT_MAX: '100000000',
    // A busy machine would make a saturated service shed: measured are answers, not 503s.
    SHED: 'off',
  });

  /** One configuration's service, its database, its OTLP sink and its load generator. */
  async function open(target: Target, conns: number) {
    const cleanup: (() => Promise<unknown>)[] = [];
    const close = async () => {
      for (const c of cleanup.reverse()) await c().catch(() => undefined);
    };
    try {
      const db = await server.createRunDatabase();
      cleanup.push(() => db.drop());
      // A sink per configuration: the export count is its own, also when all run at once.
      const sink = await startOtlpSink();
      cleanup.push(() => sink.close());
      const otlpEnv: Record<string, string> = target.env.OTEL_TRACES_SAMPLER ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url } : {};
      const service = await start({ ...target, env: { ...target.env, ...otlpEnv } }, serviceEnv(db.url));
      cleanup.push(() => service.stop());
      const session = await LoadSession.open({ url: service.url, connections: conns, requestsFile, engine, sample: { service: service.pid }, workDir });
      cleanup.push(() => session.close());
      const measure = async (round: number): Promise<Run> => {
        const before = sink.counts().exports;
        const m = await session.run({ durationSec });
        const run: Run = {
          name: target.name,
          round,
          requestsPerSec: m.result.requestsPerSec,
          p50: m.result.latencyMs.p50,
          p99: m.result.latencyMs.p99,
          cpuPercent: m.usage.service?.cpuPercent ?? 0,
          cpuUsPerRequest: m.result.responses > 0 ? Math.round((((m.usage.service?.cpuPercent ?? 0) / 100) * m.result.durationSec * 1e6) / m.result.responses) : 0,
          non2xx: m.result.non2xx + m.result.errors,
          exports: sink.counts().exports - before,
        };
        process.stderr.write(`round ${round}: ${run.name}: ${Math.round(run.requestsPerSec)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, service CPU ${run.cpuPercent}% (${run.cpuUsPerRequest} µs/request), ${run.exports} OTLP exports\n`);
        return run;
      };
      return { warmUp: () => session.run({ durationSec: warmupSec }), measure, close };
    } catch (err) {
      await close();
      throw err;
    }
  }

  const runs: Run[] = [];
  try {
    if (together) {
      // Every configuration at once, each with its share of the connections: a slow second of
      // the machine slows them all, and each round's ratios compare runs of the same seconds.
      // New processes every round: two processes of the same code differ by up to ±15% in
      // this mode (where V8 happened to put the compiled code, which core they ran on), and that
      // is not tracing's doing; over rounds it averages out.
      for (let round = 1; round <= rounds; round++) {
        const opened: Awaited<ReturnType<typeof open>>[] = [];
        try {
          for (const t of targets) opened.push(await open(t, share));
          await Promise.all(opened.map((o) => o.warmUp()));
          runs.push(...(await Promise.all(opened.map((o) => o.measure(round)))));
        } finally {
          for (const o of opened) await o.close();
        }
      }
    } else {
      for (let round = 1; round <= rounds; round++) {
        // Each round starts one configuration later, so a drift in the machine's speed during a
        // round does not always fall on the same configuration.
        for (const target of targets.map((_, i) => targets[(i + round - 1) % targets.length]!)) {
          const o = await open(target, connections);
          try {
            await o.warmUp();
            runs.push(await o.measure(round));
          } finally {
            await o.close();
          }
        }
      }
    }
  } finally {
    killAllChildren('SIGTERM');
    await server.close();
    await rm(workDir, { recursive: true, force: true });
  }
  // "vs tracing off": the median over rounds of each round's ratio to that round's tracing-off
  // run (not the ratio of medians): a round the machine slowed is compared with itself.
  const ratio = (name: string, pick: (r: Run) => number) => {
    const ratios = runs
      .filter((r) => r.name === name)
      .map((r) => {
        const off = runs.find((o) => o.round === r.round && o.name === 'tracing off')!;
        return pick(r) / pick(off);
      });
    return median(ratios);
  };
  const pct = (x: number) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)}%`;
  const mode = together ? `all ${targets.length} configurations loaded at once (${share} connections each)` : `${connections} connections, configurations one after another`;
  const lines = [
    `GET ${values.path} (cached, anonymous), ${mode}, ${engine}, ${durationSec} s per run after ${warmupSec} s of warm-up, ${rounds} rounds, medians; ${os.cpus()[0]?.model.trim()} × ${os.availableParallelism()}, Node ${process.version}`,
    '',
    '| configuration | req/s | vs tracing off | CPU µs per request | vs tracing off | p50 ms | p99 ms | service CPU | non-2xx | OTLP exports |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const t of targets) {
    const mine = runs.filter((r) => r.name === t.name);
    lines.push(
      `| ${t.name} | ${Math.round(median(mine.map((r) => r.requestsPerSec)))} | ${pct(ratio(t.name, (r) => r.requestsPerSec))} | ${median(mine.map((r) => r.cpuUsPerRequest))} | ${pct(ratio(t.name, (r) => r.cpuUsPerRequest))} | ${median(mine.map((r) => r.p50))} | ${median(mine.map((r) => r.p99))} | ${median(mine.map((r) => r.cpuPercent))}% | ${mine.reduce((s, r) => s + r.non2xx, 0)} | ${mine.reduce((s, r) => s + r.exports, 0)} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (import.meta.main) {
  const deadline = setTimeout(() => {
    process.stderr.write('telemetry-cost: over its time budget, stopping\n');
    killAllChildren('SIGKILL');
    process.exit(124);
  }, 30 * 60_000);
  deadline.unref();
  await main();
  clearTimeout(deadline);
}
