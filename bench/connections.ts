// `npm run bench:connections`: thousands of keep-alive clients at once (wrk, every connection
// opened at the start), on a cached and an uncached read, against the service (default
// configuration, then CACHE=off), the platform server (bare node:http replaying the service's
// bytes) and any peer, in alternating rounds. Reports per target and connection count the
// medians over rounds of: throughput, p50 and p99, timeouts (no answer in 5 s), non-2xx answers
// (the service's 503s) and peak RSS; first, on the fresh processes, the RSS one idle keep-alive
// connection costs, from 5,000 held open. docs/connections.md has a run and what it shows.
//
//   npm run bench:connections -- [--connections 1000,5000] [--duration 8] [--rounds 2]
//                                [--peer NAME=URL]... [--pg postgres://...] [--pin]
//
// --pin: every server (and its threads, and a peer's) on CPU 1, wrk on CPU 0. Unpinned, on this
// 2-core machine the scheduler sets wrk's two threads against a one-threaded Node server, and
// Node's p99 at 1,000 connections swung from 0.06 to 3 s between rounds (docs/connections.md).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hold } from '../test/held.ts';
import { openEmbedded, openExternal, type DatabaseServer } from './databases.ts';
import { record, startPlatform } from './drive.ts';
import { loadTestEnv, pinTree, ProcSampler, startService, type ServiceHandle } from './processes.ts';
import type { BenchRequest } from './scenarios.ts';
import { runWrk, wrkPath } from './wrk.ts';

const PATH = '/api/articles?limit=20';
const IDLE_CONNECTIONS = 5000;
const JWT_SECRET = 'bench-only-secret-bench-only-secret-0123456789';
const SERVER_CPU = '1';
const LOAD_CPU = '0';

interface Target {
  readonly name: string;
  readonly url: string;
  /** The process to sample (undefined: not found, e.g. a peer on another machine). */
  readonly pid: number | undefined;
  stop?(): Promise<void>;
}

interface Run {
  target: string;
  connections: number;
  round: number;
  rps: number;
  p50: number;
  p99: number;
  timeouts: number;
  non2xx: number;
  errors: number;
  rssPeakMB: number;
}

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '1000,5000' },
    duration: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    peer: { type: 'string', multiple: true, default: [] },
    pg: { type: 'string' },
    pin: { type: 'boolean', default: false },
  },
});
const counts = values.connections.split(',').map(Number);
const durationSec = Number(values.duration);
const rounds = Number(values.rounds);
if (!wrkPath()) throw new Error('wrk is not on PATH (apt-get install wrk)');

/** The pid listening on a loopback port (ss -ltnp), for a peer the bench did not start. */
function listenerPid(port: string): number | undefined {
  const out = execFileSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  const m = /pid=(\d+)/.exec(out);
  return m ? Number(m[1]) : undefined;
}

const rssMB = (pid: number) => (Number(execFileSync('cat', [`/proc/${pid}/statm`], { encoding: 'utf8' }).split(' ')[1]) * 4096) / 2 ** 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function main(): Promise<void> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'conduit-bench-connections-'));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const open = { seed: { users: 50, articles: 500 }, poolUsers: 1, log };
  const server: DatabaseServer | undefined = values.pg ? await openExternal(values.pg, open) : await openEmbedded(open);
  if (!server) throw new Error(`PostgreSQL at ${values.pg} is not reachable`);
  const targets: Target[] = [];
  try {
    const service = async (name: string, env: Record<string, string>): Promise<Target> => {
      const db = await server.createRunDatabase();
      const s: ServiceHandle = await startService(
        loadTestEnv({ databaseUrl: db.url, dataDir: path.join(workDir, 'data'), jwtSecret: JWT_SECRET }, env),
        60_000,
        { built: true },
      );
      return { name, url: s.url, pid: s.pid, stop: () => s.stop().then(() => db.drop()) };
    };
    const conduit = await service('conduit', {});
    targets.push(conduit, await service('conduit CACHE=off', { CACHE: 'off' }));
    const request: BenchRequest = { kind: 'list', method: 'GET', path: PATH };
    const { recordings } = await record(conduit.url, [request]);
    const platform = await startPlatform(recordings, workDir, 'connections');
    targets.push({ name: 'platform (node:http)', url: platform.url, pid: platform.pid, stop: () => platform.stop() });
    for (const p of values.peer) {
      const [name, url] = p.split(/=(.*)/s) as [string, string];
      targets.push({ name, url, pid: listenerPid(new URL(url).port) });
    }
    if (values.pin) for (const t of targets) if (t.pid !== undefined) pinTree(t.pid, SERVER_CPU);
    const onWrk = (pid: number) => {
      if (values.pin) pinTree(pid, LOAD_CPU);
    };
    const requestsFile = path.join(workDir, 'requests.json');
    await writeFile(requestsFile, JSON.stringify([request]));

    // First, on fresh processes: after the load runs, the heap they grew hides what connections add.
    const idle: { target: string; beforeMB: number; heldMB: number; perThousandMB: number; held: number }[] = [];
    for (const t of targets) {
      if (t.pid === undefined) continue;
      const beforeMB = rssMB(t.pid);
      const h = await hold(Number(new URL(t.url).port), IDLE_CONNECTIONS, { waitMs: 30_000 });
      await new Promise((r) => setTimeout(r, 1000));
      const heldMB = rssMB(t.pid);
      const held = h.open();
      h.close();
      idle.push({ target: t.name, beforeMB, heldMB, held, perThousandMB: ((heldMB - beforeMB) / held) * 1000 });
      await new Promise((r) => setTimeout(r, 1000));
    }

    // Warmed up first, as a process that has served for a while is: a cold one runs its first
    // thousand requests in V8's interpreter, and the clients of that first burst wait seconds.
    for (const t of targets) await runWrk({ url: t.url, connections: 50, durationSec: 3, requestsFile, workDir }, onWrk);

    const runs: Run[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const connections of counts) {
        for (const t of targets) {
          const sampler = new ProcSampler({ target: t.pid }, 100);
          sampler.start();
          const r = await runWrk({ url: t.url, connections, durationSec, requestsFile, workDir, timeoutSec: 5 }, onWrk);
          const usage = sampler.stop().target;
          runs.push({
            target: t.name,
            connections,
            round,
            rps: r.requestsPerSec,
            p50: r.latencyMs.p50,
            p99: r.latencyMs.p99,
            timeouts: r.timeouts,
            non2xx: r.non2xx,
            errors: r.errors,
            rssPeakMB: usage?.rssPeakMB ?? Number.NaN,
          });
          log(`round ${round} c=${connections} ${t.name}: ${JSON.stringify(runs.at(-1))}`);
          // Connections of the last run still closing would be counted against the next one.
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    }

    const lines = [
      `wrk -t2 -cN -d${durationSec}s --timeout 5s on GET ${PATH}, ${rounds} round(s), medians; ${os.cpus().length} cores${values.pin ? ', servers on CPU 1, wrk on CPU 0' : ''}, load average ${os.loadavg()[0]!.toFixed(1)} at the end`,
      '',
      '| target | connections | req/s | p50 ms | p99 ms | timeouts | non-2xx | peak RSS MB |',
      '|---|--:|--:|--:|--:|--:|--:|--:|',
    ];
    for (const connections of counts) {
      for (const t of targets) {
        const rs = runs.filter((r) => r.target === t.name && r.connections === connections);
        const m = (f: (r: Run) => number) => median(rs.map(f));
        lines.push(
          `| ${t.name} | ${connections} | ${Math.round(m((r) => r.rps))} | ${m((r) => r.p50).toFixed(1)} | ${m((r) => r.p99).toFixed(1)} | ${m((r) => r.timeouts)} | ${m((r) => r.non2xx)} | ${m((r) => r.rssPeakMB).toFixed(0)} |`,
        );
      }
    }
    lines.push('', `${IDLE_CONNECTIONS} idle keep-alive connections (one GET /healthz each, then held):`, '');
    lines.push('| target | RSS before MB | RSS holding MB | held | MB per 1,000 |', '|---|--:|--:|--:|--:|');
    for (const i of idle)
      lines.push(`| ${i.target} | ${i.beforeMB.toFixed(0)} | ${i.heldMB.toFixed(0)} | ${i.held} | ${i.perThousandMB.toFixed(1)} |`);
    process.stdout.write(`${lines.join('\n')}\n`);
    const out = path.join(import.meta.dirname, 'results', `connections-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify({ runs, idle }, null, 2));
    log(`results: ${out}`);
  } finally {
    for (const t of targets) await t.stop?.().catch(() => undefined);
    await server.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

await main();
