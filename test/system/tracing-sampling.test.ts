// Root sampling by the application (parentbased_traceidratio, the production setting): requests
// without a caller's trace are sampled at the ratio before any span exists (http-tracing.ts,
// sdk.ts), callers' decisions are still followed, and a traceparent that does not parse counts
// as no caller. A process can start tracing once, hence a file of its own.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { tracingSettings } from '../../src/config.ts';
import { startTracing } from '../../src/telemetry/sdk.ts';

const RATIO = 0.25;
const exporter = new InMemorySpanExporter();
startTracing(tracingSettings({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(RATIO) }), {
  exporter,
  synchronous: true,
});
const { Client, createTestApp } = await import('../harness.ts');

const N = 400;
// Binomial(400, 0.25): mean 100, standard deviation 8.7; ±40 is more than 4.5 deviations.
const LOW = N * RATIO - 40;
const HIGH = N * RATIO + 40;

describe('root sampling at a ratio', () => {
  let t: Awaited<ReturnType<typeof createTestApp>>;
  let client: InstanceType<typeof Client>;
  before(async () => {
    t = await createTestApp();
    client = new Client(t.app);
  });
  after(() => t.close());
  beforeEach(() => exporter.reset());

  const requestSpans = () => exporter.getFinishedSpans().filter((s) => s.name === 'GET /api/tags');

  test('requests without a traceparent get a span at the ratio, each a root of its own trace, announced in the response', async () => {
    let announced = 0;
    for (let i = 0; i < N; i++) {
      const res = await client.get('/api/tags');
      assert.equal(res.status, 200);
      if (res.headers.traceparent !== undefined) announced++;
    }
    const recorded = requestSpans();
    assert.ok(recorded.length >= LOW && recorded.length <= HIGH, `${recorded.length} of ${N} sampled at ratio ${RATIO}`);
    assert.equal(announced, recorded.length, 'exactly the sampled requests name their trace in the response');
    assert.ok(recorded.every((s) => s.parentSpanContext === undefined));
    assert.equal(new Set(recorded.map((s) => s.spanContext().traceId)).size, recorded.length);
  });

  test("a caller's decision is followed: every sampled traceparent is recorded, no unsampled one", async () => {
    for (let i = 0; i < 20; i++) {
      const traceId = (i + 1).toString(16).padStart(32, 'a');
      await client.get('/api/tags', { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
      await client.get('/api/tags', { headers: { traceparent: `00-${traceId.replace(/^a/, 'b')}-00f067aa0ba902b7-00` } });
    }
    const recorded = requestSpans();
    assert.equal(recorded.length, 20);
    assert.ok(recorded.every((s) => s.spanContext().traceId.startsWith('a')));
  });

  test('a traceparent that does not parse is sampled like no traceparent', async () => {
    for (let i = 0; i < N; i++) await client.get('/api/tags', { headers: { traceparent: 'not-a-trace-context' } });
    const recorded = requestSpans();
    assert.ok(recorded.length >= LOW && recorded.length <= HIGH, `${recorded.length} of ${N} sampled at ratio ${RATIO}`);
  });
});
