// V8 reads --max-semi-space-size when the process starts only (v8.setFlagsFromString later does not
// resize the young generation), so the service's memory default lives in how it is started:
// `npm start`, the image, and the bench and soak harness that start it "as npm start does". One
// value in all of them (docs/memory.md).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { SERVICE_NODE_OPTIONS } from '../bench/processes.ts';

const ROOT = path.join(import.meta.dirname, '..');
const read = (p: string) => readFile(path.join(ROOT, p), 'utf8');
const FLAG = /--max-semi-space-size=(\d+)/;

test('npm start, the image and the bench start the service with the same young-generation cap', async () => {
  const semi = FLAG.exec(SERVICE_NODE_OPTIONS)?.[1];
  assert.ok(semi, SERVICE_NODE_OPTIONS);
  const start = (JSON.parse(await read('package.json')) as { scripts: Record<string, string> }).scripts.start!;
  // Ahead of the caller's NODE_OPTIONS, whose own flags then win.
  assert.ok(start.startsWith(`NODE_OPTIONS="${SERVICE_NODE_OPTIONS} \${NODE_OPTIONS:-}" node `), start);
  const dockerfile = await read('deploy/Dockerfile');
  assert.match(dockerfile, new RegExp(`^\\s+NODE_OPTIONS=${SERVICE_NODE_OPTIONS}$`, 'm'));
  // The manifests do not replace the image's NODE_OPTIONS without keeping the flag.
  for (const file of ['deploy/k8s/configmap.yaml', 'deploy/k8s/deployment.yaml']) {
    for (const doc of YAML.parseAllDocuments(await read(file))) {
      const text = JSON.stringify(doc.toJS());
      const set = /"NODE_OPTIONS"\s*[:,]\s*(?:"value"\s*:\s*)?"([^"]*)"/.exec(text);
      if (set) assert.equal(FLAG.exec(set[1]!)?.[1], semi, `${file}: NODE_OPTIONS=${set[1]}`);
    }
  }
});
