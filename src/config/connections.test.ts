import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BYTES_PER_CONNECTION, connectionConfig, defaultListeners, defaultMaxConnections, processLimits } from './connections.ts';
import { ConfigError } from './parse.ts';

const none = { openFiles: undefined, memoryBytes: undefined };

test('the default bound follows the file-descriptor limit and the memory limit', () => {
  assert.equal(defaultMaxConnections(none), 10_000);
  assert.equal(defaultMaxConnections({ openFiles: 1024, memoryBytes: undefined }), 819);
  // 256 MiB: a quarter of it in connections.
  assert.equal(
    defaultMaxConnections({ openFiles: 1_048_576, memoryBytes: 256 * 1024 * 1024 }),
    Math.floor((64 * 1024 * 1024) / BYTES_PER_CONNECTION),
  );
  assert.equal(defaultMaxConnections({ openFiles: 10, memoryBytes: undefined }), 64);
});

test('the default listening sockets: 512, or a twentieth of the file descriptors', () => {
  assert.equal(defaultListeners(none), 512);
  assert.equal(defaultListeners({ openFiles: 1_048_576, memoryBytes: undefined }), 512);
  assert.equal(defaultListeners({ openFiles: 1024, memoryBytes: undefined }), 51);
  assert.equal(defaultListeners({ openFiles: 10, memoryBytes: undefined }), 1);
});

test("this process's file-descriptor limit is read (Linux: /proc/self/limits)", () => {
  const limits = processLimits();
  assert.ok(limits.openFiles !== undefined && limits.openFiles > 0);
});

test('per address: half the bound, or none behind a trusted proxy; explicit values win', () => {
  const direct = connectionConfig({}, false, { openFiles: 2000, memoryBytes: undefined });
  assert.deepEqual(direct, {
    httpBacklog: 4096,
    httpListeners: 100,
    httpMaxConnections: 1600,
    httpMaxConnectionsPerAddress: 800,
    httpKeepAliveUnderPressureMs: 5000,
  });
  assert.equal(connectionConfig({}, 1, none).httpMaxConnectionsPerAddress, 0);
  const set = connectionConfig(
    { HTTP_MAX_CONNECTIONS: '0', HTTP_MAX_CONNECTIONS_PER_ADDRESS: '7', HTTP_BACKLOG: '128', HTTP_LISTENERS: '1' },
    false,
    none,
  );
  assert.equal(set.httpMaxConnections, 0);
  assert.equal(set.httpMaxConnectionsPerAddress, 7);
  assert.equal(set.httpBacklog, 128);
  assert.equal(set.httpListeners, 1);
  assert.throws(() => connectionConfig({ HTTP_LISTENERS: '0' }, false, none), ConfigError);
  assert.throws(() => connectionConfig({ HTTP_BACKLOG: '0' }, false, none), ConfigError);
});
