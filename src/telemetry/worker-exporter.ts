// A span exporter that encodes on the main thread and sends from a worker thread.
//
// Why: the OTLP exporter sends with Node's HTTP client, whose request objects run through the
// same Node code as the server's responses (OutgoingMessage's header writing, the stream and
// socket write paths). After the first export, that shared code has seen the client's object
// shapes too: V8 deoptimises it and recompiles it for both, and every request the service
// answers pays for that from then on. Counted with callgrind on a cached read at 1% sampling:
// +19.7% instructions per request with the exporter in the main thread, +2.2% with no export at
// all (docs/observability.md "What it costs"). Here the main thread only encodes each batch (protobuf, the
// exporter's own serializer) and posts the bytes; the HTTP client, its retries and timeouts live
// in export-worker.ts.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

export type ExportRequest = { type: 'export'; id: number; bytes: Uint8Array; spans: number } | { type: 'flush' | 'shutdown'; id: number };
export interface WorkerReply {
  id: number;
  ok: boolean;
  error?: string;
}

export interface WorkerSpanExporterOptions {
  /** The traces endpoint; by default the OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT settings, read in the worker. */
  url?: string;
}

export class WorkerSpanExporter implements SpanExporter {
  readonly #worker: Worker;
  readonly #pending = new Map<number, (reply: WorkerReply) => void>();
  #next = 0;
  /** Why exports now fail at once: shut down, or the worker died. */
  #stopped: string | undefined;

  constructor(opts: WorkerSpanExporterOptions = {}) {
    // execArgv: [] — the worker must not inherit `--import tracing.ts` and start a second SDK.
    // The worker's file is this module's sibling, built (.js, `npm start`) or not (.ts, tests).
    const file = new URL(`./export-worker${path.extname(import.meta.filename)}`, import.meta.url);
    this.#worker = new Worker(file, { workerData: { url: opts.url }, execArgv: [] });
    // An idle exporter must not keep the process alive; a pending request does (see #call).
    this.#worker.unref();
    this.#worker.on('message', (reply: WorkerReply) => {
      const resolve = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) this.#worker.unref();
      resolve?.(reply);
    });
    // A worker that dies fails what it was asked; later exports fail at once (the batch
    // processor reports them) instead of waiting for their timeout.
    const fail = (error: string) => {
      this.#stopped ??= error;
      for (const resolve of this.#pending.values()) resolve({ id: 0, ok: false, error });
      this.#pending.clear();
    };
    this.#worker.on('error', (err: Error) => fail(`export worker failed: ${err.message}`));
    this.#worker.on('exit', (code) => fail(`export worker exited (${code})`));
  }

  #call(request: ExportRequest): Promise<WorkerReply> {
    if (this.#stopped) return Promise.resolve({ id: request.id, ok: false, error: this.#stopped });
    return new Promise((resolve) => {
      this.#pending.set(request.id, resolve);
      this.#worker.ref();
      this.#worker.postMessage(request);
    });
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const bytes = ProtobufTraceSerializer.serializeRequest(spans);
    if (!bytes) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('Nothing to send') });
      return;
    }
    void this.#call({ type: 'export', id: ++this.#next, bytes, spans: spans.length }).then((reply) =>
      resultCallback(
        reply.ok ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new Error(reply.error ?? 'export failed') },
      ),
    );
  }

  async forceFlush(): Promise<void> {
    await this.#call({ type: 'flush', id: ++this.#next });
  }

  async shutdown(): Promise<void> {
    if (this.#stopped) return;
    await this.#call({ type: 'shutdown', id: ++this.#next });
    this.#stopped = 'exporter is shut down';
    await this.#worker.terminate();
  }
}
