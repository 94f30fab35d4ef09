// Helpers for the HTTP-layer tests, which must go through a real socket: inject() skips the
// parts under test here (compression framing, connection timeouts, keep-alive, Node's parser).
// node:http rather than fetch: fetch decodes gzip and brotli itself and hides the wire bytes.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { TestApp } from '../harness.ts';

export interface WireResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body exactly as it came off the wire (still compressed, if it was). */
  body: Buffer;
}

export interface WireRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  agent?: http.Agent | false;
  /** Fails the request (ETIMEDOUT) if the response has not ended by then; 10 s by default. */
  timeoutMs?: number;
}

/** Listens on a free loopback port; returns the base URL. */
export async function listen(t: TestApp): Promise<string> {
  return t.app.listen({ port: 0, host: '127.0.0.1' });
}

export function request(url: string, opts: WireRequest = {}): Promise<WireResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  let payload: string | undefined;
  if (opts.body !== undefined) {
    payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // No test may hang on a server that stopped answering: fail it instead.
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error('no response in time'), { code: 'ETIMEDOUT' })),
      opts.timeoutMs ?? 10_000,
    );
    req.on('close', () => clearTimeout(timer));
    req.end(payload);
  });
}

/** The body as JSON (for uncompressed responses). */
export function json(res: WireResponse): any {
  return JSON.parse(res.body.toString('utf8'));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The headers src/http/security.ts promises on every response, errors included. */
export function assertSecurityHeaders(res: WireResponse, what = ''): void {
  const csp = String(res.headers['content-security-policy'] ?? '');
  assert.match(csp, /default-src 'none'/, `${what} content-security-policy: ${csp}`);
  assert.match(csp, /frame-ancestors 'none'/, `${what} content-security-policy: ${csp}`);
  assert.equal(res.headers['x-content-type-options'], 'nosniff', `${what} x-content-type-options`);
  assert.equal(res.headers['x-powered-by'], undefined, `${what} x-powered-by`);
}
