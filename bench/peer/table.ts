// What a peer run writes: results.json (every round, and the medians) and summary.md, whose
// first table puts the targets side by side, one column each, the command that made it above it.
import type { RunResult } from '../report.ts';

/** One scenario × target: medians over the rounds (errors summed). */
export interface PeerCell {
  scenario: string;
  target: string;
  rounds: number;
  requestsPerSec: number;
  /** requestsPerSec / the first peer's in the same scenario. */
  ratio: number | null;
  p50Ms: number;
  p99Ms: number;
  /** Connection errors and timeouts. */
  errors: number;
  non2xx: number;
  cpuUsPerResponse: number | null;
  /** pg_stat_statements: execution + planning. */
  pgUsPerRequest: number | null;
  pgExecUsPerRequest: number | null;
  pgPlanUsPerRequest: number | null;
  pgCallsPerRequest: number | null;
  /** CPU of the target database's backends per request (/proc); absent or null when not readable. */
  pgCpuUsPerRequest?: number | null | undefined;
  /** false: track_planning was off in some round, planning is not in pgUsPerRequest. */
  planningTracked: boolean;
  /** The load generator used ≥ 90% of a core in some round. */
  loadgenBound: boolean;
}

export interface PeerRound {
  scenario: string;
  target: string;
  round: number;
  run: RunResult;
}

export interface PeerResults {
  schema: 1;
  mode: 'peer';
  startedAt: string;
  finishedAt: string;
  elapsedSec: number;
  command: string;
  options: Record<string, unknown>;
  machine: {
    cpuModel: string;
    cores: number;
    node: string;
    postgres: string;
    gitCommit: string;
    loadgen: string;
    loadAverage: { start: number[]; end: number[] };
  };
  dataset: Record<string, number>;
  targets: { name: string; kind: 'peer' | 'conduit'; url: string; pid: number | null; database: string | null }[];
  /** The target the ratios divide by: the first peer. */
  reference: string;
  scenarios: { name: string; description: string; connections: number; mix: Record<string, number> }[];
  cells: PeerCell[];
  rounds: PeerRound[];
  /** --equal-load: the same rounds paced at one rate per scenario, `percent` of its slowest target's req/s. */
  equalLoad?: { percent: number; scenarios: { name: string; rate: number }[]; cells: PeerCell[]; rounds: PeerRound[] };
  ok: boolean;
  failures: string[];
  notes: string[];
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const num = (x: number) => (x >= 100 ? n0(x) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** A cell's CPU and PostgreSQL costs per request. */
function costText(c: PeerCell): string[] {
  return [
    `CPU ${c.cpuUsPerResponse === null ? '–' : num(c.cpuUsPerResponse)} µs/resp`,
    c.pgUsPerRequest === null
      ? 'PG –'
      : `PG ${num(c.pgUsPerRequest)} µs/req${c.planningTracked ? '' : ' (exec only)'}${c.pgCpuUsPerRequest == null ? '' : ` (CPU ${num(c.pgCpuUsPerRequest)})`}, ${c.pgCallsPerRequest!.toFixed(2)} calls/req`,
  ];
}

const errorText = (c: PeerCell) => (c.errors + c.non2xx > 0 ? [`❌ ${c.errors} errors, ${c.non2xx} non-2xx`] : []);

/** One cell of the side-by-side table: throughput and ratio, latency, then the costs per request. */
export function cellText(c: PeerCell): string {
  return [
    `**${n0(c.requestsPerSec)}** req/s${c.ratio === null ? '' : ` (${c.ratio.toFixed(2)}×)`}${c.loadgenBound ? ' ⚠' : ''}`,
    `p50 ${num(c.p50Ms)} / p99 ${num(c.p99Ms)} ms`,
    ...errorText(c),
    ...costText(c),
  ].join('<br>');
}

/** One cell at equal load: the latency first, since the rate is the same for all. */
function equalLoadCellText(c: PeerCell): string {
  return [`p50 **${num(c.p50Ms)}** / p99 **${num(c.p99Ms)}** ms`, ...errorText(c), ...costText(c)].join('<br>');
}

/** A table of cells: a row per scenario, a column per target in the run's order. */
function targetColumns(
  r: Pick<PeerResults, 'targets'>,
  scenarios: readonly string[],
  cells: readonly PeerCell[],
  text: (c: PeerCell) => string,
  rowName: (scenario: string) => string,
): string[] {
  const names = r.targets.map((t) => t.name);
  const lines = [`| scenario | ${names.join(' | ')} |`, `|---|${names.map(() => '--:').join('|')}|`];
  for (const s of scenarios) {
    const row = names.map((n) => {
      const c = cells.find((x) => x.scenario === s && x.target === n);
      return c ? text(c) : '';
    });
    lines.push(`| ${rowName(s)} | ${row.join(' | ')} |`);
  }
  return lines;
}

/** The side-by-side table: a row per scenario, a column per target in the run's order. */
export function sideBySide(r: Pick<PeerResults, 'targets' | 'scenarios' | 'cells'>): string[] {
  return targetColumns(
    r,
    r.scenarios.map((s) => s.name),
    r.cells,
    cellText,
    (s) => s,
  );
}

/** The same at one paced rate per scenario (--equal-load), the rate beside the scenario's name; none without it. */
export function equalLoadTable(r: Pick<PeerResults, 'targets' | 'equalLoad'>): string[] {
  const e = r.equalLoad;
  if (!e) return [];
  const rates = new Map(e.scenarios.map((x) => [x.name, x.rate]));
  return targetColumns(r, [...rates.keys()], e.cells, equalLoadCellText, (s) => `${s}<br>${n0(rates.get(s)!)} req/s`);
}

/** What --equal-load measured, in a sentence above its table. */
export function equalLoadMethod(e: NonNullable<PeerResults['equalLoad']>): string {
  return (
    `At equal load (\`--equal-load ${e.percent}\`): after its rounds above, each scenario again in as many alternating rounds, every target paced ` +
    `(open loop, evenly spaced requests; a request's latency counts from when it was due) at ${e.percent}% of the slowest target's median req/s, ` +
    'so every target does the same work in the same time: latency and costs per request without one target answering more than another.'
  );
}

/** The same figures, one row per scenario × target (easier to sort and diff). */
export function longTable(r: Pick<PeerResults, 'cells'>): string[] {
  const lines = [
    '| scenario | target | req/s | × ref | p50 ms | p99 ms | errors | non-2xx | CPU µs/resp | PG µs/req | PG exec µs | PG plan µs | PG CPU µs | PG calls/req |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  const opt = (x: number | null | undefined) => (x === null || x === undefined ? '' : num(x));
  for (const c of r.cells) {
    lines.push(
      `| ${c.scenario} | ${c.target} | ${n0(c.requestsPerSec)} | ${c.ratio === null ? '' : c.ratio.toFixed(2)} | ${num(c.p50Ms)} | ${num(c.p99Ms)} | ${c.errors} | ${c.non2xx} | ` +
        `${opt(c.cpuUsPerResponse)} | ${opt(c.pgUsPerRequest)}${c.pgUsPerRequest !== null && !c.planningTracked ? ' (exec only)' : ''} | ${opt(c.pgExecUsPerRequest)} | ${opt(c.pgPlanUsPerRequest)} | ${opt(c.pgCpuUsPerRequest)} | ` +
        `${c.pgCallsPerRequest === null ? '' : c.pgCallsPerRequest.toFixed(2)} |`,
    );
  }
  return lines;
}

export function peerSummary(r: PeerResults): string {
  const m = r.machine;
  const lines = [`# Side by side ${r.startedAt.slice(0, 19).replace('T', ' ')} UTC`, ''];
  if (!r.ok) {
    lines.push('> **❌ THIS RUN HAD ERRORS: it is not a result.**', '');
    for (const f of r.failures) lines.push(`> - ${f}`);
    lines.push('');
  }
  for (const n of r.notes) lines.push(`> ⚠ ${n}`, '');
  const d = r.dataset;
  lines.push(
    '```sh',
    r.command,
    '```',
    '',
    `Machine: ${m.cpuModel}, ${m.cores} cores; Node ${m.node}; PostgreSQL ${m.postgres}; load: ${m.loadgen}; commit ${m.gitCommit.slice(0, 10)}. ` +
      `Load average (1/5/15 min) at the start ${m.loadAverage.start.join(' / ')}, at the end ${m.loadAverage.end.join(' / ')}. ` +
      `Data set, seeded through each target's API: ${d.users} users, ${d.articles} articles, ${d.tags} tags, ${d.follows} follows, ${d.favorites} favorites, ${d.comments} comments (seed ${d.seed}); ${d.tokenUsers} users logged in.`,
    '',
    `Medians of ${String(r.options.durationSec)} s rounds (${r.cells[0]?.rounds ?? 0} per target, alternating), ${r.scenarios[0]?.connections ?? ''} connections. ` +
      `Ratios: req/s over ${r.reference}'s. CPU: the server process's user + system time per response (/proc). ` +
      "PG: PostgreSQL's execution + planning time per request and statements per request, from pg_stat_statements on the target's own database. " +
      '⚠: the load generator used ≥ 90% of a core (its limit may be the figure).',
    '',
    ...sideBySide(r),
    '',
    ...(r.equalLoad ? ['## At equal load', '', equalLoadMethod(r.equalLoad), '', ...equalLoadTable(r), ''] : []),
    '## Every figure',
    '',
    ...longTable(r),
    '',
    ...(r.equalLoad ? ['At equal load:', '', ...longTable(r.equalLoad), ''] : []),
    '## Targets',
    '',
    ...r.targets.map(
      (t) =>
        `- **${t.name}** (${t.kind}): ${t.url}${t.pid ? `, pid ${t.pid}` : ', pid unknown'}${t.database ? `, database ${t.database}` : ''}`,
    ),
    '',
    '## Scenarios',
    '',
    ...r.scenarios.map(
      (s) =>
        `- **${s.name}**: ${s.description}. Mix: ${Object.entries(s.mix)
          .map(([k, v]) => `${k} ${v}%`)
          .join(', ')}.`,
    ),
    '',
  );
  return lines.join('\n');
}

/** A few lines for the terminal. */
export function compactPeerTable(r: Pick<PeerResults, 'cells' | 'equalLoad'>): string {
  const line = (c: PeerCell) =>
    `${c.scenario.padEnd(10)} ${c.target.padEnd(22)} ${n0(c.requestsPerSec).padStart(8)} req/s ${c.ratio === null ? '     ' : `${c.ratio.toFixed(2)}×`} p99 ${num(c.p99Ms)} ms  CPU ${c.cpuUsPerResponse ?? '–'} µs  PG ${c.pgUsPerRequest ?? '–'} µs (CPU ${c.pgCpuUsPerRequest ?? '–'}) ${c.pgCallsPerRequest ?? '–'} calls${c.errors + c.non2xx ? '  ERRORS' : ''}`;
  return [
    ...r.cells.map(line),
    ...(r.equalLoad ? [`at equal load (${r.equalLoad.percent}% of the slowest):`, ...r.equalLoad.cells.map(line)] : []),
  ].join('\n');
}
