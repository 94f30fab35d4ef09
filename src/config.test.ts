// src/config.ts: every setting validated once; a bad value names its variable.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { ConfigError, loadConfig } from './config.ts';
import { heapGrowingPercent } from './config/limits.ts';

const SECRET = 's'.repeat(40);
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir() {
  const d = await mkdtemp(path.join(tmpdir(), 'conduit-config-'));
  dirs.push(d);
  return d;
}

test('defaults give a loopback server on port 3000 with an embedded database', () => {
  const c = loadConfig({ JWT_SECRET: SECRET });
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 3000);
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.nodeEnv, 'development');
  assert.equal(c.rateLimitWindowMs, 60_000);
  assert.equal(c.rateLimitPrefix, 'conduit:ratelimit:');
  assert.equal(c.trustProxy, false);
  assert.equal(loadConfig({ JWT_SECRET: SECRET, TRUST_PROXY: '1' }).trustProxy, 1);
  assert.deepEqual(loadConfig({ JWT_SECRET: SECRET, TRUST_PROXY: '10.0.0.0/8, loopback' }).trustProxy, ['10.0.0.0/8', 'loopback']);
  assert.ok(Object.isFrozen(c));
});

test('the threadpool follows the CPUs; password hashes at once follow it, at least 4; the old generation grows by 40% on a large heap', () => {
  const byDefault = loadConfig({ JWT_SECRET: SECRET });
  assert.equal(byDefault.uvThreadpoolSize, Math.max(2, availableParallelism()));
  assert.equal(byDefault.heapGrowingPercent, heapGrowingPercent({}, getHeapStatistics().heap_size_limit));
  assert.equal(loadConfig({ JWT_SECRET: SECRET, HEAP_GROWING_PERCENT: '50' }).heapGrowingPercent, 50);
  // Unset: 40 from a heap limit of 1 GiB, V8's own below it (a container's
  // limit: 259 MB in a 256 MiB pod); 0 leaves it to V8 on any heap.
  assert.equal(heapGrowingPercent({}, 4288 * 2 ** 20), 40);
  assert.equal(heapGrowingPercent({}, 2 ** 30), 40);
  assert.equal(heapGrowingPercent({}, 2 ** 30 - 1), 0);
  assert.equal(heapGrowingPercent({}, 259 * 2 ** 20), 0);
  assert.equal(heapGrowingPercent({ HEAP_GROWING_PERCENT: '0' }, 4288 * 2 ** 20), 0);
  assert.equal(heapGrowingPercent({ HEAP_GROWING_PERCENT: '20' }, 259 * 2 ** 20), 20);
  assert.equal(byDefault.startupGc, true);
  assert.equal(loadConfig({ JWT_SECRET: SECRET, STARTUP_GC: 'false' }).startupGc, false);
  const slots = (env: Record<string, string>) => {
    const c = loadConfig({ JWT_SECRET: SECRET, ...env });
    return [c.uvThreadpoolSize, c.argon2Concurrency, c.argon2Queue, c.argon2PerClient];
  };
  // A small machine keeps four hashes at once (two waiting for a thread), the queue and the
  // per-address bound that follow from it; a larger one, one per thread.
  assert.deepEqual(slots({ UV_THREADPOOL_SIZE: '2' }), [2, 4, 8, 4]);
  assert.deepEqual(slots({ UV_THREADPOOL_SIZE: '6' }), [6, 6, 12, 6]);
  assert.deepEqual(slots({ UV_THREADPOOL_SIZE: '6', ARGON2_CONCURRENCY: '3' }), [6, 3, 6, 3]);
});

test('a bad value stops with a message naming the variable', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ DB_POOL_MAX: '0' }, /DB_POOL_MAX/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ DATABASE_URL: 'not a url' }, /DATABASE_URL/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET/],
    [{ CORS_ORIGINS: 'nope' }, /CORS_ORIGINS/],
    [{ RATE_LIMIT_WINDOW_MS: '10' }, /RATE_LIMIT_WINDOW_MS/],
    [{ RATE_LIMIT_PREFIX: 'has space' }, /RATE_LIMIT_PREFIX/],
    [{ HEAP_GROWING_PERCENT: 'lots' }, /HEAP_GROWING_PERCENT/],
    [{ HEAP_GROWING_PERCENT: '301' }, /HEAP_GROWING_PERCENT/],
    [{ TRUST_PROXY: 'yes please' }, /TRUST_PROXY/],
    [{ TRUST_PROXY: '10.0.0.0/8/1' }, /TRUST_PROXY/],
    [{ TRUST_PROXY: '0' }, /TRUST_PROXY/],
  ];
  for (const [env, re] of cases) {
    assert.throws(
      () => loadConfig({ JWT_SECRET: SECRET, ...env }),
      (err: unknown) => err instanceof ConfigError && re.test(err.message),
      JSON.stringify(env),
    );
  }
});

test('JWT_SECRET is required in production', () => {
  assert.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_SECRET is required when NODE_ENV=production/);
});

test('in development a secret is generated once and kept in the data directory', async () => {
  const dir = await tempDir();
  const first = loadConfig({ DATA_DIR: dir });
  const second = loadConfig({ DATA_DIR: dir });
  assert.equal(first.jwtSecret.expose(), second.jwtSecret.expose());
  assert.ok(first.jwtSecret.expose().length >= 32);
  const file = path.join(dir, 'jwt-secret');
  assert.equal((await readFile(file, 'utf8')).trim(), first.jwtSecret.expose());
  assert.equal((await stat(file)).mode & 0o777, 0o600);
});

test('secrets never print', () => {
  const c = loadConfig({ JWT_SECRET: SECRET, DATABASE_URL: 'postgres://u:hunter2@db/x' });
  const printed = `${JSON.stringify(c)} ${String(c.jwtSecret)} ${String(c.databaseUrl)}`;
  assert.ok(!printed.includes(SECRET));
  assert.ok(!printed.includes('hunter2'));
});

test('/metrics and the admin endpoints: off the API port by default in production, on it in development', () => {
  const prod = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) };
  assert.equal(loadConfig(prod).metricsPort, 9464);
  assert.equal(loadConfig({ ...prod, METRICS_PORT: '9100' }).metricsPort, 9100);
  assert.equal(loadConfig({ ...prod, METRICS_PORT: 'api' }).metricsPort, undefined);
  const dev = { NODE_ENV: 'development', JWT_SECRET: 'x'.repeat(32) };
  assert.equal(loadConfig(dev).metricsPort, undefined);
  assert.equal(loadConfig({ ...dev, METRICS_PORT: '0' }).metricsPort, 0);
  assert.throws(() => loadConfig({ ...dev, METRICS_PORT: 'public' }), /METRICS_PORT must be a port number or "api"/);
});
