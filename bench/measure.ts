// One target (a service configuration, or the platform server) under one scenario: warm-up,
// the peak run, and, with --sweep, the latency at fractions of that peak. Then the verdict: a
// run with connection errors, timeouts or any non-2xx response is not a result.
import { LoadSession, type Measurement } from './drive.ts';
import { gcWindow, readGc, readLag, type GcWindow } from './gc.ts';
import { pollHeap, type HeapPeak, type HeapSample } from './heap.ts';
import type { BenchOptions } from './options.ts';
import { cpuUsPerResponse, perRequest, type PgPerRequest, type PgStatements } from './pgstat.ts';
import type { Progress } from './progress.ts';
import type { OverloadPoint, RunResult, SweepPoint } from './report.ts';

export const SWEEP_PERCENTS = [10, 25, 50, 75, 100] as const;

export interface Target {
  label: string;
  url: string;
  /** Processes to sample: name -> root pid (`service`, `database`). */
  sample: Record<string, number | undefined>;
  /** The service has Conduit's /metrics: its GC time over the peak run is read from there. */
  metrics?: boolean;
  /** The target's database: its pg_stat_statements are reset before the peak run and read after. */
  pg?: PgStatements | undefined;
  /** Reads the target's V8 heap by space (bench/heap.ts): polled during the peak run. */
  heap?: () => Promise<HeapSample | null>;
  /**
   * The warm-up and the measured run paced at this many requests a second (open loop,
   * bench/paced.ts) instead of as many as are answered: targets compared at the same load (peer
   * mode's --equal-load).
   */
  rate?: number | undefined;
}

export interface MeasureContext {
  opts: BenchOptions;
  log: Progress;
  /** Records a failure of the run (and prints it in red). */
  fail: (text: string) => void;
  workDir: string;
}

export async function measureTarget(
  ctx: MeasureContext,
  target: Target,
  connections: number,
  requestsFile: string,
): Promise<{
  peak: Measurement;
  sweep: SweepPoint[];
  gc: GcWindow | null;
  overload: OverloadPoint | null;
  pg: PgPerRequest | null;
  heap: HeapPeak | null;
}> {
  const { opts, log } = ctx;
  const session = await LoadSession.open({
    url: target.url,
    connections,
    requestsFile,
    engine: opts.engine,
    workDir: ctx.workDir,
    sample: target.sample,
    spin: opts.pin,
  });
  try {
    if (opts.warmupSec > 0) {
      const w = (
        await session.run({ durationSec: opts.warmupSec, rate: target.rate }, (n, t) =>
          log.tick(`${target.label} warm-up`, n, t, opts.warmupSec),
        )
      ).result;
      if (w.errors + w.timeouts + w.non2xx > 0)
        log.warn(`${target.label} warm-up: ${w.errors} errors, ${w.timeouts} timeouts, ${w.non2xx} non-2xx`);
    }
    const gcBefore = target.metrics ? await readGc(target.url) : null;
    await target.pg?.reset();
    const heapPoll = target.heap ? pollHeap(target.heap) : undefined;
    const peak = await session
      .run({ durationSec: opts.durationSec, rate: target.rate }, (n, t) => log.tick(target.label, n, t, opts.durationSec))
      .finally(() => heapPoll?.stop());
    const heap = (await heapPoll?.stop()) ?? null;
    const pgTotals = target.pg ? await target.pg.read() : null;
    const pg = pgTotals && target.pg ? perRequest(pgTotals, peak.result.responses, target.pg.planningTracked) : null;
    const gcAfter = gcBefore ? await readGc(target.url) : null;
    const gc = gcBefore && gcAfter ? gcWindow(gcBefore, gcAfter, peak.result.durationSec) : null;
    const r = peak.result;
    const svc = peak.usage.service;
    log.info(
      `${target.label}: ${Math.round(r.requestsPerSec).toLocaleString('en-US')} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms` +
        `${svc ? `, CPU ${svc.cpuPercent}%, RSS ${svc.rssPeakMB} MB` : ''}${peak.usage.database ? `, DB CPU ${peak.usage.database.cpuPercent}%` : ''}` +
        `${peak.usage.loadgen ? `, load gen CPU ${peak.usage.loadgen.cpuPercent}%` : ''}${gc ? `, GC ${gc.percent}% (p99 pause ≤ ${gc.p99Ms} ms)` : ''}` +
        `${pg ? `, PostgreSQL ${pg.usPerRequest} µs/req${pg.cpuUsPerRequest == null ? '' : ` (backends' CPU ${pg.cpuUsPerRequest} µs)`} in ${pg.callsPerRequest} statements` : ''}` +
        `${heap ? `, heap new ${heap.newMB} / old ${heap.oldMB} / other ${heap.otherMB} MB, external ${heap.externalMB} MB` : ''}`,
    );
    const sweep: SweepPoint[] = [];
    if (opts.sweep) {
      for (const pct of SWEEP_PERCENTS) {
        const rate = Math.max(1, Math.round((r.requestsPerSec * pct) / 100));
        const label = `${target.label} sweep ${pct}% (${rate} req/s)`;
        const m = await session.run({ durationSec: opts.sweepDurationSec, rate }, (n, t) => log.tick(label, n, t, opts.sweepDurationSec));
        const x = m.result;
        sweep.push({
          percentOfPeak: pct,
          offeredRate: rate,
          requestsPerSec: x.requestsPerSec,
          latencyMs: x.latencyMs,
          errors: x.errors,
          timeouts: x.timeouts,
          non2xx: x.non2xx,
          unanswered: x.unanswered ?? 0,
          byKind: x.byKind,
          service: m.usage.service ?? null,
          loadgen: m.usage.loadgen ?? null,
          ...(x.generatorDelayMs ? { generatorStallMs: x.generatorDelayMs.max } : {}),
        });
        log.info(
          `${label}: p50 ${x.latencyMs.p50} ms, p99 ${x.latencyMs.p99} ms${x.unanswered ? `, ${x.unanswered} unanswered at the end` : ''}`,
        );
        if (x.errors + x.timeouts + x.non2xx > 0) {
          ctx.fail(
            `${label}: ${x.errors} errors, ${x.timeouts} timeouts, ${x.non2xx} non-2xx ${JSON.stringify(x.statusCodes)}${x.unexpected ? `; responses with no request in flight: ${x.unexpected.join(' | ')}` : ''}`,
          );
        }
      }
    }
    let overload: OverloadPoint | null = null;
    if (opts.overload && target.metrics) {
      const rate = Math.max(1, Math.round(r.requestsPerSec * 2));
      const label = `${target.label} overload 200% (${rate} req/s, ${opts.overloadConnections} connections)`;
      const lagBefore = await readLag(target.url);
      const m = await session.run({ durationSec: opts.sweepDurationSec, rate, connections: opts.overloadConnections }, (n, t) =>
        log.tick(label, n, t, opts.sweepDurationSec),
      );
      const lag = lagBefore ? await readLag(target.url) : null;
      const x = m.result;
      const shed = x.statusCodes['503'] ?? 0;
      overload = {
        offeredRate: rate,
        connections: opts.overloadConnections,
        answeredPerSec: x.requestsPerSec,
        admittedPerSec: Math.round(((x.responses - x.non2xx) / x.durationSec) * 10) / 10,
        admittedLatencyMs: x.latency2xxMs ?? null,
        refused503: shed,
        otherNon2xx: x.non2xx - shed,
        errors: x.errors,
        timeouts: x.timeouts,
        unanswered: x.unanswered ?? 0,
        eventLoopLagMs: lag,
        service: m.usage.service ?? null,
      };
      // Refusals are the point here, not failures: reported, never counted against the run.
      log.info(
        `${label}: admitted ${overload.admittedPerSec} req/s, p50 ${overload.admittedLatencyMs?.p50} ms, p99 ${overload.admittedLatencyMs?.p99} ms; ` +
          `503 ${shed}, other non-2xx ${overload.otherNon2xx}, errors ${x.errors}, timeouts ${x.timeouts}, unanswered ${overload.unanswered}` +
          `${lag ? `; event-loop lag mean ${lag.mean} ms, max ${lag.max} ms` : ''}`,
      );
    }
    return { peak, sweep, gc, overload, pg, heap };
  } finally {
    await session.close();
  }
}

/** The peak measurement as a result row; reports (loudly) whatever makes it not a result. */
export function toRunResult(
  ctx: MeasureContext,
  scenario: string,
  config: string,
  connections: number,
  m: Measurement,
  logs?: () => string,
  gc: GcWindow | null = null,
  pg: PgPerRequest | null = null,
  heap: HeapPeak | null = null,
): RunResult {
  const r = m.result;
  const problems: string[] = [];
  if (r.errors) problems.push(`${r.errors} connection errors`);
  if (r.timeouts) problems.push(`${r.timeouts} timeouts`);
  if (r.non2xx) {
    const codes = Object.entries(r.statusCodes)
      .filter(([s]) => !/^2/.test(s))
      .map(([s, n]) => `${s}: ${n}`);
    problems.push(`${r.non2xx} non-2xx responses (${codes.join(', ')})`);
  }
  if (r.responses === 0) problems.push('no responses at all');
  // A load generator using a whole core cannot go faster: the target may have had more to give.
  const loadgenBound = (m.usage.loadgen?.cpuPercent ?? 0) >= 90;
  if (loadgenBound)
    ctx.log.warn(
      `${scenario} × ${config}: the load generator used ${m.usage.loadgen!.cpuPercent}% of a core: this is its limit, not necessarily the target's`,
    );
  if (problems.length) {
    ctx.fail(`${scenario} × ${config}: ${problems.join('; ')}`);
    const bad = Object.entries(r.byKind)
      .filter(([, k]) => k.non2xx > 0)
      .map(([kind, k]) => `${kind} (${k.non2xx})`);
    if (bad.length) ctx.log.error(`  non-2xx by request kind: ${bad.join(', ')}`);
    else if (r.non2xx && r.engine.startsWith('wrk'))
      ctx.log.error('  (wrk does not tell statuses or request kinds apart: rerun with --loadgen autocannon to see them)');
    const lastLogs = logs?.()
      .trim()
      .split('\n')
      .slice(-3)
      .map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l))
      .join('\n');
    if (lastLogs) ctx.log.error(`  the service's last log lines:\n${lastLogs}`);
  }
  return {
    scenario,
    config,
    engine: r.engine,
    connections,
    durationSec: r.durationSec,
    responses: r.responses,
    requestsPerSec: r.requestsPerSec,
    latencyMs: r.latencyMs,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    statusCodes: r.statusCodes,
    byKind: r.byKind,
    service: m.usage.service ?? null,
    database: m.usage.database ?? null,
    loadgen: m.usage.loadgen ?? null,
    gc,
    serviceCpuUsPerResponse: cpuUsPerResponse(m.usage.service?.cpuPercent, r.requestsPerSec),
    pg,
    heap,
    ratioToPlatform: null,
    loadgenBound,
    ok: problems.length === 0,
    problems,
  };
}
