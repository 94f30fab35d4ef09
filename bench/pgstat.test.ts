// The pg_stat_statements reader against real PostgreSQL servers: an embedded one started as the
// bench starts it (pg_stat_statements preloaded), and one without the preload, which must say
// so and how to fix it.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { freePort, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/db/embedded.ts';
import { openPgStatements, perRequest, PgStatements } from './pgstat.ts';
import { cpuSeconds } from './processes.ts';

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function sql(url: string, ...statements: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const s of statements) await c.query(s);
  } finally {
    await c.end();
  }
}

describe('pg_stat_statements per request', { timeout: 120_000 }, () => {
  let tmp: string;
  let withPreload: EmbeddedPostgresHandle;
  let without: EmbeddedPostgresHandle;
  before(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'conduit-pgstat-test-'));
    await chmod(tmp, 0o755);
    [withPreload, without] = await Promise.all([
      (async () =>
        startEmbeddedPostgres({ dir: path.join(tmp, 'with'), port: await freePort(), ephemeral: true, preload: ['pg_stat_statements'] }))(),
      (async () => startEmbeddedPostgres({ dir: path.join(tmp, 'without'), port: await freePort(), ephemeral: true }))(),
    ]);
    await sql(withPreload.url, 'create database measured', 'create database other');
    await sql(without.url, 'create database measured');
  });
  after(async () => {
    await withPreload?.stop();
    await without?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  test("counts one database's statements since the reset, not another's, nor its own", async () => {
    const url = withDatabase(withPreload.url, 'measured');
    await sql(withPreload.url, 'alter system set pg_stat_statements.track_planning = on', 'select pg_reload_conf()');
    // The reload is a signal: new sessions see the setting once the postmaster has read it.
    let stats = await PgStatements.open(url);
    for (let i = 0; i < 50 && stats instanceof PgStatements && !stats.planningTracked; i++) {
      await stats.close();
      await new Promise((r) => setTimeout(r, 100));
      stats = await PgStatements.open(url);
    }
    assert.ok(stats instanceof PgStatements, typeof stats === 'string' ? stats : 'a reader');
    assert.equal(stats.planningTracked, true);
    const reader = stats;
    try {
      await sql(url, 'create table t (id int primary key, v text)', "insert into t select g, 'x' || g from generate_series(1, 1000) g");
      await reader.reset();
      const none = await reader.read();
      assert.deepEqual({ ...none, backendCpuMs: 0 }, { calls: 0, execMs: 0, planMs: 0, plans: 0, backendCpuMs: 0 });
      assert.ok(none.backendCpuMs !== null && none.backendCpuMs < 50, `backends' CPU with nothing run: ${none.backendCpuMs} ms`);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        for (let i = 1; i <= 40; i++) await c.query('select v from t where id = $1', [i]);
        for (let i = 0; i < 10; i++) await c.query('select count(*) from t');
      } finally {
        await c.end();
      }
      // Another database on the same server: its statements are not this one's.
      await sql(withDatabase(withPreload.url, 'other'), 'select 1', 'select 2', 'select 3');
      const t = await reader.read();
      assert.equal(t.calls, 50);
      assert.ok(t.execMs > 0, `exec ${t.execMs}`);
      assert.ok(t.plans >= 50 && t.planMs > 0, `planned ${t.plans} times in ${t.planMs} ms (track_planning on, in a new session)`);
      const p = perRequest(t, 25, true)!;
      assert.equal(p.callsPerRequest, 2);
      assert.equal(p.usPerRequest, Math.round(((t.execMs + t.planMs) * 1000 * 10) / 25) / 10);
      assert.equal(perRequest(t, 0, true), null);
      await reader.reset();
      assert.equal((await reader.read()).calls, 0, 'reset again: nothing left of the 50');
    } finally {
      await reader.close();
    }
  });

  test("the backends' CPU: this database's connections that ran work, not another database's", async () => {
    const url = withDatabase(withPreload.url, 'measured');
    const reader = await PgStatements.open(url);
    assert.ok(reader instanceof PgStatements);
    const busy = new pg.Client({ connectionString: url });
    const elsewhere = new pg.Client({ connectionString: withDatabase(withPreload.url, 'other') });
    await Promise.all([busy.connect(), elsewhere.connect()]);
    try {
      // Open before the reset, as a pool's connections are: counted from the reset on.
      const spin = 'select count(*) from generate_series(1, 3000000)';
      const pid = (await busy.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      await busy.query(spin);
      await reader.reset();
      const before = cpuSeconds(pid);
      await busy.query(spin);
      const own = (cpuSeconds(pid) - before) * 1000;
      await elsewhere.query(spin);
      await elsewhere.query(spin);
      const t = await reader.read();
      assert.ok(t.backendCpuMs !== null, 'the embedded server runs here: its backends are readable');
      assert.ok(own >= 20, `one spin took ${own} ms of CPU: too little to tell`);
      // The spin after the reset, within a tick or two; not the one before it, nor the other
      // database's two (each about as much again).
      assert.ok(Math.abs(t.backendCpuMs - own) <= 30, `counted ${t.backendCpuMs} ms, the busy backend used ${own} ms`);
      assert.equal(perRequest(t, 10, true)!.cpuUsPerRequest, Math.round((t.backendCpuMs * 1000 * 10) / 10) / 10);
    } finally {
      await Promise.all([busy.end(), elsewhere.end(), reader.close()]);
    }
  });

  test('a server without the preload says which server and how to fix it, once, and the run goes on', async () => {
    const url = withDatabase(without.url, 'measured');
    const port = new URL(without.url).port;
    assert.equal(
      await PgStatements.open(url),
      `pg_stat_statements not available on 127.0.0.1:${port} (add shared_preload_libraries = 'pg_stat_statements' and restart)`,
    );
    const notes: string[] = [];
    assert.equal(await openPgStatements(url, (l) => notes.push(l)), undefined);
    assert.equal(await openPgStatements(url, (l) => notes.push(l)), undefined);
    assert.deepEqual(notes, [
      `pg_stat_statements not available on 127.0.0.1:${port} (add shared_preload_libraries = 'pg_stat_statements' and restart)`,
    ]);
  });
});
