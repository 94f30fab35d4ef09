// GET /docs in a real browser: Debian's Chromium (/usr/bin/chromium, `apt-get install chromium`;
// .ci/run installs it), driven by playwright-core. The service listens on a real port; the page
// must list every operation of /api/openapi.json, and "Try it out" must work against the running
// service for GET /api/tags and, after entering `Token <jwt>` in the Authorize dialog, for
// GET /api/user. Any request the page makes to a host other than 127.0.0.1 is blocked and fails
// the test, as does any Content-Security-Policy violation or console error. Screenshots go to
// test-output/docs-*.png.
import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { Client, createTestApp, type TestApp } from '../harness.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));

let t: TestApp;
let base: string;
let profile: string;
let context: BrowserContext;
let page: Page;
/** Requests the page tried to send anywhere but the service (all blocked). */
const offHost: string[] = [];
const consoleErrors: string[] = [];

before(async () => {
  await access(CHROMIUM).catch(() => {
    throw new Error(`no browser at ${CHROMIUM}: apt-get install -y --no-install-recommends chromium (see .ci/run)`);
  });
  t = await createTestApp();
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  await mkdir(OUTPUT, { recursive: true });
  profile = await mkdtemp(path.join(tmpdir(), 'conduit-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  // Every request of every page passes here: the service's own origin goes through, anything
  // else (a CDN's script or font, a validator badge, telemetry) is recorded and refused.
  await context.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || (url.hostname === '127.0.0.1' && url.origin === base)) {
      await route.continue();
    } else {
      offHost.push(route.request().url());
      await route.abort('blockedbyclient');
    }
  });
  // CSP violations, as the page itself sees them.
  await context.addInitScript({
    content: `window.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' (' + e.sourceFile + ':' + e.lineNumber + ')');
      });`,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));
});

after(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await t?.close();
});

/** An operation's block in the page, found by its method and path. */
function operation(method: string, apiPath: string): Locator {
  return page.locator(`.opblock-${method.toLowerCase()}`).filter({ has: page.locator(`.opblock-summary-path[data-path="${apiPath}"]`) });
}

/** Opens an operation, presses "Try it out" and "Execute", and returns its live response. */
async function tryIt(method: string, apiPath: string): Promise<{ status: string; body: string; curl: string }> {
  const op = operation(method, apiPath);
  await op.locator('.opblock-summary').first().click();
  await op.getByRole('button', { name: 'Try it out' }).click();
  await op.getByRole('button', { name: 'Execute' }).click();
  const live = op.locator('.live-responses-table .response');
  await live.first().waitFor({ state: 'visible', timeout: 15_000 });
  return {
    status: (await live.locator('.response-col_status').first().innerText()).trim(),
    body: await op.locator('.live-responses-table .response-col_description pre').first().innerText(),
    curl: await op.locator('.curl-command').first().innerText(),
  };
}

async function expectCleanPage(): Promise<void> {
  const violations = await page.evaluate<string[]>('window.cspViolations');
  assert.deepEqual(violations, [], 'Content-Security-Policy violations');
  assert.deepEqual(offHost, [], 'requests to hosts other than the service');
  assert.deepEqual(consoleErrors, [], 'console errors');
}

describe('GET /docs in Chromium', { timeout: 120_000 }, () => {
  test('lists every operation of /api/openapi.json, with nothing loaded from elsewhere', async () => {
    const res = await page.goto(`${base}/docs`);
    assert.equal(res?.status(), 200);
    assert.match(res.headers()['content-security-policy'] ?? '', /script-src 'self'/);

    await page.locator('.opblock').first().waitFor({ state: 'visible', timeout: 30_000 });
    const doc = (await (await fetch(`${base}/api/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const expected = Object.entries(doc.paths)
      .flatMap(([p, item]) =>
        Object.keys(item)
          .filter((m) => ['get', 'put', 'post', 'delete', 'patch'].includes(m))
          .map((m) => `${m.toUpperCase()} ${p}`),
      )
      .sort();
    const shown = (
      await page
        .locator('.opblock')
        .evaluateAll((blocks) =>
          blocks.map(
            (b) =>
              `${b.querySelector('.opblock-summary-method')?.textContent} ${b.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`,
          ),
        )
    ).sort();
    assert.deepEqual(shown, expected);
    assert.ok(shown.includes('GET /api/tags') && shown.includes('GET /api/user') && shown.includes('GET /healthz'), shown.join('\n'));
    assert.equal(
      await page
        .locator('.info .title')
        .first()
        .innerText()
        .then((s) => s.includes('Conduit API')),
      true,
    );
    await page.screenshot({ path: path.join(OUTPUT, 'docs-overview.png'), fullPage: false });
    await expectCleanPage();
  });

  test('"Try it out" on GET /api/tags shows the service\'s answer', async () => {
    const client = new Client(t.app);
    const author = await client.register();
    await client.createArticle(author.token, { tagList: ['browser', 'docs'] });

    const res = await tryIt('GET', '/api/tags');

    assert.equal(res.status, '200');
    assert.deepEqual(JSON.parse(res.body), { tags: ['browser', 'docs'] });
    assert.match(res.curl, new RegExp(`${base}/api/tags`));
    await expectCleanPage();
  });

  test('"Try it out" on GET /api/user with `Token <jwt>` entered in the Authorize dialog', async () => {
    const user = await new Client(t.app).register();

    await page.locator('.auth-wrapper .btn.authorize').click();
    const dialog = page.locator('.dialog-ux .modal-ux');
    await dialog.locator('input[type="text"], input[type="password"]').first().fill(`Token ${user.token}`);
    await dialog.getByRole('button', { name: 'Apply credentials' }).click();
    // Authorized: the dialog now offers to log out.
    await dialog.getByRole('button', { name: 'Remove authorization' }).waitFor({ state: 'visible' });
    await dialog.getByRole('button', { name: 'Close' }).click();
    const res = await tryIt('GET', '/api/user');

    assert.equal(res.status, '200');
    const body = JSON.parse(res.body) as { user: { username: string; email: string } };
    assert.equal(body.user.username, user.username);
    assert.equal(body.user.email, user.email);
    assert.match(res.curl, /Authorization: Token /);
    await operation('GET', '/api/user').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(OUTPUT, 'docs-try-it-user.png'), fullPage: false });
    await expectCleanPage();
  });
});
