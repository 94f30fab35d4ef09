// GET /docs and its files over HTTP (the browser test, test/system/docs.browser.test.ts, shows the
// page working): the page's own Content-Security-Policy while the API keeps `default-src 'none'`,
// every file from here, compressed and revalidated, and neither the rate limit nor load shedding
// refusing any of them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';

/** `a 'x';b 'y' z` as { a: ["'x'"], b: ["'y'", 'z'] }. */
function parseCsp(header: unknown): Record<string, string[]> {
  assert.equal(typeof header, 'string', 'a Content-Security-Policy header');
  return Object.fromEntries(
    (header as string)
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name, ...values]) => [name!, values]),
  );
}

const DOCS_POLICY = {
  'default-src': ["'none'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
  'object-src': ["'none'"],
};

/** The files the page loads, from its HTML. */
function assetUrls(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((u) => u !== '/api/openapi.json');
}

async function page(client: Client): Promise<{ html: string; assets: string[] }> {
  const res = await client.get('/docs');
  assert.equal(res.status, 200, res.text);
  return { html: res.text, assets: assetUrls(res.text) };
}

describe('GET /docs', () => {
  let t: TestApp;
  let client: Client;
  before(async () => {
    t = await createTestApp();
    client = new Client(t.app);
  });
  after(() => t.close());

  test('is an HTML page under its own Content-Security-Policy: same-origin scripts, styles and requests only', async () => {
    const res = await client.get('/docs');

    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html; charset=utf-8/);
    assert.deepEqual(parseCsp(res.headers['content-security-policy']), DOCS_POLICY);
    // The rest of helmet's headers are the API's.
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['cross-origin-resource-policy'], 'cross-origin');
    assert.match(res.text, /<title>Conduit API reference<\/title>/);
    assert.match(res.text, /<div id="swagger-ui"><\/div>/);
    assert.doesNotMatch(res.text, /<script>|<script(?![^>]*\ssrc=)[^>]*>|<style|\son\w+=/, 'no inline script, style or handler');
  });

  test("the page's files answer under its policy; the API keeps its own, default-src 'none'", async () => {
    const { assets } = await page(client);
    for (const url of assets) {
      assert.deepEqual(parseCsp((await client.get(url)).headers['content-security-policy']), DOCS_POLICY, url);
    }
    for (const url of ['/api/tags', '/api/openapi.json', '/healthz', '/api/nothing']) {
      const res = await client.get(url);
      assert.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", url);
    }
  });

  test('every file the page loads is served from here, with its type', async () => {
    const { html, assets } = await page(client);

    assert.ok(assets.length >= 5, html);
    for (const url of assets) {
      assert.match(url, /^\/docs\/static\/[\w.-]+\.(js|css|png)$/, url);
      const res = await client.get(url, { headers: { 'accept-encoding': 'identity' } });
      assert.equal(res.status, 200, url);
      const ext = url.split('.').pop();
      const type = { js: /^application\/javascript; charset=utf-8/, css: /^text\/css; charset=utf-8/, png: /^image\/png$/ }[ext as 'js'];
      assert.match(String(res.headers['content-type']), type, url);
    }
    assert.ok(
      assets.some((u) => u.endsWith('/swagger-ui-bundle.js')),
      'Swagger UI',
    );
    assert.ok(
      assets.some((u) => u.endsWith('/swagger-initializer.js')),
      'its configuration',
    );
  });

  test("the configuration points Swagger UI at this service's document, with no top bar, validator badge nor stored token", async () => {
    const { assets } = await page(client);
    const script = (await client.get(assets.find((u) => u.endsWith('/swagger-initializer.js'))!)).text;

    assert.match(script, /url: resolveUrl\('\.\/json'\)/);
    assert.match(script, /"layout":"BaseLayout"/);
    assert.match(script, /validatorUrl: null/);
    assert.match(script, /"persistAuthorization":false/);
    assert.doesNotMatch(script, /queryConfigEnabled|configUrl/);
    // ./json, next to the page: the same document as /api/openapi.json.
    const [copy, doc] = await Promise.all([client.get('/docs/json'), client.get('/api/openapi.json')]);
    assert.equal(copy.status, 200);
    assert.deepEqual(copy.body, doc.body);
  });

  test('text files are compressed for a client that accepts it, the same bytes once decoded', async () => {
    const plain = await t.app.inject({ url: '/docs/static/swagger-ui-bundle.js', headers: { 'accept-encoding': 'identity' } });
    assert.equal(plain.headers['content-encoding'], undefined);
    const br = await t.app.inject({ url: '/docs/static/swagger-ui-bundle.js', headers: { 'accept-encoding': 'br' } });
    const gz = await t.app.inject({ url: '/docs/static/swagger-ui-bundle.js', headers: { 'accept-encoding': 'gzip' } });

    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.ok(br.rawPayload.length < plain.rawPayload.length / 3, `${br.rawPayload.length} of ${plain.rawPayload.length} bytes`);
    assert.ok(zlib.brotliDecompressSync(br.rawPayload).equals(plain.rawPayload));
    assert.ok(zlib.gunzipSync(gz.rawPayload).equals(plain.rawPayload));
  });

  test("a client that has one of Swagger UI's files gets 304 for its ETag", async () => {
    const { assets } = await page(client);
    // The initializer is a few hundred bytes made at start-up, sent whole each time.
    for (const url of assets.filter((u) => !u.endsWith('/swagger-initializer.js'))) {
      const first = await client.get(url);
      const again = await client.get(url, { headers: { 'if-none-match': String(first.headers.etag) } });
      assert.equal(again.status, 304, url);
      assert.equal(again.text, '', url);
    }
  });

  test('HEAD /docs, and /docs/ (trailing slash), answer like GET /docs', async () => {
    assert.equal((await client.request('HEAD', '/docs')).status, 200);
    const slash = await client.get('/docs/');
    assert.equal(slash.status, 200);
    assert.match(String(slash.headers['content-security-policy']), /script-src 'self'/);
    // Relative to /docs/: the same files.
    const urls = assetUrls(slash.text).map((u) => new URL(u, 'http://x/docs/').pathname);
    assert.deepEqual(urls, (await page(client)).assets);
  });

  test('an unknown file, or a path out of the folder, is a 404 in the error shape', async () => {
    for (const url of [
      '/docs/static/nothing.js',
      '/docs/static/..%2F..%2Fpackage.json',
      '/docs/static/..%2F..%2F..%2F..%2Fpackage.json',
      '/docs/static/%2e%2e/%2e%2e/package.json',
      '/docs/nothing',
    ]) {
      const res = await client.get(url);
      assert.equal(res.status, 404, url);
      assert.deepEqual(res.body, { errors: { route: ['not found'] } }, url);
    }
  });
});

describe('the rate limit and load shedding leave the page alone', () => {
  test('with RATE_LIMIT_MAX=3 the page loads ten times over while the API answers 429 past its third request', async () => {
    const t = await createTestApp({ RATE_LIMIT: 'on', RATE_LIMIT_MAX: '3' });
    try {
      const client = new Client(t.app);
      for (let i = 0; i < 10; i++) {
        const { assets } = await page(client);
        for (const url of assets) assert.equal((await client.get(url)).status, 200, `${url}, load ${i + 1}`);
      }
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await client.get('/api/tags')).status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
    } finally {
      await t.close();
    }
  });

  test('while the event loop is saturated the API is shed (503) and the page and its files are served', async () => {
    const t = await createTestApp({ SHED: 'on', SHED_MAX_EVENT_LOOP_DELAY_MS: '50' });
    const client = new Client(t.app);
    const { assets } = await page(client);
    let stop = false;
    // Busy chunks of 100 ms with one turn of the loop between them: ~90 ms of delay on every
    // timer, well over the 50 ms threshold.
    const load = (async () => {
      const end = performance.now() + 8000;
      while (!stop && performance.now() < end) {
        const chunkEnd = performance.now() + 100;
        while (performance.now() < chunkEnd) {
          // busy
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    try {
      // Past at least two samples (250 ms apart) of the saturated loop.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const api = await client.get('/api/tags');
      const docs = await Promise.all(['/docs', ...assets].map(async (url) => [url, (await client.get(url)).status] as const));

      assert.equal(api.status, 503, 'the API is shed: the loop was saturated');
      assert.deepEqual(
        docs,
        ['/docs', ...assets].map((url) => [url, 200]),
      );
    } finally {
      stop = true;
      await load;
      await t.close();
    }
  });
});

describe('the OpenAPI document behind /docs', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  test("lists the API's operations first and the operations endpoints (/metrics, /healthz, /readyz) last", async () => {
    const res = await new Client(t.app).get('/api/openapi.json');
    assert.equal(res.status, 200);
    const doc = res.body as { tags: { name: string }[]; paths: Record<string, Record<string, { tags?: string[] }>> };

    const tagNames = doc.tags.map((tag) => tag.name);
    assert.equal(tagNames[0], 'User and Authentication');
    assert.equal(tagNames.at(-1), 'Operations');
    const used = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item).flatMap((op) => op.tags ?? [])));
    assert.deepEqual(
      [...used].filter((tag) => !tagNames.includes(tag)),
      [],
      'every tag in use is in the ordered list',
    );

    const paths = Object.keys(doc.paths);
    const isOperations = (path: string) => Object.values(doc.paths[path]!).every((op) => op.tags?.includes('Operations'));
    const firstOperations = paths.findIndex(isOperations);
    assert.ok(firstOperations > 0, paths.join(' '));
    assert.deepEqual(paths.slice(0, firstOperations).filter(isOperations), []);
    assert.ok(
      paths.slice(firstOperations).every(isOperations),
      `after ${paths[firstOperations]} only operations endpoints: ${paths.join(' ')}`,
    );
    for (const path of ['/metrics', '/healthz', '/readyz']) assert.ok(paths.slice(firstOperations).includes(path), path);
    assert.equal(paths[0], '/api/users/login');
  });
});
