// V8's profiles in pprof's format (profile.proto, gzipped), the one `go tool pprof`, Pyroscope
// and Grafana open. V8 gives a call tree whose nodes carry their own samples; pprof wants one
// sample per distinct stack, leaf first, over a table of locations and functions. The encoding
// is pprof-format's (the protobuf encoder Datadog's profiler uses); this file only maps fields.
import type { HeapProfiler, Profiler, Runtime } from 'node:inspector';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Function as PprofFunction, Location, Profile, StringTable, type SampleInput, type ValueTypeInput } from 'pprof-format';

export type CpuProfile = Profiler.Profile;
export type HeapProfile = HeapProfiler.SamplingHeapProfile;

type CallFrame = Runtime.CallFrame;

/** The tables shared by both kinds: one function per distinct frame, one location per tree node. */
class Tables {
  readonly strings = new StringTable();
  readonly functions: PprofFunction[] = [];
  readonly locations: Location[] = [];
  readonly #functionIds = new Map<string, number>();

  valueType(type: string, unit: string): ValueTypeInput {
    return { type: this.strings.dedup(type), unit: this.strings.dedup(unit) };
  }

  /** A new location for a tree node (V8's line and column numbers count from 0, pprof's from 1). */
  location(frame: CallFrame): number {
    const key = `${frame.functionName}\0${frame.url}\0${frame.lineNumber}\0${frame.columnNumber}`;
    let functionId = this.#functionIds.get(key);
    if (functionId === undefined) {
      functionId = this.functions.length + 1;
      this.#functionIds.set(key, functionId);
      const name = this.strings.dedup(frame.functionName || '(anonymous)');
      this.functions.push(
        new PprofFunction({
          id: functionId,
          name,
          systemName: name,
          // A path, not a file: URL, so pprof's source views find the file.
          filename: this.strings.dedup(frame.url.startsWith('file:') ? fileURLToPath(frame.url) : frame.url),
          startLine: frame.lineNumber + 1,
        }),
      );
    }
    const id = this.locations.length + 1;
    this.locations.push(new Location({ id, line: [{ functionId, line: frame.lineNumber + 1, column: (frame.columnNumber ?? -1) + 1 }] }));
    return id;
  }

  encode(input: Omit<ConstructorParameters<typeof Profile>[0] & object, 'stringTable' | 'function' | 'location'>): Buffer {
    const profile = new Profile({ ...input, stringTable: this.strings, function: this.functions, location: this.locations });
    return gzipSync(profile.encode());
  }
}

/** Leaf-first location ids of every node, from a tree given as parent links. */
function stacks(ids: Iterable<number>, parent: Map<number, number>, locationOf: Map<number, number>): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const id of ids) {
    const stack: number[] = [];
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const loc = locationOf.get(n);
      if (loc !== undefined) stack.push(loc);
    }
    out.set(id, stack);
  }
  return out;
}

/**
 * A CPU profile (.cpuprofile) as pprof: per stack, the samples taken in it and the CPU time they
 * stand for (each sample's time is the gap to the next one, as Chrome DevTools counts it).
 */
export function cpuProfileToPprof(profile: CpuProfile, intervalUs: number): Buffer {
  const t = new Tables();
  const parent = new Map<number, number>();
  const locationOf = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
    // The root is V8's bookkeeping, not a frame.
    if (node.callFrame.functionName !== '(root)') locationOf.set(node.id, t.location(node.callFrame));
  }
  const count = new Map<number, number>();
  const micros = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0) {
    let at = profile.startTime;
    const times = deltas.map((d) => (at += d));
    samples.forEach((id, i) => {
      const next = i + 1 < samples.length ? times[i + 1]! : profile.endTime;
      count.set(id, (count.get(id) ?? 0) + 1);
      micros.set(id, (micros.get(id) ?? 0) + Math.max(0, next - times[i]!));
    });
  } else {
    for (const node of profile.nodes) {
      if (!node.hitCount) continue;
      count.set(node.id, node.hitCount);
      micros.set(node.id, node.hitCount * intervalUs);
    }
  }
  const stackOf = stacks(count.keys(), parent, locationOf);
  const sample: SampleInput[] = [...count].map(([id, n]) => ({
    locationId: stackOf.get(id)!,
    value: [n, Math.round(micros.get(id)! * 1000)],
  }));
  return t.encode({
    sampleType: [t.valueType('samples', 'count'), t.valueType('cpu', 'nanoseconds')],
    sample,
    timeNanos: BigInt(Math.round(profile.startTime)) * 1000n,
    durationNanos: Math.round(profile.endTime - profile.startTime) * 1000,
    periodType: t.valueType('cpu', 'nanoseconds'),
    period: intervalUs * 1000,
  });
}

/**
 * A sampling heap profile (.heapprofile) as pprof: per stack, the bytes of the allocations sampled
 * in it (collected objects included: the profile shows all allocation).
 */
export function heapProfileToPprof(profile: HeapProfile, intervalBytes: number, startedAt: Date): Buffer {
  const t = new Tables();
  const sample: SampleInput[] = [];
  const walk = (node: HeapProfiler.SamplingHeapProfileNode, callers: number[]) => {
    // The root is V8's bookkeeping, not a frame.
    const stack = node.callFrame.functionName === '(root)' ? callers : [t.location(node.callFrame), ...callers];
    if (node.selfSize > 0) sample.push({ locationId: stack, value: [node.selfSize] });
    for (const child of node.children) walk(child, stack);
  };
  walk(profile.head, []);
  return t.encode({
    sampleType: [t.valueType('alloc_space', 'bytes')],
    sample,
    timeNanos: BigInt(startedAt.getTime()) * 1_000_000n,
    periodType: t.valueType('space', 'bytes'),
    period: intervalBytes,
  });
}
