// V8's profiles converted to pprof (pprof.ts), decoded back with pprof-format as `go tool pprof`
// reads them: the stacks name this file's functions, leaf first, and the totals are V8's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { cpuProfileToPprof, heapProfileToPprof } from './pprof.ts';
import { CPU_INTERVAL_US, cpuProfile, HEAP_INTERVAL_BYTES, heapProfile } from './profiler.ts';

/** Each sample's stack as function names, leaf first, with its values. */
function decode(pprof: Buffer): { profile: Profile; types: string[]; stacks: { names: string[]; files: string[]; value: number[] }[] } {
  const profile = Profile.decode(gunzipSync(pprof));
  const str = (i: unknown) => profile.stringTable.strings[Number(i)]!;
  const fn = new Map(profile.function.map((f) => [Number(f.id), f]));
  const loc = new Map(profile.location.map((l) => [Number(l.id), l]));
  const stacks = profile.sample.map((s) => {
    const frames = s.locationId.map((id) => fn.get(Number(loc.get(Number(id))!.line[0]!.functionId))!);
    return { names: frames.map((f) => str(f.name)), files: frames.map((f) => str(f.filename)), value: s.value.map(Number) };
  });
  return { profile, types: profile.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`), stacks };
}

function busyLeafForPprofTest(until: number): number {
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  return x;
}
function busyCallerForPprofTest(ms: number): number {
  return busyLeafForPprofTest(performance.now() + ms);
}

test('a CPU profile: samples and CPU time per stack, leaf first, summing to what V8 recorded', async () => {
  const taking = cpuProfile(1);
  const end = performance.now() + 600;
  while (performance.now() < end) {
    busyCallerForPprofTest(20);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const v8 = await taking;
  const { profile, types, stacks } = decode(cpuProfileToPprof(v8, CPU_INTERVAL_US));

  assert.deepEqual(types, ['samples/count', 'cpu/nanoseconds']);
  assert.equal(Number(profile.period), CPU_INTERVAL_US * 1000);
  const total = stacks.reduce((n, s) => n + s.value[0]!, 0);
  assert.equal(total, v8.samples!.length, 'every V8 sample in exactly one stack');
  const ns = stacks.reduce((n, s) => n + s.value[1]!, 0);
  // From the first sample to the end: each sample stands for the time until the next one.
  const sampled = (v8.endTime - v8.startTime - v8.timeDeltas![0]!) * 1000;
  assert.ok(Math.abs(ns - sampled) <= v8.samples!.length, `${ns} ns of samples over ${sampled} ns`);
  assert.equal(Number(profile.durationNanos), Math.round(v8.endTime - v8.startTime) * 1000);

  const busy = stacks.filter((s) => s.names[0] === 'busyLeafForPprofTest');
  assert.ok(busy.length > 0, 'the busy function is a leaf');
  assert.equal(busy[0]!.names[1], 'busyCallerForPprofTest', 'its caller is next: stacks are leaf first');
  assert.equal(busy[0]!.files[0]!, fileURLToPath(import.meta.url), 'a path, not a file: URL');
  assert.ok(!stacks.some((s) => s.names.includes('(root)')), "V8's root is no frame");
});

function allocateForPprofTest(): unknown[] {
  const kept: unknown[] = [];
  for (let i = 0; i < 20_000; i++) kept.push({ i, text: `object ${i}`, list: [i, i + 1, i + 2] });
  return kept;
}

test('an allocation profile: bytes per stack, summing to the profile’s', async () => {
  const taking = heapProfile(1);
  const held: unknown[] = [];
  for (let i = 0; i < 10; i++) {
    held.push(allocateForPprofTest());
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const v8 = await taking;
  const { profile, types, stacks } = decode(heapProfileToPprof(v8, HEAP_INTERVAL_BYTES, new Date()));

  assert.deepEqual(types, ['alloc_space/bytes']);
  assert.equal(Number(profile.period), HEAP_INTERVAL_BYTES);
  const sum = (n: typeof v8.head): number => n.selfSize + n.children.reduce((a, c) => a + sum(c), 0);
  assert.equal(
    stacks.reduce((n, s) => n + s.value[0]!, 0),
    sum(v8.head),
  );
  const mine = stacks.filter((s) => s.names[0] === 'allocateForPprofTest').reduce((n, s) => n + s.value[0]!, 0);
  assert.ok(mine > 1024 * 1024, `${mine} bytes sampled in the allocating function`);
  assert.ok(held.length === 10);
});
