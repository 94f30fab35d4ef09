// GET /docs: the interactive API reference, @fastify/swagger-ui (Swagger UI's files shipped in the
// package and served by this process: the page loads nothing from another origin). It renders
// the service's OpenAPI document, and its "Try it out" sends real requests to this service, with
// the Token scheme's `Authorization: Token <jwt>` header entered in the page's Authorize dialog.
//
// The page, its files and the plugin's copy of the document (/docs/json, /docs/yaml) answer under
// DOCS_CSP; every other response keeps the API's `default-src 'none'` (src/http/security.ts).
import swaggerUi from '@fastify/swagger-ui';
import type { Config } from '../config.ts';
import type { App } from '../context.ts';
import { securityHeaders } from '../http/security.ts';

export const DOCS_PATH = '/docs';

/**
 * What the page needs, and nothing else (test/system/docs.browser.test.ts fails on any violation):
 * - script-src 'self': Swagger UI's bundle and the plugin's initializer are files served from
 *   here; no inline script, and no 'unsafe-eval' (the bundle evaluates no strings).
 * - style-src 'self': Swagger UI's stylesheet. Its React components set styles through the DOM
 *   (element.style), which CSP does not govern, so no 'unsafe-inline'.
 * - img-src 'self' data:: the favicon, and the icons swagger-ui.css embeds as data: URLs.
 * - connect-src 'self': fetching the document and the "Try it out" requests. The document's
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

export function registerDocsRoutes(app: App, _config: Pick<Config, 'compression'>): void {
  const csp = securityHeaders(DOCS_CSP)['content-security-policy'];
  void app.register(async (docs) => {
    // Serving the page and its files costs what refusing them would, and a refusal of any one of
    // the files a page load fetches leaves a half-drawn page. So neither load shedding nor the
    // rate limit counts them (both ask `neverShed` of the route when a request comes); the API
    // calls made from the page are counted like any other.
    docs.addHook('onRoute', (route) => {
      route.config = { ...route.config, rateLimit: false, neverShed: true };
    });
    await docs.register(swaggerUi, {
      routePrefix: DOCS_PATH,
      staticCSP: csp,
      theme: { title: 'Conduit API reference' },
      // Swagger UI's validator badge is an image from validator.swagger.io.
      validatorUrl: false,
      uiConfig: {
        // No top bar: its "Explore" box loads documents from any URL. (Swagger UI reads no
        // configuration from the page's query string by default: queryConfigEnabled is false.)
        layout: 'BaseLayout',
        deepLinking: true,
        filter: true,
        displayRequestDuration: true,
        // The token stays in the page's memory, not in localStorage.
        persistAuthorization: false,
      },
    });
  });
}
