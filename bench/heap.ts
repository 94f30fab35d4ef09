// V8's heap by space over a measured window, beside the RSS the process sampler reads from /proc:
// what of a process's resident memory is the young generation (new), the old generation (old),
// code and the rest of V8's spaces, and memory outside the heap that V8 knows of (external:
// Buffers, zlib's state). Read every second during the peak run; each figure is its peak over
// the window (the spaces do not peak at the same moment, so their sum may exceed any one sample's).
//
// The service's come from its own /metrics (prom-client's nodejs_heap_space_size_total_bytes and
// nodejs_external_memory_bytes: one request a second among thousands), the platform server's
// over its IPC channel (bench/platform.ts answers a `heap` message), so both are read the same
// way: committed bytes per space, what the space holds in memory whether used or not.
import { setTimeout as sleep } from 'node:timers/promises';

/** Committed MB per V8 space (`new`, `old`, `code`, `large_object`, ...) and external MB. */
export interface HeapSample {
  spaces: Record<string, number>;
  externalMB: number;
}

/** Peaks over a window, MB. `other` is every space that is not new or old (code, large objects, ...). */
export interface HeapPeak {
  newMB: number;
  oldMB: number;
  otherMB: number;
  /** The largest committed heap (all spaces) of any one sample. */
  totalMB: number;
  externalMB: number;
  samples: number;
}

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

/** prom-client's default metrics, as the service's /metrics renders them. */
export function parseHeapMetrics(text: string): HeapSample | null {
  const spaces: Record<string, number> = {};
  let externalMB = 0;
  for (const m of text.matchAll(/^nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)$/gm)) spaces[m[1]!] = mb(Number(m[2]));
  const ext = /^nodejs_external_memory_bytes (\S+)$/m.exec(text);
  if (ext) externalMB = mb(Number(ext[1]));
  return Object.keys(spaces).length ? { spaces, externalMB } : null;
}

/** This process's own figures (the platform server answers with these). */
export function ownHeapSample(spaces: readonly { space_name: string; space_size: number }[], external: number): HeapSample {
  return {
    spaces: Object.fromEntries(spaces.map((s) => [s.space_name.replace(/_space$/, ''), mb(s.space_size)])),
    externalMB: mb(external),
  };
}

export function metricsHeapReader(baseUrl: string): () => Promise<HeapSample | null> {
  return async () => {
    try {
      const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(2000) });
      return res.ok ? parseHeapMetrics(await res.text()) : null;
    } catch {
      return null;
    }
  };
}

export function heapPeak(samples: readonly HeapSample[]): HeapPeak | null {
  if (!samples.length) return null;
  const peak: HeapPeak = { newMB: 0, oldMB: 0, otherMB: 0, totalMB: 0, externalMB: 0, samples: samples.length };
  const round = (x: number) => Math.round(x * 10) / 10;
  for (const s of samples) {
    let other = 0;
    let total = 0;
    for (const [name, v] of Object.entries(s.spaces)) {
      total += v;
      if (name !== 'new' && name !== 'old') other += v;
    }
    peak.newMB = Math.max(peak.newMB, s.spaces.new ?? 0);
    peak.oldMB = Math.max(peak.oldMB, s.spaces.old ?? 0);
    peak.otherMB = Math.max(peak.otherMB, round(other));
    peak.totalMB = Math.max(peak.totalMB, round(total));
    peak.externalMB = Math.max(peak.externalMB, s.externalMB);
  }
  return peak;
}

/** Reads `read` every `intervalMs` until stopped; `stop()` (any number of times) answers the peaks (null: nothing read). */
export function pollHeap(read: () => Promise<HeapSample | null>, intervalMs = 1000): { stop(): Promise<HeapPeak | null> } {
  const samples: HeapSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const s = await read();
      if (s) samples.push(s);
      if (running) await sleep(intervalMs);
    }
  })();
  let stopped: Promise<HeapPeak | null> | undefined;
  return {
    stop: () =>
      (stopped ??= (async () => {
        running = false;
        await loop;
        // One more at the end: a window shorter than the interval still gets a sample.
        const last = await read();
        if (last) samples.push(last);
        return heapPeak(samples);
      })()),
  };
}
