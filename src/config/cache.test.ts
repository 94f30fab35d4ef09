// The response cache's byte bound: CACHE_MAX_BYTES, or by default a share of the memory limit the
// process runs under (process.constrainedMemory(), a container's cgroup limit).
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { cacheConfig, defaultCacheMaxBytes, memoryLimit } from './cache.ts';

const MiB = 1024 * 1024;

test('without a memory limit the bound is 64 MiB; under one, an eighth of it between 8 and 64 MiB', () => {
  assert.equal(defaultCacheMaxBytes(undefined), 64 * MiB);
  assert.equal(defaultCacheMaxBytes(256 * MiB), 32 * MiB);
  assert.equal(defaultCacheMaxBytes(512 * MiB), 64 * MiB);
  assert.equal(defaultCacheMaxBytes(8 * 1024 * MiB), 64 * MiB);
  assert.equal(defaultCacheMaxBytes(64 * MiB), 8 * MiB);
  // Whole MiB: a limit that is not a multiple of 8 MiB rounds down.
  assert.equal(defaultCacheMaxBytes(300 * MiB), 37 * MiB);
});

test('the default follows the limit given; CACHE_MAX_BYTES set wins over it', () => {
  assert.equal(cacheConfig({}, 256 * MiB).cacheMaxBytes, 32 * MiB);
  assert.equal(cacheConfig({}, undefined).cacheMaxBytes, 64 * MiB);
  assert.equal(cacheConfig({ CACHE_MAX_BYTES: String(100 * MiB) }, 256 * MiB).cacheMaxBytes, 100 * MiB);
});

test("this process's limit: none when Node reports none or one at least the machine's memory", () => {
  const reported = process.constrainedMemory();
  const limit = memoryLimit();
  if (reported > 0 && reported < os.totalmem()) assert.equal(limit, reported);
  else assert.equal(limit, undefined);
  assert.equal(cacheConfig({}).cacheMaxBytes, defaultCacheMaxBytes(limit));
});
