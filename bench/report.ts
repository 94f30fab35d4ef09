// What a run writes: results.json (machine-readable, the input of `npm run bench:check`),
// summary.md (the tables), and the SVG plots. Also the issue's targets, evaluated.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CONFIGS, FLOOR, PLATFORM, type DatabaseKind } from './configs.ts';
import type { Percentiles } from './histogram.ts';
import type { KindStats } from './loadgen.ts';
import { costTable } from './costs.ts';
import type { PgPerRequest } from './pgstat.ts';
import type { GcWindow } from './gc.ts';
import type { HeapPeak } from './heap.ts';
import type { Usage } from './processes.ts';
import { colors, groupedBars, latencyRanges, linePanels, type Line } from './svg.ts';

export interface RunResult {
  scenario: string;
  /** A configuration's name, or `platform` for the bare node:http limit. */
  config: string;
  engine: string;
  connections: number;
  durationSec: number;
  responses: number;
  requestsPerSec: number;
  latencyMs: Percentiles;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  byKind: Record<string, KindStats>;
  /** The process tree under test (the service, or the platform server). */
  service: Usage | null;
  /** The PostgreSQL server's processes (all of them: other databases on it count too). */
  database: Usage | null;
  loadgen: Usage | null;
  /** The service's garbage collection over the peak run (from its /metrics); null for the platform. */
  gc?: GcWindow | null;
  /** The server's CPU (user + system, its whole process tree) per response, µs. */
  serviceCpuUsPerResponse?: number | null;
  /** PostgreSQL's time and statements per response (pg_stat_statements); null when the server cannot tell. */
  pg?: PgPerRequest | null;
  /** V8's heap by space over the peak run, peaks in MB (bench/heap.ts); absent in runs before it was measured. */
  heap?: HeapPeak | null;
  /** With --overload: the service at twice its peak rate. */
  overload?: OverloadPoint | null;
  /** requestsPerSec / the platform limit's requestsPerSec for the same scenario. */
  ratioToPlatform: number | null;
  /** The load generator used ≥ 90% of a core: the throughput is (also) its limit. */
  loadgenBound: boolean;
  /** --pin: the CPUs the server was allowed, read back at the end of its measurement. */
  cpus?: string;
  ok: boolean;
  problems: string[];
}

/** --overload: twice the peak rate offered, open loop, over many connections. */
export interface OverloadPoint {
  offeredRate: number;
  connections: number;
  answeredPerSec: number;
  /** 2xx responses per second: the work actually done. */
  admittedPerSec: number;
  admittedLatencyMs: Percentiles | null;
  /** 503s: shed, or refused by the pool or the hashing queue. */
  refused503: number;
  otherNon2xx: number;
  errors: number;
  timeouts: number;
  unanswered: number;
  /** The service's event-loop delay over the step (its /metrics), ms. */
  eventLoopLagMs: { mean: number; p99: number; max: number } | null;
  service: Usage | null;
}

export interface SweepPoint {
  percentOfPeak: number;
  offeredRate: number;
  requestsPerSec: number;
  latencyMs: Percentiles;
  errors: number;
  timeouts: number;
  non2xx: number;
  /** Requests still queued or in flight when the step ended (the offered rate was above capacity). */
  unanswered: number;
  byKind: Record<string, KindStats>;
  service: Usage | null;
  /** The paced generator itself: near 100% of a core, the step measured it too (unless it spins: --pin). */
  loadgen: Usage | null;
  /** The paced generator's own event loop: how late it ran at worst (its GC, or the machine). */
  generatorStallMs?: number;
}

export interface Sweep {
  scenario: string;
  config: string;
  peakRequestsPerSec: number;
  points: SweepPoint[];
}

export interface PgbenchResult {
  database: DatabaseKind;
  /** pgbench's query mode: `extended` is what node-postgres sends (parse, bind, execute per query); `prepared` is the upper bound. */
  mode: 'extended' | 'prepared';
  clients: number;
  threads: number;
  durationSec: number;
  tps: number;
  latencyMsAvg: number;
  /** The `list` scenario's req/s per configuration on this database, and its ratio to tps. */
  service: { config: string; requestsPerSec: number; ratio: number }[];
}

export interface Target {
  id: string;
  description: string;
  config: string;
  measured: string;
  /** null: not measured in this run (say which flag would measure it). */
  met: boolean | null;
  note?: string;
}

export interface Results {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  elapsedSec: number;
  command: string;
  options: Record<string, unknown>;
  machine: {
    cpuModel: string;
    cores: number;
    memoryGB: number;
    os: string;
    node: string;
    postgres: Partial<Record<DatabaseKind, string>>;
    gitCommit: string;
    gitDirty: boolean;
    loadgen: string;
    /** os.loadavg() (1, 5, 15 min) when the run started and ended: anything else running skews the numbers. */
    loadAverage: { start: number[]; end: number[] };
  };
  dataset: Record<string, unknown>;
  configs: { name: string; description: string; database: DatabaseKind; env: Record<string, string>; skipped?: string }[];
  scenarios: { name: string; description: string; connections: number; mix: Record<string, number> }[];
  runs: RunResult[];
  sweeps: Sweep[];
  pgbench: PgbenchResult[];
  targets: Target[];
  ok: boolean;
  failures: string[];
  /** What the run could not measure, and why (e.g. pg_stat_statements not preloaded). */
  notes?: string[];
}

// ---------------------------------------------------------------------------------------------
// Targets (issue 6; memory: issue 21).

const cacheOn = (config: string) => CONFIGS[config]?.env.CACHE !== 'off';

function sweepAtHalf(r: Results, scenario: string, config: string): SweepPoint | undefined {
  return r.sweeps.find((s) => s.scenario === scenario && s.config === config)?.points.find((p) => p.percentOfPeak === 50);
}

export function evaluateTargets(r: Results): Target[] {
  const out: Target[] = [];
  const configs = r.configs.filter((c) => !c.skipped).map((c) => c.name);
  const run = (s: string, c: string) => r.runs.find((x) => x.scenario === s && x.config === c);
  const pct = (x: number | null) => (x === null ? 'n/a' : `${(x * 100).toFixed(0)}%`);
  for (const c of configs.filter(cacheOn)) {
    const ra = run('read-anon', c);
    if (ra)
      out.push({
        id: 'read-anon-ratio',
        description: 'read-anon, cache on: ≥ 0.80 × the node:http limit',
        config: c,
        measured: pct(ra.ratioToPlatform),
        met: ra.ratioToPlatform === null ? null : ra.ratioToPlatform >= 0.8,
      });
    if (ra) {
      const half = sweepAtHalf(r, 'read-anon', c);
      out.push({
        id: 'read-anon-p99-half',
        description: 'read-anon, cache on: p99 < 1 ms at half of peak',
        config: c,
        measured: half ? `${half.latencyMs.p99} ms at ${Math.round(half.offeredRate)} req/s` : 'not measured (needs --sweep)',
        met: half ? half.latencyMs.p99 < 1 : null,
      });
    }
    const rau = run('read-auth', c);
    if (rau)
      out.push({
        id: 'read-auth-ratio',
        description: 'read-auth, cache on: ≥ 0.5 × the limit',
        config: c,
        measured: pct(rau.ratioToPlatform),
        met: rau.ratioToPlatform === null ? null : rau.ratioToPlatform >= 0.5,
      });
  }
  for (const c of configs) {
    const m = run('mixed', c);
    if (!m) continue;
    out.push({
      id: 'mixed-errors',
      description: 'mixed: no errors',
      config: c,
      measured: `${m.errors} errors, ${m.non2xx} non-2xx, ${m.timeouts} timeouts`,
      met: m.ok,
    });
    const half = sweepAtHalf(r, 'mixed', c);
    out.push({
      id: 'mixed-p99-half',
      description: 'mixed: p99 < 10 ms at half of peak',
      config: c,
      measured: half ? `${half.latencyMs.p99} ms at ${Math.round(half.offeredRate)} req/s` : 'not measured (needs --sweep)',
      met: half ? half.latencyMs.p99 < 10 : null,
    });
  }
  for (const p of r.pgbench.filter((x) => x.mode === 'extended')) {
    // The target is about the service without its cache; with the cache on, the list page
    // rarely reaches PostgreSQL and the ratio says little (it is still reported).
    const off = p.service.filter((s) => !cacheOn(s.config));
    for (const s of off.length ? off : p.service) {
      out.push({
        id: 'cache-off-pgbench',
        description: 'cache off: ≥ 0.7 × pgbench running the same query (list page)',
        config: s.config,
        measured: `${s.requestsPerSec.toFixed(0)} req/s vs ${p.tps.toFixed(0)} tps (${p.database}) = ${pct(s.ratio)}`,
        met: s.ratio >= 0.7,
        ...(cacheOn(s.config) ? { note: 'no cache-off configuration ran on this database: measured with the cache on' } : {}),
      });
    }
  }
  if (!r.pgbench.length && configs.length) {
    out.push({
      id: 'cache-off-pgbench',
      description: 'cache off: ≥ 0.7 × pgbench running the same query',
      config: '-',
      measured: 'not measured (needs --pgbench)',
      met: null,
    });
  }
  // Issue 21: memory per process within 1.5 times what the bare node:http server needs under the
  // same load, in every scenario.
  for (const c of configs) {
    const ratios: { scenario: string; rss: number; platform: number }[] = [];
    for (const x of r.runs.filter((y) => y.config === c && y.service)) {
      const p = r.runs.find((y) => y.scenario === x.scenario && y.config === PLATFORM)?.service?.rssPeakMB;
      if (p) ratios.push({ scenario: x.scenario, rss: x.service!.rssPeakMB, platform: p });
    }
    if (!ratios.length) continue;
    const worst = ratios.reduce((a, b) => (b.rss / b.platform > a.rss / a.platform ? b : a));
    const ratio = worst.rss / worst.platform;
    out.push({
      id: 'rss-platform',
      description: 'peak RSS ≤ 1.5 × the platform server’s, every scenario',
      config: c,
      measured: `worst ${worst.scenario}: ${worst.rss.toFixed(0)} MB vs ${worst.platform.toFixed(0)} MB = ${ratio.toFixed(2)}×`,
      met: ratio <= 1.5,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// summary.md

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const mark = (met: boolean | null) => (met === null ? '—' : met ? '✅ met' : '❌ not met');

/** A run's length as minutes and seconds, rounded to the second first (not "5 min 60 s"). */
export function took(sec: number): string {
  const whole = Math.round(sec);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

export function summaryMarkdown(r: Results, plots: readonly string[], plotDir = '.'): string {
  const lines: string[] = [];
  lines.push(`# Benchmark results ${r.startedAt.slice(0, 19).replace('T', ' ')} UTC`, '');
  lines.push(`\`${r.command}\` (took ${took(r.elapsedSec)})`, '');
  const m = r.machine;
  lines.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGB} GB; ${m.os}; Node ${m.node}; ` +
      `PostgreSQL ${Object.entries(m.postgres)
        .map(([k, v]) => `${v} (${k})`)
        .join(', ')}; load: ${m.loadgen}; commit ${m.gitCommit.slice(0, 10)}${m.gitDirty ? ' (with uncommitted changes)' : ''}. ` +
      `Load average (1/5/15 min) at the start ${m.loadAverage.start.join(' / ')}, at the end ${m.loadAverage.end.join(' / ')}.`,
    '',
  );
  if (r.options.pin === true) {
    const external = r.configs.some((c) => c.database === 'external' && !c.skipped);
    lines.push(
      'Pinned (`--pin`): each server measured alone on CPU 1; the harness, the load generators and the embedded database on CPU 0; ' +
        `the paced generator spinning there at the lowest priority.${external ? " The machine's own PostgreSQL (external-pg) is not pinned: it may run on CPU 1 beside the server." : ''}`,
      '',
    );
  }
  const d = r.dataset;
  lines.push(
    `Data set: ${['users', 'articles', 'comments', 'favorites', 'follows', 'tags'].map((k) => `${n0(Number(d[k] ?? 0))} ${k}`).join(', ')} (seed ${String(d.seed)}).`,
    '',
  );
  if (!r.ok) {
    lines.push('> **❌ THIS RUN HAD ERRORS: it is not a result.**', '');
    for (const f of r.failures) lines.push(`> - ${f}`);
    lines.push('');
  }
  for (const c of r.configs.filter((x) => x.skipped)) lines.push(`> ⚠ configuration \`${c.name}\` skipped: ${c.skipped}`, '');
  for (const note of r.notes ?? []) lines.push(`> ⚠ ${note}`, '');

  lines.push('## Throughput and latency', '');
  lines.push(
    '| scenario | config | req/s | × platform | p50 ms | p90 ms | p99 ms | max ms | errors | non-2xx | timeouts | service CPU | service RSS | V8 heap MB new / old / other, external | GC | DB CPU | load gen CPU |',
  );
  lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const x of r.runs) {
    const bad = (v: number) => (v > 0 ? `**${v} ❌**` : '0');
    lines.push(
      `| ${x.scenario} | ${x.config === PLATFORM ? '_platform limit_' : x.config === FLOOR ? '_Fastify floor_' : x.config}${x.ok ? '' : ' ❌'} | ${n0(x.requestsPerSec)} | ${x.ratioToPlatform === null ? '' : x.ratioToPlatform.toFixed(2)} | ` +
        `${ms(x.latencyMs.p50)} | ${ms(x.latencyMs.p90)} | ${ms(x.latencyMs.p99)} | ${ms(x.latencyMs.max)} | ${bad(x.errors)} | ${bad(x.non2xx)} | ${bad(x.timeouts)} | ` +
        `${x.service ? `${x.service.cpuPercent.toFixed(0)}%` : ''} | ${x.service ? `${x.service.rssPeakMB.toFixed(0)} MB` : ''} | ${x.heap ? `${x.heap.newMB} / ${x.heap.oldMB} / ${x.heap.otherMB}, ${x.heap.externalMB}` : ''} | ` +
        `${x.gc ? `${x.gc.percent.toFixed(1)}%, p99 ≤ ${x.gc.p99Ms} ms` : ''} | ` +
        `${x.database ? `${x.database.cpuPercent.toFixed(0)}%` : ''} | ${x.loadgen ? `${x.loadgen.cpuPercent.toFixed(0)}%${x.loadgenBound ? ' ⚠' : ''}` : ''} |`,
    );
  }
  lines.push(
    '',
    'CPU is the mean over the measured window in % of one core (this machine has ' +
      `${m.cores}: ${m.cores * 100}% is all of it). RSS is the peak resident set of the largest process. ` +
      '"× platform" is req/s divided by the bare node:http server\'s req/s on the same scenario in the same run. ' +
      "⚠ on the load generator: it used ≥ 90% of a core, so that run measured (also) the generator's limit.",
    '',
  );

  lines.push(...costTable(r.runs, (c) => (c === PLATFORM ? '_platform limit_' : c === FLOOR ? '_Fastify floor_' : c)));

  if (r.targets.length) {
    lines.push('## Targets (issues 6 and 21)', '');
    lines.push('| target | config | measured | |', '|---|---|---|---|');
    for (const t of r.targets)
      lines.push(`| ${t.description} | ${t.config} | ${t.measured}${t.note ? ` (${t.note})` : ''} | ${mark(t.met)} |`);
    lines.push('');
  }

  if (r.sweeps.length) {
    lines.push('## Latency against offered load (--sweep)', '');
    lines.push('Open-loop, evenly paced load (bench/paced.ts); latency counts from when each request was due, so queueing shows.', '');
    // Pinned, the generator spins on its core (100% of it whatever the rate): its CPU says nothing,
    // its own longest stall does (a p99 near it is the stall's, not the server's).
    const spinning = r.options.pin === true;
    if (spinning)
      lines.push(
        'Pinned: the generator spins on a core of its own; its last column is the longest its own event loop was held up during the step.',
        '',
      );
    lines.push(
      `| scenario | config | % of peak | offered req/s | answered req/s | p50 ms | p90 ms | p99 ms | max ms | unanswered | errors | ${spinning ? 'load gen stall ms' : 'load gen CPU'} |`,
    );
    lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
    for (const s of r.sweeps) {
      for (const p of s.points) {
        lines.push(
          `| ${s.scenario} | ${s.config === PLATFORM ? '_platform limit_' : s.config} | ${p.percentOfPeak}% | ${n0(p.offeredRate)} | ${n0(p.requestsPerSec)} | ` +
            `${ms(p.latencyMs.p50)} | ${ms(p.latencyMs.p90)} | ${ms(p.latencyMs.p99)} | ${ms(p.latencyMs.max)} | ${p.unanswered} | ${p.errors + p.timeouts + p.non2xx} | ` +
            `${spinning ? ms(p.generatorStallMs ?? Number.NaN) : p.loadgen ? `${p.loadgen.cpuPercent.toFixed(0)}%${p.loadgen.cpuPercent >= 90 ? ' ⚠' : ''}` : ''} |`,
        );
      }
    }
    lines.push('');
  }

  const overloads = r.runs.filter((x) => x.overload);
  if (overloads.length) {
    lines.push('## Twice the peak rate (--overload)', '');
    lines.push(
      'Each configuration offered 2 × its own peak rate, open loop (bench/paced.ts), over many connections. "Admitted" are the 2xx ' +
        'responses and their latency (counted from when each request was due); 503 are refusals (shedding, pool or hashing queue); ' +
        "unanswered were still queued or in flight at the end. Event-loop lag is the service's own, over the step.",
      '',
    );
    lines.push(
      '| scenario | config | offered req/s | connections | admitted req/s | admitted p50 ms | admitted p99 ms | admitted max ms | 503 | other non-2xx | errors + timeouts | unanswered | loop lag mean / max ms | service RSS |',
    );
    lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
    for (const x of overloads) {
      const o = x.overload!;
      const l = o.admittedLatencyMs;
      lines.push(
        `| ${x.scenario} | ${x.config} | ${n0(o.offeredRate)} | ${o.connections} | ${n0(o.admittedPerSec)} | ${l ? ms(l.p50) : ''} | ${l ? ms(l.p99) : ''} | ${l ? ms(l.max) : ''} | ` +
          `${o.refused503} | ${o.otherNon2xx} | ${o.errors + o.timeouts} | ${o.unanswered} | ${o.eventLoopLagMs ? `${o.eventLoopLagMs.mean} / ${o.eventLoopLagMs.max}` : ''} | ` +
          `${o.service ? `${o.service.rssPeakMB.toFixed(0)} MB` : ''} |`,
      );
    }
    lines.push('');
  }

  if (r.pgbench.length) {
    lines.push('## pgbench: the list query without the service (--pgbench)', '');
    lines.push('| database | pgbench mode | clients | tps | avg latency ms | service `list` req/s (config) | service / pgbench |');
    lines.push('|---|---|--:|--:|--:|---|--:|');
    for (const p of r.pgbench) {
      lines.push(
        `| ${p.database} | ${p.mode} | ${p.clients} | ${n0(p.tps)} | ${ms(p.latencyMsAvg)} | ${p.service.map((s) => `${n0(s.requestsPerSec)} (${s.config})`).join(', ')} | ${p.service.map((s) => s.ratio.toFixed(2)).join(', ')} |`,
      );
    }
    lines.push('');
  }

  // Per request kind: at half of peak when there was a sweep (latency without queueing in
  // front of the service), else at peak (autocannon only: wrk does not tell kinds apart).
  const first = r.configs.find((c) => !c.skipped)?.name;
  const kindRows: { scenario: string; byKind: Record<string, KindStats> }[] = [];
  for (const s of r.scenarios) {
    const half = r.sweeps.find((w) => w.scenario === s.name && w.config === first)?.points.find((p) => p.percentOfPeak === 50);
    const peak = r.runs.find((x) => x.scenario === s.name && x.config === first);
    const byKind = half && Object.keys(half.byKind).length ? half.byKind : peak?.byKind;
    if (byKind && Object.keys(byKind).length > 1) kindRows.push({ scenario: s.name, byKind });
  }
  if (kindRows.length) {
    const at = r.sweeps.length ? "at half of peak, the sweep's 50% step" : 'at peak';
    lines.push(`## Latency by request kind (${first}, ${at})`, '');
    lines.push('| scenario | kind | share | p50 ms | p99 ms | max ms | non-2xx |', '|---|---|--:|--:|--:|--:|--:|');
    for (const x of kindRows) {
      const total = Object.values(x.byKind).reduce((a, k) => a + k.count, 0);
      for (const [kind, k] of Object.entries(x.byKind).sort((a, b) => b[1].count - a[1].count)) {
        lines.push(
          `| ${x.scenario} | ${kind} | ${((k.count / total) * 100).toFixed(1)}% | ${ms(k.latencyMs.p50)} | ${ms(k.latencyMs.p99)} | ${ms(k.latencyMs.max)} | ${k.non2xx} |`,
        );
      }
    }
    lines.push('');
  }

  if (plots.length) {
    lines.push('## Plots', '');
    for (const p of plots) lines.push(`![${p}](${plotDir}/${p})`, '');
  }
  lines.push('## Scenarios', '');
  for (const s of r.scenarios) {
    lines.push(
      `- **${s.name}** (${s.connections} connections): ${s.description}. Mix: ${Object.entries(s.mix)
        .map(([k, v]) => `${k} ${v}%`)
        .join(', ')}.`,
    );
  }
  lines.push('', '## Configurations', '');
  for (const c of r.configs) {
    lines.push(
      `- **${c.name}**: ${c.description}${
        Object.keys(c.env).length
          ? ` (${Object.entries(c.env)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')})`
          : ''
      }${c.skipped ? ` — skipped: ${c.skipped}` : ''}`,
    );
  }
  lines.push(`- **${PLATFORM}**: a bare node:http server returning the recorded bytes of the service's responses (bench/platform.ts)`);
  if (r.runs.some((x) => x.config === FLOOR)) {
    lines.push(
      `- **${FLOOR}** (--floor): the same recorded bytes from a bare Fastify app, one catch-all route, no hooks or plugins: the framework's own cost`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Plots

export function plots(r: Results): Record<string, string> {
  const scenarios = r.scenarios.map((s) => s.name);
  const names = [...r.configs.filter((c) => !c.skipped).map((c) => c.name), PLATFORM];
  const series = colors(names, PLATFORM);
  const run = (s: string, c: string) => r.runs.find((x) => x.scenario === s && x.config === c);
  const out: Record<string, string> = {};
  out['throughput.svg'] = groupedBars({
    title: 'Throughput per scenario and configuration (higher is better)',
    yLabel: 'requests per second',
    categories: scenarios,
    series,
    value: (s, c) => run(s, c)?.requestsPerSec,
    flag: (s, c) => (run(s, c)?.ok === false ? ' ✗' : undefined),
    note: `${r.machine.cpuModel}, ${r.machine.cores} cores; ${r.machine.loadgen}; grey: the bare node:http limit; ✗: the run had errors`,
  });
  out['latency.svg'] = latencyRanges({
    title: 'Latency at peak throughput (lower is better)',
    categories: scenarios,
    series,
    value: (s, c) => run(s, c)?.latencyMs,
  });
  if (r.sweeps.length) {
    const panels = scenarios
      .map((s) => ({
        title: s,
        lines: r.sweeps
          .filter((w) => w.scenario === s)
          .flatMap((w): Line[] => [
            { series: w.config, points: w.points.map((p) => ({ x: p.offeredRate, y: p.latencyMs.p99 })) },
            { series: w.config, dashed: true, points: w.points.map((p) => ({ x: p.offeredRate, y: p.latencyMs.p50 })) },
          ]),
      }))
      .filter((p) => p.lines.length);
    out['sweep.svg'] = linePanels({
      title: 'Latency against offered load (open loop, evenly paced)',
      xLabel: 'offered load, requests per second',
      yLabel: 'latency, ms (log)',
      panels,
      series,
      legendExtra: ['solid: p99, dashed: p50'],
    });
  }
  return out;
}

export async function writeReport(dir: string, r: Results): Promise<string[]> {
  await writeFile(path.join(dir, 'results.json'), `${JSON.stringify(r, null, 2)}\n`);
  const svgs = plots(r);
  for (const [name, svg] of Object.entries(svgs)) await writeFile(path.join(dir, name), svg);
  await writeFile(path.join(dir, 'summary.md'), summaryMarkdown(r, Object.keys(svgs)));
  return ['results.json', 'summary.md', ...Object.keys(svgs)];
}
