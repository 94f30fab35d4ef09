// Peer mode (`npm run bench -- --peer NAME=URL`): other RealWorld implementations and Conduit's
// configurations, each seeded with the same planned data through its public API, measured in
// alternating rounds (every target once per round, the order rotating), the median of the
// rounds reported per scenario and target, next to each target's CPU and PostgreSQL time per
// request.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { redact } from '../databases.ts';
import { measureTarget, toRunResult, type MeasureContext } from '../measure.ts';
import { openPgStatements, type PgStatements } from '../pgstat.ts';
import type { RunResult } from '../report.ts';
import { kindShares } from '../scenarios.ts';
import { makePlan } from './dataset.ts';
import type { PeerOptions } from './options.ts';
import { PEER_SCENARIOS, peerRequests } from './scenarios.ts';
import { peerSummary, type PeerCell, type PeerResults, type PeerRound } from './table.ts';
import { preparePeer, startConduits, type PeerTarget } from './targets.ts';

export interface PeerContext extends MeasureContext {
  note: (line: string) => void;
  isStopping: () => boolean;
  /** Registers work for the harness's cleanup (signals, the hard timeout). */
  atCleanup: (work: () => Promise<void>) => void;
}

const ROOT = path.join(import.meta.dirname, '..', '..');

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const nullableMedian = (xs: readonly (number | null | undefined)[]) => {
  const v = xs.filter((x): x is number => typeof x === 'number');
  return v.length ? Math.round(median(v) * 100) / 100 : null;
};

/** The medians over rounds of one scenario and target; ratios filled in by `withRatios`. */
export function cellOf(scenario: string, target: string, runs: readonly RunResult[]): PeerCell {
  return {
    scenario,
    target,
    rounds: runs.length,
    requestsPerSec: Math.round(median(runs.map((r) => r.requestsPerSec)) * 10) / 10,
    ratio: null,
    p50Ms: median(runs.map((r) => r.latencyMs.p50)),
    p99Ms: median(runs.map((r) => r.latencyMs.p99)),
    errors: runs.reduce((a, r) => a + r.errors + r.timeouts, 0),
    non2xx: runs.reduce((a, r) => a + r.non2xx, 0),
    cpuUsPerResponse: nullableMedian(runs.map((r) => r.serviceCpuUsPerResponse)),
    pgUsPerRequest: nullableMedian(runs.map((r) => r.pg?.usPerRequest)),
    pgExecUsPerRequest: nullableMedian(runs.map((r) => r.pg?.execUsPerRequest)),
    pgPlanUsPerRequest: nullableMedian(runs.map((r) => r.pg?.planUsPerRequest)),
    pgCallsPerRequest: nullableMedian(runs.map((r) => r.pg?.callsPerRequest)),
    pgCpuUsPerRequest: nullableMedian(runs.map((r) => r.pg?.cpuUsPerRequest)),
    planningTracked: runs.every((r) => r.pg?.planningTracked !== false),
    loadgenBound: runs.some((r) => r.loadgenBound),
  };
}

/** Each cell's req/s over the first peer's in the same scenario. */
export function withRatios(cells: PeerCell[], reference: string): PeerCell[] {
  for (const c of cells) {
    const ref = cells.find((x) => x.scenario === c.scenario && x.target === reference);
    c.ratio = ref && ref.requestsPerSec > 0 ? Math.round((c.requestsPerSec / ref.requestsPerSec) * 1000) / 1000 : null;
  }
  return cells;
}

async function serverVersion(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
  } finally {
    await c.end();
  }
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

export async function runPeerMode(ctx: PeerContext, peer: PeerOptions, outDir: string, command: string): Promise<PeerResults> {
  const { opts, log } = ctx;
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const plan = makePlan({ ...opts.dataset, tokenUsers: opts.tokenUsers });
  log.info(
    `peer mode: ${peer.peers.map((p) => `${p.name} (${p.url})`).join(', ')} and Conduit ${opts.configs.join(', ')} on ${redact(peer.pgUrl)}; ${peer.rounds} rounds of ${opts.durationSec} s`,
  );

  const targets: PeerTarget[] = [];
  for (const p of peer.peers) targets.push(await preparePeer(p, plan, peer.databases[p.name], peer.pids[p.name], (l) => log.info(l)));
  const conduits = await startConduits(peer.pgUrl, opts.configs, plan, path.join(ctx.workDir, 'data'), (l) => log.info(l));
  ctx.atCleanup(() => conduits.close());
  const stats = new Map<string, PgStatements | undefined>();
  try {
    targets.push(...conduits.targets);
    for (const t of targets) {
      if (t.databaseUrl) stats.set(t.name, await openPgStatements(t.databaseUrl, (l) => ctx.note(`${t.name}: ${l}`)));
      else ctx.note(`${t.name}: no database given (--peer-database ${t.name}=postgres://…): PostgreSQL's time per request stays blank`);
    }

    // Every target once per round, the order rotated each round so no target always runs right
    // after the same neighbour; paced at `rate` when given.
    const measureRounds = async (name: string, files: Map<string, string>, rate?: number): Promise<PeerRound[]> => {
      const out: PeerRound[] = [];
      for (let round = 1; round <= peer.rounds; round++) {
        const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
        for (const t of order) {
          if (ctx.isStopping()) throw new Error('stopping');
          const label = `${name} × ${t.name}${rate ? ` at ${rate} req/s` : ''} (round ${round}/${peer.rounds})`;
          const m = await measureTarget(
            ctx,
            { label, url: t.url, sample: { service: t.pid }, metrics: t.kind === 'conduit', pg: stats.get(t.name), rate },
            opts.connections,
            files.get(t.name)!,
          );
          const run = toRunResult(ctx, name, t.name, opts.connections, m.peak, undefined, m.gc, m.pg);
          // Paced, a target that answered less than the rate was measured at its saturation, not at
          // the rate. A backlog left at the window's end by a stall there alone does not make it so.
          if (rate && run.requestsPerSec < rate * 0.95)
            ctx.fail(
              `${label}: answered ${run.requestsPerSec} req/s (${m.peak.result.unanswered ?? 0} unanswered at the end): it did not keep up`,
            );
          out.push({ scenario: name, target: t.name, round, run });
        }
      }
      return out;
    };
    const cellsOf = (rounds: readonly PeerRound[], names: readonly string[]) =>
      withRatios(
        names.flatMap((s) =>
          targets.map((t) =>
            cellOf(
              s,
              t.name,
              rounds.filter((r) => r.scenario === s && r.target === t.name).map((r) => r.run),
            ),
          ),
        ),
        targets[0]!.name,
      );

    const rounds: PeerRound[] = [];
    const scenarios: PeerResults['scenarios'] = [];
    const equal: { scenarios: { name: string; rate: number }[]; rounds: PeerRound[] } = { scenarios: [], rounds: [] };
    for (const name of opts.scenarios) {
      const s = PEER_SCENARIOS[name]!;
      const files = new Map<string, string>();
      let mix: Record<string, number> = {};
      for (const t of targets) {
        const requests = peerRequests(s, { catalog: t.catalog, tokens: t.tokens, emails: [], password: '' }, opts.dataset.seed);
        mix = kindShares(requests);
        const file = path.join(ctx.workDir, `peer-${name}-${files.size}.json`);
        await writeFile(file, JSON.stringify(requests));
        files.set(t.name, file);
      }
      scenarios.push({ name, description: s.description, connections: opts.connections, mix });
      const closed = await measureRounds(name, files);
      rounds.push(...closed);
      if (peer.equalLoadPercent !== null) {
        const slowest = Math.min(...cellsOf(closed, [name]).map((c) => c.requestsPerSec));
        const rate = Math.max(1, Math.round((slowest * peer.equalLoadPercent) / 100));
        equal.scenarios.push({ name, rate });
        equal.rounds.push(...(await measureRounds(name, files, rate)));
      }
    }
    const cells = cellsOf(rounds, opts.scenarios);
    const finishedAt = new Date();
    return {
      schema: 1,
      mode: 'peer',
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      elapsedSec: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10,
      command,
      options: { ...opts, out: path.relative(ROOT, outDir) },
      machine: {
        cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
        cores: os.availableParallelism(),
        node: process.version,
        postgres: await serverVersion(peer.pgUrl).catch(() => 'unknown'),
        gitCommit: gitCommit(),
        loadgen: opts.engine,
        loadAverage: { start: loadStart.map((x) => Math.round(x * 100) / 100), end: os.loadavg().map((x) => Math.round(x * 100) / 100) },
      },
      dataset: {
        users: plan.users.length,
        articles: plan.articles.length,
        tags: plan.tags.length,
        follows: plan.follows.length,
        favorites: plan.favorites.length,
        comments: plan.comments.length,
        tokenUsers: plan.tokenUsers.length,
        seed: plan.seed,
      },
      targets: targets.map((t) => ({
        name: t.name,
        kind: t.kind,
        url: t.url,
        pid: t.pid ?? null,
        database: t.databaseUrl ? redact(t.databaseUrl) : null,
      })),
      reference: targets[0]!.name,
      scenarios,
      cells,
      rounds,
      ...(peer.equalLoadPercent === null
        ? {}
        : {
            equalLoad: {
              percent: peer.equalLoadPercent,
              scenarios: equal.scenarios,
              cells: cellsOf(equal.rounds, opts.scenarios),
              rounds: equal.rounds,
            },
          }),
      ok: true,
      failures: [],
      notes: [],
    };
  } finally {
    for (const s of stats.values()) await s?.close();
    await conduits.close();
  }
}

export async function writePeerReport(dir: string, r: PeerResults): Promise<string[]> {
  await writeFile(path.join(dir, 'results.json'), `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(path.join(dir, 'summary.md'), peerSummary(r));
  return ['results.json', 'summary.md'];
}
