// Bytes kept for long are kept in memory of their own: a view into a shared slab pins the slab.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { ownBytes, ownUtf8 } from './bytes.ts';

const owns = (b: Buffer) => b.byteOffset === 0 && b.buffer.byteLength === b.length;

test('a pooled or sliced Buffer is copied into one of its own size; one that owns its memory is kept as is', () => {
  const pooled = Buffer.from('a short body, from Node’s shared pool');
  assert.ok(!owns(pooled), 'Buffer.from(string) shares a pool slab');
  const own = ownBytes(pooled);
  assert.ok(owns(own));
  assert.deepEqual(own, pooled);
  // zlib's one-call functions answer a view of a larger output chunk.
  const compressed = zlib.gzipSync(Buffer.from('x'.repeat(5000)));
  assert.ok(compressed.buffer.byteLength > compressed.length);
  assert.ok(owns(ownBytes(compressed)));
  assert.deepEqual(zlib.gunzipSync(ownBytes(compressed)).toString(), 'x'.repeat(5000));
  const already = Buffer.allocUnsafeSlow(10).fill(1);
  assert.equal(ownBytes(already), already);
});

test('a string becomes UTF-8 bytes of their own', () => {
  const text = '{"title":"Ünïcödé ✓","body":"' + 'y'.repeat(3000) + '"}';
  const b = ownUtf8(text);
  assert.ok(owns(b));
  assert.equal(b.toString('utf8'), text);
  assert.equal(ownUtf8('').length, 0);
});
