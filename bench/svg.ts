// Plots as hand-written SVG (no plotting dependency): grouped bars, a latency range plot and
// line charts on a log scale. Plain SVG 1.1 with inline styles, so it renders on GitHub, in a
// browser and in any SVG viewer the same.

export interface Series {
  name: string;
  color: string;
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f'];
/** The platform limit is always grey, so it reads as the reference, not a contender. */
export const PLATFORM_COLOR = '#9e9e9e';

export function colors(names: readonly string[], platform: string): Series[] {
  let i = 0;
  return names.map((name) => ({ name, color: name === platform ? PLATFORM_COLOR : PALETTE[i++ % PALETTE.length]! }));
}

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(n: number): string {
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  if (n >= 1000) return `${(n / 1000).toFixed(1).replace(/\.0$/, '')}k`;
  if (n >= 10) return String(Math.round(n));
  if (n >= 1) return n.toFixed(1).replace(/\.0$/, '');
  return n.toPrecision(2).replace(/0+$/, '').replace(/\.$/, '');
}

/** Round axis steps: 1, 2 or 5 times a power of ten. */
function niceTicks(max: number, count = 5): number[] {
  if (max <= 0) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Math.round(v * 1e9) / 1e9);
  return ticks;
}

function logTicks(min: number, max: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) out.push(v);
    }
  }
  return out;
}

function frame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600" fill="#222">${esc(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function legend(series: readonly Series[], x: number, y: number, extra: string[] = []): string[] {
  const out: string[] = [];
  let cx = x;
  for (const s of series) {
    out.push(`<rect x="${cx}" y="${y - 9}" width="12" height="12" rx="2" fill="${s.color}"/>`);
    out.push(`<text x="${cx + 16}" y="${y + 1}" fill="#333">${esc(s.name)}</text>`);
    cx += 28 + s.name.length * 7;
  }
  for (const e of extra) {
    out.push(`<text x="${cx}" y="${y + 1}" fill="#555">${esc(e)}</text>`);
    cx += 20 + e.length * 6.5;
  }
  return out;
}

/** Grouped vertical bars: one group per category, one bar per series; missing values leave a gap. */
export function groupedBars(opts: {
  title: string;
  yLabel: string;
  categories: readonly string[];
  series: readonly Series[];
  value: (category: string, series: string) => number | undefined;
  /** A mark drawn above a bar (e.g. "✗" for a run with errors). */
  flag?: (category: string, series: string) => string | undefined;
  note?: string;
}): string {
  const groupWidth = Math.max(90, opts.series.length * 26 + 30);
  const left = 70;
  const top = 60;
  const plotH = 300;
  const width = Math.max(560, left + 30 + opts.categories.length * groupWidth, left + 20 + (opts.note?.length ?? 0) * 6);
  const height = top + plotH + 70 + (opts.note ? 18 : 0);
  const max = Math.max(1, ...opts.categories.flatMap((c) => opts.series.map((s) => opts.value(c, s.name) ?? 0)));
  const ticks = niceTicks(max * 1.08);
  const yMax = ticks[ticks.length - 1]!;
  const y = (v: number) => top + plotH - (v / yMax) * plotH;
  const body: string[] = [];
  for (const t of ticks) {
    body.push(`<line x1="${left}" x2="${width - 20}" y1="${y(t)}" y2="${y(t)}" stroke="#e6e6e6"/>`);
    body.push(`<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end" fill="#555">${fmt(t)}</text>`);
  }
  body.push(`<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(opts.yLabel)}</text>`);
  const barW = Math.min(26, (groupWidth - 24) / Math.max(1, opts.series.length));
  opts.categories.forEach((c, ci) => {
    const gx = left + 15 + ci * groupWidth;
    opts.series.forEach((s, si) => {
      const v = opts.value(c, s.name);
      if (v === undefined) return;
      const x = gx + si * barW;
      body.push(
        `<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${(top + plotH - y(v)).toFixed(1)}" fill="${s.color}"><title>${esc(`${c} / ${s.name}: ${fmt(v)}`)}</title></rect>`,
      );
      const label = `${fmt(v)}${opts.flag?.(c, s.name) ?? ''}`;
      body.push(
        `<text x="${(x + (barW - 3) / 2).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#333">${esc(label)}</text>`,
      );
    });
    body.push(
      `<text x="${gx + (opts.series.length * barW) / 2}" y="${top + plotH + 18}" text-anchor="middle" fill="#222">${esc(c)}</text>`,
    );
  });
  body.push(`<line x1="${left}" x2="${width - 20}" y1="${top + plotH}" y2="${top + plotH}" stroke="#999"/>`);
  body.push(...legend(opts.series, left, top + plotH + 48));
  if (opts.note) body.push(`<text x="${left}" y="${top + plotH + 68}" fill="#666" font-size="11">${esc(opts.note)}</text>`);
  return frame(width, height, opts.title, body);
}

/** Latency percentiles per category and series on a log axis: a line from p50 to p99, dots at p50, p90, p99, and max. */
export function latencyRanges(opts: {
  title: string;
  categories: readonly string[];
  series: readonly Series[];
  value: (category: string, series: string) => { p50: number; p90: number; p99: number; max: number } | undefined;
}): string {
  const groupWidth = Math.max(90, opts.series.length * 22 + 30);
  const left = 70;
  const top = 60;
  const plotH = 320;
  const width = Math.max(560, left + 30 + opts.categories.length * groupWidth);
  const height = top + plotH + 72;
  const all = opts.categories
    .flatMap((c) =>
      opts.series.flatMap((s) => {
        const v = opts.value(c, s.name);
        return v ? [v.p50, v.max] : [];
      }),
    )
    .filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, 1)));
  const y = (v: number) => top + plotH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const body: string[] = [];
  for (const t of logTicks(lo, hi)) {
    body.push(`<line x1="${left}" x2="${width - 20}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e6e6e6"/>`);
    body.push(`<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" fill="#555">${fmt(t)}</text>`);
  }
  body.push(
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">latency, ms (log scale)</text>`,
  );
  const step = Math.min(22, (groupWidth - 24) / Math.max(1, opts.series.length));
  opts.categories.forEach((c, ci) => {
    const gx = left + 15 + ci * groupWidth;
    opts.series.forEach((s, si) => {
      const v = opts.value(c, s.name);
      if (!v) return;
      const x = (gx + si * step + step / 2).toFixed(1);
      const tip = `<title>${esc(`${c} / ${s.name}: p50 ${v.p50} ms, p90 ${v.p90} ms, p99 ${v.p99} ms, max ${v.max} ms`)}</title>`;
      body.push(
        `<line x1="${x}" x2="${x}" y1="${y(v.p50).toFixed(1)}" y2="${y(v.max).toFixed(1)}" stroke="${s.color}" stroke-width="1" stroke-dasharray="2 2"/>`,
      );
      body.push(
        `<line x1="${x}" x2="${x}" y1="${y(v.p50).toFixed(1)}" y2="${y(v.p99).toFixed(1)}" stroke="${s.color}" stroke-width="5" stroke-linecap="round">${tip}</line>`,
      );
      body.push(`<circle cx="${x}" cy="${y(v.p50).toFixed(1)}" r="4" fill="#fff" stroke="${s.color}" stroke-width="2"/>`);
      body.push(
        `<rect x="${(Number(x) - 3.5).toFixed(1)}" y="${(y(v.p90) - 3.5).toFixed(1)}" width="7" height="7" fill="#fff" stroke="${s.color}" stroke-width="1.5"/>`,
      );
      body.push(`<circle cx="${x}" cy="${y(v.p99).toFixed(1)}" r="4" fill="${s.color}"/>`);
      body.push(`<text x="${x}" y="${(y(v.max) - 4).toFixed(1)}" text-anchor="middle" font-size="9" fill="#777">▾</text>`);
    });
    body.push(
      `<text x="${gx + (opts.series.length * step) / 2}" y="${top + plotH + 18}" text-anchor="middle" fill="#222">${esc(c)}</text>`,
    );
  });
  body.push(...legend(opts.series, left, top + plotH + 48, ['○ p50   □ p90   ● p99   ▾ max (dashed)']));
  return frame(width, height, opts.title, body);
}

export interface Line {
  series: string;
  dashed?: boolean;
  points: { x: number; y: number }[];
}

/** Small multiples: one panel per title, lines on a linear x and a log y axis. */
export function linePanels(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  panels: { title: string; lines: Line[] }[];
  series: readonly Series[];
  legendExtra?: string[];
}): string {
  const panelW = 330;
  const panelH = 220;
  const cols = Math.min(3, Math.max(1, opts.panels.length));
  const rows = Math.ceil(opts.panels.length / cols);
  const left = 60;
  const top = 50;
  const gapX = 40;
  const gapY = 70;
  const width = left + cols * (panelW + gapX);
  const height = top + rows * (panelH + gapY) + 40;
  const body: string[] = [];
  const colorOf = new Map(opts.series.map((s) => [s.name, s.color]));
  opts.panels.forEach((p, i) => {
    const ox = left + (i % cols) * (panelW + gapX);
    const oy = top + Math.floor(i / cols) * (panelH + gapY);
    const pts = p.lines.flatMap((l) => l.points).filter((pt) => pt.y > 0);
    if (pts.length === 0) return;
    const xTicks = niceTicks(Math.max(...pts.map((pt) => pt.x)) * 1.05, 4);
    const xMax = xTicks[xTicks.length - 1]!;
    const lo = 10 ** Math.floor(Math.log10(Math.min(...pts.map((pt) => pt.y))));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...pts.map((pt) => pt.y))));
    const logSpan = Math.max(1, Math.log10(hi) - Math.log10(lo));
    const X = (v: number) => ox + (v / xMax) * panelW;
    const Y = (v: number) => oy + panelH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / logSpan) * panelH;
    body.push(`<text x="${ox + panelW / 2}" y="${oy - 8}" text-anchor="middle" font-weight="600" fill="#222">${esc(p.title)}</text>`);
    for (const t of logTicks(lo, hi)) {
      body.push(`<line x1="${ox}" x2="${ox + panelW}" y1="${Y(t).toFixed(1)}" y2="${Y(t).toFixed(1)}" stroke="#eee"/>`);
      body.push(`<text x="${ox - 5}" y="${(Y(t) + 4).toFixed(1)}" text-anchor="end" font-size="10" fill="#555">${fmt(t)}</text>`);
    }
    for (const t of xTicks) {
      body.push(`<line x1="${X(t).toFixed(1)}" x2="${X(t).toFixed(1)}" y1="${oy}" y2="${oy + panelH}" stroke="#f3f3f3"/>`);
      body.push(`<text x="${X(t).toFixed(1)}" y="${oy + panelH + 14}" text-anchor="middle" font-size="10" fill="#555">${fmt(t)}</text>`);
    }
    body.push(`<rect x="${ox}" y="${oy}" width="${panelW}" height="${panelH}" fill="none" stroke="#bbb"/>`);
    body.push(
      `<text x="${ox + panelW / 2}" y="${oy + panelH + 30}" text-anchor="middle" font-size="11" fill="#333">${esc(opts.xLabel)}</text>`,
    );
    body.push(
      `<text transform="translate(${ox - 40} ${oy + panelH / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="#333">${esc(opts.yLabel)}</text>`,
    );
    for (const l of p.lines) {
      const ok = l.points.filter((pt) => pt.y > 0).sort((a, b) => a.x - b.x);
      if (ok.length === 0) continue;
      const color = colorOf.get(l.series) ?? '#333';
      const d = ok.map((pt, k) => `${k ? 'L' : 'M'}${X(pt.x).toFixed(1)} ${Y(pt.y).toFixed(1)}`).join(' ');
      body.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="5 4"' : ''}/>`);
      for (const pt of ok) {
        body.push(
          `<circle cx="${X(pt.x).toFixed(1)}" cy="${Y(pt.y).toFixed(1)}" r="2.5" fill="${color}"><title>${esc(`${l.series}: ${fmt(pt.x)} req/s, ${pt.y} ms`)}</title></circle>`,
        );
      }
    }
  });
  body.push(...legend(opts.series, left, height - 16, opts.legendExtra ?? []));
  return frame(width, height, opts.title, body);
}

/** What keeps `svg` from being a well-formed SVG document (empty: nothing). For tests. */
export function svgProblems(svg: string): string[] {
  const problems: string[] = [];
  if (!svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')) problems.push('does not start with an <svg> root in the SVG namespace');
  if (!svg.trim().endsWith('</svg>')) problems.push('does not end with </svg>');
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (!closing) stack.push(name!);
    else if (stack.pop() !== name) problems.push(`</${name}> closes the wrong element`);
  }
  if (stack.length) problems.push(`unclosed: ${stack.join(', ')}`);
  const text = svg.replace(/<[^>]*>/g, '');
  if (/[<>]|&(?!amp;|lt;|gt;|quot;|#\d+;)/.test(text)) problems.push('unescaped text');
  return problems;
}
