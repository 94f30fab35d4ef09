// Process-wide runtime settings, applied before anything else runs: imported first by
// telemetry/tracing.ts (the `--import` that `npm start` and the Dockerfile load first) and by
// main.ts (for `node src/main.ts`; a module runs once, whichever imports it first).
import { createHook } from 'node:async_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defaultThreadpoolSize, heapGrowingPercent } from './config/limits.ts';

// libuv's threadpool reads UV_THREADPOOL_SIZE once, when first used. Sized deliberately: Argon2
// hashing, zlib compression and fs share it, and config/limits.ts sizes the hashing semaphore
// from the same number. An empty value counts as unset, as for every setting (libuv would read
// it as one thread).
if (!process.env.UV_THREADPOOL_SIZE?.trim()) process.env.UV_THREADPOOL_SIZE = String(defaultThreadpoolSize());

// V8's old-generation growth (config/limits.ts): HEAP_GROWING_PERCENT, or 40% on a heap limit of
// 1 GB or more. A value config.ts refuses is left alone here: the service then stops at start,
// naming the variable.
const growing = (() => {
  try {
    return heapGrowingPercent(process.env);
  } catch {
    return 0;
  }
})();
if (growing > 0) v8.setFlagsFromString(`--heap-growing-percent=${growing}`);

// Keep process.nextTick fast for the life of the process. Node builds every tick object with one
// object literal whose first keys are computed (symbols: async id, trigger id, context frame).
// V8 remembers, for each such key, the one hidden class ("map") it saw the object in, and on the
// first different map gives up for good (the site becomes megamorphic: no polymorphic step).
// Those maps are held weakly: a full GC at start-up while no tick object happens to be alive
// frees them, the next tick builds the same shape on new maps, and from then on every tick
// defines four of its five properties through V8's runtime instead of optimized code: ~7 ticks
// per cached read, ~30,000 more instructions per request (+17-25%), until the process exits.
// It happened in 5 of 6 service starts at 1% sampling: nextTick's feedback vector, printed with
// %DebugPrint in running processes, shows the first of the literal's property definitions
// MONOMORPHIC and the other four MEGAMORPHIC in the slow ones; src/runtime.test.ts reproduces it.
// Holding one tick object keeps its maps alive, so they are never rebuilt. An async hook is the
// only way to see a tick object; it is enabled for one nextTick here and never again.
let heldTick: object | undefined;
try {
  const hook = createHook({
    init(_id, type, _trigger, resource) {
      if (type === 'TickObject') heldTick ??= resource;
    },
  }).enable();
  process.nextTick(() => {});
  hook.disable();
} catch {
  // A Node without async hooks shows no tick object: it runs without this help.
}
/** The tick object held for its maps (undefined if none could be seen); for the test. */
export const tickShapeHeld = (): boolean => heldTick !== undefined;

/**
 * One full collection that gives memory back, for a process that has just started (STARTUP_GC).
 * Start-up allocates fast and keeps much of it (modules, compiled schemas, routes), so V8 grows
 * the young generation to its bound (16 MB with src/runtime.env's semi-spaces) and keeps it, at
 * rest and under light load, where the work itself would need a fraction of it: the service at
 * rest held 120 MB of RSS, 100 after this (docs/memory.md "After start-up"). A memory-reducing
 * collection is the only one that shrinks the young generation, and V8 runs one by itself only
 * after a full collection and seconds of idling, which a service started into traffic never has.
 * Node exposes no call for it but V8's `gc` extension, which the flag adds to contexts created
 * after it is set: one is made for the call and dropped. Synchronous (tens of milliseconds), so
 * it runs before the port is open.
 */
export function collectStartupGarbage(): void {
  let gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') {
    v8.setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc');
    v8.setFlagsFromString('--no-expose-gc');
  }
  (gc as (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void)({
    type: 'major',
    execution: 'sync',
    flavor: 'last-resort',
  });
}
