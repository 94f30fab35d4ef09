// The exporter that sends from a worker thread: what the collector receives, what a failing
// collector does to the result, flush and shutdown, and that the HTTP client stays out of the
// main thread (the reason it exists).
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { WorkerSpanExporter } from './worker-exporter.ts';

/** A collector on loopback answering each request with `status`; it records what it got. */
async function collector(status: number) {
  const got: { path: string; type: string; body: Buffer; client: number }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({
        path: req.url ?? '',
        type: String(req.headers['content-type']),
        body: Buffer.concat(chunks),
        client: req.socket.remotePort ?? 0,
      });
      res.writeHead(status, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return {
    url,
    got,
    close: () =>
      new Promise<void>((r) => {
        // The worker's keep-alive connection would hold close() open until it times out.
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Three finished spans, made by a real tracer. */
function spans(): ReadableSpan[] {
  // (sdk-trace 2: the processor takes an options object)
  const memory = new InMemorySpanExporter();
  const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] }).getTracer('test');
  for (const name of ['load feed', 'favorite article', 'cache lookup']) tracer.startSpan(name).end();
  return memory.getFinishedSpans();
}

const exportOnce = (exporter: WorkerSpanExporter, batch: ReadableSpan[]) =>
  new Promise<ExportResult>((resolve) => exporter.export(batch, resolve));

test('a batch is encoded as OTLP protobuf and posted by the worker; the main thread opens no connection', async () => {
  const c = await collector(200);
  // Every HTTP client request of this thread is announced on this channel (a worker has its own).
  let mainThreadRequests = 0;
  const onRequest = () => mainThreadRequests++;
  diagnostics_channel.subscribe('http.client.request.start', onRequest);
  const exporter = new WorkerSpanExporter({ url: c.url });
  try {
    const batch = spans();
    const result = await exportOnce(exporter, batch);
    assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
    assert.equal(c.got.length, 1);
    assert.equal(c.got[0]!.path, '/v1/traces');
    assert.equal(c.got[0]!.type, 'application/x-protobuf');
    for (const name of ['load feed', 'favorite article', 'cache lookup'])
      assert.ok(c.got[0]!.body.includes(name), `the export holds "${name}"`);
    assert.ok(c.got[0]!.body.includes(Buffer.from(batch[0]!.spanContext().traceId, 'hex')), 'and the trace id, as bytes');
    assert.equal(mainThreadRequests, 0, 'the request was made by the worker');
    await exporter.forceFlush();
  } finally {
    diagnostics_channel.unsubscribe('http.client.request.start', onRequest);
    await exporter.shutdown();
    await c.close();
  }
});

test('a collector that refuses the batch fails the export with its reason, and the exporter keeps working', async () => {
  const refusing = await collector(400);
  const exporter = new WorkerSpanExporter({ url: refusing.url });
  try {
    const result = await exportOnce(exporter, spans());
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.match(String(result.error?.message), /400|Bad Request/);
    assert.equal(refusing.got.length, 1, 'a 400 is not retried');
    // The worker is still there: the next batch is sent (and refused) too.
    assert.equal((await exportOnce(exporter, spans())).code, ExportResultCode.FAILED);
    assert.equal(refusing.got.length, 2);
  } finally {
    await exporter.shutdown();
    await refusing.close();
  }
});

test('after shutdown the worker is gone and exports fail at once', async () => {
  const c = await collector(200);
  const exporter = new WorkerSpanExporter({ url: c.url });
  await exporter.shutdown();
  await exporter.shutdown();
  const result = await exportOnce(exporter, spans());
  assert.equal(result.code, ExportResultCode.FAILED);
  assert.match(String(result.error?.message), /shut down/);
  assert.equal(c.got.length, 0);
  await c.close();
});
