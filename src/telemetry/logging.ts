// The process's logger: pino, JSON lines on stdout (one object per line, what every log shipper
// reads), pretty-printed only in development on a terminal.
//
// Fields of the one line per request (app.ts): reqId (the x-request-id a load balancer sent, or
// a new UUID), method, route (the template, never the raw URL), status, ms; and with tracing on,
// trace_id and span_id (http-tracing.ts binds them to the request's logger).
//
// Secrets: handlers never log bodies, headers or tokens, and config values that are secrets
// print as [redacted] (config.ts Secret). Redaction below is the second line: should a change
// ever log a request, its headers or a body, the credentials in them are masked.
import cluster from 'node:cluster';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from '../config.ts';

/**
 * Paths masked in every log line. Explicit paths only: with pino's redactor each wildcard path
 * (`*.password`) cost several microseconds on every line, the one-line-per-request summary
 * included, where explicit paths cost next to nothing (measured; docs/observability.md "Logs").
 */
export const REDACT_PATHS: readonly string[] = [
  // A request or its headers.
  'req.headers.authorization',
  'req.headers.cookie',
  'request.headers.authorization',
  'request.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  // Bodies and responses: `{ user: { password, token } }` (login, registration, user update),
  // logged as such, as `body`, or inside a request.
  'password',
  'token',
  'user.password',
  'user.token',
  'body.user.password',
  'body.user.token',
  'req.body.user.password',
  'req.body.user.token',
  'request.body.user.password',
  'request.body.user.token',
];

export function createLogger(config: Pick<Config, 'logLevel' | 'nodeEnv'>, destination?: DestinationStream): Logger {
  const options = {
    level: config.logLevel,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    ...(cluster.isWorker ? { base: { pid: process.pid, worker: cluster.worker?.id } } : {}),
  };
  if (destination) return pino(options, destination);
  return pino({
    ...options,
    ...(config.nodeEnv === 'development' && process.stdout.isTTY ? { transport: { target: 'pino-pretty' } } : {}),
  });
}

/**
 * An error as a log field: its message and code, nothing else. For errors that carry live
 * objects (pg's pool attaches the client, a socket error its socket), which pino's error
 * serializer would copy whole into the line.
 */
export function errorFields(err: unknown): { message: string; code?: string } {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? { message, code } : { message };
}
