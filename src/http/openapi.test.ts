// GET /api/openapi.json: our OpenAPI 3.1 document is generated from the route schemas, so it must
// list every route the server answers and cover every endpoint of the upstream contract
// (the RealWorld v2 openapi.yml, MIT licensed, vendored as test/contract/realworld-openapi.yml).
import { Validator } from '@seriousme/openapi-schema-validator';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { Client, createTestApp, type TestApp } from '../../test/harness.ts';

let t: TestApp;
let doc: OpenApiDoc;
let contract: OpenApiDoc;
before(async () => {
  t = await createTestApp();
  const res = await new Client(t.app).get('/api/openapi.json');
  assert.equal(res.status, 200, res.text);
  doc = res.body as OpenApiDoc;
  contract = parse(await readFile(contractPath(), 'utf8')) as OpenApiDoc;
});
after(() => t.close());

interface Response {
  description: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema?: { type?: string; properties?: Record<string, unknown>; required?: string[] } }>;
}
interface Operation {
  security?: Record<string, string[]>[];
  responses?: Record<string, Response>;
  parameters?: { name: string; in: string }[];
  requestBody?: unknown;
}
interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string; description?: string };
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, { type: string; in?: string; name?: string }> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head'] as const;

/** ["METHOD /path", operation] for every operation of a document. */
function eachOperation(d: OpenApiDoc): [string, Operation][] {
  return Object.entries(d.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((m): [string, Operation] => [`${m.toUpperCase()} ${path}`, item[m]!]),
  );
}

function contractPath(): string {
  return fileURLToPath(new URL('../../test/contract/realworld-openapi.yml', import.meta.url));
}

/** "METHOD /path" for every operation of a document, with `prefix` before each path. */
function operations(d: OpenApiDoc, prefix = ''): Set<string> {
  const out = new Set<string>();
  for (const [path, item] of Object.entries(d.paths)) {
    for (const method of METHODS) if (item[method]) out.add(`${method.toUpperCase()} ${prefix}${path}`);
  }
  return out;
}

/**
 * The routes the server has registered, read from `printRoutes()`'s tree: each line is a node
 * whose text continues its parent's path, followed by its methods, e.g. `│   └── /follow (POST, DELETE)`.
 */
function registeredRoutes(tree: string): Set<string> {
  const out = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    const path = (stack[depth - 1] ?? '') + m[2]!;
    stack[depth] = path;
    for (const method of (m[3] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      out.add(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return out;
}

describe('GET /api/openapi.json', () => {
  test('is an OpenAPI 3.1 document describing Conduit', async () => {
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');
    assert.ok(Object.keys(doc.paths).length > 0);
  });

  test('is a valid OpenAPI 3.1 document (the OpenAPI 3.1 JSON Schema, @seriousme/openapi-schema-validator)', async () => {
    const validator = new Validator();

    const res = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);

    assert.equal(validator.version, '3.1');
    assert.deepEqual(res.errors ?? [], []);
    assert.equal(res.valid, true);
  });

  test('documents the statuses Conduit sends beyond the contract', async () => {
    for (const status of ['400', '401', '413', '414', '415', '422', '429', '503', '504']) {
      assert.match(doc.info.description ?? '', new RegExp(`\\b${status}\\b`), status);
    }
  });

  test('declares the Token scheme: an API key in the Authorization header', async () => {
    assert.deepEqual(
      {
        type: doc.components?.securitySchemes?.Token?.type,
        in: doc.components?.securitySchemes?.Token?.in,
        name: doc.components?.securitySchemes?.Token?.name,
      },
      { type: 'apiKey', in: 'header', name: 'Authorization' },
    );
  });

  test('every route the server registers is documented', async () => {
    const registered = registeredRoutes(t.app.printRoutes({ commonPrefix: false }));
    const documented = operations(doc);
    // Not API operations: HEAD is Fastify's automatic twin of each GET, OPTIONS * answers CORS
    // preflights, and the document does not list itself nor the page that shows it (/docs; its
    // files' wildcard route prints as `/docs*`).
    const undocumentable = (op: string) =>
      op.startsWith('HEAD ') || op === 'OPTIONS *' || op === 'GET /api/openapi.json' || /^GET \/docs(\/|\*|$)/.test(op);

    // The parser must have found the API, or this test proves nothing.
    assert.ok(registered.has('DELETE /api/articles/{slug}/comments/{id}'), [...registered].join('\n'));
    assert.ok(registered.has('POST /api/users/login'), [...registered].join('\n'));
    const missing = [...registered].filter((op) => !undocumentable(op) && !documented.has(op));
    assert.deepEqual(missing, []);
  });

  test('the API reference page (/docs) is registered and hidden from the document', async () => {
    const registered = registeredRoutes(t.app.printRoutes({ commonPrefix: false }));
    assert.ok(registered.has('GET /docs'), [...registered].join('\n'));
    assert.deepEqual(
      Object.keys(doc.paths).filter((p) => p.startsWith('/docs')),
      [],
    );
  });

  test('documents the operational endpoints', async () => {
    for (const path of ['/healthz', '/readyz']) assert.ok(doc.paths[path]?.get?.responses?.['200'], path);
    assert.ok(doc.paths['/readyz']?.get?.responses?.['503'], '/readyz 503');
    // Served here unless METRICS_PORT moves it to a port of its own.
    if (registeredRoutes(t.app.printRoutes({ commonPrefix: false })).has('GET /metrics')) {
      assert.ok(doc.paths['/metrics']?.get?.responses?.['200']?.content?.['text/plain'], '/metrics');
    }
  });

  test('every error response is the error shape {"errors":{"<key>":["<message>"]}}', async () => {
    for (const [label, op] of eachOperation(doc)) {
      for (const [status, res] of Object.entries(op.responses ?? {})) {
        if (Number(status) < 400) continue;
        const schema = res.content?.['application/json']?.schema;
        assert.equal(schema?.type, 'object', `${label} ${status}`);
        assert.deepEqual(Object.keys(schema?.properties ?? {}), ['errors'], `${label} ${status}`);
        assert.deepEqual(schema?.required, ['errors'], `${label} ${status}`);
        assert.ok(res.description && res.description !== 'Default Response', `${label} ${status}: a description`);
      }
    }
  });

  // The statuses each kind of operation can answer whatever its handler does (http/schemas.ts:
  // Refusals, BodyErrors, PathErrors, QueryErrors); a route that forgets one fails here.
  test('every operation documents the statuses its kind of request can get', async () => {
    const missing: string[] = [];
    for (const [label, op] of eachOperation(doc)) {
      const expected = new Set<string>();
      if (label.split(' ')[1]!.startsWith('/api/')) ['429', '503', '504'].forEach((s) => expected.add(s));
      if (op.requestBody) ['400', '413', '415', '422'].forEach((s) => expected.add(s));
      if ((op.parameters ?? []).some((p) => p.in === 'path')) ['400', '414', '422'].forEach((s) => expected.add(s));
      if ((op.parameters ?? []).some((p) => p.in === 'query')) expected.add('422');
      if ((op.security ?? []).some((s) => 'Token' in s)) expected.add('401');
      for (const status of expected) if (!op.responses?.[status]) missing.push(`${label}: ${status}`);
      for (const [status, res] of Object.entries(op.responses ?? {})) {
        if (status.startsWith('2')) continue;
        // Refusals say when to come back; /readyz's 503 is a report, not a refusal.
        if (['429', '504'].includes(status) || (status === '503' && label !== 'GET /readyz')) {
          if (!res.headers?.['retry-after']) missing.push(`${label}: ${status} Retry-After header`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });

  test('every documented operation is a route the server answers', async () => {
    const registered = registeredRoutes(t.app.printRoutes({ commonPrefix: false }));

    const phantom = [...operations(doc)].filter((op) => !registered.has(op));

    assert.deepEqual(phantom, []);
  });
});

describe('coverage of the RealWorld contract', () => {
  const prefix = () => new URL(contract.servers?.[0]?.url ?? '/api', 'http://x').pathname.replace(/\/$/, '');

  test('the contract has the 19 endpoints of SPEC.md, under /api', async () => {
    assert.equal(prefix(), '/api');
    assert.equal(operations(contract).size, 19);
  });

  test('every contract endpoint has the same path and method in ours', async () => {
    const ours = operations(doc);

    const missing = [...operations(contract, prefix())].filter((op) => !ours.has(op));

    assert.deepEqual(missing, []);
  });

  test('each contract endpoint has the same path parameters, auth requirement and success status in ours', async () => {
    for (const [path, item] of Object.entries(contract.paths)) {
      for (const method of METHODS) {
        const theirs = item[method];
        if (!theirs) continue;
        const label = `${method.toUpperCase()} ${path}`;
        const ours = doc.paths[`${prefix()}${path}`]?.[method];
        assert.ok(ours, label);

        const pathParams = (op: Operation) =>
          (op.parameters ?? [])
            .filter((p) => p.in === 'path')
            .map((p) => p.name)
            .sort();
        assert.deepEqual(pathParams(ours), pathParams(theirs), `${label}: path parameters`);

        const needsToken = (op: Operation) => (op.security ?? []).some((s) => 'Token' in s);
        assert.equal(needsToken(ours), needsToken(theirs), `${label}: Token security`);

        const success = Object.keys(theirs.responses ?? {}).filter((s) => s.startsWith('2'));
        for (const status of success) assert.ok(ours.responses?.[status], `${label}: documents ${status}`);
      }
    }
  });
});
