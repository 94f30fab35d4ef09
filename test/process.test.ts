// The process entry as users run it: configuration errors, the external-database path, graceful
// shutdown, several instances at once, and the embedded database surviving restarts.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { freePort } from '../src/db/embedded.ts';
import { listMigrations } from '../src/db/migrate.ts';
import { createDatabase } from './harness.ts';
import { spawnService, startService } from './service.ts';

const SECRET = 'process-test-secret-process-test-secret';
const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function json(res: Response) {
  return { status: res.status, body: (await res.json()) as any };
}

describe('configuration', () => {
  test('a bad setting stops the process with exit code 1 and a message naming the variable', async () => {
    const s = spawnService({ PORT: 'not-a-port', JWT_SECRET: SECRET });
    assert.equal(await s.exited, 1);
    assert.match(s.stderr(), /invalid configuration: PORT must be an integer/);
  });

  test('production refuses to start without JWT_SECRET', async () => {
    const s = spawnService({ NODE_ENV: 'production' });
    assert.equal(await s.exited, 1);
    assert.match(s.stderr(), /JWT_SECRET is required when NODE_ENV=production/);
  });
});

describe('with DATABASE_URL', () => {
  test('the service uses that database, starts no embedded server, and is ready once migrated', async () => {
    const db = await createDatabase({ empty: true });
    cleanup.push(() => db.drop());
    const s = await startService({ DATABASE_URL: db.url, JWT_SECRET: SECRET });
    cleanup.push(() => s.stop('SIGKILL'));
    assert.ok(!s.logs.some((l) => String(l.msg).includes('embedded')), 'no embedded PostgreSQL was started');
    assert.deepEqual(await json(await fetch(`${s.url}/healthz`)), { status: 200, body: { status: 'ok' } });
    assert.deepEqual(await json(await fetch(`${s.url}/readyz`)), { status: 200, body: { status: 'ready' } });
    assert.equal(await s.stop(), 0);
  });

  test('two instances starting together against one empty database migrate it exactly once', async () => {
    const db = await createDatabase({ empty: true });
    cleanup.push(() => db.drop());
    const [a, b] = await Promise.all([
      startService({ DATABASE_URL: db.url, JWT_SECRET: SECRET }),
      startService({ DATABASE_URL: db.url, JWT_SECRET: SECRET }),
    ]);
    cleanup.push(
      () => a.stop('SIGKILL'),
      () => b.stop('SIGKILL'),
    );
    for (const s of [a, b]) assert.equal((await fetch(`${s.url}/readyz`)).status, 200);
    // One instance applied every file; the other waited on the advisory lock and applied none.
    const applied = [a, b].flatMap((s) => (s.logs.find((l) => Array.isArray(l.applied))?.applied as string[]) ?? []);
    assert.deepEqual(applied, await listMigrations());
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const versions = await client.query('select version from schema_migrations');
    await client.end();
    assert.equal(versions.rowCount, applied.length);
    assert.equal(await a.stop(), 0);
    assert.equal(await b.stop(), 0);
  });

  test('after SIGTERM readiness fails during the shutdown delay while requests are still served', async () => {
    const db = await createDatabase();
    cleanup.push(() => db.drop());
    const s = await startService({ DATABASE_URL: db.url, JWT_SECRET: SECRET, SHUTDOWN_DELAY_MS: '1500' });
    cleanup.push(() => s.stop('SIGKILL'));
    assert.equal((await fetch(`${s.url}/readyz`)).status, 200);
    s.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const ready = await json(await fetch(`${s.url}/readyz`));
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body, { errors: { server: ['is shutting down'] } });
    assert.equal((await fetch(`${s.url}/api/tags`)).status, 200);
    assert.equal(await s.exited, 0);
  });

  test('SIGTERM lets an in-flight request finish, then exits 0', async () => {
    const db = await createDatabase();
    cleanup.push(() => db.drop());
    const s = await startService({ DATABASE_URL: db.url, JWT_SECRET: SECRET });
    cleanup.push(() => s.stop('SIGKILL'));
    const reg = await fetch(`${s.url}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: { username: 'drain', email: 'drain@example.com', password: 'password123' } }),
    });
    const { user } = (await reg.json()) as { user: { token: string } };

    // Hold a lock so the next request is reliably in flight when the signal arrives.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('lock table users in access exclusive mode');
    const inFlight = fetch(`${s.url}/api/user`, { headers: { authorization: `Token ${user.token}` } });
    await new Promise((r) => setTimeout(r, 200));
    s.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(s.proc.exitCode, null, 'still draining while a request is in flight');

    await locker.query('commit');
    await locker.end();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { user: { username: string } }).user.username, 'drain');
    assert.equal(await s.exited, 0);
    assert.ok(s.logs.some((l) => l.msg === 'shutdown complete'));
  });
});

describe('after start-up', () => {
  // STARTUP_GC (src/runtime.ts collectStartupGarbage): the young generation start-up grew is given
  // back before the port opens. V8's committed size of it, from the service's own /metrics.
  const youngMB = async (url: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(text);
    assert.ok(m, 'no new-space size in /metrics');
    return Number(m[1]) / 2 ** 20;
  };
  test('the young generation is back to a few MB by default, and stays as start-up grew it with STARTUP_GC=false', async () => {
    const db = await createDatabase({ empty: true });
    cleanup.push(() => db.drop());
    const sizes: Record<string, number> = {};
    for (const startupGc of ['true', 'false']) {
      const s = await startService({ DATABASE_URL: db.url, JWT_SECRET: SECRET, METRICS_PORT: 'api', STARTUP_GC: startupGc });
      cleanup.push(() => s.stop('SIGKILL'));
      sizes[startupGc] = await youngMB(s.url);
      assert.equal(await s.stop(), 0);
    }
    assert.ok(sizes.false! >= 8, `STARTUP_GC=false: ${sizes.false} MB`);
    assert.ok(sizes.true! <= sizes.false! / 2, `${sizes.true} MB by default, ${sizes.false} MB without`);
  });
});

describe('with the embedded PostgreSQL', () => {
  test('data and the development JWT secret survive a restart, and shutdown stops the database', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'conduit-embedded-'));
    await chmod(dir, 0o755);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const env = { NODE_ENV: 'development', DATA_DIR: path.join(dir, 'data'), EMBEDDED_PG_PORT: String(await freePort()) };

    const first = await startService(env, 60_000);
    cleanup.push(() => first.stop('SIGKILL'));
    assert.ok(first.logs.some((l) => String(l.msg).includes('starting embedded PostgreSQL')));
    const reg = await fetch(`${first.url}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: { username: 'persist', email: 'persist@example.com', password: 'password123' } }),
    });
    assert.equal(reg.status, 201);
    const { user } = (await reg.json()) as { user: { token: string } };
    assert.equal(await first.stop(), 0);
    assert.ok((await stat(path.join(dir, 'data', 'pg', 'PG_VERSION'))).isFile());
    // PostgreSQL removes its pid file only on a clean shutdown of the server.
    await assert.rejects(stat(path.join(dir, 'data', 'pg', 'postmaster.pid')), { code: 'ENOENT' });

    const second = await startService(env, 60_000);
    cleanup.push(() => second.stop('SIGKILL'));
    // The token from the first run still verifies: the generated secret was kept in DATA_DIR.
    const me = await fetch(`${second.url}/api/user`, { headers: { authorization: `Token ${user.token}` } });
    assert.equal(me.status, 200);
    const login = await fetch(`${second.url}/api/users/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: { email: 'persist@example.com', password: 'password123' } }),
    });
    assert.equal(login.status, 200);
    assert.equal(await second.stop(), 0);
  });
});

describe('Ctrl-C in a terminal', () => {
  test('SIGINT to the whole process group: the service stops the embedded PostgreSQL last, logs no warning or error, and exits 0', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'conduit-ctrl-c-'));
    await chmod(dir, 0o755);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const env = { NODE_ENV: 'development', DATA_DIR: path.join(dir, 'data'), EMBEDDED_PG_PORT: String(await freePort()) };
    const s = await startService(env, 60_000, { detached: true });
    cleanup.push(() => s.stop('SIGKILL'));
    const reg = await fetch(`${s.url}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: { username: 'ctrlc', email: 'ctrlc@example.com', password: 'password123' } }),
    });
    assert.equal(reg.status, 201);
    // A keep-alive connection and a warm pool, as after a few requests from a browser.
    assert.equal((await fetch(`${s.url}/api/articles`)).status, 200);

    // What the terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    process.kill(-s.proc.pid!, 'SIGINT');
    assert.equal(await s.exited, 0, s.stderr());

    const loud = s.logs.filter((l) => typeof l.level !== 'number' || l.level >= 40);
    assert.deepEqual(loud, [], 'no WARN or ERROR (or unstructured) lines on stdout');
    assert.doesNotMatch(s.stderr(), /WARN|ERROR|FATAL/i);
    assert.ok(s.logs.some((l) => l.msg === 'shutdown complete'));
    // PostgreSQL shut down cleanly (it removes its pid file last), stopped by the service.
    await assert.rejects(stat(path.join(dir, 'data', 'pg', 'postmaster.pid')), { code: 'ENOENT' });
  });
});

describe('with WORKERS=2', () => {
  for (const mode of ['reuseport', 'cluster']) {
    test(`two worker processes serve one port, share invalidations, and drain on SIGTERM (WORKERS_MODE=${mode})`, async () => {
      const db = await createDatabase({ empty: true });
      cleanup.push(() => db.drop());
      const s = await startService({ DATABASE_URL: db.url, JWT_SECRET: SECRET, WORKERS: '2', WORKERS_MODE: mode }, 60_000);
      cleanup.push(() => s.stop('SIGKILL'));
      // Both workers listening before the requests start.
      for (let i = 0; i < 100 && s.logs.filter((l) => String(l.msg).startsWith('Server listening')).length < 2; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const get = async (path: string) => {
        // A new connection per request: the supervisor hands connections to workers in turn.
        const res = await fetch(`${s.url}${path}`, { headers: { connection: 'close' } });
        return { status: res.status, body: (await res.json()) as any };
      };
      // Warm both workers' caches with the empty list.
      for (let i = 0; i < 4; i++) assert.equal((await get('/api/articles')).body.articlesCount, 0);

      const reg = await fetch(`${s.url}/api/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', connection: 'close' },
        body: JSON.stringify({ user: { username: 'workers', email: 'workers@example.com', password: 'password123' } }),
      });
      const { user } = (await reg.json()) as { user: { token: string } };
      const created = await fetch(`${s.url}/api/articles`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Token ${user.token}`, connection: 'close' },
        body: JSON.stringify({ article: { title: 'Seen by every worker', description: 'd', body: 'b' } }),
      });
      assert.equal(created.status, 201);

      // Within the bus delay every worker drops its cached empty page.
      const deadline = Date.now() + 2000;
      let fresh = 0;
      while (fresh < 4 && Date.now() < deadline) {
        fresh = (await get('/api/articles')).body.articlesCount === 1 ? fresh + 1 : 0;
      }
      assert.equal(fresh, 4, 'four consecutive reads, across both workers, show the new article');
      // cluster hands connections to the workers in turn; with reuseport the kernel picks a worker's
      // socket by a hash of the connection, so it may take a few more connections to reach both.
      const serving = () => new Set(s.logs.filter((l) => l.route === '/api/articles').map((l) => l.pid)).size;
      for (let i = 0; i < 50 && serving() < 2; i++) assert.equal((await get('/api/articles')).body.articlesCount, 1);
      assert.equal(serving(), 2, 'both workers served the list');
      assert.equal(await s.stop(), 0);
      assert.equal(s.logs.filter((l) => l.msg === 'shutdown complete').length, 3, 'two workers and the supervisor');
    });
  }
});
