// Requests for tests, handed to the app's HTTP server as a connection would hand them: through
// the server's 'request' listeners, so the cache's hot path (src/cache/hot-path.ts), which sits
// in front of Fastify's handler, answers what it would answer in production. Fastify's own
// app.inject() calls its handler directly and would skip the hot path. No socket is opened.
import inject, { type InjectOptions, type Response } from 'light-my-request';
import type { App } from '../src/context.ts';

export function throughServer(app: App, options: InjectOptions): Promise<Response> {
  return inject((req, res) => app.server.emit('request', req, res), options);
}
