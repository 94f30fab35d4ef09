// The harness end to end, on a tiny data set and about a second of load per run: the real
// service (its own process), real PostgreSQL, the real load generator. Under `npm test` it uses
// the suite's PostgreSQL server (as the external-pg configuration); run alone, it starts an
// embedded one.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import type { Results } from './report.ts';
import { svgProblems } from './svg.ts';

const RUN = path.join(import.meta.dirname, 'run.ts');
const server = process.env.CONDUIT_TEST_SERVER_URL;
// autocannon: it reports per-kind latencies and status codes (wrk, when installed, only counts them).
const where = [
  ...(server ? ['--configs', 'external-pg', '--external-pg-url', server] : ['--configs', 'default']),
  '--loadgen',
  'autocannon',
];
const config = server ? 'external-pg' : 'default';
const TINY = [
  '--users',
  '20',
  '--articles',
  '120',
  '--comments',
  '300',
  '--favorites',
  '100',
  '--follows',
  '60',
  '--tags',
  '12',
  '--token-users',
  '8',
];

function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN, ...where, ...TINY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function benchDatabases(): Promise<string[]> {
  if (!server) return [];
  const c = new pg.Client({ connectionString: server });
  await c.connect();
  try {
    return (await c.query<{ datname: string }>("select datname from pg_database where datname like 'bench\\_%'")).rows.map(
      (r) => r.datname,
    );
  } finally {
    await c.end();
  }
}

async function serverSetting(url: string, name: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ v: string }>('select current_setting($1) as v', [name])).rows[0]!.v;
  } finally {
    await c.end();
  }
}

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function outDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'conduit-bench-test-'));
  dirs.push(d);
  return d;
}

describe('npm run bench', { timeout: 150_000 }, () => {
  test('a clean run writes results.json, the summary table and the plots, and exits 0', async () => {
    const out = await outDir();
    // mixed: reads and writes, anonymous and logged-in (the token pool), in one scenario.
    const { code, stdout, stderr } = await bench([
      '--scenarios',
      'mixed',
      '--duration',
      '1',
      '--warmup',
      '0.5',
      '--sweep',
      '--sweep-duration',
      '0.5',
      '--out',
      out,
    ]);
    assert.equal(code, 0, `exit ${code}\n${stderr}`);
    assert.match(stdout, /mixed\s+\S+\s+[\d,]+/);

    const r = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as Results;
    assert.equal(r.ok, true);
    assert.deepEqual(r.failures, []);
    assert.equal(r.machine.cores, os.availableParallelism());
    assert.match(r.machine.node, /^v24\./);
    assert.ok(Object.values(r.machine.postgres)[0]);
    assert.match(r.machine.gitCommit, /^[0-9a-f]{40}$|^unknown$/);
    assert.match(r.command, /bench\/run\.ts .*--scenarios mixed/);
    assert.equal(r.dataset.users, 20);
    assert.deepEqual(
      r.runs.map((x) => `${x.scenario}/${x.config}`),
      [`mixed/${config}`, 'mixed/platform'],
    );
    for (const x of r.runs) {
      const what = `${x.scenario}/${x.config}`;
      assert.ok(x.ok, what);
      assert.ok(x.requestsPerSec > 0 && x.responses > 0, what);
      assert.ok(x.latencyMs.p50 > 0 && x.latencyMs.p99 >= x.latencyMs.p50 && x.latencyMs.max >= x.latencyMs.p99, what);
      assert.equal(x.errors + x.non2xx + x.timeouts, 0, what);
      assert.ok(x.service && x.service.cpuPercent > 0 && x.service.rssPeakMB > 10, what);
      assert.ok(x.loadgen && x.loadgen.cpuPercent > 0, what);
      if (x.config === 'platform') assert.equal(x.ratioToPlatform, null);
      else {
        assert.ok(x.ratioToPlatform! > 0, what);
        assert.ok(x.database && x.database.cpuPercent > 0, what);
        assert.ok(Object.keys(x.byKind).length > 3, what);
      }
    }
    assert.equal(r.sweeps.length, 2);
    for (const s of r.sweeps) {
      assert.deepEqual(
        s.points.map((p) => p.percentOfPeak),
        [10, 25, 50, 75, 100],
      );
      assert.ok(s.points.every((p) => p.offeredRate > 0 && p.requestsPerSec > 0 && p.latencyMs.p99 > 0));
    }
    // The cost per response: the server's CPU always; PostgreSQL's time where pg_stat_statements
    // is preloaded (the embedded server the bench starts; the suite's server only if configured so).
    for (const x of r.runs) assert.ok(x.serviceCpuUsPerResponse! > 0, `${x.config} CPU per response`);
    const measured = r.runs.find((x) => x.config === config)!;
    const preloaded = server ? (await serverSetting(server, 'shared_preload_libraries')).includes('pg_stat_statements') : true;
    if (preloaded) {
      assert.ok(measured.pg && measured.pg.callsPerRequest > 0 && measured.pg.usPerRequest > 0, JSON.stringify(measured.pg));
      assert.ok(Math.abs(measured.pg.usPerRequest - measured.pg.execUsPerRequest - measured.pg.planUsPerRequest) < 0.2);
      // The server runs on this machine: its backends' CPU is read from /proc.
      assert.ok(measured.pg.cpuUsPerRequest! > 0, `backends' CPU ${measured.pg.cpuUsPerRequest}`);
    } else {
      assert.equal(measured.pg, null);
      assert.ok(
        r.notes?.some((n) =>
          /^pg_stat_statements not available on 127\.0\.0\.1:\d+ \(add shared_preload_libraries = 'pg_stat_statements' and restart\)$/.test(
            n,
          ),
        ),
        String(r.notes),
      );
    }
    assert.equal(r.runs.find((x) => x.config === 'platform')!.pg, null);
    assert.ok(r.targets.some((t) => t.id === 'mixed-errors' && t.met === true));
    assert.ok(r.targets.some((t) => t.id === 'mixed-p99-half' && typeof t.met === 'boolean'));

    const md = await readFile(path.join(out, 'summary.md'), 'utf8');
    assert.match(
      md,
      /^\| scenario \| config \| req\/s \| × platform \| p50 ms \| p90 ms \| p99 ms \| max ms \| errors \| non-2xx \| timeouts \|/m,
    );
    assert.match(md, new RegExp(`^\\| mixed \\| ${config} \\| [\\d,]+ \\| \\d\\.\\d\\d \\|`, 'm'));
    assert.match(md, /^\| mixed \| _platform limit_ \| [\d,]+ \|/m);
    assert.match(
      md,
      new RegExp(
        `^\\| mixed \\| ${config} \\| [\\d,]+ \\| [\\d.,]+ \\| ${preloaded ? '[\\d.,]+ \\([\\d.,]+ \\+ [\\d.,]+\\) \\| [\\d.,]+ \\| \\d+\\.\\d\\d' : ' \\|  \\| '} \\|$`,
        'm',
      ),
    );
    if (!preloaded) assert.match(md, /^> ⚠ pg_stat_statements not available on /m);
    assert.doesNotMatch(md, /THIS RUN HAD ERRORS/);
    for (const svg of ['throughput.svg', 'latency.svg', 'sweep.svg']) {
      const text = await readFile(path.join(out, svg), 'utf8');
      assert.deepEqual(svgProblems(text), [], svg);
      assert.match(md, new RegExp(`\\]\\(\\./${svg.replace('.', '\\.')}\\)`));
    }
    assert.deepEqual(await benchDatabases(), [], 'the throwaway databases are dropped');
  });

  // --pin needs two CPUs and taskset (util-linux); the CI machine has both.
  const cantPin = os.availableParallelism() < 2 ? 'one CPU' : spawnSync('taskset', ['--version']).error ? 'no taskset' : false;
  test(
    "--pin: every server measured ran on CPU 1, and the pinned sweep reports the generator's own stalls",
    { skip: cantPin },
    async () => {
      const out = await outDir();
      const { code, stderr } = await bench([
        '--scenarios',
        'list',
        '--duration',
        '1',
        '--warmup',
        '0.5',
        '--sweep',
        '--sweep-duration',
        '0.5',
        '--floor',
        '--pin',
        '--out',
        out,
      ]);
      assert.equal(code, 0, `exit ${code}\n${stderr}`);
      const r = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as Results;
      assert.equal(r.ok, true);
      assert.equal(r.machine.cores, os.availableParallelism(), "the machine's cores, not the harness's one");
      assert.deepEqual(
        r.runs.map((x) => `${x.config}:${x.cpus}`),
        [`${config}:1`, 'platform:1', 'fastify-floor:1'],
      );
      for (const s of r.sweeps)
        for (const p of s.points) assert.equal(typeof p.generatorStallMs, 'number', `${s.config} ${p.percentOfPeak}%`);
      const md = await readFile(path.join(out, 'summary.md'), 'utf8');
      assert.match(md, /Pinned \(`--pin`\)/);
      assert.match(md, /\| load gen stall ms \|/);
      assert.deepEqual(await benchDatabases(), []);
    },
  );

  test('a run whose service answers errors fails loudly: non-zero exit, a red line, marked in the results', async () => {
    const out = await outDir();
    const { code, stderr } = await bench(['--scenarios', 'broken', '--duration', '1', '--warmup', '0', '--out', out]);
    assert.notEqual(code, 0);
    assert.match(stderr, /✖ (ERROR: )?broken × \S+: \d+ non-2xx responses \(404: \d+\)/);
    assert.match(stderr, /THIS RUN HAD ERRORS/);
    const r = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as Results;
    assert.equal(r.ok, false);
    const run = r.runs.find((x) => x.config === config)!;
    assert.equal(run.ok, false);
    assert.ok(run.non2xx > 0);
    assert.equal(run.byKind['not-found']!.non2xx, run.byKind['not-found']!.count);
    const md = await readFile(path.join(out, 'summary.md'), 'utf8');
    assert.match(md, /THIS RUN HAD ERRORS/);
    assert.match(md, new RegExp(`^\\| broken \\| ${config} ❌ \\|`, 'm'));
    assert.ok(existsSync(path.join(out, 'throughput.svg')));
    assert.deepEqual(await benchDatabases(), []);
  });
});
