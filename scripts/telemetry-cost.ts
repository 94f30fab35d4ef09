// What observability costs: throughput of one cached anonymous read with tracing off, on at 1%
// sampling and on at 100% (metrics are always on), side by side on one machine in one run.
// Spans go over OTLP to a receiver on 127.0.0.1 that this script runs and that drops them, so the
// export's work (batching, protobuf encoding, HTTP) is all measured. Configurations are
// interleaved over several rounds, so a change in the machine's load hits them all alike; the
// median round is reported, and each "vs tracing off" is the median of the rounds' own ratios.
//
//   node scripts/telemetry-cost.ts [--duration 10] [--warmup 2] [--rounds 3] [--connections 32]
//                                  [--path /api/articles?limit=10] [--baseline <dir>]
//                                  [--engine autocannon|wrk|callgrind] [--together] [--aa]
//                                  [--requests 5000] [--windows 5] [--warmup-requests 20000]
//                                  [--keep <dir>]
//
// --engine wrk: the C load generator (apt-get install wrk), which leaves more of the two cores
// to the service than autocannon does.
//
// --engine callgrind: no clock at all. Each service runs under valgrind's callgrind, which counts
// the machine instructions it executes; after --warmup-requests (until V8 has compiled the hot
// path), --windows windows of --requests requests each are counted, and the result is
// instructions per request (the mean of the windows; per process too, and which processes were
// in V8's slow tick state: objectLiteralRuntime). What another process does to the machine does
// not change the count, so a difference of a few percent between configurations is visible where
// a throughput run on this VM cannot separate it from the noise (two identical processes differ
// by ±15% there). Instructions are the CPU work in user space; the kernel's (the socket I/O,
// the same in every configuration) is not counted, so the relative cost in throughput is at most
// the relative cost in instructions. Needs valgrind (Debian's package). --keep <dir> keeps each
// window's profile (a file per thread, `callgrind-<configuration>.<pid>.<window + 1>-<thread>`,
// thread 01 the JavaScript one) for `callgrind_annotate`, to see where the instructions went.
//
// --together: every configuration runs at the same time, each under its share of the
// connections, for each round. On a machine whose speed changes from one minute to the next (a
// shared VM), runs one after another differ by more than what is measured; runs at the same
// time are slowed alike, and their per-round ratio is what this mode reports. Each round starts
// every service anew (and warms it up), so one process's luck does not decide the result.
//
// --baseline <dir>: also run the service found in <dir> (another checkout, e.g. one without
// the telemetry wired in) with the same settings, as a fourth configuration.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { openEmbedded } from '../bench/databases.ts';
import { LoadSession, type Engine } from '../bench/drive.ts';
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

/** valgrind's control channel is named after these; the service and callgrind_control must agree. */
const VALGRIND_ENV = { USER: process.env.USER ?? 'conduit', LOGNAME: process.env.USER ?? 'conduit', HOST: '127.0.0.1' };

async function start(target: Target, env: Record<string, string>, opts: { callgrindOut?: string } = {}) {
  const port = await freePort();
  const node = [process.execPath, '--env-file=src/runtime.env', '--import', './src/telemetry/tracing.ts', 'src/main.ts'];
  // Instrumentation stays off until the counted windows (callgrind_control -i on): the start and
  // the warm-up run at valgrind's uninstrumented speed and count nothing. V8 writes machine code
  // at run time: valgrind must look for changed code everywhere, not only on the stack. A file per
  // thread and dump, so the main (JavaScript) thread can be told from V8's helper threads.
  const valgrind = [
    'valgrind',
    '--tool=callgrind',
    '--smc-check=all-non-file',
    '--instr-atstart=no',
    '--separate-threads=yes',
    `--callgrind-out-file=${opts.callgrindOut}.%p`,
  ];
  const [command, ...args] = opts.callgrindOut ? [...valgrind, ...node] : node;
  const child = spawnTracked(command!, args, {
    cwd: target.root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...(opts.callgrindOut ? VALGRIND_ENV : {}),
      ...env,
      ...target.env,
      HOST: '127.0.0.1',
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = tail(child.stderr);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.callgrindOut ? 300_000 : 60_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${target.name} exited while starting: ${logs()}`);
    if (Date.now() > deadline) throw new Error(`${target.name} did not become ready: ${logs()}`);
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
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

/** A tracing configuration exports to `sinkUrl` (with `extra` settings); the others are unchanged. */
const withSink = (target: Target, sinkUrl: string, extra: Record<string, string> = {}): Target =>
  target.env.OTEL_TRACES_SAMPLER ? { ...target, env: { ...target.env, OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl, ...extra } } : target;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const execFileP = promisify(execFile);

/** One callgrind_control command to the service with pid `pid`. */
const callgrind = (pid: number, ...args: string[]) =>
  execFileP('callgrind_control', [...args, String(pid)], { env: { ...process.env, ...VALGRIND_ENV } }).then((r) => r.stdout);

/**
 * Instructions counted since the last dump (a dump zeroes the counters): all threads, and the
 * main (JavaScript) thread. The dump's files are read and deleted.
 */
async function dumpCounts(
  pid: number,
  outBase: string,
  part: number,
  keepDir: string | undefined,
): Promise<{ total: number; main: number; slowTicks: number }> {
  await callgrind(pid, '--dump');
  // One file per thread: <base>.<pid>.<part>-<thread>, thread 01 the main one.
  const prefix = `${path.basename(outBase)}.${pid}.${part}-`;
  const files = (await readdir(path.dirname(outBase))).filter((f) => f.startsWith(prefix));
  let total = 0;
  let main = 0;
  let slowTicks = 0;
  for (const f of files) {
    const file = path.join(path.dirname(outBase), f);
    const m = /^totals: (\d+)$/m.exec(await readFile(file, 'utf8'));
    if (!m) throw new Error(`${file}: no totals line`);
    total += Number(m[1]);
    if (Number(f.slice(prefix.length)) === 1) {
      main = Number(m[1]);
      slowTicks = await objectLiteralRuntime(file);
    }
    // --keep: the profile stays, for callgrind_annotate (where the instructions went).
    if (keepDir) await rename(file, path.join(keepDir, f));
    else await rm(file);
  }
  if (files.length === 0) throw new Error(`callgrind dump ${part} of ${pid}: no files`);
  return { total, main, slowTicks };
}

/**
 * Instructions spent in V8's runtime function for object literals with computed keys. Node's
 * process.nextTick builds every tick object with one (`{ [async_id_symbol]: …, … }`); in some
 * processes (of every configuration, most often at 1% sampling; src/runtime.ts says why and
 * holds it off), every tick object is built in the runtime with a map migration: ~7 ticks per
 * request, ~30,000 instructions more per request. Near zero otherwise;
 * reported per process so a configuration's cost is not confused with this state. Only after
 * a real warm-up: code not yet optimised builds such literals in the runtime too (with 500
 * warm-up requests every process is flagged).
 */
async function objectLiteralRuntime(file: string): Promise<number> {
  const { stdout } = await execFileP('callgrind_annotate', ['--threshold=100', file], { maxBuffer: 64 * 1024 * 1024 });
  const m = /^\s*([\d,]+) \([^)]*\)\s+\S*Runtime_DefineKeyedOwnPropertyInLiteral/m.exec(stdout);
  return m ? Number(m[1]!.replaceAll(',', '')) : 0;
}

/**
 * Connections the counted services are loaded over: enough to keep one busy, few enough that
 * valgrind (one core per process) is not flooded with queued connections.
 */
const COUNT_CONNECTIONS = 4;

/** Starts in a rotating order, so no configuration is always the first (or last) one started. */
const rotated = <T>(xs: readonly T[], round: number): T[] => xs.map((_, i) => xs[(i + round - 1) % xs.length]!);

/** `count` GETs over `connections` keep-alive connections; resolves with how many were not 200. */
async function fire(url: string, count: number, connections: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const headers = { 'accept-encoding': ACCEPT_ENCODING };
  let left = count;
  let failed = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get(url, { agent, headers }, (res) => {
          if (res.statusCode !== 200) failed++;
          res.resume().on('end', resolve).on('error', reject);
        })
        .on('error', reject);
    });
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (left-- > 0) await one();
      }),
    );
  } finally {
    agent.destroy();
  }
  return failed;
}

interface Counted {
  name: string;
  /** Instructions per request, every thread (JavaScript, GC helpers, V8's compiler threads), per window. */
  perRequest: number[];
  /** The same, the main thread only. */
  mainPerRequest: number[];
  /** Each process (round): its main-thread instructions per request, and whether it was in the slow tick state. */
  processes: { mainPerRequest: number; slowTicks: boolean }[];
  failed: number;
  exports: number;
}

interface CountSettings {
  rounds: number;
  requests: number;
  windows: number;
  warmup: number;
}

interface Counting {
  url: string;
  /** The counts since the last call (the first call only starts counting). */
  counts(): Promise<{ total: number; main: number; slowTicks: number }>;
  exports(): number;
  close(): Promise<void>;
}

/**
 * Every target's instructions per request, one after another (or all at once with `together`),
 * in `rounds` rounds of fresh processes: two processes of the same code can differ by 15% in
 * instructions too (which code V8 optimised, and how, is decided anew in each), so one process
 * per configuration is not enough.
 */
async function countAll(
  targets: Target[],
  together: boolean,
  count: CountSettings,
  open: (t: Target) => Promise<Counting>,
): Promise<Counted[]> {
  const results = new Map<string, Counted>(
    targets.map((t) => [t.name, { name: t.name, perRequest: [], mainPerRequest: [], processes: [], failed: 0, exports: 0 }]),
  );
  const one = async (target: Target, round: number): Promise<void> => {
    const result = results.get(target.name)!;
    const service = await open(target);
    try {
      result.failed += await fire(service.url, count.warmup, COUNT_CONNECTIONS);
      await service.counts();
      const exportsBefore = service.exports();
      const mine: number[] = [];
      let slowTicks = 0;
      for (let w = 1; w <= count.windows; w++) {
        result.failed += await fire(service.url, count.requests, COUNT_CONNECTIONS);
        const n = await service.counts();
        if (n.main === 0) throw new Error(`${target.name}: window ${w} counted nothing on the main thread`);
        result.perRequest.push(n.total / count.requests);
        result.mainPerRequest.push(n.main / count.requests);
        mine.push(n.main / count.requests);
        slowTicks += n.slowTicks / count.requests;
        process.stderr.write(
          `round ${round}: ${target.name}: window ${w}: ${Math.round(n.total / count.requests)} instructions per request (main thread ${Math.round(n.main / count.requests)}, object-literal runtime ${Math.round(n.slowTicks / count.requests)})\n`,
        );
      }
      // Normal: a few instructions per request in that runtime function; in the slow state ~4,000.
      result.processes.push({ mainPerRequest: mine.reduce((a, b) => a + b, 0) / mine.length, slowTicks: slowTicks / count.windows > 1000 });
      result.exports += service.exports() - exportsBefore;
    } finally {
      await service.close();
    }
  };
  for (let round = 1; round <= count.rounds; round++) {
    if (together) await Promise.all(targets.map((t) => one(t, round)));
    else for (const t of targets) await one(t, round);
  }
  return [...results.values()];
}

function instructionsReport(urlPath: string, together: boolean, count: CountSettings, counted: Counted[]): string {
  const off = counted.find((c) => c.name === 'tracing off')!;
  const mean = (xs: number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
  const pct = (x: number) => (Number.isNaN(x) ? '–' : `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)}%`);
  const k = (x: number) => (Number.isNaN(x) ? '–' : `${(x / 1000).toFixed(1)}k`);
  const normal = (c: Counted) => mean(c.processes.filter((p) => !p.slowTicks).map((p) => p.mainPerRequest));
  // The mean over windows charges a cost that comes in lumps (an export of 512 spans, a major
  // GC) to all the requests it served. "Normal processes" leaves out those in the slow tick
  // state (objectLiteralRuntime): whether a process falls into it is V8's doing, and it would
  // otherwise decide a comparison of a few rounds on its own.
  const lines = [
    `GET ${urlPath} (cached, anonymous), instructions counted by callgrind: ${count.rounds} rounds of fresh processes, each ${count.windows} windows of ${count.requests} requests after ${count.warmup} warm-up requests, ${COUNT_CONNECTIONS} connections, configurations ${together ? 'at once' : 'one after another'}; Node ${process.version}`,
    '',
    '| configuration | main thread per request (mean) | vs tracing off | normal processes | vs tracing off (normal) | processes in the slow tick state | per process (min–max) | all threads (mean) | vs tracing off | non-200 | OTLP exports |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of counted) {
    const per = c.processes.map((p) => p.mainPerRequest);
    lines.push(
      `| ${c.name} | ${k(mean(c.mainPerRequest))} | ${pct(mean(c.mainPerRequest) / mean(off.mainPerRequest))} | ${k(normal(c))} | ${pct(normal(c) / normal(off))} | ${c.processes.filter((p) => p.slowTicks).length} of ${c.processes.length} | ${k(Math.min(...per))}–${k(Math.max(...per))} | ${k(mean(c.perRequest))} | ${pct(mean(c.perRequest) / mean(off.perRequest))} | ${c.failed} | ${c.exports} |`,
    );
  }
  return lines.join('\n');
}

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
      requests: { type: 'string', default: '5000' },
      windows: { type: 'string', default: '5' },
      'warmup-requests': { type: 'string', default: '20000' },
      keep: { type: 'string' },
      together: { type: 'boolean', default: false },
      aa: { type: 'boolean', default: false },
    },
  });
  const durationSec = Number(values.duration);
  const warmupSec = Number(values.warmup);
  const rounds = Number(values.rounds);
  const connections = Number(values.connections);
  if (values.engine !== 'autocannon' && values.engine !== 'wrk' && values.engine !== 'callgrind')
    throw new Error(`--engine: autocannon, wrk or callgrind, not ${values.engine}`);
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
    // --aa: tracing off a second time. Its "vs tracing off" should be 0; what it shows instead is
    // the method's own error (noise, or a bias of the position a configuration runs in).
    ...(values.aa ? [{ name: 'tracing off (A/A)', root: ROOT, env: {} }] : []),
  ];
  // --together: each configuration's share of the connections.
  const share = Math.max(1, Math.ceil(connections / targets.length));
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-telemetry-cost-'));
  const server = await openEmbedded({ seed: { users: 100, articles: 1000 }, poolUsers: 1, log: (l) => process.stderr.write(`${l}\n`) });
  const requestsFile = path.join(workDir, 'requests.json');
  await writeFile(
    requestsFile,
    JSON.stringify([{ kind: 'read', method: 'GET', path: values.path, headers: { 'accept-encoding': ACCEPT_ENCODING } }]),
  );
  const serviceEnv = (dbUrl: string) => ({
    NODE_ENV: 'production',
    // On the API port, as before production's METRICS_PORT default: one port per run, no collisions.
    METRICS_PORT: 'api',
    JWT_SECRET: randomBytes(32).toString('hex'),
    DATABASE_URL: dbUrl,
    LOG_LEVEL: 'warn',
    DATA_DIR: path.join(workDir, 'data'),
    RATE_LIMIT_MAX: '100000000',
    // A busy machine would make a saturated service shed: measured are answers, not 503s.
    SHED: 'off',
  });

  if (engine === 'callgrind') {
    const keepDir = values.keep ? path.resolve(values.keep) : undefined;
    if (keepDir) await mkdir(keepDir, { recursive: true });
    try {
      const count = {
        rounds,
        requests: Number(values.requests),
        windows: Number(values.windows),
        warmup: Number(values['warmup-requests']),
      };
      const counted = await countAll(targets, together, count, async (target) => {
        const db = await server.createRunDatabase();
        const sink = await startOtlpSink();
        // Valgrind runs the service ~30 times slower, but the batch processor's 5 s timer runs on
        // the wall clock: at 1% every export would carry a few spans instead of the full batches
        // (512) it carries at production rates (at 20,000 req/s, 1% fills one in under a second),
        // and its fixed cost would be charged to 30 times fewer requests. Without the timer,
        // exports start on a full batch, as they do at speed (so a window at 1% may hold none:
        // 4,000 requests make ~120 spans; the OTLP exports column says).
        const traced = withSink(target, sink.url, { OTEL_BSP_SCHEDULE_DELAY: '3600000' });
        const outBase = path.join(workDir, `callgrind-${target.name.replace(/\W+/g, '-').replace(/-$/, '')}`);
        // Valgrind's slowness must not turn into 504s (REQUEST_TIMEOUT_MS); the deadline scope
        // itself stays on, as in production.
        const service = await start(
          traced,
          { ...serviceEnv(db.url), REQUEST_TIMEOUT_MS: '600000', HTTP_REQUEST_TIMEOUT_MS: '600000' },
          { callgrindOut: outBase },
        );
        let part = 0;
        return {
          url: `${service.url}${values.path}`,
          counts: async () => {
            if (part === 0) await callgrind(service.pid, '--instr=on');
            return dumpCounts(service.pid, outBase, ++part, keepDir);
          },
          exports: () => sink.counts().exports,
          close: async () => {
            await service.stop();
            await sink.close();
            await db.drop();
          },
        };
      });
      process.stdout.write(`${instructionsReport(values.path, together, count, counted)}\n`);
    } finally {
      killAllChildren('SIGTERM');
      await server.close();
      await rm(workDir, { recursive: true, force: true });
    }
    return;
  }
  const loadEngine: Engine = engine;

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
      const service = await start(withSink(target, sink.url), serviceEnv(db.url));
      cleanup.push(() => service.stop());
      const session = await LoadSession.open({
        url: service.url,
        connections: conns,
        requestsFile,
        engine: loadEngine,
        sample: { service: service.pid },
        workDir,
      });
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
          cpuUsPerRequest:
            m.result.responses > 0
              ? Math.round((((m.usage.service?.cpuPercent ?? 0) / 100) * m.result.durationSec * 1e6) / m.result.responses)
              : 0,
          non2xx: m.result.non2xx + m.result.errors,
          exports: sink.counts().exports - before,
        };
        process.stderr.write(
          `round ${round}: ${run.name}: ${Math.round(run.requestsPerSec)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, service CPU ${run.cpuPercent}% (${run.cpuUsPerRequest} µs/request), ${run.exports} OTLP exports\n`,
        );
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
          for (const t of rotated(targets, round)) opened.push(await open(t, share));
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
        for (const target of rotated(targets, round)) {
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
  const mode = together
    ? `all ${targets.length} configurations loaded at once (${share} connections each)`
    : `${connections} connections, configurations one after another`;
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
  // A bound on the whole run, so a hung service cannot keep it going: 30 minutes, and 90 under
  // callgrind, whose two rounds of five services at valgrind's speed took 15 to 29 minutes here.
  const budgetMin = process.argv.some((a) => a.endsWith('callgrind')) ? 90 : 30;
  const deadline = setTimeout(() => {
    process.stderr.write(`telemetry-cost: over its time budget (${budgetMin} min), stopping\n`);
    killAllChildren('SIGKILL');
    process.exit(124);
  }, budgetMin * 60_000);
  deadline.unref();
  await main();
  clearTimeout(deadline);
}
