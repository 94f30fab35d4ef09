// The text summary of `npm run profile` (scripts/profile.ts): the functions that cost the most by
// their own weight (CPU samples or bytes allocated, not counting what they called), and the
// share of CPU in telemetry code. The flame graphs themselves are drawn by the tools that open
// the profile files (docs/observability.md); this is what a terminal and a diff can show.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuProfile, HeapProfile } from '../src/telemetry/pprof.ts';

type CallFrame = CpuProfile['nodes'][number]['callFrame'];

export interface SelfWeight {
  name: string;
  /** Where the function is: a path relative to the project, `pkg/file` in node_modules, `node:...`. */
  location: string;
  self: number;
}

export interface Weights {
  /** By function, largest first. */
  functions: SelfWeight[];
  total: number;
}

const ROOT = path.resolve(import.meta.dirname, '..');

export function locationOf(cf: CallFrame): string {
  if (!cf.url) return '';
  const line = cf.lineNumber >= 0 ? `:${cf.lineNumber + 1}` : '';
  if (cf.url.startsWith('node:')) return `${cf.url}${line}`;
  const file = cf.url.startsWith('file:') ? fileURLToPath(cf.url) : cf.url;
  const nm = file.lastIndexOf('/node_modules/');
  if (nm !== -1) return `${file.slice(nm + '/node_modules/'.length)}${line}`;
  const relative = path.relative(ROOT, file);
  return `${!relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file}${line}`;
}

function sum(frames: Iterable<[CallFrame, number]>): Weights {
  const byKey = new Map<string, SelfWeight>();
  let total = 0;
  for (const [cf, self] of frames) {
    if (self <= 0) continue;
    total += self;
    const name = cf.functionName || '(anonymous)';
    const location = locationOf(cf);
    const key = `${name}\0${location}`;
    const entry = byKey.get(key);
    if (entry) entry.self += self;
    else byKey.set(key, { name, location, self });
  }
  return { functions: [...byKey.values()].sort((a, b) => b.self - a.self), total };
}

/** Samples per function; time spent idle is left out. */
export function cpuWeights(profile: CpuProfile): Weights {
  const hits = new Map<number, number>();
  for (const id of profile.samples ?? []) hits.set(id, (hits.get(id) ?? 0) + 1);
  return sum(
    profile.nodes
      .filter((n) => n.callFrame.functionName !== '(idle)')
      .map((n): [CallFrame, number] => [n.callFrame, hits.get(n.id) ?? n.hitCount ?? 0]),
  );
}

/** Bytes allocated per function (sampled). */
export function heapWeights(profile: HeapProfile): Weights {
  const frames: [CallFrame, number][] = [];
  const walk = (node: HeapProfile['head']) => {
    frames.push([node.callFrame, node.selfSize]);
    node.children.forEach(walk);
  };
  walk(profile.head);
  return sum(frames);
}

/** Milliseconds one sample stands for in a CPU profile (its span over its sample count). */
export function msPerSample(profile: CpuProfile): number {
  const n = profile.samples?.length ?? profile.nodes.reduce((s, x) => s + (x.hitCount ?? 0), 0);
  return n > 0 ? (profile.endTime - profile.startTime) / 1000 / n : 1;
}

/** Where telemetry's own code is (locations as locationOf writes them). */
const TELEMETRY_CODE = /^(@opentelemetry\/|prom-client\/|import-in-the-middle\/|require-in-the-middle\/|src\/telemetry\/)/;

/** The share of the busy samples spent in telemetry's own code (not in what it calls back). */
export function telemetryShare(w: Weights): number {
  const own = w.functions.filter((f) => TELEMETRY_CODE.test(f.location)).reduce((n, f) => n + f.self, 0);
  return w.total > 0 ? own / w.total : 0;
}

/** Lines for a terminal: the top `n` functions by self weight. */
export function topTable(w: Weights, n: number, unit: { kind: 'samples'; msPerSample: number } | { kind: 'bytes' }): string {
  const amount = (x: number) =>
    unit.kind === 'bytes'
      ? x >= 1048576
        ? `${(x / 1048576).toFixed(1)} MiB`
        : `${(x / 1024).toFixed(1)} KiB`
      : `${(x * unit.msPerSample).toFixed(1)} ms, ${x} samples`;
  return w.functions
    .slice(0, n)
    .map(
      (f) =>
        `${((w.total > 0 ? f.self / w.total : 0) * 100).toFixed(1).padStart(5)}%  ${amount(f.self).padEnd(26)} ${f.name}${f.location ? ` (${f.location})` : ''}`,
    )
    .join('\n');
}
