// The OTLP/HTTP sender, in its own thread (worker-exporter.ts starts it). It receives batches
// already encoded as OTLP protobuf and sends them with the OpenTelemetry exporter's own HTTP
// delegate, so the standard OTEL_EXPORTER_OTLP_* settings (endpoint, headers, timeout,
// compression) and its retries apply exactly as they would in the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { createOtlpHttpExportDelegate, convertLegacyHttpOptions } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ExportRequest, WorkerReply } from './worker-exporter.ts';

interface Encoded {
  bytes: Uint8Array;
  spans: number;
}

const { url } = workerData as { url?: string };
const delegate = createOtlpHttpExportDelegate<Encoded, unknown>(
  convertLegacyHttpOptions(url ? { url } : {}, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
  // The bytes are the request already; the response is decoded as the exporter decodes it.
  { serializeRequest: (e) => e.bytes, deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data) },
  'otlp_http_span_exporter',
  { name: 'span', countItems: (e) => e.spans },
  undefined,
);

const port = parentPort!;
port.on('message', (msg: ExportRequest) => {
  if (msg.type === 'export') {
    delegate.export({ bytes: msg.bytes, spans: msg.spans }, (result: ExportResult) => {
      port.postMessage({
        id: msg.id,
        ok: result.code === ExportResultCode.SUCCESS,
        error: result.error ? String(result.error.message || result.error) : undefined,
      } satisfies WorkerReply);
    });
  } else {
    const done = msg.type === 'flush' ? delegate.forceFlush() : delegate.shutdown();
    done.then(
      () => port.postMessage({ id: msg.id, ok: true } satisfies WorkerReply),
      (err: unknown) => port.postMessage({ id: msg.id, ok: false, error: String(err) } satisfies WorkerReply),
    );
  }
});
