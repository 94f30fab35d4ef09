// The first scrapes of a fresh process: a file of its own, since the process-wide collectors
// (telemetry/process-metrics.ts processMetrics) start once per process and other tests would warm them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';
import { parsePrometheus } from '../../test/prometheus.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp();
});
after(() => t.close());

test('every value is finite and sane from the first scrape, and in back-to-back scrapes', async () => {
  const client = new Client(t.app);
  // Back to back: the second finds the event-loop histogram just reset, with no new samples.
  for (const scrape of ['first', 'second']) {
    const res = await client.get('/metrics');
    assert.equal(res.status, 200);
    const { samples } = parsePrometheus(res.text);
    assert.ok(samples.length > 50, `${scrape}: ${samples.length} samples`);
    const bad = samples.filter((s) => !s.name.endsWith('_bucket') && (!Number.isFinite(s.value) || Math.abs(s.value) > 1e15));
    assert.deepEqual(bad, [], `${scrape} scrape: values not finite or absurd`);
    // Seconds of event-loop delay: from 0 up to a few seconds at worst, never the empty
    // histogram's 9223372036.854776 (its int64 maximum in nanoseconds) nor NaN.
    const lag = samples.filter((s) => s.name.startsWith('nodejs_eventloop_lag_'));
    assert.equal(lag.length, 8, lag.map((s) => s.name).join(' '));
    for (const s of lag) assert.ok(s.value >= 0 && s.value < 60, `${scrape}: ${s.name} ${s.value}`);
  }
});
