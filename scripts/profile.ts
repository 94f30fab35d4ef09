// `npm run profile -- --scenario <name>`: the service under a benchmark scenario, profiled.
//
// Seeds a throwaway database, starts the service as `npm start` does (its own process,
// production settings; from the sources, so that profiles name src/ files and lines), drives the
// scenario's requests at it with the benchmark's load generator (bench/: same scenarios, same
// generator, a separate process), and after a warm-up takes, over
// the same window, a CPU profile and an allocation (heap) profile through the service's own admin
// endpoints, the ones an operator uses in production (src/telemetry/admin.ts). Writes:
//   cpu.cpuprofile V8's profile: Chrome DevTools (Performance > Load profile) or speedscope draw
//                  its flame graph (docs/observability.md says how to read it)
//   cpu.pb.gz      the same in pprof's format: `go tool pprof -http=: cpu.pb.gz`, Pyroscope
//   heap.heapprofile, heap.pb.gz   the same for bytes allocated
//   heap.heapsnapshot (with --heap-snapshot)  every live object after the run: DevTools > Memory
//   summary.txt    throughput during the window and the top functions by self time
// Everything it starts, it stops; the databases it created are dropped.
//
//   npm run profile -- --help
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openEmbedded, openExternal, type DatabaseServer } from '../bench/databases.ts';
import { LoadSession, logIn } from '../bench/drive.ts';
import { metricsHeapReader, pollHeap, type HeapPeak } from '../bench/heap.ts';
import type { LoadResult } from '../bench/loadgen.ts';
import { killAllChildren, loadTestEnv, startService, type ServiceHandle } from '../bench/processes.ts';
import { buildRequests, SCENARIOS, type ScenarioInput } from '../bench/scenarios.ts';
import { cpuProfileToPprof, heapProfileToPprof, type CpuProfile, type HeapProfile } from '../src/telemetry/pprof.ts';
import { CPU_INTERVAL_US, HEAP_INTERVAL_BYTES } from '../src/telemetry/profiler.ts';
import { cpuWeights, heapWeights, msPerSample, telemetryShare, topTable } from './profile-summary.ts';
import { SEED_PASSWORD } from './seed.ts';

const ROOT = path.join(import.meta.dirname, '..');
const JWT_SECRET = 'profile-only-secret-profile-only-secret-0123';

export const USAGE = `usage: npm run profile -- [options]

  --scenario <name>     the load (default read-anon; one of ${Object.keys(SCENARIOS).join(', ')})
  --duration <s>        seconds profiled under load (default 10)
  --warmup <s>          seconds of load before profiling starts (default 3)
  --connections <n>     concurrent connections (default 32)
  --users N --articles N --seed N
                        data set size (default 200 users, 2,000 articles; seed 1)
  --set KEY=VALUE       an environment variable for the service, repeatable
                        (e.g. --set CACHE=off, --set OTEL_EXPORTER_OTLP_ENDPOINT=...)
  --heap-snapshot       also write a heap snapshot after the run
  --promoted            the allocation profile keeps only what no scavenge freed (what fills
                        the old generation), not every allocation
  --pg-url <url>        use this PostgreSQL server (a superuser URL) instead of starting an
                        embedded one; a database is created on it and dropped at the end
  --out <dir>           where the files go (default profiles/<timestamp>-<scenario>/)
  -h, --help`;

export interface ProfileOptions {
  scenario: string;
  durationSec: number;
  warmupSec: number;
  connections: number;
  users: number;
  articles: number;
  seed: number;
  env: Record<string, string>;
  heapSnapshot: boolean;
  promoted: boolean;
  pgUrl: string | undefined;
  out: string | undefined;
}

export class UsageError extends Error {}

function num(raw: string | undefined, name: string, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

export function parseProfileArgs(argv: readonly string[]): ProfileOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      scenario: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      users: { type: 'string' },
      articles: { type: 'string' },
      seed: { type: 'string' },
      set: { type: 'string', multiple: true },
      'heap-snapshot': { type: 'boolean' },
      promoted: { type: 'boolean' },
      'pg-url': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const scenario = values.scenario ?? 'read-anon';
  if (!SCENARIOS[scenario]) throw new UsageError(`unknown scenario "${scenario}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const env: Record<string, string> = {};
  for (const kv of values.set ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set takes KEY=VALUE, got "${kv}"`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return {
    scenario,
    durationSec: num(values.duration, 'duration', 10, 1),
    warmupSec: num(values.warmup, 'warmup', 3, 0),
    connections: num(values.connections, 'connections', 32, 1),
    users: num(values.users, 'users', 200, 2),
    articles: num(values.articles, 'articles', 2000, 1),
    seed: num(values.seed, 'seed', 1, 0),
    env,
    heapSnapshot: values['heap-snapshot'] ?? false,
    promoted: values.promoted ?? false,
    pgUrl: values['pg-url'],
    out: values.out,
  };
}

/**
 * The profiled service's environment: the bench's, the admin endpoints, and `--set`. No
 * NODE_OPTIONS of its own: one would replace src/runtime.env's, and with it the young
 * generation's size. startService preloads the tracing module as `npm start` does, so tracing
 * starts if `--set` gives it an endpoint.
 */
export function profiledEnv(databaseUrl: string, workDir: string, adminToken: string, set: Record<string, string>): Record<string, string> {
  return loadTestEnv(
    { databaseUrl, dataDir: path.join(workDir, 'data'), jwtSecret: JWT_SECRET },
    { ADMIN_TOKEN: adminToken, PROFILE_DIR: workDir, ...set },
  );
}

const say = (line: string) => process.stderr.write(`[profile] ${line}\n`);

async function admin(service: ServiceHandle, token: string, what: string, timeoutSec: number): Promise<string> {
  const res = await fetch(`${service.url}${what}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(timeoutSec * 1000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST ${what} answered ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

export interface ProfileResult {
  outDir: string;
  files: string[];
  load: LoadResult;
}

export async function runProfile(opts: ProfileOptions): Promise<ProfileResult> {
  const scenario = SCENARIOS[opts.scenario]!;
  const outDir = path.resolve(
    opts.out ?? path.join(ROOT, 'profiles', `${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}-${opts.scenario}`),
  );
  await mkdir(outDir, { recursive: true });
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-profile-'));
  const openOpts = {
    seed: { users: opts.users, articles: opts.articles, seed: opts.seed },
    poolUsers: Math.min(50, opts.users),
    log: (l: string) => say(l),
  };
  let server: DatabaseServer | undefined;
  try {
    server = opts.pgUrl ? await openExternal(opts.pgUrl, openOpts) : await openEmbedded(openOpts);
    if (!server) throw new Error(`PostgreSQL at ${opts.pgUrl} is unreachable`);
    const db = await server.createRunDatabase();
    const adminToken = randomBytes(32).toString('base64url');
    try {
      const service = await startService(profiledEnv(db.url, workDir, adminToken, opts.env));
      try {
        const tokens = scenario.auth ? await logIn(service.url, server.users, SEED_PASSWORD) : [];
        const input: ScenarioInput = { catalog: server.catalog, tokens, emails: server.users.map((u) => u.email), password: SEED_PASSWORD };
        const requests = buildRequests(scenario, input, opts.seed);
        const requestsFile = path.join(workDir, 'requests.json');
        await writeFile(requestsFile, JSON.stringify(requests));
        const connections = Math.min(opts.connections, scenario.maxConnections ?? Infinity);
        const session = await LoadSession.open({
          url: service.url,
          connections,
          requestsFile,
          engine: 'autocannon',
          sample: { service: service.pid },
          workDir,
        });
        let load: LoadResult;
        let cpuText: string;
        let heapText: string;
        let heapStarted = new Date();
        let heapPeak: HeapPeak | null = null;
        try {
          if (opts.warmupSec > 0) {
            say(`warm-up: ${opts.warmupSec} s of ${opts.scenario}, ${connections} connections`);
            await session.run({ durationSec: opts.warmupSec });
          }
          say(`profiling ${opts.durationSec} s under load`);
          const timeout = opts.durationSec + 60;
          heapStarted = new Date();
          const cpu = admin(service, adminToken, `/admin/profile/cpu?seconds=${opts.durationSec}`, timeout);
          const heapQuery = `seconds=${opts.durationSec}${opts.promoted ? '&promoted=true' : ''}`;
          const heap = admin(service, adminToken, `/admin/profile/heap?${heapQuery}`, timeout);
          // A second longer than the profile, so the load covers the whole window.
          const measured = session.run({ durationSec: opts.durationSec + 1 });
          const spaces = pollHeap(metricsHeapReader(service.url));
          [cpuText, heapText, { result: load }] = await Promise.all([cpu, heap, measured]);
          heapPeak = await spaces.stop();
        } finally {
          await session.close();
        }
        if (load.non2xx > 0 || load.errors > 0) {
          say(
            `the service answered ${load.non2xx} non-2xx responses and ${load.errors} errors (${JSON.stringify(load.statusCodes)}); its last log lines:\n${service.logs().slice(-3000)}`,
          );
        }
        const files: string[] = [];
        const put = async (name: string, data: string | Buffer) => {
          const file = path.join(outDir, name);
          await writeFile(file, data);
          files.push(file);
        };
        const cpuProfile = JSON.parse(cpuText) as CpuProfile;
        const heapProfile = JSON.parse(heapText) as HeapProfile;
        await put('cpu.cpuprofile', cpuText);
        await put('cpu.pb.gz', cpuProfileToPprof(cpuProfile, CPU_INTERVAL_US));
        await put('heap.heapprofile', heapText);
        await put('heap.pb.gz', heapProfileToPprof(heapProfile, HEAP_INTERVAL_BYTES, heapStarted));
        if (opts.heapSnapshot) {
          say('taking a heap snapshot');
          await put('heap.heapsnapshot', await admin(service, adminToken, '/admin/heap-snapshot', 300));
        }
        const cpuUnit = { kind: 'samples' as const, msPerSample: msPerSample(cpuProfile) };
        const cpu = cpuWeights(cpuProfile);
        const heap = heapWeights(heapProfile);
        const telemetry = telemetryShare(cpu);
        // The heap profile samples every allocation of the window, collected or not (profiler.ts),
        // so its total estimates the bytes allocated (with --promoted, those no scavenge freed);
        // the load's count is over the same window.
        const allocated = heap.total;
        const counted = opts.promoted ? 'promoted' : 'allocated';
        const responses = load.requestsPerSec * opts.durationSec;
        const summary = [
          `scenario ${opts.scenario}, ${connections} connections, ${opts.durationSec} s profiled after ${opts.warmupSec} s of warm-up`,
          `data set: ${opts.users} users, ${opts.articles} articles (seed ${opts.seed})${
            Object.keys(opts.env).length
              ? `; service env: ${Object.entries(opts.env)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' ')}`
              : ''
          }`,
          `throughput ${Math.round(load.requestsPerSec)} req/s, p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, non-2xx ${load.non2xx}, errors ${load.errors}`,
          heapPeak
            ? `V8's heap, peak committed MB over the window: new ${heapPeak.newMB}, old ${heapPeak.oldMB}, other ${heapPeak.otherMB}; external ${heapPeak.externalMB}`
            : "V8's heap: not read (/metrics did not answer)",
          `CPU in telemetry code (OpenTelemetry, prom-client, src/telemetry; self time): ${(telemetry * 100).toFixed(1)}% of the busy samples`,
          `${counted}: ${(allocated / 2 ** 20).toFixed(0)} MiB in the window, ${responses > 0 ? (allocated / responses / 1024).toFixed(1) : '?'} KiB per response (sampled heap profile)`,
          '',
          'top functions by self CPU time:',
          topTable(cpu, 20, cpuUnit),
          '',
          `top functions by bytes ${counted}:`,
          topTable(heap, opts.promoted ? 20 : 10, { kind: 'bytes' }),
          '',
        ].join('\n');
        await put('summary.txt', summary);
        process.stdout.write(`${summary}\nfiles:\n${files.map((f) => `  ${path.relative(process.cwd(), f)}`).join('\n')}\n`);
        return { outDir, files, load };
      } finally {
        await service.stop();
      }
    } finally {
      await db.drop();
    }
  } finally {
    killAllChildren('SIGTERM');
    await server?.close().catch((err: unknown) => say(`cleanup: ${err instanceof Error ? err.message : String(err)}`));
    await rm(workDir, { recursive: true, force: true });
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  let opts: ProfileOptions | 'help';
  try {
    opts = parseProfileArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof TypeError)) throw err;
    process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // Bounded: a stuck run stops itself (everything started is killed on exit).
  const budgetSec = 300 + opts.warmupSec + opts.durationSec * 2 + opts.articles / 50;
  const deadline = setTimeout(() => {
    say(`the run exceeded ${Math.round(budgetSec)} s: stopping`);
    process.exit(124);
  }, budgetSec * 1000);
  deadline.unref();
  // On a signal the children are stopped; the run then fails and its cleanup (databases,
  // the embedded server, the temp dir) runs on the way out, within a bounded time.
  let interrupted = false;
  const onSignal = () => {
    say('interrupted: stopping everything');
    interrupted = true;
    killAllChildren('SIGTERM');
    setTimeout(() => process.exit(130), 30_000).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await runProfile(opts);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    say(err instanceof Error ? (err.stack ?? err.message) : String(err));
    return 1;
  } finally {
    clearTimeout(deadline);
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
  setTimeout(() => process.exit(), 5000).unref();
}
