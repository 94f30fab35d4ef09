// The platform limit: a bare `node:http` server, in its own process, that answers each request
// of a scenario with the bytes the real service sent for it (status, headers, body), looked up
// by method and URL in a Map. No routing, validation, database or serialization: what is left is
// what Node itself costs per request on this machine, the ceiling any Node service can reach.
//
//   node bench/platform.ts <recordings.json> [--fastify]   (reports its port over IPC, or on stdout)
//
// First, the service's own process-wide runtime settings (src/runtime.ts: the threadpool size and
// the tick-object maps held alive), so the ceiling runs on the same Node the service does.
import '../src/runtime.ts';
import Fastify from 'fastify';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { ownHeapSample } from './heap.ts';

export interface Recording {
  method: string;
  path: string;
  status: number;
  /** Response headers as sent, less the ones Node writes itself (date, connection, length). */
  headers: Record<string, string>;
  bodyBase64: string;
}

/** Headers Node sets per response on its own; everything else is replayed as recorded. */
export const NODE_OWN_HEADERS = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

export function startPlatformServer(recordings: readonly Recording[], port = 0): Promise<http.Server> {
  const answers = new Map<string, { status: number; headers: Record<string, string | number>; body: Buffer }>();
  for (const r of recordings) {
    const body = Buffer.from(r.bodyBase64, 'base64');
    answers.set(`${r.method} ${r.path}`, { status: r.status, headers: { ...r.headers, 'content-length': body.length }, body });
  }
  const missing = Buffer.from('{"errors":{"platform":["no recording for this request"]}}');
  const server = http.createServer((req, res) => {
    // Read the request body to its end first, as the service does.
    req.resume();
    req.once('end', () => {
      const a = answers.get(`${req.method} ${req.url}`);
      if (!a) {
        res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': missing.length });
        res.end(missing);
        return;
      }
      res.writeHead(a.status, a.headers);
      res.end(a.body);
    });
  });
  // The same keep-alive behaviour the service has (Fastify's default is 72 s).
  server.keepAliveTimeout = 72_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // The service's listen backlog (HTTP_BACKLOG's default), so many clients connecting at once meet the same queue.
    server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => resolve(server));
  });
}

/**
 * The framework floor (--floor): the same answers from a bare Fastify app, one catch-all route,
 * no hooks, no plugins, no logger. What is left between it and the node:http server above is
 * what Fastify itself costs per request; the service can only be slower than this.
 */
export async function startFastifyFloorServer(recordings: readonly Recording[], port = 0): Promise<http.Server> {
  const answers = new Map<string, { status: number; headers: Record<string, string>; body: Buffer }>();
  for (const r of recordings)
    answers.set(`${r.method} ${r.path}`, { status: r.status, headers: r.headers, body: Buffer.from(r.bodyBase64, 'base64') });
  const app = Fastify({ logger: false, keepAliveTimeout: 72_000 });
  // Bodies are read whole and not parsed, as the node:http server does.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.all('*', (request, reply) => {
    const a = answers.get(`${request.method} ${request.url}`);
    if (!a) return reply.code(404).send({ errors: { platform: ['no recording for this request'] } });
    return reply.code(a.status).headers(a.headers).send(a.body);
  });
  await app.listen({ port, host: '127.0.0.1', backlog: 4096 });
  return app.server;
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/platform.ts <recordings.json>\n');
    process.exit(2);
  }
  const recordings = JSON.parse(readFileSync(file, 'utf8')) as Recording[];
  const server = process.argv[3] === '--fastify' ? await startFastifyFloorServer(recordings) : await startPlatformServer(recordings);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  if (process.send) process.send({ type: 'listening', port });
  // The harness asks for the heap by space during a measured window (bench/heap.ts): answered
  // over IPC, so the HTTP path stays the bare one.
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'heap' && process.send)
      process.send({ type: 'heap', sample: ownHeapSample(v8.getHeapSpaceStatistics(), process.memoryUsage().external) });
  });
  if (!process.send) process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Closing the IPC channel (the harness went away) ends the server too.
  process.once('disconnect', stop);
}
