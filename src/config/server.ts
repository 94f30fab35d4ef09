// The HTTP server: where it listens, how many processes serve, how long it waits for clients,
// what it accepts from them, the tokens it signs, and how it stops.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { bool, ConfigError, int, oneOf, Secret, str, type Env } from './parse.ts';

export type NodeEnv = 'development' | 'production' | 'test';

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly jwtSecret: Secret;
  readonly jwtTtlSeconds: number;
  readonly bodyLimitBytes: number;
  readonly shutdownTimeoutMs: number;
  readonly shutdownDelayMs: number;
  readonly corsOrigins: readonly string[] | '*';
  readonly requestTimeoutMs: number;
  readonly workers: number;
  readonly workersMode: 'cluster' | 'reuseport';
  readonly compression: boolean;
  readonly compressionThresholdBytes: number;
  readonly httpKeepAliveTimeoutMs: number;
  readonly httpHeadersTimeoutMs: number;
  readonly httpRequestTimeoutMs: number;
  readonly trustProxy: false | number | readonly string[];
}

export function serverConfig(env: Env, nodeEnv: NodeEnv, dataDir: string): ServerConfig {
  return {
    // Loopback by default: a developer's `npm start` should not be reachable from the network.
    // Containers set HOST=0.0.0.0.
    host: str(env, 'HOST') ?? '127.0.0.1',
    port: int(env, 'PORT', 3000, 0, 65535),
    jwtSecret: jwtSecret(env, nodeEnv, dataDir),
    // A week: long enough for the RealWorld front ends, which have no refresh flow.
    jwtTtlSeconds: int(env, 'JWT_TTL_SECONDS', 7 * 24 * 3600, 60, 365 * 24 * 3600),
    // Articles are Markdown; 1 MiB is far above any real one and small enough to bound memory.
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    // Below Kubernetes' default 30 s terminationGracePeriodSeconds.
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    // Time between SIGTERM and closing the listener, with /readyz failing, so load balancers
    // stop sending new requests first. 0 locally; deployments behind a balancer set ~5 s.
    shutdownDelayMs: int(env, 'SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    corsOrigins: corsOrigins(env),
    // Every request has this budget; a statement still running at the deadline is cancelled in
    // PostgreSQL and the client gets 504. Healthy requests take milliseconds (BENCHMARKS.md);
    // 5 s is far past them and well under load balancers' 30-60 s timeouts. 0 turns it off.
    requestTimeoutMs: int(env, 'REQUEST_TIMEOUT_MS', 5000, 0, 600_000),
    // Processes serving HTTP on this machine. 1: this process serves (the right default on 2
    // cores, where PostgreSQL needs a core too; BENCHMARKS.md measures 2).
    workers: int(env, 'WORKERS', 1, 1, 256),
    // reuseport where the kernel spreads connections over the workers' sockets (Linux): under a
    // burst of 1,000 clients, cluster's supervisor handing out one connection per worker at a
    // time left p99 at 3.5 s with 188 timeouts, reuseport 80 ms (docs/connections.md).
    workersMode: oneOf<'cluster' | 'reuseport'>(
      env,
      'WORKERS_MODE',
      ['cluster', 'reuseport'],
      process.platform === 'linux' ? 'reuseport' : 'cluster',
    ),
    compression: bool(env, 'COMPRESSION', true),
    compressionThresholdBytes: int(env, 'COMPRESSION_THRESHOLD_BYTES', 1024, 0, 1024 * 1024),
    // Longer than the idle timeout of common load balancers (AWS ALB: 60 s), so the balancer,
    // not Node, closes idle connections: otherwise it may send a request on a socket Node is
    // closing and answer its client 502. 72 s is Fastify's default for that reason.
    httpKeepAliveTimeoutMs: int(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000, 3_600_000),
    // Time to receive a request's headers, counted from its first byte (from the accept for a
    // new connection's first request); a keep-alive connection idle between requests is not
    // counted, so this can stay well below the keep-alive timeout (Node >= 18, measured in
    // test/timing/timeouts.test.ts): bounds slowloris, silent connections included.
    httpHeadersTimeoutMs: int(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
    // Time to receive a whole request (headers and body): bounds slow uploads.
    httpRequestTimeoutMs: int(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 600_000),
    // Which X-Forwarded-For hops to believe for the client address (rate limits key on it).
    // Off by default: a service reached directly must not let clients pick their own address
    // and dodge the limits. Behind a load balancer set the hop count (1) or its addresses;
    // otherwise every client has the balancer's address and shares one set of limits.
    trustProxy: trustProxy(env),
  };
}

/**
 * JWT_SECRET is mandatory in production. In development a random secret is made once and kept in
 * the data directory, so tokens survive restarts without anybody having to invent a secret.
 */
function jwtSecret(env: Env, nodeEnv: NodeEnv, dataDir: string): Secret {
  const raw = str(env, 'JWT_SECRET');
  if (raw !== undefined) {
    if (raw.length < 32) throw new ConfigError('JWT_SECRET', 'must be at least 32 characters');
    return new Secret(raw);
  }
  if (nodeEnv === 'production') throw new ConfigError('JWT_SECRET', 'is required when NODE_ENV=production');
  const file = path.join(dataDir, 'jwt-secret');
  try {
    const kept = readFileSync(file, 'utf8').trim();
    if (kept.length >= 32) return new Secret(kept);
  } catch {
    // not created yet
  }
  const fresh = randomBytes(48).toString('base64url');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, fresh + '\n', { mode: 0o600 });
  return new Secret(fresh);
}

function corsOrigins(env: Env): readonly string[] | '*' {
  const raw = str(env, 'CORS_ORIGINS');
  if (raw === undefined || raw === '*') return '*';
  const origins = raw
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const o of origins) {
    try {
      new URL(o);
    } catch {
      throw new ConfigError('CORS_ORIGINS', `must be "*" or a comma-separated list of origins, got "${o}"`);
    }
  }
  return Object.freeze(origins);
}

/** off, a number of proxy hops, or the proxies' addresses/CIDRs (proxy-addr's names allowed). */
function trustProxy(env: Env): false | number | readonly string[] {
  const raw = str(env, 'TRUST_PROXY');
  if (raw === undefined || raw.toLowerCase() === 'off') return false;
  if (/^\d+$/.test(raw)) return int(env, 'TRUST_PROXY', 0, 1, 100);
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  for (const e of entries) {
    const [addr, bits, extra] = e.split('/');
    const named = ['loopback', 'linklocal', 'uniquelocal'].includes(e);
    if (!named && (extra !== undefined || net.isIP(addr ?? '') === 0 || (bits !== undefined && !/^\d{1,3}$/.test(bits)))) {
      throw new ConfigError('TRUST_PROXY', `must be off, a hop count, or a comma-separated list of addresses/CIDRs, got "${e}"`);
    }
  }
  return Object.freeze(entries);
}
