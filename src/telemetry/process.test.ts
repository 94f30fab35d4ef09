// Observability of the real process, started the way `npm start` starts it: tracing preloaded
// with --import and exporting over OTLP, profiles on SIGUSR2, the cluster's metrics.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { freePort } from '../db/embedded.ts';
import { createDatabase, TEST_JWT_SECRET } from '../../test/harness.ts';
import { parsePrometheus } from '../../test/prometheus.ts';
import { startService } from '../../test/service.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const PRELOAD = `--import=${path.join(ROOT, 'src', 'telemetry', 'tracing.ts')}`;

/** An OTLP/HTTP receiver on loopback that keeps what it is sent. */
async function otlpReceiver() {
  const bodies: { path: string; type: string; body: Buffer }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push({ path: req.url ?? '', type: String(req.headers['content-type']), body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

test('started with --import and an OTLP endpoint, the process exports its spans, SQL included, and flushes them at shutdown', async () => {
  const db = await createDatabase();
  const receiver = await otlpReceiver();
  try {
    const service = await startService({
      DATABASE_URL: db.url,
      JWT_SECRET: TEST_JWT_SECRET,
      NODE_OPTIONS: PRELOAD,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'conduit-under-test',
    });
    let traceId: string;
    try {
      const res = await fetch(`${service.url}/api/tags`, {
        headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      });
      assert.equal(res.status, 200);
      const traceparent = res.headers.get('traceparent') ?? '';
      assert.match(traceparent, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
      traceId = traceparent.split('-')[1]!;
    } finally {
      assert.equal(await service.stop(), 0);
    }
    const sent = receiver.bodies.filter((b) => b.path === '/v1/traces');
    assert.ok(sent.length >= 1, 'spans were exported before the process exited');
    assert.ok(sent.every((b) => b.type === 'application/x-protobuf'));
    const all = Buffer.concat(sent.map((b) => b.body));
    // Protobuf keeps strings as UTF-8 and ids as raw bytes: both can be looked for as they are.
    for (const s of ['conduit-under-test', 'GET /api/tags', 'list tags', 'cache lookup', 'SELECT', 'postgresql', 'from tags']) {
      assert.ok(all.includes(s), `the export holds "${s}"`);
    }
    assert.ok(all.includes(Buffer.from(traceId, 'hex')), "the caller's trace id");
  } finally {
    await receiver.close();
    await db.drop();
  }
});

test('without an endpoint the preload loads no OpenTelemetry code and the responses carry no traceparent', async () => {
  const probe = `const loaded = Object.keys((await import('node:module')).createRequire(import.meta.url).cache).filter((k) => k.includes('@opentelemetry'));
process.stdout.write(JSON.stringify(loaded));`;
  const { stdout } = await promisify(execFile)(process.execPath, [PRELOAD, '--input-type=module', '-e', probe], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '' },
  });
  assert.deepEqual(JSON.parse(stdout), []);

  const db = await createDatabase();
  try {
    const service = await startService({ DATABASE_URL: db.url, JWT_SECRET: TEST_JWT_SECRET, NODE_OPTIONS: PRELOAD });
    try {
      const res = await fetch(`${service.url}/api/tags`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('traceparent'), null);
    } finally {
      await service.stop();
    }
  } finally {
    await db.drop();
  }
});

test('a bad OTEL_* value stops the process at start with a message naming it', async () => {
  const run = promisify(execFile)(process.execPath, [PRELOAD, '-e', ''], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_SAMPLER: 'sometimes' },
  });
  await assert.rejects(run, (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /invalid configuration: OTEL_TRACES_SAMPLER must be one of always_on, .*got "sometimes"/);
    return true;
  });
});

test('SIGUSR2 writes a CPU and an allocation profile, each in V8’s format and pprof’s, without stopping the service', async () => {
  const db = await createDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'conduit-sigusr2-'));
  try {
    // SHED off: writing the profiles stalls the loop on purpose, and this test is about profiles.
    const service = await startService({
      DATABASE_URL: db.url,
      JWT_SECRET: TEST_JWT_SECRET,
      PROFILE_DIR: dir,
      PROFILE_SECONDS: '1',
      SHED: 'off',
    });
    try {
      service.proc.kill('SIGUSR2');
      const deadline = Date.now() + 30_000;
      let files: string[] = [];
      while (Date.now() < deadline) {
        // Served while profiling.
        assert.equal((await fetch(`${service.url}/api/tags`)).status, 200);
        files = (await readdir(dir)).sort();
        if (files.length === 4 && !files.some((f) => f.endsWith('.tmp'))) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(
        files.map((f) => f.replace(/^conduit-\d+-[\dTZ-]+/, '')),
        ['.cpu.pb.gz', '.cpuprofile', '.heap.pb.gz', '.heapprofile'],
      );
      const cpu = JSON.parse(await readFile(path.join(dir, files[1]!), 'utf8')) as { nodes: unknown[] };
      assert.ok(cpu.nodes.length > 0);
      for (const pprof of [files[0]!, files[2]!]) {
        assert.ok(Profile.decode(gunzipSync(await readFile(path.join(dir, pprof)))).sample.length > 0, pprof);
      }
      assert.ok(service.logs.some((l) => l.msg === 'profiles written'));
    } finally {
      const code = await service.stop();
      assert.equal(code, 0, `exit ${code}: ${service.stderr()} ${JSON.stringify(service.logs.slice(-5))}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await db.drop();
  }
});

test('with WORKERS=2 and METRICS_PORT the supervisor serves the sum over both workers', async () => {
  const db = await createDatabase();
  const metricsPort = await freePort();
  try {
    // Three processes start: on a machine busy with the rest of the suite that can take a while.
    const service = await startService(
      { DATABASE_URL: db.url, JWT_SECRET: TEST_JWT_SECRET, WORKERS: '2', METRICS_PORT: String(metricsPort), DB_POOL_MAX: '3' },
      120_000,
    );
    try {
      // Both workers listening (each logs it), so the sum covers two processes.
      const deadline = Date.now() + 30_000;
      while (
        service.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening')).length < 2 &&
        Date.now() < deadline
      ) {
        await new Promise((r) => setTimeout(r, 100));
      }
      // New connections each time: the cluster hands them to the workers in turn.
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${service.url}/api/tags`, { headers: { connection: 'close' } });
        assert.equal(res.status, 200);
      }
      assert.equal((await fetch(`${service.url}/metrics`)).status, 404, 'not on the API port when METRICS_PORT is set');
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(res.status, 200);
      const { samples } = parsePrometheus(await res.text());
      const get = (name: string, labels: Record<string, string> = {}) =>
        samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
      assert.equal(get('http_server_request_duration_seconds_count', { method: 'GET', route: '/api/tags', status_class: '2xx' }), 10);
      assert.equal(get('db_client_connection_max'), 6, 'two pools of DB_POOL_MAX=3');
      assert.ok(get('process_cpu_seconds_total')! > 0);
    } finally {
      assert.equal(await service.stop(), 0);
    }
  } finally {
    await db.drop();
  }
});
