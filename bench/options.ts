// The command line of `npm run bench`.
import { parseArgs } from 'node:util';
import { COMPARE_CONFIGS, COMPARE_SCENARIOS, CONFIGS, selectConfigs } from './configs.ts';
import type { Engine } from './drive.ts';
import { parseQuantity } from './cgroup.ts';
import { UsageError } from './errors.ts';
import { selectPeerScenarios } from './peer/scenarios.ts';
import { parsePeerOptions, PEER_USAGE, type PeerOptions } from './peer/options.ts';
import { SCENARIOS, selectScenarios } from './scenarios.ts';
import { wrkPath } from './wrk.ts';

export const USAGE = `usage: npm run bench -- [options]

  --quick                 small data set (100 users, 1,000 articles) and short runs (3 s)
  --compare               the runtime knobs side by side: default, semi-space-16/32/64/v8 (V8 young
                          generation), heap-growing-20 (V8 old generation growth), malloc-arenas-2 and
                          jemalloc (the allocator), threadpool-4/8,
                          workers-2 (cluster and reuseport) on
                          read-anon, read-auth, mixed and login (--configs/--scenarios override)
  --scenarios a,b         scenarios to run (default: ${Object.values(SCENARIOS)
    .filter((s) => s.inDefaultRun)
    .map((s) => s.name)
    .join(',')};
                          also: ${Object.values(SCENARIOS)
                            .filter((s) => !s.inDefaultRun)
                            .map((s) => s.name)
                            .join(', ')})
  --configs a,b           configurations compared side by side (default: all in bench/configs.ts)
  --duration <s>          seconds of measured load per run (default 12, quick 3)
  --warmup <s>            seconds of unmeasured load before each run (default 3, quick 1)
  --connections <n>       concurrent connections (default 50)
  --sweep                 also a rate sweep: latency at 10/25/50/75/100% of each run's peak
  --sweep-duration <s>    seconds per sweep step (default: a third of --duration, at least 3)
  --overload              also twice each configuration's peak rate, open loop, over many
                          connections: admitted throughput and latency, 503s (shedding), event-loop
                          delay; compare with --configs default,shed-off
  --overload-connections <n>  connections of the overload step (default 400)
  --floor                 also the framework floor: a bare Fastify server replaying the same
                          recorded responses (one route, no hooks or plugins), next to the
                          node:http platform limit: what Fastify itself costs on this machine
  --pgbench               also run pgbench with the list query (adds the \`list\` scenario)
  --loadgen <engine>      wrk or autocannon; default: wrk when on PATH (it needs several times
                          less CPU, which the service and database then get), else autocannon
  --nice=<n>              run the harness and everything it starts at this niceness (-20..19;
                          below 0 needs root), the database backends of the run included:
                          on a shared machine, other work then disturbs the measurement less
  --pin                   each server measured (the service, the platform limit, the floor) on
                          CPU 1 alone, this harness, the load generators and the embedded
                          database on CPU 0 (taskset; 2 CPUs or more), the paced generator
                          spinning on its core: the server's own work per request, not how
                          two cores were shared (the machine's PostgreSQL is not pinned)
  --memory-limit <q>      each service process under a memory limit, as a container's (e.g.
                          256Mi, the manifests' request): a memory cgroup made for it (root or
                          a delegated cgroup), which V8 and process.constrainedMemory() see; an
                          out-of-memory kill fails the run
  --out <dir>             where results go (default bench/results/<timestamp>/)
  --users N --articles N --comments N --favorites N --tags N --follows N --seed N
                          data set size (default 1,000 users, 10,000 articles, 50,000 comments,
                          20,000 favorites, 100 tags, 10,000 follows; seed 1)
  --token-users <n>       users logged in for the authenticated scenarios (default 200, quick 50)
  --external-pg-url <url> the server the external-pg configuration uses
                          (default postgres://postgres@127.0.0.1:5432/postgres)
${PEER_USAGE}
  -h, --help`;

export interface BenchOptions {
  quick: boolean;
  scenarios: string[];
  configs: string[];
  durationSec: number;
  warmupSec: number;
  connections: number;
  sweep: boolean;
  overload: boolean;
  overloadConnections: number;
  /** Also measure the bare-Fastify floor (bench/platform.ts --fastify). */
  floor: boolean;
  /** Servers on CPU 1, everything else on CPU 0. */
  pin: boolean;
  sweepDurationSec: number;
  pgbench: boolean;
  engine: Engine;
  /** Niceness for the harness, its children and the run's database backends; undefined: unchanged. */
  nice: number | undefined;
  out: string | undefined;
  dataset: { users: number; articles: number; comments?: number; favorites?: number; tags?: number; follows?: number; seed: number };
  tokenUsers: number;
  externalPgUrl: string;
  /** Peer mode (--peer): other RealWorld implementations side by side. */
  peer?: PeerOptions | undefined;
  /** --memory-limit: each service process in a memory cgroup of this many bytes. */
  memoryLimitBytes?: number | undefined;
}

export { UsageError };

function num(raw: string | undefined, name: string, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got "${raw}"`);
  return n;
}

function memoryLimit(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  try {
    return parseQuantity(raw);
  } catch {
    throw new UsageError(`--memory-limit must be a memory quantity such as 256Mi or 512M, got "${raw}"`);
  }
}

function niceness(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new UsageError(`--nice must be an integer from -20 to 19, got "${raw}"`);
  return n;
}

function list(raw: string | undefined): string[] | undefined {
  return raw === undefined
    ? undefined
    : raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
}

export function parseOptions(argv: readonly string[]): BenchOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean' },
        compare: { type: 'boolean' },
        scenarios: { type: 'string' },
        configs: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string' },
        sweep: { type: 'boolean' },
        overload: { type: 'boolean' },
        'overload-connections': { type: 'string' },
        floor: { type: 'boolean' },
        pin: { type: 'boolean' },
        'memory-limit': { type: 'string' },
        'sweep-duration': { type: 'string' },
        pgbench: { type: 'boolean' },
        loadgen: { type: 'string' },
        nice: { type: 'string' },
        out: { type: 'string' },
        users: { type: 'string' },
        articles: { type: 'string' },
        comments: { type: 'string' },
        favorites: { type: 'string' },
        tags: { type: 'string' },
        follows: { type: 'string' },
        seed: { type: 'string' },
        'token-users': { type: 'string' },
        'external-pg-url': { type: 'string' },
        peer: { type: 'string', multiple: true },
        'peer-database': { type: 'string', multiple: true },
        'peer-pid': { type: 'string', multiple: true },
        'peer-pg': { type: 'string' },
        rounds: { type: 'string' },
        'equal-load': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const peer = parsePeerOptions(values);
  const quick = values.quick ?? false;
  const durationSec = num(values.duration, 'duration', 0.5) ?? (peer ? 5 : quick ? 3 : 12);
  const engine = values.loadgen ?? (wrkPath() ? 'wrk' : 'autocannon');
  if (engine !== 'autocannon' && engine !== 'wrk') throw new UsageError(`--loadgen must be autocannon or wrk, got "${engine}"`);
  if (engine === 'wrk' && !wrkPath()) throw new UsageError('--loadgen wrk: wrk is not on PATH (apt-get install wrk)');
  const pgbench = values.pgbench ?? false;
  let scenarios: string[];
  let configs: string[];
  try {
    const compare = values.compare ?? false;
    if (peer) {
      if (compare || pgbench || values.sweep || values.overload || values.floor)
        throw new Error('--compare, --pgbench, --sweep, --overload and --floor are not for peer mode');
      scenarios = selectPeerScenarios(list(values.scenarios));
      configs = selectConfigs(list(values.configs) ?? ['default', 'cache-off']);
      // Peer mode starts no OTLP sink: a tracing configuration would measure tracing off.
      const traced = configs.filter((c) => CONFIGS[c]!.otlp);
      if (traced.length) throw new Error(`${traced.join(', ')}: configurations that export spans are not for peer mode`);
    } else {
      scenarios = selectScenarios(list(values.scenarios) ?? (compare ? [...COMPARE_SCENARIOS] : undefined)).map((s) => s.name);
      if (pgbench && !scenarios.includes('list')) scenarios.push('list');
      configs = selectConfigs(list(values.configs) ?? (compare ? [...COMPARE_CONFIGS] : undefined));
    }
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const int = (name: keyof typeof values) => {
    const n = num(values[name] as string | undefined, name, 0);
    if (n !== undefined && !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer`);
    return n;
  };
  const optional = <K extends string>(k: K, v: number | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, number>));
  return {
    quick,
    scenarios,
    configs,
    durationSec,
    warmupSec: num(values.warmup, 'warmup', 0) ?? (peer ? 2 : quick ? 1 : 3),
    connections: Math.max(1, int('connections') ?? (peer ? 32 : 50)),
    sweep: values.sweep ?? false,
    overload: values.overload ?? false,
    overloadConnections: Math.max(1, int('overload-connections') ?? 400),
    floor: values.floor ?? false,
    pin: values.pin ?? false,
    memoryLimitBytes: memoryLimit(values['memory-limit']),
    sweepDurationSec: num(values['sweep-duration'], 'sweep-duration', 0.5) ?? Math.max(3, Math.round(durationSec / 3)),
    pgbench,
    engine,
    nice: niceness(values.nice),
    out: values.out,
    dataset: {
      users: int('users') ?? (peer ? 50 : quick ? 100 : 1000),
      articles: int('articles') ?? (peer ? 500 : quick ? 1000 : 10_000),
      ...optional('comments', int('comments')),
      ...optional('favorites', int('favorites')),
      ...optional('tags', int('tags')),
      ...optional('follows', int('follows')),
      seed: int('seed') ?? 1,
    },
    tokenUsers: int('token-users') ?? (peer ? 10 : quick ? 50 : 200),
    externalPgUrl: values['external-pg-url'] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    peer,
  };
}
