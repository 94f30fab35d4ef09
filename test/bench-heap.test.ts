// bench/heap.ts: V8's heap by space as the bench reads it from the service's /metrics and from
// the platform server's own statistics, and the peaks over a window.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import { heapPeak, ownHeapSample, parseHeapMetrics, pollHeap, type HeapSample } from '../bench/heap.ts';
import { processMetrics } from '../src/telemetry/process-metrics.ts';

test("the service's /metrics text gives each space's committed MB and the external MB", async () => {
  const sample = parseHeapMetrics(await processMetrics().metrics());
  assert.ok(sample, 'prom-client renders nodejs_heap_space_size_total_bytes');
  for (const space of ['new', 'old', 'code', 'large_object'])
    assert.ok(sample.spaces[space]! >= 0, `${space} in ${Object.keys(sample.spaces).join(', ')}`);
  assert.ok(sample.spaces.old! > 1 && sample.externalMB > 0);
  const own = ownHeapSample(v8.getHeapSpaceStatistics(), process.memoryUsage().external);
  assert.deepEqual(Object.keys(own.spaces).sort(), Object.keys(sample.spaces).sort(), 'both readings name the spaces alike');
  assert.equal(parseHeapMetrics('# no heap metrics here\n'), null);
});

test('peaks: each space at its own peak, the total at the largest sample, other = every space but new and old', () => {
  const s = (n: number, o: number, code: number, lo: number, ext: number): HeapSample => ({
    spaces: { new: n, old: o, code, large_object: lo },
    externalMB: ext,
  });
  assert.deepEqual(heapPeak([s(32, 40, 3, 4, 70), s(16, 55, 4, 1, 20)]), {
    newMB: 32,
    oldMB: 55,
    otherMB: 7,
    totalMB: 79,
    externalMB: 70,
    samples: 2,
  });
  assert.equal(heapPeak([]), null);
});

test('polling reads until stopped, once more at the stop, and stop() answers the same peaks however often called', async () => {
  let reads = 0;
  const poll = pollHeap(async () => ({ spaces: { new: ++reads, old: 1 }, externalMB: 0 }), 10);
  await new Promise((r) => setTimeout(r, 60));
  const first = await poll.stop();
  assert.ok(first && first.samples >= 3 && first.newMB === reads, JSON.stringify(first));
  assert.deepEqual(await poll.stop(), first);
});
