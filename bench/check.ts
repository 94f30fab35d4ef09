// `npm run bench:check`: a quick fresh measurement, compared with the committed
// bench/baseline.json. Compares each scenario's throughput as a ratio to the platform limit
// measured in the same run, not raw req/s: those move with the machine; the ratio cancels
// most of that. Not part of `npm test`: benchmarks are not timed tests.
//
// Noise: contention from other processes only ever slows a run down, so the check measures
// RUNS times and keeps each scenario's best ratio (a regression has to show in every run).
// It fails on a best ratio more than THRESHOLD below the baseline's. When the machine was busy
// (load average above its core count) a failure is reported as inconclusive (exit 2), not as
// a regression: then no threshold separates a regression from the other processes' noise.
//
//   npm run bench:check                             measure and compare
//   npm run bench:check -- --update                 measure and write the baseline
//   npm run bench:check -- --from a.json[,b.json]   compare existing results instead of measuring
//   npm run bench:check -- --runs 3 --threshold 0.3
//   npm run bench:check -- --nice=-10               passed on to `npm run bench` (see --help there)
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FLOOR, PLATFORM } from './configs.ts';
import type { Results } from './report.ts';

const HERE = import.meta.dirname;
const BASELINE = path.join(HERE, 'baseline.json');

/**
 * Past the spread of read-anon's best ratio between runs of the same code on a busy machine
 * (−18% of the median over five runs), so a 1.35× slowdown fails. Recalibrate it from a few
 * `--from` comparisons made on an idle machine.
 */
export const DEFAULT_THRESHOLD = 0.25;
export const DEFAULT_RUNS = 2;

/** The measurement: the quick data set, the default configuration, every default scenario. */
export const CHECK_ARGS = ['--quick', '--configs', 'default'];

export interface Baseline {
  createdAt: string;
  /** The load generator the ratios were measured with (`wrk` or `autocannon`): the check uses the same. */
  loadgen: 'wrk' | 'autocannon';
  command: string;
  machine: string;
  gitCommit: string;
  /** `scenario/config` -> best ratio to the platform limit over the runs. */
  ratios: Record<string, number>;
}

export interface Comparison {
  key: string;
  baseline: number;
  fresh: number | undefined;
  change: number | undefined;
  regressed: boolean;
}

/** Each `scenario/config`'s best ratio to the platform limit over several runs. */
export function bestRatios(runs: readonly Results[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs) {
    for (const run of r.runs) {
      if (run.config === PLATFORM || run.config === FLOOR || run.ratioToPlatform === null) continue;
      const key = `${run.scenario}/${run.config}`;
      out[key] = Math.max(out[key] ?? 0, run.ratioToPlatform);
    }
  }
  return out;
}

export function compare(baseline: Baseline, fresh: Record<string, number>, threshold: number): Comparison[] {
  return Object.entries(baseline.ratios).map(([key, base]) => {
    const now = fresh[key];
    const change = now === undefined ? undefined : now / base - 1;
    return { key, baseline: base, fresh: now, change, regressed: now !== undefined && now < base * (1 - threshold) };
  });
}

/** Busy: the 1-minute load average at the start or the end of a run was above the core count. */
export function busy(runs: readonly Results[]): string | undefined {
  for (const r of runs) {
    const load = Math.max(r.machine.loadAverage.start[0] ?? 0, r.machine.loadAverage.end[0] ?? 0);
    if (load > r.machine.cores) return `load average ${load} on ${r.machine.cores} cores`;
  }
  return undefined;
}

function runBench(out: string, loadgen: string | undefined, nice: string | undefined): Promise<number | null> {
  return new Promise((resolve) => {
    const args = [
      path.join(HERE, 'run.ts'),
      ...CHECK_ARGS,
      ...(loadgen ? ['--loadgen', loadgen] : []),
      ...(nice ? [`--nice=${nice}`] : []),
      '--out',
      out,
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.once('SIGINT', forward);
    process.once('SIGTERM', forward);
    child.once('exit', (code) => {
      process.removeListener('SIGINT', forward);
      process.removeListener('SIGTERM', forward);
      resolve(code);
    });
  });
}

async function measure(runs: number, loadgen: string | undefined, nice: string | undefined): Promise<Results[]> {
  const out: Results[] = [];
  for (let i = 1; i <= runs; i++) {
    process.stderr.write(`bench:check: measurement ${i} of ${runs}\n`);
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'conduit-bench-check-'));
    try {
      const code = await runBench(tmp, loadgen, nice);
      const r = JSON.parse(await readFile(path.join(tmp, 'results.json'), 'utf8').catch(() => 'null')) as Results | null;
      if (!r || code !== 0) throw new Error(`the measurement failed (exit ${code}): a run with errors is not a result`);
      out.push(r);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      update: { type: 'boolean' },
      from: { type: 'string' },
      runs: { type: 'string' },
      threshold: { type: 'string' },
      nice: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npm run bench:check -- [--update] [--from a.json[,b.json]] [--runs 2] [--threshold 0.25] [--nice=-10]\n');
    return 0;
  }
  const threshold = values.threshold === undefined ? DEFAULT_THRESHOLD : Number(values.threshold);
  const runs = values.runs === undefined ? DEFAULT_RUNS : Number(values.runs);
  if (!(threshold > 0 && threshold < 1) || !(Number.isInteger(runs) && runs >= 1)) {
    process.stderr.write('--threshold must be between 0 and 1, --runs a positive integer\n');
    return 2;
  }

  // Ratios depend on the load generator (autocannon saturates a core before the platform limit
  // does on a small machine): measure with the baseline's, unless writing a new baseline.
  const existing = values.update ? undefined : (JSON.parse(await readFile(BASELINE, 'utf8')) as Baseline);
  let results: Results[];
  try {
    results = values.from
      ? await Promise.all(values.from.split(',').map(async (f) => JSON.parse(await readFile(f, 'utf8')) as Results))
      : await measure(runs, existing?.loadgen, values.nice);
  } catch (err) {
    process.stderr.write(`✖ bench:check: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  if (results.some((r) => !r.ok)) {
    process.stderr.write('✖ bench:check: the results have errors: not comparable\n');
    return 1;
  }
  const fresh = bestRatios(results);
  const busyNote = busy(results);
  if (busyNote) process.stderr.write(`⚠ bench:check: the machine was busy (${busyNote}): the numbers are noisy\n`);

  if (values.update) {
    const last = results[results.length - 1]!;
    const baseline: Baseline = {
      createdAt: last.finishedAt,
      loadgen: last.machine.loadgen.startsWith('wrk') ? 'wrk' : 'autocannon',
      command: `npm run bench:check -- --update (best of ${results.length}: ${last.command})`,
      machine: `${last.machine.cpuModel}, ${last.machine.cores} cores, Node ${last.machine.node}, ${last.machine.loadgen}`,
      gitCommit: last.machine.gitCommit,
      ratios: fresh,
    };
    await writeFile(BASELINE, `${JSON.stringify(baseline, null, 2)}\n`);
    process.stdout.write(`wrote ${path.relative(process.cwd(), BASELINE)}: ${JSON.stringify(fresh)}\n`);
    return 0;
  }

  const baseline = existing!;
  const other = results.find((r) => !r.machine.loadgen.startsWith(baseline.loadgen));
  if (other) {
    process.stderr.write(
      `✖ bench:check: the baseline was measured with ${baseline.loadgen}, this run with ${other.machine.loadgen}: not comparable\n`,
    );
    return 1;
  }
  const rows = compare(baseline, fresh, threshold);
  process.stdout.write(
    `best ratio to the platform limit over ${results.length} run(s), now vs bench/baseline.json ` +
      `(${baseline.createdAt.slice(0, 10)}, ${baseline.gitCommit.slice(0, 10)}); regression: more than ${Math.round(threshold * 100)}% lower\n`,
  );
  for (const r of rows) {
    const change = r.change === undefined ? 'not measured' : `${r.change >= 0 ? '+' : ''}${(r.change * 100).toFixed(0)}%`;
    process.stdout.write(
      `  ${r.regressed ? '✖' : r.fresh === undefined ? '?' : '✓'} ${r.key.padEnd(24)} ${r.baseline.toFixed(3)} -> ${r.fresh?.toFixed(3) ?? '-'}  (${change})\n`,
    );
  }
  const improved = rows.filter((r) => r.change !== undefined && r.change > threshold);
  if (improved.length)
    process.stdout.write(`  faster than the baseline: ${improved.map((r) => r.key).join(', ')}; if it holds, update it with --update\n`);
  const regressed = rows.filter((r) => r.regressed);
  if (regressed.length) {
    const keys = regressed.map((r) => r.key).join(', ');
    if (busyNote) {
      process.stderr.write(
        `⚠ bench:check: INCONCLUSIVE: ${keys} below the baseline beyond ${Math.round(threshold * 100)}%, but the machine was busy; rerun when it is idle\n`,
      );
      return 2;
    }
    process.stderr.write(`✖ bench:check: ${regressed.length} regression(s) beyond ${Math.round(threshold * 100)}%: ${keys}\n`);
    return 1;
  }
  process.stdout.write('bench:check: no regression beyond noise\n');
  return 0;
}

if (import.meta.main) process.exitCode = await main();
