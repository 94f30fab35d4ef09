// GET /docs: the interactive API reference. Swagger UI (the swagger-ui-dist npm package, served by
// this process: the page loads nothing from another origin) renders the service's own
// /api/openapi.json, and its "Try it out" sends real requests to this service, with the Token
// scheme's `Authorization: Token <jwt>` header entered in the page's Authorize dialog.
//
// Written here rather than with @fastify/swagger-ui, which was tried first: its routes cannot be
// exempted from the rate limit (@fastify/rate-limit decides per route in an onRoute hook that runs
// before any hook the plugin's own context could add), it would serve the document a second time
// under /docs/json, and its own CSP (`staticCSP`) allows any https: style and upgrades requests.
//
// The page's Content-Security-Policy (DOCS_CSP) is set on GET /docs alone, replacing the API's
// `default-src 'none'` that every other response keeps (src/http/security.ts).
import { Negotiator } from '@fastify/accept-negotiator';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Config } from '../config.ts';
import type { App } from '../context.ts';
import { helmetOptions } from '../http/security.ts';

export const DOCS_PATH = '/docs';
const ASSETS_PATH = `${DOCS_PATH}/assets`;
const OPENAPI_PATH = '/api/openapi.json';

/**
 * What the page needs, and nothing else (test/docs/docs.browser.test.ts fails on any violation):
 * - script-src 'self': Swagger UI's bundle and the initializer below are files served from here;
 *   no inline script, and no 'unsafe-eval' (the bundle evaluates no strings).
 * - style-src 'self': Swagger UI's stylesheet. Its React components set styles through the DOM
 *   (element.style), which CSP does not govern, so no 'unsafe-inline'.
 * - img-src 'self' data:: the favicon, and the icons swagger-ui.css embeds as data: URLs.
 * - connect-src 'self': fetching /api/openapi.json and the "Try it out" requests. The document's
 *   only server is `/`, this same origin.
 * - base-uri, form-action, frame-ancestors, object-src: nothing may change where relative URLs
 *   point, submit a form off the page, frame the page or load a plugin. (The Authorize dialog is a
 *   form whose submission Swagger UI handles in script: no navigation, so form-action 'none' holds.)
 */
export const DOCS_CSP = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
  objectSrc: ["'none'"],
} as const;

/** Swagger UI's configuration: a file served from here, since the CSP allows no inline script. */
const INITIALIZER = `'use strict';
window.ui = SwaggerUIBundle({
  url: ${JSON.stringify(OPENAPI_PATH)},
  dom_id: '#swagger-ui',
  presets: [SwaggerUIBundle.presets.apis],
  // No top bar: its "Explore" box loads documents from any URL.
  layout: 'BaseLayout',
  deepLinking: true,
  filter: true,
  displayRequestDuration: true,
  // Swagger UI's validator badge is an image from validator.swagger.io; ?url= and ?configUrl=
  // would point the page at other documents.
  validatorUrl: null,
  queryConfigEnabled: false,
  // The token stays in the page's memory, not in localStorage.
  persistAuthorization: false,
});
`;

type Encoding = 'br' | 'gzip';
const ENCODINGS: Encoding[] = ['br', 'gzip'];

// Built once per process on first use and kept, so each level is the one for static files: about
// 0.4 s of a worker thread for brotli 9 on the 1.7 MB bundle (to ~390 KB), not the event loop.
const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);
function compress(body: Buffer, encoding: Encoding): Promise<Buffer> {
  return encoding === 'br'
    ? brotli(body, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: 9,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length,
        },
      })
    : gzip(body, { level: 9 });
}

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  /** Weak: the same for every encoding of the same bytes. */
  readonly etag: string;
  readonly compressible: boolean;
  readonly variants: Map<Encoding, Promise<Buffer>>;
}

interface Site {
  readonly page: Asset;
  /** By the name in the URL, which carries the content hash: `swagger-ui-bundle.1a2b3c4d5e6f.js`. */
  readonly assets: ReadonlyMap<string, Asset>;
}

function asset(body: Buffer, type: string): Asset & { hash: string } {
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 16);
  return { body, type, hash, etag: `W/"${hash}"`, compressible: !type.startsWith('image/'), variants: new Map() };
}

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

async function buildSite(): Promise<Site> {
  const dist = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const files: [name: string, type: string, body: Buffer][] = await Promise.all(
    (
      [
        ['swagger-ui-bundle.js', JS],
        ['swagger-ui.css', CSS],
        ['index.css', CSS],
        ['favicon-32x32.png', 'image/png'],
        ['favicon-16x16.png', 'image/png'],
      ] as const
    ).map(async ([name, type]) => [name, type, await readFile(path.join(dist, name))] as [string, string, Buffer]),
  );
  files.push(['docs.js', JS, Buffer.from(INITIALIZER)]);

  const assets = new Map<string, Asset>();
  const url: Record<string, string> = {};
  for (const [name, type, body] of files) {
    const a = asset(body, type);
    const hashed = name.replace(/(\.\w+)$/, `.${a.hash}$1`);
    assets.set(hashed, a);
    url[name] = `${ASSETS_PATH}/${hashed}`;
  }
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Conduit API reference</title>
<link rel="stylesheet" href="${url['swagger-ui.css']}">
<link rel="stylesheet" href="${url['index.css']}">
<link rel="icon" type="image/png" sizes="32x32" href="${url['favicon-32x32.png']}">
<link rel="icon" type="image/png" sizes="16x16" href="${url['favicon-16x16.png']}">
</head>
<body>
<noscript><p>This page needs JavaScript. The OpenAPI document it shows is <a href="${OPENAPI_PATH}">${OPENAPI_PATH}</a>.</p></noscript>
<div id="swagger-ui"></div>
<script src="${url['swagger-ui-bundle.js']}"></script>
<script src="${url['docs.js']}"></script>
</body>
</html>
`;
  return { page: asset(Buffer.from(html), 'text/html; charset=utf-8'), assets };
}

export function registerDocsRoutes(app: App, config: Pick<Config, 'compression' | 'compressionThresholdBytes'>): void {
  // Read from disk on the first request, not at start-up: most processes never serve the page.
  let site: Promise<Site> | undefined;
  const loadSite = () =>
    (site ??= buildSite().catch((err: unknown) => {
      site = undefined;
      throw err;
    }));
  const negotiator = new Negotiator({ supportedValues: ENCODINGS, cache: new Map() });

  /** The encoding to send `a` in to this request, or null for the bytes as they are. */
  function encodingFor(request: FastifyRequest, a: Asset): Encoding | null {
    const accept = request.headers['accept-encoding'];
    if (!config.compression || !a.compressible || a.body.length < config.compressionThresholdBytes || accept === undefined) return null;
    return negotiator.negotiate(accept);
  }

  function variant(a: Asset, encoding: Encoding): Promise<Buffer> {
    let v = a.variants.get(encoding);
    if (!v) {
      v = compress(a.body, encoding);
      a.variants.set(encoding, v);
      // A failure is not kept: the next request tries again.
      v.catch(() => a.variants.delete(encoding));
    }
    return v;
  }

  async function send(request: FastifyRequest, reply: FastifyReply, a: Asset, cacheControl: string): Promise<FastifyReply> {
    void reply.header('cache-control', cacheControl).header('etag', a.etag).header('vary', 'Accept-Encoding');
    const ifNoneMatch = request.headers['if-none-match'];
    if (ifNoneMatch !== undefined && ifNoneMatch.split(/\s*,\s*/).some((t) => t === a.etag || t === '*' || `W/${t}` === a.etag)) {
      return reply.code(304).send();
    }
    void reply.type(a.type);
    const encoding = encodingFor(request, a);
    if (!encoding) return reply.send(a.body);
    // Content-Encoding set: @fastify/compress passes the bytes through.
    return reply.header('content-encoding', encoding).send(await variant(a, encoding));
  }

  // The page and its files are bytes in memory: serving them costs what refusing them would, and
  // a refusal of any one of the files a page load fetches leaves a half-drawn page. So neither
  // load shedding nor the rate limit counts them; the API calls made from the page are counted
  // like any other. The OpenAPI document itself is /api/openapi.json (app.ts).
  // A new object for each route: plugins' onRoute hooks may write into a route's config.
  const routeConfig = () => ({ rateLimit: false, neverShed: true }) as const;

  app.get(
    DOCS_PATH,
    {
      schema: { hide: true },
      config: routeConfig(),
      helmet: helmetOptions(DOCS_CSP),
    },
    async (request, reply) => {
      const { page, assets } = await loadSite();
      // The browser asks for the page's files next: start compressing them for it now (once per
      // process and encoding), not when each request comes.
      for (const a of assets.values()) {
        const encoding = encodingFor(request, a);
        if (encoding) variant(a, encoding).catch(() => undefined);
      }
      return send(request, reply, page, 'no-cache');
    },
  );

  app.get(`${ASSETS_PATH}/:name`, { schema: { hide: true }, config: routeConfig() }, async (request, reply) => {
    const { name } = request.params as { name: string };
    const a = (await loadSite()).assets.get(name);
    if (!a) {
      reply.callNotFound();
      return reply;
    }
    // The name carries the content hash: a new version is a new URL.
    return send(request, reply, a, 'public, max-age=31536000, immutable');
  });
}
