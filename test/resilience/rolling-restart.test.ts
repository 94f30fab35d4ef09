// A rolling restart of two real instances (src/main.ts) on one database, behind a balancer that
// does what nginx or a cloud load balancer does: round-robin over the upstreams whose /readyz
// says 200, and one retry on another upstream after a connection error or a 503. Under load
// through the balancer, instance 1 is restarted (SIGTERM, exit 0, started again on its port),
// then instance 2: no client of the balancer sees anything but 2xx. SHUTDOWN_DELAY_MS is what
// makes that possible: /readyz turns 503 at once, and the instance keeps serving until the
// balancer has stopped sending to it.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { freePort } from '../../src/db/embedded.ts';
import { createDatabase, TEST_JWT_SECRET } from '../harness.ts';
import { request, sleep } from '../http/socket.ts';
import { startService, type Service } from '../service.ts';

const SHUTDOWN_DELAY_MS = 1000;
const POLL_MS = 200;

interface Upstream {
  readonly name: string;
  readonly url: string;
  readonly agent: http.Agent;
  ready: boolean;
  served: number;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

// Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are not forwarded: a
// draining upstream's `Connection: close` closes the balancer's connection to it, not the client's.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

function withoutHopByHop(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP_BY_HOP.has(k)));
}

/**
 * The balancer: round-robin over ready upstreams; an upstream is ready while its /readyz,
 * polled every POLL_MS, answers 200, and is taken out at once by a connection error to it (as
 * nginx's max_fails=1). A connection error or a 503 is retried once on another ready upstream
 * (nginx's `proxy_next_upstream error http_503 non_idempotent`: writes too, and the test checks
 * that none ran twice). Bodies are buffered both ways, so a retry can resend the request. Anything else is passed through as it came.
 */
class Balancer {
  readonly upstreams: Upstream[];
  /** Why each retry happened: the error code, or 503. */
  readonly retries: string[] = [];
  #next = 0;
  #poller: NodeJS.Timeout | undefined;
  readonly #server = http.createServer((req, res) => void this.#handle(req, res).catch(() => res.destroy()));

  constructor(urls: string[]) {
    this.upstreams = urls.map((url, i) => ({
      name: `instance ${i + 1}`,
      url,
      agent: new http.Agent({ keepAlive: true, maxSockets: 16 }),
      ready: false,
      served: 0,
    }));
  }

  async start(): Promise<string> {
    this.#poller = setInterval(() => void this.#poll(), POLL_MS);
    await this.#poll();
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    clearInterval(this.#poller);
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
    for (const u of this.upstreams) u.agent.destroy();
  }

  async #poll(): Promise<void> {
    await Promise.all(
      this.upstreams.map(async (u) => {
        // Its own short-lived connection: a probe must not queue behind traffic.
        const res = await request(`${u.url}/readyz`, { timeoutMs: 1000 }).catch(() => undefined);
        u.ready = res?.status === 200;
      }),
    );
  }

  #pick(except?: Upstream): Upstream | undefined {
    for (let i = 0; i < this.upstreams.length; i++) {
      const u = this.upstreams[this.#next++ % this.upstreams.length]!;
      if (u.ready && u !== except) return u;
    }
    return undefined;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const first = this.#pick();
    let answer = first && (await this.#forward(first, req, body));
    if (first && (answer instanceof Error || answer?.status === 503)) {
      const second = this.#pick(first);
      if (second) {
        this.retries.push(answer instanceof Error ? ((answer as NodeJS.ErrnoException).code ?? answer.message) : String(answer?.status));
        answer = await this.#forward(second, req, body);
      }
    }
    if (!answer || answer instanceof Error) {
      res
        .writeHead(502, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: { balancer: [answer?.message ?? 'no ready upstream'] } }));
      return;
    }
    res.writeHead(answer.status, withoutHopByHop(answer.headers)).end(answer.body);
  }

  #forward(u: Upstream, req: http.IncomingMessage, body: Buffer): Promise<Answer | Error> {
    return new Promise((resolve) => {
      const failed = (err: Error) => {
        u.ready = false;
        resolve(err);
      };
      const out = http.request(`${u.url}${req.url}`, { method: req.method, headers: withoutHopByHop(req.headers), agent: u.agent }, (r) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('error', failed);
        r.on('end', () => {
          u.served++;
          resolve({ status: r.statusCode ?? 0, headers: { ...r.headers, 'x-upstream': u.name }, body: Buffer.concat(parts) });
        });
      });
      out.on('error', failed);
      out.setTimeout(10_000, () => out.destroy(new Error('upstream timed out')));
      out.end(body);
    });
  }
}

// ---- the test ----------------------------------------------------------------------------------

interface Outcome {
  method: string;
  path: string;
  title?: string;
  sentAt: number;
  status?: number;
  upstream?: string;
  error?: string;
  body: string;
}

let database: Awaited<ReturnType<typeof createDatabase>> | undefined;
let balancer: Balancer | undefined;
const instances: (Service | undefined)[] = [];
let env: Record<string, string>;
let ports: number[];
let stopLoad: (() => Promise<void>) | undefined;

async function waitFor(what: string, condition: () => boolean, withinMs: number): Promise<void> {
  const started = performance.now();
  while (!condition()) {
    assert.ok(performance.now() - started < withinMs, `timed out waiting for ${what}`);
    await sleep(20);
  }
}

before(async () => {
  database = await createDatabase();
  ports = [await freePort(), await freePort()];
  env = {
    DATABASE_URL: database.url,
    JWT_SECRET: TEST_JWT_SECRET,
    SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS),
    // Every request comes from the balancer's one address, on a busy machine.
    RATE_LIMIT: 'off',
    SHED: 'off',
  };
  const started = await Promise.allSettled(ports.map((port) => startService({ ...env, PORT: String(port) })));
  for (const s of started) instances.push(s.status === 'fulfilled' ? s.value : undefined);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
});

after(async () => {
  await stopLoad?.();
  await balancer?.close();
  for (const s of instances) {
    if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) continue;
    s.proc.kill('SIGTERM');
    if (!(await Promise.race([s.exited.then(() => true), sleep(5000).then(() => false)]))) await s.stop('SIGKILL');
  }
  await database?.drop();
});

test('a rolling restart of both instances under load fails no request at the balancer', async (ctx) => {
  balancer = new Balancer(ports.map((p) => `http://127.0.0.1:${p}`));
  const url = await balancer.start();
  await waitFor('both instances to be ready', () => balancer!.upstreams.every((u) => u.ready), 10_000);

  const reg = await request(`${url}/api/users`, {
    method: 'POST',
    body: { user: { username: 'rolling', email: 'rolling@example.com', password: 'password123' } },
  });
  assert.equal(reg.status, 201);
  const { token, username } = JSON.parse(reg.body.toString()).user as { token: string; username: string };
  const auth = { authorization: `Token ${token}` };
  const art = await request(`${url}/api/articles`, {
    method: 'POST',
    headers: auth,
    body: { article: { title: 'Rolling', description: 'd', body: 'b', tagList: ['rolling'] } },
  });
  assert.equal(art.status, 201);
  const slug = JSON.parse(art.body.toString()).article.slug as string;

  // Six keep-alive clients: reads (anonymous and signed in), favorites, and new articles, whose
  // unique titles show afterwards that each write the balancer retried ran once.
  const outcomes: Outcome[] = [];
  let stopped = false;
  const clients = Array.from({ length: 6 }, async (_, c) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let n = 0; !stopped; n++) {
        const title = `Rolling ${c}-${n}`;
        const mix: [method: string, path: string, headers?: Record<string, string>, body?: unknown][] = [
          ['GET', '/api/articles?limit=5'],
          ['GET', `/api/articles/${slug}`, auth],
          ['GET', '/api/user', auth],
          ['POST', '/api/articles', auth, { article: { title, description: 'd', body: 'b', tagList: ['rolling', `c${c}`] } }],
          ['GET', `/api/profiles/${username}`],
          ['POST', `/api/articles/${slug}/favorite`, auth],
          ['GET', '/api/tags'],
        ];
        const [method, path, headers, body] = mix[(c + n) % mix.length]!;
        const sentAt = performance.now();
        const o: Outcome = await request(`${url}${path}`, { method, agent, body, ...(headers ? { headers } : {}) }).then(
          (r) => ({
            method,
            path,
            sentAt,
            status: r.status,
            upstream: String(r.headers['x-upstream']),
            body: r.body.toString().slice(0, 300),
          }),
          (err: NodeJS.ErrnoException) => ({ method, path, sentAt, error: err.code ?? err.message, body: '' }),
        );
        if (method === 'POST' && path === '/api/articles') o.title = title;
        outcomes.push(o);
        await sleep(10);
      }
    } finally {
      agent.destroy();
    }
  });
  stopLoad = async () => {
    stopped = true;
    await Promise.all(clients);
  };

  await sleep(1000);
  const phases: { name: string; from: number; exit?: number | null; downMs?: number }[] = [
    { name: 'before', from: performance.now() - 1000 },
  ];
  for (const i of [0, 1]) {
    const u = balancer.upstreams[i]!;
    const from = performance.now();
    const code = await instances[i]!.stop('SIGTERM');
    const exitedAt = performance.now();
    instances[i] = await startService({ ...env, PORT: String(ports[i]) });
    const servedBefore = u.served;
    // Back in the rotation, and taking traffic again, before the other one goes.
    await waitFor(`${u.name} to be ready and serving again`, () => u.ready && u.served > servedBefore + 10, 15_000);
    phases.push({ name: `restart of ${u.name}`, from, exit: code, downMs: performance.now() - exitedAt });
    await sleep(500);
  }
  phases.push({ name: 'after', from: performance.now() });
  await sleep(1000);
  await stopLoad();

  const inPhase = (p: number) =>
    outcomes.filter((o) => o.sentAt >= phases[p]!.from && (p + 1 >= phases.length || o.sentAt < phases[p + 1]!.from));
  const perUpstream = (os: Outcome[]) => {
    const counts: Record<string, number> = {};
    for (const o of os) counts[o.upstream ?? o.error ?? '?'] = (counts[o.upstream ?? o.error ?? '?'] ?? 0) + 1;
    return counts;
  };
  const statuses: Record<string, number> = {};
  for (const o of outcomes) statuses[String(o.status ?? o.error)] = (statuses[String(o.status ?? o.error)] ?? 0) + 1;
  ctx.diagnostic(
    `${outcomes.length} requests through the balancer ${JSON.stringify(statuses)}, ${balancer.retries.length} retried on the other instance ${JSON.stringify(balancer.retries)}; ` +
      phases
        .map(
          (p, i) =>
            `${p.name}: ${JSON.stringify(perUpstream(inPhase(i)))}${p.exit !== undefined ? ` (exit ${p.exit}, back in rotation ${p.downMs!.toFixed(0)} ms after it exited)` : ''}`,
        )
        .join('; '),
  );

  assert.deepEqual(
    phases.filter((p) => p.exit !== undefined).map((p) => p.exit),
    [0, 0],
    'each instance exited 0 on SIGTERM',
  );
  const failed = outcomes.filter((o) => o.status === undefined || o.status < 200 || o.status >= 300);
  assert.deepEqual(
    failed.map((o) => `${o.method} ${o.path}: ${o.status ?? o.error} ${o.body}`),
    [],
    'failed requests at the balancer',
  );
  assert.ok(outcomes.length > 100, `load ran: ${outcomes.length} requests`);
  for (let p = 1; p < phases.length - 1; p++) assert.ok(inPhase(p).length > 20, `load ran during the ${phases[p]!.name}`);
  // Both instances served before and after: the restarted processes took traffic again.
  for (const p of [0, phases.length - 1]) {
    assert.deepEqual(Object.keys(perUpstream(inPhase(p))).sort(), ['instance 1', 'instance 2'], `both served ${phases[p]!.name}`);
  }

  // Each write the clients were told about ran exactly once, retried or not.
  const db = new pg.Client({ connectionString: database!.url });
  await db.connect();
  try {
    const rows = (
      await db.query<{ title: string; n: number }>(
        `select title, count(*)::int as n from articles where title like 'Rolling %' group by title`,
      )
    ).rows;
    const created = outcomes.filter((o) => o.title !== undefined);
    assert.ok(created.length > 10);
    assert.deepEqual(
      rows.filter((r) => r.n !== 1),
      [],
      'no write ran twice',
    );
    const stored = new Set(rows.map((r) => r.title));
    assert.deepEqual(
      created.filter((o) => !stored.has(o.title!)).map((o) => o.title),
      [],
      'every 201 is stored',
    );
    assert.equal(stored.size, created.length, 'nothing stored that no client was told about');
  } finally {
    await db.end();
  }
});
