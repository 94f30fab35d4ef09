// How many connections the HTTP server takes, and from whom (http/connections.ts, and
// docs/connections.md for the measurements behind each default).
import { readFileSync } from 'node:fs';
import { memoryLimit } from './cache.ts';
import { int, type Env } from './parse.ts';

export interface ConnectionConfig {
  /** listen()'s backlog: connections the kernel completes before the process accepts them. */
  readonly httpBacklog: number;
  /** Listening sockets on the port per process (SO_REUSEPORT), each accepting one per loop turn. */
  readonly httpListeners: number;
  readonly httpMaxConnections: number;
  readonly httpMaxConnectionsPerAddress: number;
  readonly httpKeepAliveUnderPressureMs: number;
}

/** Resident memory one idle keep-alive connection costs the process (docs/connections.md). */
export const BYTES_PER_CONNECTION = 20 * 1024;

/** What the default bound follows: the file-descriptor limit and the memory limit, when known. */
export interface ProcessLimits {
  readonly openFiles: number | undefined;
  readonly memoryBytes: number | undefined;
}

export function connectionConfig(env: Env, trustProxy: unknown, limits: ProcessLimits = processLimits()): ConnectionConfig {
  const max = int(env, 'HTTP_MAX_CONNECTIONS', defaultMaxConnections(limits), 0, 10_000_000);
  return {
    // Node's default, 511, is below what a burst of clients connecting at once needs: the
    // kernel drops the SYNs past it and those clients retry after 1 s, then 3 s (1,000
    // connections at once: p99 2.9-3.3 s). The kernel caps it at net.core.somaxconn.
    httpBacklog: int(env, 'HTTP_BACKLOG', 4096, 1, 65_535),
    // Node accepts one connection per listening socket per turn of its event loop, and a turn on
    // a busy process is long (http/listeners.ts). Linux only: elsewhere SO_REUSEPORT does not
    // spread connections over the sockets.
    httpListeners: process.platform === 'linux' ? int(env, 'HTTP_LISTENERS', defaultListeners(limits), 1, 4096) : 1,
    httpMaxConnections: max,
    // Half the process's connections: one address never takes them all. Behind a load balancer
    // (TRUST_PROXY) every connection comes from the balancer, so there it is off by default.
    httpMaxConnectionsPerAddress: int(
      env,
      'HTTP_MAX_CONNECTIONS_PER_ADDRESS',
      trustProxy === false ? Math.ceil(max / 2) : 0,
      0,
      10_000_000,
    ),
    httpKeepAliveUnderPressureMs: int(env, 'HTTP_KEEP_ALIVE_UNDER_PRESSURE_MS', 5000, 100, 3_600_000),
  };
}

/**
 * 10,000, or less when the process's limits say so: 80% of its file descriptors (the rest are
 * the database's, Redis's, files'), and connections costing at most a quarter of its memory limit.
 */
export function defaultMaxConnections({ openFiles, memoryBytes }: ProcessLimits): number {
  let max = 10_000;
  if (openFiles !== undefined) max = Math.min(max, Math.floor(openFiles * 0.8));
  if (memoryBytes !== undefined) max = Math.min(max, Math.floor(memoryBytes / 4 / BYTES_PER_CONNECTION));
  return Math.max(64, max);
}

/**
 * 512 (a burst of 1,000 new clients onto a busy process all answered within 0.5 s, against 7 s
 * with one socket: docs/connections.md), or a twentieth of the file descriptors when fewer: with
 * the connections' 80%, that leaves 15% for the database, Redis and files.
 */
export function defaultListeners({ openFiles }: ProcessLimits): number {
  return Math.max(1, Math.min(512, Math.floor((openFiles ?? Infinity) / 20)));
}

/** The soft RLIMIT_NOFILE (Linux: /proc/self/limits) and the container's memory limit. */
export function processLimits(): ProcessLimits {
  let openFiles: number | undefined;
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (line) openFiles = Number(line[1]);
  } catch {
    // not Linux: no bound from here
  }
  return { openFiles, memoryBytes: memoryLimit() };
}
