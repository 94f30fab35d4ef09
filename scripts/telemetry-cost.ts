// What observability costs: throughput of one cached anonymous read with tracing off, on at 1%
// sampling and on at 100% (metrics are always on), side by side on one machine in one run.
// Spans go over OTLP to a receiver on 127.0.0.1 that this script runs and that drops them, so the
// export's work (batching, protobuf encoding, HTTP) is all measured. Configurations are
// interleaved over several rounds, so a change in the machine's load hits them all alike; the
// median round is reported.
//
//   node scripts/telemetry-cost.ts [--duration 10] [--warmup 2] [--rounds 3] [--connections 32]
//                                  [--path /api/articles?limit=10] [--baseline <dir>]
//                                  [--engine autocannon|wrk]
//
// --engine wrk: the C load generator (apt-get install wrk), which leaves more of the two cores
// to the service than autocannon does.
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
    },
  });
  const durationSec = Number(values.duration);
  const warmupSec = Number(values.warmup);
  const rounds = Number(values.rounds);
  const connections = Number(values.connections);
  if (values.engine !== 'autocannon' && values.engine !== 'wrk') throw new Error(`--engine: autocannon or wrk, not ${values.engine}`);
  const engine = values.engine;
  const sink = await startOtlpSink();
  const otlp = { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio' };
  const targets: Target[] = [
    ...(values.baseline ? [{ name: 'baseline', root: path.resolve(values.baseline), env: {} }] : []),
    { name: 'tracing off', root: ROOT, env: {} },
    // The SDK and the hooks with nothing sampled: the fixed cost every request pays.
    { name: 'tracing 0%', root: ROOT, env: { ...otlp, OTEL_TRACES_SAMPLER_ARG: '0' } },
    { name: 'tracing 1%', root: ROOT, env: { ...otlp, OTEL_TRACES_SAMPLER_ARG: '0.01' } },
    { name: 'tracing 100%', root: ROOT, env: { ...otlp, OTEL_TRACES_SAMPLER_ARG: '1' } },
  ];
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-telemetry-cost-'));
  const server = await openEmbedded({ seed: { users: 100, articles: 1000 }, poolUsers: 1, log: (l) => process.stderr.write(`${l}\n`) });
  const runs: Run[] = [];
  try {
    const requestsFile = path.join(workDir, 'requests.json');
    await writeFile(requestsFile, JSON.stringify([{ kind: 'read', method: 'GET', path: values.path, headers: { 'accept-encoding': ACCEPT_ENCODING } }]));
    for (let round = 1; round <= rounds; round++) {
      // Each round starts one configuration later, so a drift in the machine's speed during a
      // round does not always fall on the same configuration.
      for (const target of targets.map((_, i) => targets[(i + round - 1) % targets.length]!)) {
        const db = await server.createRunDatabase();
        try {
          const service = await start(target, {
            NODE_ENV: 'production',
            JWT_SECRET: randomBytes(32).toString('hex'),
            DATABASE_URL: db.url,
            LOG_LEVEL: 'warn',
            DATA_DIR: path.join(workDir, 'data'),
            RATE_LIMIT_MAX: '100000000',
            // A busy machine would make a saturated service shed: measured are answers, not 503s.
            SHED: 'off',
          });
          try {
            const session = await LoadSession.open({ url: service.url, connections, requestsFile, engine, sample: { service: service.pid }, workDir });
            try {
              await session.run({ durationSec: warmupSec });
              const before = sink.counts().exports;
              const m = await session.run({ durationSec });
              const run: Run = {
                name: target.name,
                requestsPerSec: m.result.requestsPerSec,
                p50: m.result.latencyMs.p50,
                p99: m.result.latencyMs.p99,
                cpuPercent: m.usage.service?.cpuPercent ?? 0,
                cpuUsPerRequest: m.result.responses > 0 ? Math.round((((m.usage.service?.cpuPercent ?? 0) / 100) * m.result.durationSec * 1e6) / m.result.responses) : 0,
                non2xx: m.result.non2xx + m.result.errors,
                exports: sink.counts().exports - before,
              };
              runs.push(run);
              process.stderr.write(`round ${round}: ${run.name}: ${Math.round(run.requestsPerSec)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, service CPU ${run.cpuPercent}% (${run.cpuUsPerRequest} µs/request), ${run.exports} OTLP exports\n`);
            } finally {
              await session.close();
            }
          } finally {
            await service.stop();
          }
        } finally {
          await db.drop();
        }
      }
    }
  } finally {
    killAllChildren('SIGTERM');
    await server.close();
    await sink.close();
    await rm(workDir, { recursive: true, force: true });
  }
  const off = runs.filter((r) => r.name === 'tracing off');
  const reference = median(off.map((r) => r.requestsPerSec));
  const referenceCpu = median(off.map((r) => r.cpuUsPerRequest));
  const pct = (x: number, ref: number) => `${x >= ref ? '+' : ''}${(((x - ref) / ref) * 100).toFixed(1)}%`;
  const lines = [
    `GET ${values.path} (cached, anonymous), ${connections} connections, ${durationSec} s per run, median of ${rounds} interleaved rounds; ${os.cpus()[0]?.model.trim()} × ${os.availableParallelism()}, Node ${process.version}`,
    '',
    '| configuration | req/s | vs tracing off | CPU µs per request | vs tracing off | p50 ms | p99 ms | service CPU | non-2xx |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const t of targets) {
    const mine = runs.filter((r) => r.name === t.name);
    const rps = median(mine.map((r) => r.requestsPerSec));
    const cpu = median(mine.map((r) => r.cpuUsPerRequest));
    lines.push(
      `| ${t.name} | ${Math.round(rps)} | ${pct(rps, reference)} | ${cpu} | ${pct(cpu, referenceCpu)} | ${median(mine.map((r) => r.p50))} | ${median(mine.map((r) => r.p99))} | ${median(mine.map((r) => r.cpuPercent))}% | ${mine.reduce((s, r) => s + r.non2xx, 0)} |`,
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
