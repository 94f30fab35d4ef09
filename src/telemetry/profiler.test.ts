// The allocation profile, and its promoted view: what outlived the young generation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HeapProfiler } from 'node:inspector';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { heapProfile } from './profiler.ts';
import type { HeapProfile } from './pprof.ts';

/** Bytes sampled in the frames of the function named `name`, anywhere in the profile. */
function bytesIn(profile: HeapProfile, name: string): number {
  const walk = (node: HeapProfiler.SamplingHeapProfileNode): number =>
    (node.callFrame.functionName === name ? node.selfSize : 0) + node.children.reduce((n, c) => n + walk(c), 0);
  return walk(profile.head);
}

const kept: number[][] = [];
let sink = 0;

function shortLived(): void {
  for (let i = 0; i < 200; i++) sink += new Array<number>(64).fill(i).length;
}

function retained(): void {
  for (let i = 0; i < 10; i++) kept.push(new Array<number>(64).fill(i));
}

/** Twenty times as many short-lived arrays as kept ones, for as long as the profile runs. */
async function allocate(until: Promise<HeapProfile>): Promise<HeapProfile> {
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    shortLived();
    retained();
    await yieldToLoop();
  }
  return until;
}

test('an allocation profile counts the short-lived bytes; the promoted one only what outlived the young generation', async () => {
  kept.length = 0;
  const all = await allocate(heapProfile(1));
  kept.length = 0;
  const promoted = await allocate(heapProfile(1, { promoted: true }));
  kept.length = 0;

  const [allShort, allKept] = [bytesIn(all, 'shortLived'), bytesIn(all, 'retained')];
  const [promotedShort, promotedKept] = [bytesIn(promoted, 'shortLived'), bytesIn(promoted, 'retained')];
  const seen = `all: ${allShort} short-lived, ${allKept} kept; promoted: ${promotedShort}, ${promotedKept}`;
  assert.ok(allShort > 5 * allKept, seen);
  assert.ok(promotedKept > 0, seen);
  assert.ok(promotedKept > 5 * promotedShort, seen);
  assert.ok(sink > 0);
});
