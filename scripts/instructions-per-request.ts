// Instructions per request, counted by valgrind's callgrind: the service's work per request in a
// figure that does not drift with the machine, for configurations whose difference in throughput
// is smaller than this VM's noise, such as V8's heap settings (docs/benchmarks.md says how to read
// it, docs/memory.md what it settled).
//
// Each configuration (bench/configs.ts) runs the built service under callgrind with
// instrumentation off. A warm-up replays the scenario's requests until the JIT has settled; then
// instrumentation is switched on (callgrind_control, checked: it exits 0 whether or not it reached
// the process), the list is replayed on from where the warm-up stopped, as the bench loops over
// it, and instrumentation is switched off (checked) before anything else happens. Every thread is counted: the garbage collector's helpers,
// the threadpool (compression, Argon2), the main thread. The garbage collections of the measured
// requests are read from the service's /metrics before and after.
//
// Under callgrind the service runs 20-50 times slower, so the figure is work, not time: a
// collection that V8 would do in idle time on a fast machine is counted all the same.
//
//   node scripts/instructions-per-request.ts [--scenario write] [--configs default,semi-space-16]
//                                            [--requests 3000] [--warmup 3000] [--rounds 1]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CONFIGS } from '../bench/configs.ts';
import { openEmbedded, type DatabaseServer } from '../bench/databases.ts';
import { logIn, pool, request } from '../bench/drive.ts';
import { median } from '../bench/histogram.ts';
import { killAllChildren, loadTestEnv, startService, type ServiceHandle } from '../bench/processes.ts';
import { buildRequests, SCENARIOS, type BenchRequest, type TokenUser } from '../bench/scenarios.ts';
import { SEED_PASSWORD } from './seed.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'write' },
    configs: { type: 'string', default: 'default,semi-space-16' },
    requests: { type: 'string', default: '3000' },
    warmup: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '1' },
    connections: { type: 'string', default: '8' },
  },
});
const scenario = SCENARIOS[values.scenario];
if (!scenario) throw new Error(`--scenario: no scenario ${values.scenario} (${Object.keys(SCENARIOS).join(', ')})`);
const configs = values.configs.split(',');
for (const c of configs)
  if (!CONFIGS[c] || CONFIGS[c].database !== 'embedded') throw new Error(`--configs: ${c} is not a configuration on the embedded database`);
const count = (name: string, s: string) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive whole number, got ${s}`);
  return n;
};
const measured = count('requests', values.requests);
const warmup = count('warmup', values.warmup);
const rounds = count('rounds', values.rounds);
const connections = count('connections', values.connections);
try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  throw new Error('valgrind is not on PATH (apt-get install valgrind)');
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-instructions-'));
const server = await openEmbedded({ seed: { users: 200, articles: 2000 }, poolUsers: scenario.auth ? 20 : 1, log });
const jwtSecret = randomBytes(32).toString('hex');
/** callgrind_control's environment: its side of the pipe's name (below). */
const VGDB_ENV = { ...process.env, LOGNAME: 'conduit-bench', HOST: '127.0.0.1' };
const env = (databaseUrl: string, config: string, n: number) => ({
  ...loadTestEnv({ databaseUrl, dataDir: path.join(workDir, `data-${n}`), jwtSecret }),
  // Under callgrind a request takes tens of ms: no deadline or shedding may answer for it.
  SHED: 'off',
  REQUEST_TIMEOUT_MS: '0',
  DB_ACQUIRE_TIMEOUT_MS: '600000',
  // valgrind and callgrind_control (vgdb) name their shared pipe after LOGNAME and HOST: the
  // same on both sides (startService sets HOST for the service).
  LOGNAME: VGDB_ENV.LOGNAME,
  ...CONFIGS[config]!.env,
});

try {
  const tokens = scenario.auth ? await tokenPool(server) : [];
  const requests = buildRequests(
    scenario,
    { catalog: server.catalog, tokens, emails: server.users.map((u) => u.email), password: SEED_PASSWORD },
    1,
  );
  const results: Record<string, { ir: number; scavenges: number; markCompacts: number }[]> = {};
  let n = 0;
  for (let round = 0; round < rounds; round++) {
    // Alternating order: the database's own state (its caches, the rows the writes added) ages
    // between the runs alike for each configuration.
    for (const config of round % 2 ? [...configs].reverse() : configs) {
      const r = await measure(config, requests, ++n);
      (results[config] ??= []).push(r);
      log(
        `${config}: ${(r.ir / measured / 1e6).toFixed(3)} M instructions per request, ` +
          `${((r.scavenges / measured) * 1000).toFixed(2)} scavenges and ${((r.markCompacts / measured) * 1000).toFixed(2)} full collections per 1,000 requests`,
      );
    }
  }
  const base = median(results[configs[0]!]!.map((r) => r.ir));
  process.stdout.write(
    [
      `${scenario.name}: ${measured} requests after ${warmup} of warm-up, ${connections} at a time, ${rounds} round(s) per configuration (valgrind --tool=callgrind, all threads)`,
      '',
      `| configuration | M instructions per request | × ${configs[0]} | scavenges per 1,000 requests | full GCs per 1,000 requests |`,
      '|---|--:|--:|--:|--:|',
      ...configs.map((c) => {
        const rs = results[c]!;
        const ir = median(rs.map((r) => r.ir));
        return `| ${c} | ${(ir / measured / 1e6).toFixed(3)} | ${(ir / base).toFixed(3)} | ${median(rs.map((r) => (r.scavenges / measured) * 1000)).toFixed(2)} | ${median(rs.map((r) => (r.markCompacts / measured) * 1000)).toFixed(2)} |`;
      }),
      '',
    ].join('\n'),
  );
} finally {
  killAllChildren('SIGTERM');
  await server.close();
  await rm(workDir, { recursive: true, force: true });
}

/** Tokens for the scenario's users, logged in through a service run without callgrind (Argon2 under it takes seconds). */
async function tokenPool(db: DatabaseServer): Promise<TokenUser[]> {
  const run = await db.createRunDatabase();
  const service = await startService(env(run.url, 'default', 0), 60_000, { built: true });
  try {
    return await logIn(service.url, db.users, SEED_PASSWORD);
  } finally {
    await service.stop();
    await run.drop();
  }
}

async function measure(config: string, requests: readonly BenchRequest[], n: number) {
  const run = await server.createRunDatabase();
  const outDir = path.join(workDir, `callgrind-${n}`);
  await mkdir(outDir);
  const service = await startService(env(run.url, config, n), 600_000, {
    built: true,
    nodeArgs: CONFIGS[config]!.nodeArgs,
    wrap: (command, args) => ({
      command: 'valgrind',
      args: [
        '--tool=callgrind',
        '--instr-atstart=no',
        `--vgdb-prefix=${path.join(outDir, 'vgdb')}`,
        `--callgrind-out-file=${path.join(outDir, 'callgrind.out')}`,
        command,
        ...args,
      ],
    }),
    // Callgrind writes its counts as the process exits, which under it takes a while.
    stopTimeoutMs: 300_000,
  });
  try {
    await replay(service, requests, warmup);
    const before = await collections(service);
    instrumentation(service.pid, outDir, true);
    await replay(service, requests, measured, warmup);
    instrumentation(service.pid, outDir, false);
    const after = await collections(service);
    await service.stop();
    const ir = await counted(outDir);
    if (ir === undefined) throw new Error(`callgrind wrote no counts in ${outDir}:\n${service.logs()}`);
    return { ir, scavenges: after.scavenges - before.scavenges, markCompacts: after.markCompacts - before.markCompacts };
  } finally {
    await service.stop();
    await run.drop();
  }
}

/**
 * Switches callgrind's instrumentation and checks that it took: callgrind_control exits 0 even when
 * it could not reach the process, and a window left on would count the shutdown as requests.
 */
function instrumentation(pid: number, outDir: string, on: boolean): void {
  const control = (arg: string) =>
    execFileSync('callgrind_control', [`--vgdb-prefix=${path.join(outDir, 'vgdb')}`, arg, String(pid)], {
      env: VGDB_ENV,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  // vgdb can fail to reach a process busy under callgrind, more so on a machine losing CPU time
  // to steal: tried again before the run fails.
  let state = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    control(`--instr=${on ? 'on' : 'off'}`);
    state = control('--back');
    if (on ? state.includes('Backtrace') : state.includes('instrumentation is switched off')) return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
  }
  throw new Error(`callgrind_control could not switch instrumentation ${on ? 'on' : 'off'} in process ${pid} in 5 attempts:\n${state}`);
}

/** The instructions callgrind counted, from the files it wrote (the last as the process exited). */
async function counted(outDir: string): Promise<number | undefined> {
  const files = (await readdir(outDir)).filter((f) => f.startsWith('callgrind.out'));
  const sums = await Promise.all(files.map(async (f) => /^totals: (\d+)/m.exec(await readFile(path.join(outDir, f), 'utf8'))?.[1]));
  if (files.length === 0 || sums.some((x) => x === undefined)) return undefined;
  return sums.reduce((t, x) => t + Number(x), 0) || undefined;
}

/** `total` requests of the list from its `from`th on, looping, `connections` at a time; anything but 2xx stops the run. */
async function replay(service: ServiceHandle, requests: readonly BenchRequest[], total: number, from = 0): Promise<void> {
  const list = Array.from({ length: total }, (_, i) => requests[(from + i) % requests.length]!);
  await pool(list, connections, async (r) => {
    const res = await request(service.url, r);
    if (res.status < 200 || res.status > 299) throw new Error(`${r.method} ${r.path}: ${res.status} ${res.body.toString().slice(0, 300)}`);
  });
}

/** Garbage collections so far, by kind, from prom-client's nodejs_gc_duration_seconds. */
async function collections(service: ServiceHandle): Promise<{ scavenges: number; markCompacts: number }> {
  const text = (await request(service.url, { method: 'GET', path: '/metrics', headers: {} })).body.toString();
  const sum = (kind: string) =>
    [...text.matchAll(new RegExp(`^nodejs_gc_duration_seconds_count\\{[^}]*kind="${kind}"[^}]*\\} (\\d+)`, 'gm'))].reduce(
      (s, m) => s + Number(m[1]),
      0,
    );
  return { scavenges: sum('minor'), markCompacts: sum('major') };
}
