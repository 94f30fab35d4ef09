// Response conformance: does a response match what the service's OWN OpenAPI document
// (GET /api/openapi.json) says that operation answers with that status? The document is
// generated from the route schemas (@fastify/swagger), and those schemas also serialize the
// responses, so a mismatch means a handler, an error path or the document is wrong.
//
// Used by the fuzz test (test/resilience/fuzz.test.ts) and by test/harness.ts's Client, so every
// response of the conformance suite is checked too. Validators are compiled once per document
// (on first use of each operation and status), so the check is cheap.
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { App } from '../src/context.ts';

interface MediaType {
  schema?: unknown;
}
interface ResponseObject {
  content?: Record<string, MediaType>;
}
interface Operation {
  responses?: Record<string, ResponseObject>;
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  [key: string]: unknown;
}

export interface ResponseSample {
  method: string;
  /** The request URL (path and query); only the path is used. */
  url: string;
  status: number;
  contentType: string | undefined;
  /** The body as text ('' when there was none). */
  body: string;
}

export interface Conformance {
  /** What is wrong with the response; [] when it conforms. */
  check(res: ResponseSample): string[];
  /** "METHOD /template" of the documented operation a request reaches, or undefined. */
  operationOf(method: string, url: string): string | undefined;
  /** Validates a body against one documented response (for tests of the checker itself). */
  validate(operation: string, status: number, body: unknown): string[];
}

/**
 * The one error shape every 4xx/5xx promises (the document's info.description and SPEC.md):
 * `{"errors":{"<key>":["<message>", ...]}}`, at least one key and one message, nothing else.
 * Stricter than the per-status schemas the document gives, which do not require a key.
 */
export const ERROR_SHAPE = {
  type: 'object',
  required: ['errors'],
  additionalProperties: false,
  properties: {
    errors: {
      type: 'object',
      minProperties: 1,
      additionalProperties: { type: 'array', minItems: 1, items: { type: 'string' } },
    },
  },
} as const;

// RFC 3339 date-time (the meaning of `format: date-time` in JSON Schema), and a real date.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

const DOC_ID = 'conduit-openapi.json';

// What src/http/errors.ts clientErrorHandler writes on the connection before any route is
// found (the document's info.description lists them): any operation may get these.
const CONNECTION_ERRORS: Record<number, string> = {
  400: '{"errors":{"request":["is malformed"]}}',
  408: '{"errors":{"request":["timed out"]}}',
  431: '{"errors":{"headers":["are too large"]}}',
};

/** JSON pointer escaping of one segment. */
const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

interface Route {
  label: string;
  method: string;
  regex: RegExp;
  /** Static segments rank first: /api/articles/feed before /api/articles/{slug}. */
  params: number;
}

export function createConformance(doc: OpenApiDocument): Conformance {
  // OpenAPI 3.1 schemas are JSON Schema 2020-12. The whole document is registered under one id,
  // and each response schema is compiled as a $ref into it, so any `$ref` inside (to
  // #/components/schemas/...) resolves against the document as it would for any OpenAPI tool.
  // strict: false because the document is not a schema (openapi, info, paths are unknown keywords).
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => DATE_TIME.test(s) && !Number.isNaN(Date.parse(s)) });
  ajv.addSchema(structuredClone(doc), DOC_ID);
  const errorShape = ajv.compile(ERROR_SHAPE);

  const routes: Route[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) {
      if (!['get', 'put', 'post', 'delete', 'patch', 'options', 'head'].includes(method)) continue;
      const source = template
        .split('/')
        .map((seg) => (/^\{\w+\}$/.test(seg) ? '[^/]*' : seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
        .join('/');
      routes.push({
        label: `${method.toUpperCase()} ${template}`,
        method: method.toUpperCase(),
        regex: new RegExp(`^${source}$`),
        params: (template.match(/\{/g) ?? []).length,
      });
    }
  }
  routes.sort((a, b) => a.params - b.params);

  const compiled = new Map<string, ValidateFunction | null>();
  function validatorFor(label: string, status: number): ValidateFunction | null | undefined {
    const key = `${label} ${status}`;
    if (compiled.has(key)) return compiled.get(key);
    const [method, template] = label.split(' ') as [string, string];
    const response = doc.paths[template]?.[method.toLowerCase()]?.responses?.[String(status)];
    if (!response) return undefined;
    // null: documented without a JSON body (204, or text/plain /metrics).
    let fn: ValidateFunction | null = null;
    if (response.content?.['application/json']?.schema !== undefined) {
      const ref = `${DOC_ID}#/paths/${pointer(template)}/${method.toLowerCase()}/responses/${status}/content/${pointer('application/json')}/schema`;
      fn = ajv.compile({ $ref: ref });
    }
    compiled.set(key, fn);
    return fn;
  }

  function operationOf(method: string, url: string): string | undefined {
    const m = method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase();
    let path = url.split('?')[0] ?? '';
    // The router ignores one trailing slash (app.ts: ignoreTrailingSlash).
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    return routes.find((r) => r.method === m && r.regex.test(path))?.label;
  }

  const describe = (fn: ValidateFunction) => (fn.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`);

  function validate(operation: string, status: number, body: unknown): string[] {
    const fn = validatorFor(operation, status);
    if (fn === undefined) return [`${operation}: status ${status} is not documented`];
    if (fn === null) return body === undefined ? [] : [`${operation} ${status}: documented without a JSON body`];
    return fn(body) ? [] : describe(fn).map((e) => `${operation} ${status}: ${e}`);
  }

  function check(res: ResponseSample): string[] {
    const label = operationOf(res.method, res.url);
    const isJson = /\bjson\b/i.test(res.contentType ?? '');
    const head = res.method.toUpperCase() === 'HEAD';
    let body: unknown;
    if (res.body.length > 0 && isJson) {
      try {
        body = JSON.parse(res.body);
      } catch {
        return [`${res.method} ${res.url} ${res.status}: a JSON content type with a body that is not JSON`];
      }
    }
    if (res.status >= 200 && res.status < 300) {
      // Routes outside the document (the document itself, /docs) promise nothing.
      if (!label) return [];
      const fn = validatorFor(label, res.status);
      if (fn === undefined) return [`${label}: status ${res.status} is not documented`];
      if (head) return [];
      if (fn === null) return res.body.length === 0 || !isJson ? [] : [`${label} ${res.status}: documented without a JSON body, got one`];
      if (!isJson) return [`${label} ${res.status}: documented as application/json, got ${res.contentType ?? 'no content type'}`];
      return fn(body) ? [] : describe(fn).map((e) => `${label} ${res.status}: ${e}`);
    }
    if (res.status >= 400 && body !== undefined) {
      // The operation's documented schema for that status; otherwise (an unknown route's 404, a
      // 500) the error shape the document promises for every error.
      const documented = label ? validatorFor(label, res.status) : undefined;
      const fn = documented ?? errorShape;
      const problems = fn(body) ? [] : describe(fn).map((e) => `${label ?? `${res.method} ${res.url}`} ${res.status}: ${e}`);
      // Each operation lists the statuses it can answer (the document says so); 500 is the one
      // exception, described once in info.description (opaque, names only the request id).
      const onConnection = CONNECTION_ERRORS[res.status] === JSON.stringify(body);
      if (label && documented === undefined && res.status !== 500 && !onConnection)
        problems.push(`${label}: status ${res.status} is not documented`);
      if (!errorShape(body))
        problems.push(...describe(errorShape).map((e) => `${res.method} ${res.url} ${res.status}: not the error shape: ${e}`));
      return problems;
    }
    return [];
  }

  return { check, operationOf, validate };
}

// Several apps in one test process usually serve the same document: compile it once per text.
const byApp = new WeakMap<App, Conformance>();
const byText = new Map<string, Conformance>();

/** The checker for an app's own document, built on first use and kept for the app's life. */
export function conformanceOf(app: App): Conformance {
  let c = byApp.get(app);
  if (!c) {
    // app.swagger() is what GET /api/openapi.json sends; called directly so the check adds no
    // request to the app (rate-limit counters and request metrics stay what the test expects).
    const doc = app.swagger() as unknown as OpenApiDocument;
    const text = JSON.stringify(doc);
    c = byText.get(text) ?? createConformance(doc);
    byText.set(text, c);
    byApp.set(app, c);
  }
  return c;
}
