import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { cpuTree, folded, heapTree, msPerSample, renderSvg, topSelf, type CpuProfile, type HeapProfile } from './flamegraph.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const listing = pathToFileURL(path.join(ROOT, 'src/articles/articles.listing.ts')).href;
const pgClient = pathToFileURL(path.join(ROOT, 'node_modules/pg/lib/client.js')).href;

const frame = (functionName: string, url = '', lineNumber = -1) => ({ functionName, url, lineNumber, columnNumber: 0, scriptId: '1' });

// (root) -> (program) 5, (idle) 100, tick -> listArticles 20 -> query 10, and a second
// listArticles node under tick (same function, another node) with 5.
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), hitCount: 0, children: [2, 3, 4] },
    { id: 2, callFrame: frame('(program)'), hitCount: 5 },
    { id: 3, callFrame: frame('(idle)'), hitCount: 100 },
    { id: 4, callFrame: frame('processTicksAndRejections', 'node:internal/process/task_queues', 71), hitCount: 0, children: [5, 7] },
    { id: 5, callFrame: frame('listArticles', listing, 9), hitCount: 20, children: [6] },
    { id: 6, callFrame: frame('query', pgClient, 99), hitCount: 10 },
    { id: 7, callFrame: frame('listArticles', listing, 9), hitCount: 5 },
  ],
  startTime: 0,
  endTime: 140_000,
  samples: Array.from({ length: 140 }, () => 1),
};

test('a CPU profile becomes a call tree without idle time, same functions merged, heaviest first', () => {
  const tree = cpuTree(profile);
  assert.equal(tree.total, 40);
  assert.deepEqual(
    tree.children.map((c) => [c.name, c.total]),
    [
      ['processTicksAndRejections', 35],
      ['(program)', 5],
    ],
  );
  const list = tree.children[0]!.children;
  assert.equal(list.length, 1, 'the two listArticles nodes are one box');
  assert.deepEqual(
    { name: list[0]!.name, location: list[0]!.location, kind: list[0]!.kind, self: list[0]!.self, total: list[0]!.total },
    {
      name: 'listArticles',
      location: 'src/articles/articles.listing.ts:10',
      kind: 'app',
      self: 25,
      total: 35,
    },
  );
  assert.deepEqual([list[0]!.children[0]!.location, list[0]!.children[0]!.kind], ['pg/lib/client.js:100', 'dep']);
  assert.equal(tree.children[0]!.kind, 'node');
  assert.equal(msPerSample(profile), 1);
});

test('collapsed stacks: one line per stack with its own samples', () => {
  assert.equal(
    folded(cpuTree(profile)),
    [
      'processTicksAndRejections (node:internal/process/task_queues:72);listArticles (src/articles/articles.listing.ts:10) 25',
      'processTicksAndRejections (node:internal/process/task_queues:72);listArticles (src/articles/articles.listing.ts:10);query (pg/lib/client.js:100) 10',
      '(program) 5',
      '',
    ].join('\n'),
  );
});

test('top functions by self time', () => {
  const top = topSelf(cpuTree(profile), 2);
  assert.deepEqual(
    top.map((e) => [e.name, e.self, Math.round(e.share * 100)]),
    [
      ['listArticles', 25, 63],
      ['query', 10, 25],
    ],
  );
});

test('the SVG names each function with its file, escapes what it shows, and needs no script to show it', () => {
  const svg = renderSvg(
    cpuTree({ ...profile, nodes: profile.nodes.map((n) => (n.id === 6 ? { ...n, callFrame: frame('<lambda> & "q"', pgClient, 99) } : n)) }),
    {
      title: 'a <test>',
      unit: { kind: 'samples', msPerSample: 1 },
    },
  );
  assert.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.includes('listArticles (src/articles/articles.listing.ts:10): 35.0 ms, 35 samples (87.50%)'));
  assert.ok(svg.includes('&lt;lambda&gt; &amp; &quot;q&quot;'));
  assert.ok(svg.includes('a &lt;test&gt;'));
  assert.ok(!svg.includes('<lambda>'));
  // Boxes carry their own coordinates: the whole width for the root.
  assert.match(svg, /data-d="0" data-l="all"><title>[^<]*<\/title><rect x="0.0" y="\d+" width="1199.5"/);
  assert.equal(svg.match(/<g class="f"/g)?.length, 5);
});

test('a heap profile becomes a tree weighted by bytes', () => {
  const heap: HeapProfile = {
    head: {
      callFrame: frame('(root)'),
      selfSize: 0,
      children: [
        { callFrame: frame('toListItem', listing, 40), selfSize: 3 * 1024 * 1024, children: [] },
        { callFrame: frame('parse', pgClient, 10), selfSize: 1024 * 1024, children: [] },
      ],
    },
  };
  const tree = heapTree(heap);
  assert.equal(tree.total, 4 * 1024 * 1024);
  const svg = renderSvg(tree, { title: 'heap', unit: { kind: 'bytes' } });
  assert.ok(svg.includes('toListItem (src/articles/articles.listing.ts:41): 3.0 MiB (75.00%)'));
});
