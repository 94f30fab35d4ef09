// Flame graphs from V8's profiles, with no dependency and no network: a CPU profile
// (.cpuprofile, from the inspector or `node --cpu-prof`) or a sampling heap profile
// (.heapprofile) becomes a call tree, then
//   - an SVG a person opens in a browser: each box is a function, its width the share of
//     samples (CPU) or of allocated bytes (heap) in it and in what it called; callers below
//     callees; hover for the numbers, click to zoom into a box, click the bottom bar to zoom out;
//   - collapsed stacks ("a;b;c 42" lines), the format speedscope, flamegraph.pl and most
//     profiling tools read;
//   - the top functions by self time, for a terminal.
// Colours say whose code it is: orange Conduit's (src/), green dependencies (node_modules/),
// blue Node.js itself, red V8 (garbage collection, compiled code without a frame).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber?: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface HeapProfileNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapProfileNode[];
}

export interface HeapProfile {
  head: HeapProfileNode;
}

export type FrameKind = 'app' | 'dep' | 'node' | 'v8';

export interface Frame {
  name: string;
  /** Where the function is: a path relative to the project, `pkg/file` in node_modules, `node:...`. */
  location: string;
  kind: FrameKind;
  self: number;
  total: number;
  children: Frame[];
}

const ROOT = path.resolve(import.meta.dirname, '..', '..');

function describe(cf: CallFrame): { name: string; location: string; kind: FrameKind } {
  const name = cf.functionName || '(anonymous)';
  const url = cf.url;
  if (!url) {
    // (program), (garbage collector), (root), and natives with no script.
    return { name, location: '', kind: name.startsWith('(') ? 'v8' : 'node' };
  }
  const line = cf.lineNumber >= 0 ? `:${cf.lineNumber + 1}` : '';
  if (url.startsWith('node:')) return { name, location: `${url}${line}`, kind: 'node' };
  let file = url;
  try {
    if (url.startsWith('file:')) file = fileURLToPath(url);
  } catch {
    // keep the URL as it is
  }
  const nm = file.lastIndexOf('/node_modules/');
  if (nm !== -1) return { name, location: `${file.slice(nm + '/node_modules/'.length)}${line}`, kind: 'dep' };
  const relative = path.relative(ROOT, file);
  if (!relative.startsWith('..') && !path.isAbsolute(relative)) return { name, location: `${relative}${line}`, kind: 'app' };
  return { name, location: `${file}${line}`, kind: 'node' };
}

function makeFrame(cf: CallFrame, self: number): Frame {
  return { ...describe(cf), self, total: 0, children: [] };
}

/** Sums totals bottom-up and merges siblings that are the same function. */
function finish(frame: Frame): number {
  const merged = new Map<string, Frame>();
  for (const child of frame.children) {
    const key = `${child.name}\u0000${child.location}`;
    const same = merged.get(key);
    if (same) {
      same.self += child.self;
      same.children.push(...child.children);
    } else {
      merged.set(key, child);
    }
  }
  frame.children = [...merged.values()];
  let total = frame.self;
  for (const child of frame.children) total += finish(child);
  frame.children.sort((a, b) => b.total - a.total);
  frame.total = total;
  return total;
}

/** The call tree of a CPU profile, weighted by samples; time spent idle is left out. */
export function cpuTree(profile: CpuProfile): Frame {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const root = profile.nodes[0];
  if (!root) return { name: 'all', location: '', kind: 'v8', self: 0, total: 0, children: [] };
  const build = (id: number): Frame | undefined => {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') return undefined;
    const frame = makeFrame(node.callFrame, node.hitCount ?? 0);
    for (const c of node.children ?? []) {
      const child = build(c);
      if (child) frame.children.push(child);
    }
    return frame;
  };
  const tree = build(root.id)!;
  tree.name = 'all';
  tree.location = '';
  finish(tree);
  return tree;
}

/** The call tree of a sampling heap profile, weighted by bytes allocated (and still sampled). */
export function heapTree(profile: HeapProfile): Frame {
  const build = (node: HeapProfileNode): Frame => {
    const frame = makeFrame(node.callFrame, node.selfSize);
    frame.children = node.children.map(build);
    return frame;
  };
  const tree = build(profile.head);
  tree.name = 'all';
  tree.location = '';
  finish(tree);
  return tree;
}

function label(f: Frame): string {
  return f.location ? `${f.name} (${f.location})` : f.name;
}

/** Collapsed stacks: one line per distinct stack, `caller;callee weight`. */
export function folded(tree: Frame): string {
  const lines: string[] = [];
  const walk = (f: Frame, stack: string[]) => {
    const here = [...stack, label(f).replace(/;/g, ',')];
    if (f.self > 0) lines.push(`${here.join(';')} ${f.self}`);
    for (const c of f.children) walk(c, here);
  };
  for (const c of tree.children) walk(c, []);
  return `${lines.join('\n')}\n`;
}

export interface TopEntry {
  name: string;
  location: string;
  kind: FrameKind;
  self: number;
  share: number;
}

/** Functions by their own weight (not counting what they called), largest first. */
export function topSelf(tree: Frame, n = 15): TopEntry[] {
  const sums = new Map<string, TopEntry>();
  const walk = (f: Frame) => {
    if (f.self > 0 && f !== tree) {
      const key = `${f.name}\u0000${f.location}`;
      const e = sums.get(key);
      if (e) e.self += f.self;
      else sums.set(key, { name: f.name, location: f.location, kind: f.kind, self: f.self, share: 0 });
    }
    f.children.forEach(walk);
  };
  walk(tree);
  const all = [...sums.values()].sort((a, b) => b.self - a.self).slice(0, n);
  for (const e of all) e.share = tree.total > 0 ? e.self / tree.total : 0;
  return all;
}

// ---------------------------------------------------------------------------------------------
// SVG

export interface SvgOptions {
  title: string;
  subtitle?: string;
  /** How a weight reads in the tooltip: samples as milliseconds, bytes as KiB/MiB. */
  unit: { kind: 'samples'; msPerSample: number } | { kind: 'bytes' };
  width?: number;
}

const ROW = 17;
const FONT = 11;
const CHAR_W = 6.6;
const PAD_TOP = 54;

const HUES: Record<FrameKind, [number, number, number]> = {
  app: [24, 90, 58], // orange
  dep: [120, 45, 52], // green
  node: [205, 55, 62], // blue
  v8: [0, 70, 62], // red
};

function colour(f: Frame, root: boolean): string {
  if (root) return 'hsl(0,0%,78%)';
  // A stable variation per function, so neighbours are told apart.
  let h = 0;
  for (let i = 0; i < f.name.length; i++) h = (h * 31 + f.name.charCodeAt(i)) | 0;
  const [hue, sat, light] = HUES[f.kind];
  const jitter = (Math.abs(h) % 13) - 6;
  return `hsl(${hue + jitter},${sat}%,${light + (Math.abs(h >> 4) % 9) - 4}%)`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function amount(weight: number, unit: SvgOptions['unit']): string {
  if (unit.kind === 'bytes') {
    if (weight >= 1048576) return `${(weight / 1048576).toFixed(1)} MiB`;
    return `${(weight / 1024).toFixed(1)} KiB`;
  }
  return `${(weight * unit.msPerSample).toFixed(1)} ms, ${weight} samples`;
}

function fit(text: string, width: number): string {
  const chars = Math.floor((width - 6) / CHAR_W);
  if (chars < 3) return '';
  return text.length <= chars ? text : `${text.slice(0, chars - 2)}..`;
}

/** The depth of the deepest box that is drawn. */
function depthOf(f: Frame, total: number, minWidth: number): number {
  let deepest = 0;
  for (const c of f.children) if (c.total / total >= minWidth) deepest = Math.max(deepest, 1 + depthOf(c, total, minWidth));
  return deepest;
}

/** A self-contained SVG flame graph (inline script for zoom; no external resource). */
export function renderSvg(tree: Frame, opts: SvgOptions): string {
  const width = opts.width ?? 1200;
  const total = Math.max(1, tree.total);
  // Boxes narrower than this are not drawn (their weight is still in their parent's).
  const minWidth = 0.5 / width;
  const boxes: string[] = [];
  const maxDepth = depthOf(tree, total, minWidth);
  const yOf = (depth: number) => PAD_TOP + (maxDepth - depth) * ROW;
  const walk = (f: Frame, x: number, depth: number) => {
    const w = f.total / total;
    if (w < minWidth) return;
    const tip = `${label(f)}: ${amount(f.total, opts.unit)} (${((f.total / total) * 100).toFixed(2)}%), self ${amount(f.self, opts.unit)}`;
    // Positions are in the markup (viewers that run no script still show the graph); the
    // script only lays the boxes out again when zooming.
    const px = x * width;
    const pw = w * width;
    const y = yOf(depth);
    boxes.push(
      `<g class="f" data-x="${x.toFixed(6)}" data-w="${w.toFixed(6)}" data-d="${depth}" data-l="${esc(label(f))}"><title>${esc(tip)}</title>` +
        `<rect x="${px.toFixed(1)}" y="${y}" width="${Math.max(0, pw - 0.5).toFixed(1)}" height="${ROW - 1}" rx="2" fill="${colour(f, depth === 0)}"/>` +
        `<text x="${(px + 3).toFixed(1)}" y="${y + ROW - 5}">${esc(fit(label(f), pw))}</text></g>`,
    );
    let cx = x;
    for (const c of f.children) {
      walk(c, cx, depth + 1);
      cx += c.total / total;
    }
  };
  walk(tree, 0, 0);
  const height = PAD_TOP + (maxDepth + 1) * ROW + 24;
  const legend = (['app', 'dep', 'node', 'v8'] as const)
    .map((k, i) => {
      const [h, s, l] = HUES[k];
      const name = { app: 'Conduit (src/)', dep: 'dependencies', node: 'Node.js', v8: 'V8 / GC' }[k];
      return `<rect x="${10 + i * 150}" y="${height - 18}" width="12" height="12" fill="hsl(${h},${s}%,${l}%)"/><text x="${26 + i * 150}" y="${height - 8}">${name}</text>`;
    })
    .join('');
  // Bottom-up: the root at the bottom, callees stacked above their callers.
  const script = `
const W=${width},H=${height},ROW=${ROW},TOP=${PAD_TOP},MAXD=${maxDepth},CW=${CHAR_W};
const gs=[...document.querySelectorAll('g.f')];
function fit(t,w){const n=Math.floor((w-6)/CW);if(n<3)return '';return t.length<=n?t:t.slice(0,n-2)+'..';}
function draw(x0,w0,d0){for(const g of gs){const x=+g.dataset.x,w=+g.dataset.w,d=+g.dataset.d;let nx,nw;
if(d<d0){if(x<=x0+1e-9&&x+w>=x0+w0-1e-9){nx=0;nw=1;}else{g.style.display='none';continue;}}
else{if(x>=x0-1e-9&&x<x0+w0-1e-9){nx=(x-x0)/w0;nw=w/w0;}else{g.style.display='none';continue;}}
if(nw*W<0.5){g.style.display='none';continue;}
g.style.display='';const r=g.firstElementChild.nextElementSibling,t=r.nextElementSibling,px=nx*W,pw=nw*W,y=TOP+(MAXD-d)*ROW;
r.setAttribute('x',px);r.setAttribute('y',y);r.setAttribute('width',Math.max(0,pw-0.5));t.setAttribute('x',px+3);t.setAttribute('y',y+ROW-5);t.textContent=fit(g.dataset.l,pw);}}
for(const g of gs)g.addEventListener('click',()=>draw(+g.dataset.x,+g.dataset.w,+g.dataset.d));`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="ui-monospace,Menlo,Consolas,monospace" font-size="${FONT}">
<style>g.f{cursor:pointer}g.f:hover rect{stroke:#000;stroke-width:0.7}text{fill:#111;pointer-events:none}.t{font-size:16px;font-family:sans-serif}.s{font-size:12px;font-family:sans-serif;fill:#555}</style>
<rect width="100%" height="100%" fill="#fafafa"/>
<text class="t" x="10" y="22">${esc(opts.title)}</text>
<text class="s" x="10" y="40">${esc(opts.subtitle ?? '')} Hover a box for its numbers; click to zoom in, click the bottom bar to zoom out.</text>
${boxes.join('\n')}
${legend}
<script><![CDATA[${script}]]></script>
</svg>
`;
}

/** Milliseconds one sample stands for in a CPU profile (its span over its sample count). */
export function msPerSample(profile: CpuProfile): number {
  const n = profile.samples?.length ?? profile.nodes.reduce((s, x) => s + (x.hitCount ?? 0), 0);
  return n > 0 ? (profile.endTime - profile.startTime) / 1000 / n : 1;
}

/** Lines for a terminal: the top functions by self weight. */
export function topTable(entries: TopEntry[], unit: SvgOptions['unit']): string {
  return entries
    .map(
      (e) =>
        `${(e.share * 100).toFixed(1).padStart(5)}%  ${amount(e.self, unit).padEnd(26)} ${e.name}${e.location ? ` (${e.location})` : ''}`,
    )
    .join('\n');
}
