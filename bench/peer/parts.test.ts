// The peer mode's parts that need no server: the plan, the flags, the request lists, the
// pid lookup, the medians and the tables.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseOptions, UsageError, type BenchOptions } from '../options.ts';
import type { RunResult } from '../report.ts';
import { costTable } from '../costs.ts';
import { makePlan } from './dataset.ts';
import { cellOf, median, withRatios } from './run.ts';
import { PEER_SCENARIOS, peerRequests, selectPeerScenarios } from './scenarios.ts';
import { catalogOf } from './seed.ts';
import { cellText, equalLoadMethod, equalLoadTable, longTable, sideBySide } from './table.ts';
import { listeningPid } from './targets.ts';

const plan = makePlan({ users: 20, articles: 80, seed: 3, tokenUsers: 5 });

describe('peer mode: the plan', () => {
  test('the same seed gives the same plan, another seed another; pairs are distinct and valid', () => {
    assert.deepEqual(makePlan({ users: 20, articles: 80, seed: 3, tokenUsers: 5 }), plan);
    assert.notDeepEqual(makePlan({ users: 20, articles: 80, seed: 4, tokenUsers: 5 }).articles, plan.articles);
    assert.equal(plan.users.length, 20);
    assert.equal(plan.articles.length, 80);
    assert.equal(new Set(plan.articles.map((a) => a.title)).size, 80, 'distinct titles, so no implementation adds a suffix to a slug');
    for (const [name, pairs] of [
      ['follows', plan.follows],
      ['favorites', plan.favorites],
    ] as const) {
      assert.equal(new Set(pairs.map(([a, b]) => `${a}:${b}`)).size, pairs.length, `${name} distinct`);
    }
    assert.ok(plan.follows.every(([a, b]) => a !== b && a < 20 && b < 20));
    assert.ok(plan.favorites.every(([u, a]) => u < 20 && a < 80));
    assert.equal(plan.favorites.length, 160);
    assert.equal(plan.comments.length, 160);
    for (const a of plan.articles) assert.deepEqual(a.tagList, [...new Set(a.tagList)].sort());
    assert.deepEqual(plan.tokenUsers, [0, 4, 8, 12, 16]);
    // Every logged-in user follows someone with articles: their feed is never empty.
    for (const u of plan.tokenUsers) {
      const followed = plan.follows.filter(([a]) => a === u).map(([, b]) => b);
      assert.ok(
        plan.articles.some((a) => followed.includes(a.author)),
        `user ${u}`,
      );
    }
  });

  test('catalogs of two targets differ only in slugs, and the same seed draws the same requests on both', () => {
    const slugsA = plan.articles.map((_, i) => `a-${i}`);
    const slugsB = plan.articles.map((_, i) => `b-${i}-x`);
    const a = catalogOf(plan, slugsA);
    const b = catalogOf(plan, slugsB);
    assert.equal(a.articles[0]!.slug, 'a-79', 'newest first');
    assert.deepEqual({ ...a, articles: a.articles.map((x) => x.author) }, { ...b, articles: b.articles.map((x) => x.author) });
    const tokens = (p: string) =>
      plan.tokenUsers.map((i) => ({ username: plan.users[i]!.username, email: plan.users[i]!.email, token: `${p}${i}`, ownSlugs: [] }));
    for (const s of Object.values(PEER_SCENARIOS)) {
      const ra = peerRequests(s, { catalog: a, tokens: tokens('TOKA'), emails: [], password: '' }, 1, 600);
      const rb = peerRequests(s, { catalog: b, tokens: tokens('TOKB'), emails: [], password: '' }, 1, 600);
      assert.equal(ra.length, 600, s.name);
      const norm = (r: (typeof ra)[number], slug: RegExp, tok: string) => JSON.stringify(r).replace(slug, 'S$1').replaceAll(tok, 'T');
      assert.deepEqual(
        ra.map((r) => norm(r, /a-(\d+)/g, 'TOKA')),
        rb.map((r) => norm(r, /b-(\d+)-x/g, 'TOKB')),
        s.name,
      );
    }
  });

  test("the write scenario pairs each favorite with the same user's unfavorite, 20% comments", () => {
    const w = peerRequests(
      PEER_SCENARIOS.write!,
      {
        catalog: catalogOf(
          plan,
          plan.articles.map((_, i) => `s${i}`),
        ),
        tokens: [{ username: 'u', email: 'e', token: 't', ownSlugs: [] }],
        emails: [],
        password: '',
      },
      1,
      3000,
    );
    for (let i = 0; i < w.length - 1; i++) {
      if (w[i]!.kind !== 'favorite') continue;
      assert.equal(w[i + 1]!.kind, 'unfavorite');
      assert.equal(w[i + 1]!.method, 'DELETE');
      assert.equal(w[i + 1]!.path, w[i]!.path);
    }
    const comments = w.filter((r) => r.kind === 'add-comment').length / w.length;
    assert.ok(Math.abs(comments - 0.2) < 0.03, `comments ${comments}`);
    const reads = peerRequests(
      PEER_SCENARIOS['read-anon']!,
      {
        catalog: catalogOf(
          plan,
          plan.articles.map((_, i) => `s${i}`),
        ),
        tokens: [],
        emails: [],
        password: '',
      },
      1,
      4000,
    );
    const lists = reads.filter((r) => r.kind.startsWith('list')).length / reads.length;
    assert.ok(Math.abs(lists - 0.6) < 0.03, `lists ${lists}`);
  });
});

describe('peer mode: the command line', () => {
  const parse = (args: string[]) => parseOptions(args) as BenchOptions;

  test('--peer NAME=URL, repeatable, with databases, pids and its own defaults', () => {
    const o = parse([
      '--peer',
      'axum=http://127.0.0.1:3105/',
      '--peer',
      'other=http://localhost:9000',
      '--peer-database',
      'axum=postgres://postgres@127.0.0.1/axum',
      '--peer-pid',
      'other=42',
    ]);
    assert.deepEqual(o.peer?.peers, [
      { name: 'axum', url: 'http://127.0.0.1:3105' },
      { name: 'other', url: 'http://localhost:9000' },
    ]);
    assert.deepEqual(o.peer?.databases, { axum: 'postgres://postgres@127.0.0.1/axum' });
    assert.deepEqual(o.peer?.pids, { other: 42 });
    assert.equal(o.peer?.rounds, 3);
    assert.equal(o.peer?.equalLoadPercent, null, 'not run unless asked for');
    assert.equal(o.peer?.pgUrl, 'postgres://postgres@127.0.0.1:5432/postgres');
    assert.deepEqual([o.dataset.users, o.dataset.articles, o.durationSec, o.connections, o.tokenUsers], [50, 500, 5, 32, 10]);
    assert.deepEqual(o.configs, ['default', 'cache-off']);
    assert.deepEqual(o.scenarios, ['read-anon', 'read-auth', 'list', 'article', 'write']);
    const custom = parse([
      '--peer',
      'x=http://127.0.0.1:1',
      '--rounds',
      '5',
      '--users',
      '8',
      '--scenarios',
      'write,list',
      '--peer-pg',
      'postgres://p@h/db',
      '--equal-load',
      '50',
    ]);
    assert.deepEqual(
      [custom.peer?.rounds, custom.dataset.users, custom.peer?.pgUrl, custom.peer?.equalLoadPercent],
      [5, 8, 'postgres://p@h/db', 50],
    );
    assert.deepEqual(custom.scenarios, ['list', 'write'], 'writes run last whatever the order given');
    assert.equal(parse([]).peer, undefined);
  });

  test('mistakes are usage errors', () => {
    for (const args of [
      ['--peer', 'noequals'],
      ['--peer', 'a=https://127.0.0.1:1'],
      ['--peer', 'a=http://x:1', '--peer', 'a=http://y:1'],
      ['--peer', 'a=http://x:1', '--peer-database', 'b=postgres://h/db'],
      ['--peer', 'a=http://x:1', '--peer-pid', 'a=abc'],
      ['--peer', 'a=http://x:1', '--rounds', '0'],
      ['--peer', 'a=http://x:1', '--equal-load', '0'],
      ['--peer', 'a=http://x:1', '--equal-load', '150'],
      ['--peer', 'a=http://x:1', '--equal-load', 'half'],
      ['--equal-load', '50'],
      ['--peer', 'a=http://x:1', '--scenarios', 'login'],
      ['--peer', 'a=http://x:1', '--sweep'],
      ['--peer', 'a=http://x:1', '--configs', 'default,tracing-1pct'],
      ['--peer-database', 'a=postgres://h/db'],
    ]) {
      assert.throws(() => parseOptions(args), UsageError, args.join(' '));
    }
    assert.deepEqual(selectPeerScenarios(undefined), Object.keys(PEER_SCENARIOS));
  });
});

describe('peer mode: the server pid from ss', () => {
  const ss = [
    'LISTEN 0      1024   127.0.0.1:3106  0.0.0.0:* users:(("axum-realworld",pid=27585,fd=11))',
    'LISTEN 0      1024   127.0.0.1:3105  0.0.0.0:* users:(("axum-realworld",pid=27582,fd=11))',
    'LISTEN 0      511    0.0.0.0:31050  0.0.0.0:* users:(("node",pid=1,fd=3))',
    'LISTEN 0      511    *:8080  *:* users:(("node",pid=700,fd=20),("node",pid=701,fd=20))',
  ].join('\n');
  test("the one process listening on the URL's port; none when several or remote", () => {
    assert.equal(listeningPid('http://127.0.0.1:3105', ss), 27582);
    assert.equal(listeningPid('http://localhost:3106', ss), 27585);
    assert.equal(listeningPid('http://127.0.0.1:8080', ss), undefined, 'two workers: which one is not knowable');
    assert.equal(listeningPid('http://127.0.0.1:4000', ss), undefined);
    assert.equal(listeningPid('http://10.0.0.5:3105', ss), undefined, 'another machine');
  });
});

function run(rps: number, over: Partial<RunResult> = {}): RunResult {
  return {
    scenario: 's',
    config: 'c',
    engine: 'autocannon',
    connections: 32,
    durationSec: 5,
    responses: rps * 5,
    requestsPerSec: rps,
    latencyMs: { p50: rps / 1000, p90: 0, p99: rps / 100, max: 0 } as RunResult['latencyMs'],
    errors: 0,
    timeouts: 0,
    non2xx: 0,
    statusCodes: {},
    byKind: {},
    service: null,
    database: null,
    loadgen: null,
    ratioToPlatform: null,
    loadgenBound: false,
    ok: true,
    problems: [],
    serviceCpuUsPerResponse: null,
    pg: null,
    ...over,
  };
}

describe('peer mode: medians and tables', () => {
  test('medians over rounds, errors summed, ratios over the reference', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    const pg = (us: number) => ({
      usPerRequest: us,
      execUsPerRequest: us / 2,
      planUsPerRequest: us / 2,
      callsPerRequest: 1.5,
      planningTracked: true,
      cpuUsPerRequest: us / 3,
    });
    const ref = cellOf('list', 'axum', [
      run(1000, { serviceCpuUsPerResponse: 100, pg: pg(50) }),
      run(3000, { serviceCpuUsPerResponse: 90, pg: pg(70) }),
      run(2000, { serviceCpuUsPerResponse: 300, pg: pg(60), non2xx: 2 }),
    ]);
    const other = cellOf('list', 'Conduit default', [run(500), run(1500, { errors: 1, timeouts: 1 })]);
    withRatios([ref, other], 'axum');
    assert.deepEqual(
      [
        ref.requestsPerSec,
        ref.p99Ms,
        ref.cpuUsPerResponse,
        ref.pgUsPerRequest,
        ref.pgCpuUsPerRequest,
        ref.pgCallsPerRequest,
        ref.non2xx,
        ref.ratio,
      ],
      [2000, 20, 100, 60, 20, 1.5, 2, 1],
    );
    assert.deepEqual(
      [other.requestsPerSec, other.ratio, other.errors, other.cpuUsPerResponse, other.pgUsPerRequest],
      [1000, 0.5, 2, null, null],
    );

    const md = sideBySide({
      targets: [
        { name: 'axum', kind: 'peer', url: '', pid: 1, database: null },
        { name: 'Conduit default', kind: 'conduit', url: '', pid: 2, database: null },
      ],
      scenarios: [{ name: 'list', description: '', connections: 32, mix: {} }],
      cells: [ref, other],
    });
    assert.equal(md[0], '| scenario | axum | Conduit default |');
    assert.equal(md[1], '|---|--:|--:|');
    assert.equal(md[2], `| list | ${cellText(ref)} | ${cellText(other)} |`);
    assert.equal(
      cellText(ref),
      '**2,000** req/s (1.00×)<br>p50 2.00 / p99 20.0 ms<br>❌ 0 errors, 2 non-2xx<br>CPU 100 µs/resp<br>PG 60.0 µs/req (CPU 20.0), 1.50 calls/req',
    );
    assert.equal(cellText(other), '**1,000** req/s (0.50×)<br>p50 1.00 / p99 10.0 ms<br>❌ 2 errors, 0 non-2xx<br>CPU – µs/resp<br>PG –');
    assert.match(
      cellText({ ...ref, planningTracked: false, non2xx: 0 }),
      /PG 60\.0 µs\/req \(exec only\) \(CPU 20\.0\), 1\.50 calls\/req$/,
    );
    // A peer whose server is not on this machine: no CPU, the wall time alone.
    assert.match(cellText({ ...ref, pgCpuUsPerRequest: null }), /PG 60\.0 µs\/req, 1\.50 calls\/req$/);
    assert.match(
      longTable({ cells: [ref] })[2]!,
      /^\| list \| axum \| 2,000 \| 1\.00 \| 2\.00 \| 20\.0 \| 0 \| 2 \| 100 \| 60\.0 \| 30\.0 \| 30\.0 \| 20\.0 \| 1\.50 \|$/,
    );
  });

  test('at equal load: the rate beside each scenario, the latency first in each cell', () => {
    const targets = [
      { name: 'axum', kind: 'peer' as const, url: '', pid: 1, database: null },
      { name: 'Conduit', kind: 'conduit' as const, url: '', pid: 2, database: null },
    ];
    const a = cellOf('list', 'axum', [run(1500, { serviceCpuUsPerResponse: 120 })]);
    const c = cellOf('list', 'Conduit', [run(1500, { latencyMs: { p50: 1.5, p90: 2, p99: 4.25, max: 9 } as RunResult['latencyMs'] })]);
    const equalLoad = { percent: 50, scenarios: [{ name: 'list', rate: 1500 }], cells: [a, c], rounds: [] };
    const t = equalLoadTable({ targets, equalLoad });
    assert.equal(t[0], '| scenario | axum | Conduit |');
    assert.equal(
      t[2],
      '| list<br>1,500 req/s | p50 **1.50** / p99 **15.0** ms<br>CPU 120 µs/resp<br>PG – | p50 **1.50** / p99 **4.25** ms<br>CPU – µs/resp<br>PG – |',
    );
    assert.equal(t.length, 3, 'a row only for the scenarios measured at equal load');
    assert.deepEqual(equalLoadTable({ targets }), [], 'no --equal-load: no table');
    assert.match(equalLoadMethod(equalLoad), /paced .* at 50% of the slowest target's median req\/s/);
  });

  test("the normal run's cost table: CPU and PostgreSQL per response, blank where not measured", () => {
    const rows = [
      {
        scenario: 'list',
        config: 'default',
        requestsPerSec: 1234.4,
        serviceCpuUsPerResponse: 812.25,
        pg: {
          usPerRequest: 150,
          execUsPerRequest: 50,
          planUsPerRequest: 100,
          callsPerRequest: 1,
          planningTracked: true,
          cpuUsPerRequest: 61.5,
        },
      },
      { scenario: 'list', config: 'platform', requestsPerSec: 9000, serviceCpuUsPerResponse: 40, pg: null },
    ];
    const t = costTable(rows);
    assert.equal(t[0], '## Cost per response');
    assert.ok(t.includes('| list | default | 1,234 | 812 | 150 (50.0 + 100) | 61.5 | 1.00 |'), t.join('\n'));
    assert.ok(t.includes('| list | platform | 9,000 | 40.0 |  |  |  |'), t.join('\n'));
    assert.deepEqual(costTable([{ scenario: 'x', config: 'y', requestsPerSec: 1 }]), [], 'nothing measured: no section');
  });
});
