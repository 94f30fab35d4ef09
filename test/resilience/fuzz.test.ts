// Malformed-input fuzzing (issue #9): over 100,000 generated requests, most of them wrong on
// purpose, through Fastify's inject (the bulk), over keep-alive sockets, and as raw bytes on TCP
// for what an HTTP client cannot send. Whatever arrives, the service must answer below 500, in
// the error shape for every 4xx, with every 2xx and every error matching its own OpenAPI
// document (test/openapi-responses.ts), without an uncaught exception, and a request it rejects
// must leave the database exactly as it was.
//
// Generation is fast-check with a fixed seed (printed): a failure reports the seed, the path and
// the shrunk batch of requests, and `FUZZ_SEED=<n>` replays another seed.
import fc from 'fast-check';
import { createSigner } from 'fast-jwt';
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import swagger from '@fastify/swagger';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { App } from '../../src/context.ts';
import { Client, createTestApp, TEST_JWT_SECRET, type TestApp } from '../harness.ts';
import { throughServer } from '../inject.ts';
import { createConformance, ERROR_SHAPE, type Conformance, type OpenApiDocument } from '../openapi-responses.ts';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { listen, request } from '../http/socket.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20_250_909);

// Requests per fast-check run: a run sends its batch concurrently (throughput on a 2-core
// machine), and a failing batch shrinks to the few requests that matter.
// FUZZ_SCALE (default 1) shrinks or grows every run, e.g. 0.1 for a quick look.
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
const BATCH = 32;
const INJECT_RUNS = runs(2_600); // 83,200 mixed requests
const INVALID_RUNS = runs(160); // 5,120 requests designed to be rejected
const SOCKET_RUNS = runs(320); // 10,240 requests over keep-alive connections
const RAW_BATCH = 32;
const RAW_RUNS = runs(80); // 2,560 raw TCP connections, 32 at a time (some wait out a 2 s timeout)

// ---------------------------------------------------------------------------------------------
// JSON text with what JSON.stringify cannot write: keys like __proto__ as plain keys, duplicate
// keys, and number literals JavaScript cannot hold (1e309, 30-digit integers).

class Raw {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}
class Obj {
  readonly entries: [string, J][];
  constructor(entries: [string, J][]) {
    this.entries = entries;
  }
}
type J = null | boolean | number | string | Raw | Obj | J[];

function toJson(v: J): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  return JSON.stringify(v);
}

// ---------------------------------------------------------------------------------------------
// Values

const EDGE_STRINGS = [
  '',
  ' ',
  '\t\n\r',
  '\u00a0',
  '\u200b',
  '\u200d',
  '\ufeff',
  '\u2028\u2029',
  '\ud800',
  '\udfff',
  'a\ud800b',
  '\udc00\ud800', // lone and reversed surrogates
  '\u202eevil\u202c',
  'مرحبا بالعالم',
  'שלום',
  '\u061c', // right-to-left
  '👩‍👩‍👧‍👦',
  '🏳️‍🌈',
  'e\u0301\u0301\u0301',
  'Z̸̧̛̖̗̘̙̜̝̞̟',
  '\u{10ffff}',
  '\ufffd',
  '\u00c0\u00af',
  '\u00e0\u0080\u00af', // overlong UTF-8 of "/" read as latin-1 text
  'a\u0000b',
  '\u0000',
  '\u0001\u001f\u007f',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  "' or 1=1 --",
  '%00',
  '%zz',
  '${jndi:x}',
  '__proto__',
  'constructor',
  'null',
  'undefined',
  '-0',
  'NaN',
];

const edgeString = fc.constantFrom(...EDGE_STRINGS);
const unicodeString = fc.string({ unit: 'binary', maxLength: 40 }); // any code point, lone surrogates included
const anyString = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 3, arbitrary: unicodeString },
  { weight: 3, arbitrary: edgeString },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
);
// Longer than every bound (64, 254, 256, 1,024, 4,096, 65,536, 262,144), in one- and two-byte
// characters, all under the 1 MiB body limit.
const hugeString = fc
  .oneof({ weight: 6, arbitrary: fc.constantFrom(65, 255, 257, 1_025, 4_097) }, { weight: 1, arbitrary: fc.constantFrom(65_537, 262_145) })
  .chain((n) => fc.constantFrom('x'.repeat(n), 'é'.repeat(n), `${' '.repeat(n - 1)}x`));
const hugeNumber = fc.constantFrom(
  new Raw('1e309'),
  new Raw('-1e309'),
  new Raw('123456789012345678901234567890'),
  new Raw('1.0e-400'),
  new Raw('-0'),
  new Raw('9007199254740993'),
  new Raw('1E+2'),
  new Raw('0.1e1'),
);
const scalar: fc.Arbitrary<J> = fc.oneof(
  fc.boolean(),
  fc.constant(null),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  hugeNumber,
  anyString,
);
const anyJson: fc.Arbitrary<J> = fc.letrec<{ v: J }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('v'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.oneof(anyString, fc.constantFrom('__proto__', 'constructor', 'prototype')), tie('v')), { maxLength: 4 })
      .map((e) => new Obj(e)),
  ),
})).v;
// A value of the wrong type for a string field: never a string.
const notAString: fc.Arbitrary<J> = fc.oneof(
  fc.boolean(),
  fc.integer(),
  hugeNumber,
  fc.array(scalar, { maxLength: 3 }),
  fc.constant(new Obj([['a', 1]])),
  fc.constant(new Obj([])),
);

// ---------------------------------------------------------------------------------------------
// Bodies: each write body starts valid and has fields replaced, removed or added.

type Field = 'username' | 'email' | 'password' | 'bio' | 'image' | 'title' | 'description' | 'body' | 'tagList';
interface BodyKind {
  wrapper: string;
  valid: () => fc.Arbitrary<Record<string, J>>;
  /** A replacement that can never be valid for the field (for the only-invalid run). */
  invalid: Partial<Record<Field, fc.Arbitrary<J>>>;
}

const word = fc.stringMatching(/^[a-z][a-z0-9]{2,11}$/);
const tooLong = (n: number) => fc.constantFrom('x'.repeat(n + 1), 'é'.repeat(n + 1));
const blank = fc.constantFrom('', ' ', '\t\n', '\u00a0\u3000');
const BODY_KINDS = {
  login: {
    wrapper: 'user',
    valid: () => fc.record({ email: word.map((w) => `${w}@example.com`), password: word }),
    invalid: {
      email: fc.oneof(notAString, blank, fc.constant('no-at-sign')),
      password: fc.oneof(notAString, fc.constant(''), tooLong(64)),
    },
  },
  register: {
    wrapper: 'user',
    valid: () =>
      fc.record({
        username: word.map((w) => `fz${w}`),
        email: word.map((w) => `fz${w}@example.com`),
        password: word.map((w) => `${w}-password`),
      }),
    invalid: {
      username: fc.oneof(notAString, blank, tooLong(64)),
      email: fc.oneof(notAString, blank, fc.constant('a b@c')),
      password: fc.oneof(notAString, fc.constant('short'), tooLong(64)),
    },
  },
  user: {
    wrapper: 'user',
    valid: () => fc.record({ bio: fc.oneof(fc.constant(null), anyString), image: fc.oneof(fc.constant(null), fc.webUrl()) }),
    invalid: {
      email: fc.oneof(notAString, blank, fc.constant('@')),
      username: fc.oneof(notAString, blank, tooLong(64)),
      bio: fc.oneof(notAString, tooLong(4096)),
      image: fc.oneof(notAString, tooLong(4096)),
    },
  },
  article: {
    wrapper: 'article',
    valid: () =>
      fc.record({
        title: word.map((w) => `Fuzz ${w}`),
        description: anyString.map((s) => `d${s}`),
        body: anyString.map((s) => `b${s}`),
        tagList: fc.array(word, { maxLength: 3 }),
      }),
    invalid: {
      title: fc.oneof(notAString, blank, tooLong(256)),
      description: fc.oneof(notAString, blank, tooLong(1024)),
      body: fc.oneof(notAString, blank),
      tagList: fc.oneof(
        fc.constant('dragons'),
        fc.integer(),
        fc.array(fc.oneof(fc.integer(), fc.constant(null)), { minLength: 1, maxLength: 3 }),
        fc.constant(Array.from({ length: 33 }, (_, i) => `t${i}`)),
      ),
    },
  },
  comment: {
    wrapper: 'comment',
    valid: () => fc.record({ body: anyString.map((s) => `c${s}`) }),
    invalid: { body: fc.oneof(notAString, blank, tooLong(65_536)) },
  },
} satisfies Record<string, BodyKind>;
type BodyName = keyof typeof BODY_KINDS;

/** A valid body with some of its fields replaced by anything, removed, or joined by strange keys. */
function mutatedBody(kind: BodyKind): fc.Arbitrary<J> {
  const fieldValue = fc.oneof(
    { weight: 3, arbitrary: anyString },
    { weight: 2, arbitrary: notAString },
    { weight: 1, arbitrary: hugeString },
    { weight: 1, arbitrary: anyJson },
  );
  const extraKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'id', 'author', 'favoritesCount', 'slug'), anyString);
  return fc
    .tuple(
      kind.valid(),
      fc.array(fc.tuple(fc.constantFrom('keep', 'replace', 'remove'), fieldValue), { minLength: 5, maxLength: 5 }),
      fc.array(fc.tuple(extraKey, anyJson), { maxLength: 2 }),
      fc.constantFrom('normal', 'normal', 'normal', 'no-wrapper', 'wrapper-wrong-type', 'other-wrapper', 'top-level'),
      anyJson,
    )
    .map(([valid, edits, extra, shape, other]) => {
      const entries: [string, J][] = Object.entries(valid).flatMap(([k, v], i): [string, J][] => {
        const [what, replacement] = edits[i] ?? ['keep', null];
        if (what === 'remove') return [];
        return [[k, what === 'replace' ? replacement : v]];
      });
      const inner = new Obj([...entries, ...extra]);
      switch (shape) {
        case 'no-wrapper':
          return inner;
        case 'wrapper-wrong-type':
          return new Obj([[kind.wrapper, other instanceof Obj ? 'x' : other]]);
        case 'other-wrapper':
          return new Obj([[kind.wrapper === 'user' ? 'article' : 'user', inner]]);
        case 'top-level':
          return other;
        default:
          return new Obj([[kind.wrapper, inner]]);
      }
    });
}

/** A valid body with at least one field the schema must refuse. */
function invalidBody(kind: BodyKind): fc.Arbitrary<J> {
  const fields = Object.entries(kind.invalid) as [Field, fc.Arbitrary<J>][];
  return fc
    .tuple(
      kind.valid(),
      fc.subarray(fields, { minLength: 1 }).chain((chosen) => fc.tuple(...chosen.map(([f, arb]) => arb.map((v): [string, J] => [f, v])))),
    )
    .map(([valid, bad]) => {
      const merged = new Map<string, J>(Object.entries(valid));
      for (const [f, v] of bad) merged.set(f, v);
      return new Obj([[kind.wrapper, new Obj([...merged])]]);
    });
}

const OVERSIZED = `{"user":{"bio":"${'x'.repeat(1_100_000)}"}}`; // over the 1 MiB body limit
const deepJson = fc
  .tuple(fc.integer({ min: 1_000, max: 12_000 }), fc.constantFrom('array', 'object', 'wrapped', 'proto-at-bottom'))
  .map(([n, how]) => {
    switch (how) {
      case 'array':
        return '['.repeat(n) + ']'.repeat(n);
      case 'object':
        return '{"a":'.repeat(n) + '1' + '}'.repeat(n);
      case 'wrapped':
        return `{"article":{"title":${'['.repeat(n)}"x"${']'.repeat(n)},"description":"d","body":"b"}}`;
      default:
        // secure-json-parse walks the parsed value when the text holds "__proto__": a deep one.
        return '{"a":'.repeat(n) + '{"__proto__":{"x":1}}' + '}'.repeat(n);
    }
  });
const protoJson = fc.constantFrom(
  '{"__proto__":{"admin":true}}',
  '{"user":{"__proto__":{"admin":true},"email":"a@b.c","password":"password123"}}',
  '{"constructor":{"prototype":{"admin":true}}}',
  '{"article":{"constructor":{"prototype":{"x":1}},"title":"t","description":"d","body":"b"}}',
  '{"prototype":{"x":1},"comment":{"body":"b"}}',
  '{"user":{"username":"u","email":"a@b.c","password":"password123","__proto__":null}}',
);
const brokenJson = fc.oneof(
  fc.constantFrom(
    '{',
    '}',
    '{"user":}',
    "{'user':{}}",
    '{"user":{"email":"a@b.c",}}',
    'NaN',
    'Infinity',
    '[1,]',
    '\ufeff{"a":1}',
    '{"a":1}{"b":2}',
    '{"a":"\\x41"}',
    '{"a":"\\ud800"}',
    '{"a" 1}',
    'nul',
    'true false',
    '"unterminated',
    '{"a":1e}',
    '{"a":01}',
    '{"a":.5}',
    '{"a":+1}',
    '{"a":"\u0001"}',
    '{"a":"tab\there"}',
    '/* c */{}',
    '{"a":1}//',
    ' ',
    '\u0000',
    '{"a":-}',
  ),
  fc.tuple(anyJson, fc.nat()).map(([v, n]) => {
    const s = toJson(new Obj([['user', v]]));
    return s.slice(0, n % s.length); // truncated
  }),
  fc.string({ unit: 'binary', maxLength: 60 }),
);
const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-16',
  'APPLICATION/JSON',
  'application/jsonp',
  'application/vnd.api+json',
  '*/*',
  '',
  'application/json;;;',
  'application/xml',
  'application/json; charset=latin1',
  'application/json, text/plain',
  'json',
];
const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8') },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
);

interface Payload {
  text: string | Buffer;
  contentType: string | undefined;
}
function payloadFor(body: BodyName | undefined): fc.Arbitrary<Payload | undefined> {
  const text: fc.Arbitrary<string | Buffer> = fc.oneof(
    { weight: body ? 8 : 0, arbitrary: body ? mutatedBody(BODY_KINDS[body]).map(toJson) : fc.constant('{}') },
    { weight: 2, arbitrary: brokenJson },
    { weight: 1, arbitrary: deepJson },
    { weight: 1, arbitrary: protoJson },
    { weight: 1, arbitrary: anyJson.map(toJson) },
    // Overlong UTF-8 ("/" as C0 AF), a lone surrogate encoded as UTF-8 (ED A0 80), a stray continuation byte.
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]),
        Buffer.from('{"user":{"email":"\xed\xa0\x80@x.y","password":"p"}}', 'latin1'),
        Buffer.from([0x80, 0x7b, 0x7d]),
      ),
    },
    { weight: 1, arbitrary: fc.constant(OVERSIZED) },
  );
  const payload = fc.record({ text, contentType });
  // Routes without a body get one now and then; routes with one go without it now and then.
  return body
    ? fc.oneof({ weight: 12, arbitrary: payload }, { weight: 1, arbitrary: fc.constant(undefined) })
    : fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: payload });
}

// ---------------------------------------------------------------------------------------------
// URLs

/** Percent-encodes what a request line cannot carry, leaving "%" alone so bad escapes stay bad. */
function wire(s: string): string {
  return Buffer.from(s, 'utf8')
    .toString('latin1')
    .replace(/[^\x21-\x7e]|[#?]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

const mangled = fc.oneof(
  fc.constantFrom(
    '%zz',
    '%',
    '%E0%A4%A',
    '%00',
    'a%00b',
    '%C0%AF',
    '%ED%A0%80',
    '%FF%FE',
    '..',
    '.',
    '%2F',
    '%252F',
    '%2e%2e',
    'a'.repeat(600),
    'a'.repeat(512),
    ';',
    '*',
  ),
  anyString.map(wire),
  hugeString.map((s) => wire(s.slice(0, 1_500))),
);

interface Fixtures {
  usernames: string[];
  slugs: string[];
  commentIds: string[];
  valid: string[]; // Authorization headers of real users
  ghost: string; // a well-signed token of a user that does not exist
  bad: string[]; // Authorization headers that must be refused
}

function param(kind: 'username' | 'slug' | 'id', fx: Fixtures): fc.Arbitrary<string> {
  const real = kind === 'username' ? fx.usernames : kind === 'slug' ? fx.slugs : fx.commentIds;
  const ids = fc.constantFrom(
    '-1',
    '0',
    '1e309',
    '1.5',
    'abc',
    '99999999999999999999',
    '0x10',
    '%201',
    '9007199254740993',
    '1%00',
    '+1',
    '01',
    'Infinity',
  );
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...real).map(encodeURIComponent) },
    { weight: 3, arbitrary: mangled },
    { weight: kind === 'id' ? 3 : 0, arbitrary: ids },
  );
}

const queryString = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom(
          'limit',
          'offset',
          'tag',
          'author',
          'favorited',
          'tag[]',
          'limit[]',
          'limit[a]',
          '__proto__',
          '__proto__[limit]',
          'constructor',
          'constructor[prototype][x]',
        ),
        anyString.map(wire),
      ),
      fc.oneof(
        fc.constantFrom(
          '-1',
          '0',
          '1',
          '100',
          '101',
          '1e309',
          'NaN',
          'Infinity',
          'abc',
          '',
          ' ',
          '1.5',
          '99999999999999999999',
          '0x10',
          '%zz',
          '%00',
          '%E0%A4%A',
          'true',
          '[]',
          '{}',
        ),
        anyString.map(wire),
        hugeString.map((s) => wire(s.slice(0, 1_500))),
      ),
      fc.boolean(),
    ),
    { maxLength: 4 },
  )
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v, eq]) => (eq ? `${k}=${v}` : k)).join('&')}`));

// ---------------------------------------------------------------------------------------------
// Requests

interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
}

interface Route {
  method: string;
  path: string;
  body?: BodyName;
  weight: number;
}
// Every operation of the document except /metrics (checked against the document below). Login
// and registration are rare: each one that passes validation costs an Argon2 hash (~50 ms).
const ROUTES: Route[] = [
  { method: 'POST', path: '/api/users/login', body: 'login', weight: 1 },
  { method: 'POST', path: '/api/users', body: 'register', weight: 1 },
  { method: 'GET', path: '/api/user', weight: 4 },
  { method: 'PUT', path: '/api/user', body: 'user', weight: 4 },
  { method: 'GET', path: '/api/profiles/{username}', weight: 6 },
  { method: 'POST', path: '/api/profiles/{username}/follow', weight: 4 },
  { method: 'DELETE', path: '/api/profiles/{username}/follow', weight: 4 },
  { method: 'GET', path: '/api/articles', weight: 8 },
  { method: 'POST', path: '/api/articles', body: 'article', weight: 6 },
  { method: 'GET', path: '/api/articles/feed', weight: 4 },
  { method: 'GET', path: '/api/articles/{slug}', weight: 6 },
  { method: 'PUT', path: '/api/articles/{slug}', body: 'article', weight: 6 },
  { method: 'DELETE', path: '/api/articles/{slug}', weight: 2 },
  { method: 'POST', path: '/api/articles/{slug}/favorite', weight: 4 },
  { method: 'DELETE', path: '/api/articles/{slug}/favorite', weight: 4 },
  { method: 'GET', path: '/api/articles/{slug}/comments', weight: 4 },
  { method: 'POST', path: '/api/articles/{slug}/comments', body: 'comment', weight: 6 },
  { method: 'DELETE', path: '/api/articles/{slug}/comments/{id}', weight: 4 },
  { method: 'GET', path: '/api/tags', weight: 3 },
  { method: 'GET', path: '/healthz', weight: 1 },
  { method: 'GET', path: '/readyz', weight: 1 },
];

function urlFor(path: string, fx: Fixtures): fc.Arbitrary<string> {
  const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as 'username' | 'slug' | 'id');
  return fc
    .tuple(fc.tuple(...names.map((n) => param(n, fx))), queryString, fc.constantFrom('', '', '', '/'))
    .map(([values, query, slash]) => {
      let i = 0;
      return path.replace(/\{\w+\}/g, () => values[i++] ?? '') + slash + query;
    });
}

function authHeader(fx: Fixtures): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 4, arbitrary: fc.constantFrom(...fx.valid) },
    { weight: 1, arbitrary: fc.constant(fx.ghost) },
    { weight: 2, arbitrary: fc.constantFrom(...fx.bad) },
    { weight: 1, arbitrary: anyString.map((s) => `Token ${s}`) },
  );
}

const extraHeaders = fc.dictionary(
  fc.constantFrom(
    'accept-encoding',
    'accept',
    'if-none-match',
    'x-request-id',
    'origin',
    'x-forwarded-for',
    'content-encoding',
    'range',
    'expect',
    'cookie',
  ),
  fc.oneof(
    fc.constantFrom(
      'zstd',
      'br',
      'gzip;q=abc, *;q=-1',
      'identity;q=0',
      '*',
      'application/xml',
      '"x"',
      'W/"y"',
      '*',
      'null',
      'bytes=0-1',
      '100-continue',
      'gzip',
    ),
    anyString,
  ),
  { maxKeys: 3 },
);

function requestArb(fx: Fixtures): fc.Arbitrary<FuzzRequest> {
  const real = fc.oneof(
    ...ROUTES.map((r) => ({
      weight: r.weight,
      arbitrary: fc
        .tuple(
          urlFor(r.path, fx),
          authHeader(fx),
          payloadFor(r.body),
          extraHeaders,
          fc.constantFrom(r.method, r.method, r.method, r.method, 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
        )
        .map(([url, auth, payload, extra, method]) => build(method, url, auth, payload, extra)),
    })),
  );
  const randomPath = fc.oneof(
    fc.webPath(),
    anyString.map((s) => `/${wire(s)}`),
    fc.constantFrom(
      '/',
      '/api',
      '/api/',
      '//api//tags',
      '/api/articles/feed/x',
      '/API/TAGS',
      '/api/tags/../user',
      '/%2e%2e/',
      '/*',
      '/docs/assets/..%2f..%2fpackage.json',
      '/docs/assets/%00',
      '/api/openapi.json',
      '/docs',
      '/metrics',
      '/api/users/login/',
      '/api/articles//comments',
      '/api/profiles/',
      '/api/articles/x/comments/',
    ),
  );
  const random = fc
    .tuple(
      fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
      randomPath,
      queryString,
      authHeader(fx),
      payloadFor(undefined),
      extraHeaders,
    )
    .map(([method, path, query, auth, payload, extra]) => build(method, path + query, auth, payload, extra));
  return fc.oneof({ weight: 8, arbitrary: real }, { weight: 1, arbitrary: random });
}

function build(
  method: string,
  url: string,
  auth: string | undefined,
  payload: Payload | undefined,
  extra: Record<string, string>,
): FuzzRequest {
  const headers: Record<string, string> = { ...extra };
  if (auth !== undefined) headers.authorization = auth;
  if (payload?.contentType !== undefined) headers['content-type'] = payload.contentType;
  return { method, url, headers, ...(payload ? { payload: payload.text } : {}) };
}

/** Requests the service must refuse, every one: for the run that checks the database is untouched. */
function invalidArb(
  fx: Fixtures,
  owner: { token: string; slug: string },
  other: { token: string; commentPath: string },
): fc.Arbitrary<FuzzRequest> {
  const writes = ROUTES.filter((r) => r.method !== 'GET' && r.path.startsWith('/api/') && !r.path.startsWith('/api/users'));
  const validBody = (b: BodyName | undefined) =>
    b ? BODY_KINDS[b].valid().map((v) => toJson(new Obj([[BODY_KINDS[b].wrapper, new Obj(Object.entries(v))]]))) : fc.constant(undefined);
  const json = (text: string | undefined): Payload | undefined =>
    text === undefined ? undefined : { text, contentType: 'application/json' };
  const tok = (t: string) => `Token ${t}`;
  const existing = (path: string) =>
    path.replace('{username}', encodeURIComponent(fx.usernames[0]!)).replace('{slug}', owner.slug).replace('{id}', fx.commentIds[0]!);
  const common = fc.oneof(
    // 1. A write without a usable token: 401 whatever the body.
    fc
      .tuple(
        fc.constantFrom(...writes),
        fc.oneof(
          fc.constant(undefined),
          fc.constantFrom(...fx.bad),
          anyString.map((s) => `Token ${s}`),
        ),
      )
      .chain(([r, auth]) =>
        fc.tuple(validBody(r.body), queryString).map(([b, q]) => build(r.method, existing(r.path) + q, auth, json(b), {})),
      ),
    // 2. The owner's write with a body the schema must refuse, or that is not JSON at all.
    fc.constantFrom(...ROUTES.filter((r) => r.body && r.body !== 'login' && r.body !== 'register')).chain((r) =>
      fc
        .oneof(
          invalidBody(BODY_KINDS[r.body!]).map((v): Payload => ({ text: toJson(v), contentType: 'application/json' })),
          fc
            .oneof(brokenJson, deepJson, protoJson)
            .filter((s) => s.trim() !== '')
            .map((text): Payload => ({ text, contentType: 'application/json' })),
          fc
            .tuple(validBody(r.body), fc.constantFrom(...CONTENT_TYPES.filter((c) => !/^application\/json( *;.*)?$/i.test(c))))
            .map(([text, contentType]): Payload => ({ text: text!, contentType })),
          fc.constant<Payload>({ text: OVERSIZED, contentType: 'application/json' }),
        )
        .map((p) => build(r.method, existing(r.path), tok(owner.token), p, {})),
    ),
    // 3. Someone else's article or comment: 403.
    fc
      .tuple(fc.constantFrom('PUT', 'DELETE'), validBody('article'))
      .map(([m, b]) => build(m, `/api/articles/${owner.slug}`, tok(other.token), m === 'PUT' ? json(b) : undefined, {})),
    fc.constant(other.commentPath).map((p) => build('DELETE', p, tok(owner.token), undefined, {})),
    // 4. A well-signed token of a user that does not exist, with valid bodies: the database
    //    refuses the write (foreign keys), and nothing may remain of it.
    //    (Not DELETE: unfollowing or unfavoriting as nobody removes nothing, and is answered 200.)
    fc
      .constantFrom(
        ...writes.filter((r) => r.method !== 'DELETE'),
        ROUTES.find((r) => r.method === 'PUT' && r.path === '/api/user')!,
      )
      .chain((r) => validBody(r.body).map((b) => build(r.method, existing(r.path), fx.ghost, json(b), {}))),
    // 5. Valid token and body, but the article, profile or comment does not exist: 404.
    fc
      .tuple(fc.constantFrom(...writes.filter((r) => r.path.includes('{'))), word)
      .chain(([r, w]) =>
        validBody(r.body).map((b) =>
          build(
            r.method,
            r.path.replace('{username}', `nope-${w}`).replace('{slug}', `nope-${w}`).replace('{id}', '2147483000'),
            tok(owner.token),
            json(b),
            {},
          ),
        ),
      ),
    // 6. Path parameters the router or the schema refuses: 400, 414, 422.
    fc
      .tuple(fc.constantFrom(...writes.filter((r) => r.path.includes('{'))), fc.constantFrom('%zz', '%E0%A4%A', 'a'.repeat(600), '%00'))
      .chain(([r, bad]) => validBody(r.body).map((b) => build(r.method, r.path.replace(/\{\w+\}/g, bad), tok(owner.token), json(b), {}))),
    fc
      .constantFrom('0', '-1', '1e309', 'abc', '99999999999999999999')
      .map((id) => build('DELETE', `/api/articles/${owner.slug}/comments/${id}`, tok(owner.token), undefined, {})),
    // 7. Reads with a query the schema refuses.
    fc
      .constantFrom(
        '?limit=-1',
        '?limit=0',
        '?offset=1e309',
        '?limit=abc',
        '?offset=-1',
        '?limit=101',
        '?offset=100001',
        '?tag[]=x&limit=0',
      )
      .chain((q) =>
        fc.constantFrom('/api/articles', '/api/articles/feed').map((p) => build('GET', p + q, tok(owner.token), undefined, {})),
      ),
  );
  // 8. Rare (each costs an Argon2 hash): a registration whose username or email is taken, a
  //    login with a wrong password.
  const email = `${fx.usernames[0]}@example.com`;
  const hashing = fc.tuple(word, fc.constantFrom('taken username', 'taken email', 'wrong password')).map(([w, what]) =>
    what === 'wrong password'
      ? build('POST', '/api/users/login', undefined, json(JSON.stringify({ user: { email, password: `${w}-wrong` } })), {})
      : build(
          'POST',
          '/api/users',
          undefined,
          json(
            JSON.stringify({
              user: {
                username: what === 'taken username' ? fx.usernames[0] : `fz${w}x`,
                email: what === 'taken email' ? email : `fz${w}x@example.com`,
                password: 'password123',
              },
            }),
          ),
          {},
        ),
  );
  return fc.oneof({ weight: 60, arbitrary: common }, { weight: 1, arbitrary: hashing });
}

// ---------------------------------------------------------------------------------------------
// Answers

interface Answer {
  status: number;
  contentType: string | undefined;
  body: string;
}

interface Tally {
  requests: number;
  byClass: Record<string, number>;
  fiveXx: number;
  outsideErrorShape: number;
  nonConforming: number;
  problems: string[];
}
const newTally = (): Tally => ({ requests: 0, byClass: {}, fiveXx: 0, outsideErrorShape: 0, nonConforming: 0, problems: [] });

const shapeAjv = new Ajv2020({ strict: false });
const isErrorShape = shapeAjv.compile(ERROR_SHAPE);

/** Checks one answer; returns what is wrong with it (and counts it). */
function judge(tally: Tally, conformance: Conformance, req: FuzzRequest, res: Answer): string | undefined {
  tally.requests++;
  const cls = `${Math.floor(res.status / 100)}xx`;
  tally.byClass[cls] = (tally.byClass[cls] ?? 0) + 1;
  const what = `${req.method} ${req.url.slice(0, 200)} -> ${res.status} ${res.body.slice(0, 300)}`;
  let problem: string | undefined;
  if (res.status >= 500) {
    tally.fiveXx++;
    problem = `5xx: ${what}`;
  }
  // Every 4xx is {"errors":{"<key>":["<message>"]}} (HEAD answers carry no body by HTTP).
  if (res.status >= 400 && res.status < 500 && req.method !== 'HEAD') {
    let body: unknown;
    try {
      body = /json/.test(res.contentType ?? '') ? JSON.parse(res.body) : undefined;
    } catch {
      body = undefined;
    }
    if (!isErrorShape(body)) {
      tally.outsideErrorShape++;
      problem ??= `outside the error shape: ${what}`;
    }
  }
  const problems = conformance.check({
    method: req.method,
    url: req.url,
    status: res.status,
    contentType: res.contentType,
    body: res.body,
  });
  if (problems.length > 0) {
    tally.nonConforming++;
    problem ??= `not as documented (${problems.join('; ')}): ${what}`;
  }
  if (problem) tally.problems.push(problem);
  return problem;
}

function report(t: TestContext, name: string, tally: Tally, ms: number): void {
  t.diagnostic(
    `${name}: ${tally.requests} requests in ${(ms / 1000).toFixed(1)} s (${Math.round((tally.requests / ms) * 1000)} requests/s); by class ${JSON.stringify(tally.byClass)}`,
  );
  if (EXPLORE) for (const p of new Set(tally.problems.map((x) => x.slice(0, 400)))) t.diagnostic(`PROBLEM ${p}`);
  t.diagnostic(
    `${name}: 5xx ${tally.fiveXx}, 4xx outside the error shape ${tally.outsideErrorShape}, not as documented ${tally.nonConforming}`,
  );
}

const fcParams = (runs: number): fc.Parameters<[FuzzRequest[]]> => ({ seed: SEED, numRuns: runs });
// FUZZ_EXPLORE=1: list every problem found instead of stopping at the first (for triage).
const EXPLORE = process.env.FUZZ_EXPLORE === '1';

let unsendable = 0;
/** Through inject; undefined for a URL light-my-request cannot even parse (those go over the sockets). */
async function inject(app: App, req: FuzzRequest): Promise<Answer | undefined> {
  // light-my-request sends the path as a WHATWG URL makes it ("/a/./b" is "/a/b", "\\" is "/"),
  // and throws on some ("", "//x", "/\\"): the URL is normalized the same way here, so the checks
  // see what the service saw, and those it cannot send are left to the sockets.
  try {
    const u = new URL(req.url.startsWith('//') ? req.url.replace(/^\/+/, '/') : req.url, 'http://localhost');
    if (req.url === '' || u.host !== 'localhost') throw Object.assign(new TypeError('not a path'), { code: 'ERR_INVALID_URL' });
    req.url = u.pathname + u.search;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_INVALID_URL') throw err;
    unsendable++;
    return undefined;
  }
  // Through the server's request listener, as a connection's request goes: the request pipeline
  // (admission, the replay branch, the metrics the last test reads) sees it (test/inject.ts).
  const res = await throughServer(app, {
    method: req.method,
    url: req.url,
    headers: req.headers,
    ...(req.payload !== undefined ? { payload: req.payload } : {}),
  });
  return {
    status: res.statusCode,
    contentType: res.headers['content-type'],
    body: decoded(res.rawPayload, res.headers['content-encoding']),
  };
}

/** The body as text, decompressed as its Content-Encoding says (clients asked for zstd, br, gzip). */
function decoded(body: Buffer, encoding: unknown): string {
  if (body.length === 0) return ''; // HEAD: the encoding is announced, no body follows
  switch (encoding) {
    case 'gzip':
      return zlib.gunzipSync(body).toString('utf8');
    case 'br':
      return zlib.brotliDecompressSync(body).toString('utf8');
    case 'zstd':
      return zlib.zstdDecompressSync(body).toString('utf8');
    default:
      return body.toString('utf8');
  }
}

/** A header value Node's HTTP client accepts (it refuses control characters and code points above U+00FF). */
const latin1 = (s: string) =>
  Buffer.from(s, 'utf8')
    .toString('latin1')
    .replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');

function overSocket(base: string, agent: http.Agent, req: FuzzRequest): Promise<Answer> {
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, latin1(v)]));
  // Node's client frames a body on GET, HEAD, DELETE and OPTIONS only if told its length: without
  // it the bytes went unframed and the server read them as the next request.
  if (req.payload !== undefined) headers['content-length'] = String(Buffer.byteLength(req.payload));
  // Node's client sends the path as a WHATWG URL makes it ("/a/./b" is "/a/b"): the checks must
  // see that path, not the generated one.
  const target = new URL(`${base}${req.url}`);
  req.url = target.pathname + target.search;
  return new Promise((resolve, reject) => {
    const r = http.request(target, { method: req.method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'],
            body: decoded(Buffer.concat(chunks), res.headers['content-encoding']),
          });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      res.on('error', reject);
    });
    r.on('error', (err) =>
      reject(
        new Error(
          `${req.method} ${req.url.slice(0, 200)} ${JSON.stringify(req.headers).slice(0, 300)} body ${String(req.payload ?? '').length} bytes: ${String(err)}`,
          { cause: err },
        ),
      ),
    );
    const timer = setTimeout(() => r.destroy(new Error('no response in 30 s')), 30_000);
    r.on('close', () => clearTimeout(timer));
    r.end(req.payload);
  });
}

// ---------------------------------------------------------------------------------------------

/** Every table's row count and a checksum of its rows, to compare before and after. */
async function snapshot(t: TestApp): Promise<Record<string, { rows: number; md5: string }>> {
  const tables = await t.db.query<{ name: string }>(
    `select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`,
  );
  const out: Record<string, { rows: number; md5: string }> = {};
  for (const { name } of tables.rows) {
    const r = await t.db.query<{ rows: number; md5: string }>(
      `select count(*)::int as rows, md5(coalesce(string_agg(x::text, ',' order by x::text), '')) as md5 from "${name}" x`,
    );
    out[name] = r.rows[0]!;
  }
  return out;
}

describe('malformed input fuzzing', () => {
  let t: TestApp;
  let conformance: Conformance;
  let fx: Fixtures;
  let owner: { token: string; slug: string };
  let other: { token: string; commentPath: string };
  const crashes: string[] = [];
  const onCrash = (err: unknown) => crashes.push(String((err as Error)?.stack ?? err));

  before(async () => {
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    t = await createTestApp({
      // Generated batches run 32 requests at once on a busy machine: the bounds that refuse work
      // under overload (503/504, tested in test/timing/) would turn slowness into 5xx here, and
      // this test is about input, not load. Argon2's queue is sized for the concurrent logins.
      ARGON2_QUEUE: '1000',
      ARGON2_MAX_WAIT_MS: '60000',
      DB_ACQUIRE_TIMEOUT_MS: '60000',
      REQUEST_TIMEOUT_MS: '60000',
      // Raw requests whose headers or body never finish wait for these (408): shorter than the
      // defaults (10 s, 30 s) so that they cost the run seconds, not minutes.
      HTTP_HEADERS_TIMEOUT_MS: '2000',
      HTTP_REQUEST_TIMEOUT_MS: '4000',
    });
    const client = new Client(t.app);
    const alice = await client.register();
    const bob = await client.register();
    const carol = await client.register();
    await client.post(`/api/profiles/${bob.username}/follow`, { token: alice.token });
    const slugs: string[] = [];
    const commentIds: string[] = [];
    for (const [i, u] of [alice, alice, bob, carol].entries()) {
      const a = await client.createArticle(u.token, { tagList: [`fuzz${i}`, 'shared'] });
      slugs.push(a.slug);
      const c = await client.post(`/api/articles/${a.slug}/comments`, { token: bob.token, body: { comment: { body: `comment ${i}` } } });
      commentIds.push(String(c.body.comment.id));
      await client.post(`/api/articles/${a.slug}/favorite`, { token: carol.token });
    }
    const sign = (key: string, extra: Record<string, unknown> = {}) =>
      createSigner({ key, algorithm: 'HS256', expiresIn: 3_600_000, ...extra });
    const expired = createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256', expiresIn: 1000, clockTimestamp: Date.now() - 3_600_000 })({
      sub: '1',
    });
    const valid = alice.token;
    fx = {
      usernames: [alice.username, bob.username, carol.username, 'nobody-here'],
      slugs: [...slugs, 'no-such-article'],
      commentIds: [...commentIds, '2147483000'],
      valid: [`Token ${alice.token}`, `Token ${bob.token}`, `Bearer ${carol.token}`],
      ghost: `Token ${t.ctx.auth.sign({ id: 2_000_000_000, token_key: randomUUID() })}`,
      bad: [
        'Token',
        'Token ',
        'Token not-a-jwt',
        'Basic YWxhZGRpbjpvcGVuc2VzYW1l',
        valid,
        `Token  ${valid}x`,
        `Token ${valid.slice(0, -2)}${valid.endsWith('AA') ? 'BB' : 'AA'}`, // tampered signature
        `Token ${sign('another-secret-another-secret-another-32')({ sub: '1' })}`, // wrong key
        `Token ${expired}`,
        `Token ${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"1","exp":9999999999}').toString('base64url')}.`,
        `Token ${sign(TEST_JWT_SECRET)({ sub: 'abc' })}`,
        `Token ${sign(TEST_JWT_SECRET)({ sub: '-1' })}`,
        `Token ${sign(TEST_JWT_SECRET)({ sub: '1e309' })}`,
        `Token ${sign(TEST_JWT_SECRET)({ x: 1 })}`, // no sub
      ],
    };
    owner = { token: alice.token, slug: slugs[0]! };
    other = { token: bob.token, commentPath: `/api/articles/${slugs[0]!}/comments/${commentIds[0]!}` };
    // The document as GET /api/openapi.json serves it.
    const doc = await t.app.inject({ method: 'GET', url: '/api/openapi.json' });
    assert.equal(doc.statusCode, 200);
    conformance = createConformance(doc.json<OpenApiDocument>());
  });

  after(async () => {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    await t?.close();
  });

  test('the generators reach every documented operation', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<OpenApiDocument>();
    const documented = Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`));
    const generated = new Set(ROUTES.map((r) => `${r.method} ${r.path}`));
    assert.deepEqual(
      documented.filter((op) => op !== 'GET /metrics' && !generated.has(op)),
      [],
    );
  });

  test(`${INVALID_RUNS * BATCH} requests designed to be rejected get 4xx in the error shape and leave the database unchanged`, async (ctx) => {
    const before = await snapshot(t);
    const tally = newTally();
    const notRejected: string[] = [];
    const started = performance.now();
    ctx.diagnostic(`fast-check seed ${SEED} (FUZZ_SEED=${SEED} replays it)`);
    await fc.assert(
      fc.asyncProperty(fc.array(invalidArb(fx, owner, other), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const answers = await Promise.all(batch.map((r) => inject(t.app, r)));
        answers.forEach((a, i) => {
          const req = batch[i]!;
          if (!a) throw new Error(`inject could not send ${req.url}`);
          const problem = judge(tally, conformance, req, a);
          if (problem && !EXPLORE) throw new Error(problem);
          if (a.status < 400 || a.status >= 500) {
            notRejected.push(`${req.method} ${req.url} -> ${a.status} ${a.body.slice(0, 200)}`);
            throw new Error(`not rejected: ${notRejected.at(-1)}`);
          }
        });
      }),
      fcParams(INVALID_RUNS),
    );
    const ms = performance.now() - started;
    const afterwards = await snapshot(t);
    report(ctx, 'only-invalid (inject)', tally, ms);
    ctx.diagnostic(
      `tables compared: ${Object.entries(before)
        .map(([name, s]) => `${name} ${s.rows} rows`)
        .join(', ')}`,
    );
    assert.deepEqual(notRejected, []);
    assert.equal(tally.fiveXx, 0);
    assert.equal(tally.outsideErrorShape, 0);
    assert.equal(tally.nonConforming, 0);
    assert.ok(tally.requests >= INVALID_RUNS * BATCH, `${tally.requests}`);
    // Rows and their contents, table by table (sequences aside: PostgreSQL never rolls them
    // back, so a refused insert may use up an id, which changes no data).
    assert.deepEqual(afterwards, before);
    assert.deepEqual(crashes, []);
  });

  test(`${INJECT_RUNS * BATCH} mixed requests through inject: no 5xx, every 4xx in the error shape, every answer as documented`, async (ctx) => {
    const tally = newTally();
    const started = performance.now();
    ctx.diagnostic(`fast-check seed ${SEED}`);
    await fc.assert(
      fc.asyncProperty(fc.array(requestArb(fx), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const answers = await Promise.all(batch.map((r) => inject(t.app, r)));
        answers.forEach((a, i) => {
          if (!a) return;
          const problem = judge(tally, conformance, batch[i]!, a);
          if (problem && !EXPLORE) throw new Error(problem);
        });
      }),
      fcParams(INJECT_RUNS),
    );
    report(ctx, 'mixed (inject)', tally, performance.now() - started);
    ctx.diagnostic(`mixed (inject): ${unsendable} generated URLs light-my-request cannot parse, left to the sockets`);
    assert.equal(tally.fiveXx, 0);
    assert.equal(tally.outsideErrorShape, 0);
    assert.equal(tally.nonConforming, 0);
    // The mix must exercise both sides, or it proves little: some requests succeed.
    assert.ok((tally.byClass['2xx'] ?? 0) > tally.requests * 0.05, JSON.stringify(tally.byClass));
    assert.ok((tally.byClass['4xx'] ?? 0) > tally.requests * 0.5, JSON.stringify(tally.byClass));
    assert.equal((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    assert.deepEqual(crashes, []);
  });

  describe('over real sockets', () => {
    let base: string;
    const probe = { ok: 0, failed: [] as string[], stop: false, done: Promise.resolve() };
    before(async () => {
      base = await listen(t);
      // /healthz on a connection of its own, all along: the server keeps answering.
      probe.done = (async () => {
        while (!probe.stop) {
          try {
            const res = await request(`${base}/healthz`, { timeoutMs: 5_000 });
            if (res.status === 200) probe.ok++;
            else probe.failed.push(`status ${res.status}`);
          } catch (err) {
            probe.failed.push(String(err));
          }
          await sleep(100);
        }
      })();
    });
    after(async () => {
      probe.stop = true;
      await probe.done;
    });

    test(`${SOCKET_RUNS * BATCH} mixed requests over keep-alive connections`, async (ctx) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      const tally = newTally();
      const started = performance.now();
      const connections = new Set<unknown>();
      agent.on('free', (socket) => connections.add(socket));
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(requestArb(fx), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
            const answers = await Promise.all(
              batch.map((r) =>
                overSocket(base, agent, r).catch((err: Error) => {
                  if (!EXPLORE) throw err;
                  return { status: 599, contentType: undefined, body: err.message };
                }),
              ),
            );
            answers.forEach((a, i) => {
              const problem = judge(tally, conformance, batch[i]!, a);
              if (problem && !EXPLORE) throw new Error(problem);
            });
          }),
          // Another seed than the inject run's, so these are other requests.
          { ...fcParams(SOCKET_RUNS), seed: SEED + 1 },
        );
      } finally {
        agent.destroy();
      }
      report(ctx, 'mixed (keep-alive sockets)', tally, performance.now() - started);
      ctx.diagnostic(`${connections.size} connections carried them; /healthz probe: ${probe.ok} ok, ${probe.failed.length} failed`);
      assert.equal(tally.fiveXx, 0);
      assert.equal(tally.outsideErrorShape, 0);
      assert.equal(tally.nonConforming, 0);
      // Connections were reused (the server closes one after some errors, so not all 8 live on).
      assert.ok(tally.requests / connections.size >= 4, `${tally.requests} requests on ${connections.size} connections`);
      assert.deepEqual(probe.failed, []);
      assert.deepEqual(crashes, []);
    });

    test(`${RAW_RUNS * RAW_BATCH} raw TCP requests no HTTP client would send`, async (ctx) => {
      const port = Number(new URL(base).port);
      const tally = { connections: 0, answered: 0, silent: 0, byStatus: {} as Record<number, number>, problems: [] as string[] };
      const started = performance.now();
      await fc.assert(
        fc.asyncProperty(fc.array(rawArb(fx), { minLength: RAW_BATCH, maxLength: RAW_BATCH }), async (batch) => {
          const results = await Promise.all(batch.map((r) => sendRaw(port, r)));
          results.forEach((text, i) => {
            tally.connections++;
            const problem = judgeRaw(text, batch[i]!);
            if (text.length === 0) tally.silent++;
            else {
              tally.answered++;
              const status = Number(text.slice(9, 12));
              tally.byStatus[status] = (tally.byStatus[status] ?? 0) + 1;
            }
            if (problem) {
              tally.problems.push(problem);
              if (!EXPLORE) throw new Error(problem);
            }
          });
        }),
        { ...fcParams(RAW_RUNS), seed: SEED + 2 } as fc.Parameters<[RawRequest[]]>,
      );
      const ms = performance.now() - started;
      ctx.diagnostic(
        `raw TCP: ${tally.connections} connections in ${(ms / 1000).toFixed(1)} s; answered ${tally.answered} (by status ${JSON.stringify(tally.byStatus)}), closed without an answer ${tally.silent} (truncated or reset by us)`,
      );
      if (EXPLORE) for (const p of tally.problems) ctx.diagnostic(`PROBLEM ${p.slice(0, 400)}`);
      ctx.diagnostic(`/healthz probe so far: ${probe.ok} ok, ${probe.failed.length} failed`);
      assert.deepEqual(tally.problems, []);
      assert.ok(tally.answered > tally.connections / 2, `${tally.answered} of ${tally.connections} answered`);
      assert.deepEqual(probe.failed, []);
      assert.ok(probe.ok > 0);
      assert.deepEqual(crashes, []);
    });
  });

  test("no request of the whole run was answered with a 5xx (the service's own metrics), and nothing crashed", async (ctx) => {
    // Counted by the service itself, so it includes requests whose client went away before the
    // answer (truncated bodies, resets) and which no tally above could see.
    const metrics = await t.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(metrics.statusCode, 200);
    const count = (cls: string) =>
      metrics.body
        .split('\n')
        .filter((l) => l.startsWith('http_server_request_duration_seconds_count{') && l.includes(`status_class="${cls}"`))
        .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    ctx.diagnostic(
      `service metrics: 2xx ${count('2xx')}, 4xx ${count('4xx')}, 5xx ${count('5xx')}; uncaught exceptions and unhandled rejections: ${crashes.length}`,
    );
    assert.ok(count('4xx') > INJECT_RUNS * BATCH * 0.5, `${count('4xx')}`);
    assert.equal(count('5xx'), 0);
    assert.deepEqual(crashes, []);
  });
});

// ---------------------------------------------------------------------------------------------
// Raw TCP

interface RawRequest {
  kind: string;
  bytes: Buffer;
  /** After writing: wait for the answer, half-close (truncated body), or reset. */
  then: 'wait' | 'end' | 'reset';
}

function rawArb(fx: Fixtures): fc.Arbitrary<RawRequest> {
  const crlf = '\r\n';
  const head = (line: string, headers: string[]) =>
    Buffer.from(`${line}${crlf}${headers.join(crlf)}${headers.length ? crlf : ''}${crlf}`, 'latin1');
  const H = ['Host: x', 'Connection: close'];
  const json = (s: string) => [...H, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(s)}`];
  const path = fc.oneof(fc.constantFrom(...ROUTES.map((r) => r.path)), fc.webPath());
  const bytes = (n: number) => fc.uint8Array({ minLength: 1, maxLength: n }).map((a) => Buffer.from(a));
  const req = (kind: string, b: fc.Arbitrary<Buffer>, then: RawRequest['then'] = 'wait') =>
    b.map((x): RawRequest => ({ kind, bytes: x, then }));
  return fc.oneof(
    // Content-Length larger than what is sent, then close (half-close: the server sees the end).
    req(
      'truncated body',
      fc.tuple(fc.constantFrom('/api/users', '/api/users/login', '/api/articles'), fc.nat({ max: 30 })).map(([p, n]) => {
        const body = '{"user":{"email":"a@b.c","password":"password123"}}';
        return Buffer.concat([
          head(`POST ${p} HTTP/1.1`, [...H, 'Content-Type: application/json', `Content-Length: ${body.length + 1 + n * 100}`]),
          Buffer.from(body.slice(0, n)),
        ]);
      }),
      'end',
    ),
    req(
      'truncated body, reset',
      fc
        .nat({ max: 40 })
        .map((n) =>
          Buffer.concat([
            head('PUT /api/user HTTP/1.1', [
              ...H,
              `Authorization: ${fx.valid[0]}`,
              'Content-Type: application/json',
              'Content-Length: 5000',
            ]),
            Buffer.from('{"user":{"bio":"'.slice(0, n)),
          ]),
        ),
      'reset',
    ),
    req(
      'truncated headers',
      fc
        .constantFrom('GET /api/tags HTTP/1.1\r\nHost: x\r\n', 'GET /api/ta', 'POST /api/users HTTP/1.1\r\nContent-Le')
        .map((s) => Buffer.from(s)),
      'end',
    ),
    // Over Node's 16 KiB header limit: 431.
    req(
      'oversized header',
      fc.constantFrom(17_000, 40_000, 80_000).map((n) => head('GET /api/tags HTTP/1.1', [...H, `X-Big: ${'a'.repeat(n)}`])),
    ),
    req(
      'many headers',
      fc
        .constantFrom(2_000, 5_000)
        .map((n) => head('GET /api/tags HTTP/1.1', [...H, ...Array.from({ length: n }, (_, i) => `X-H${i}: v`)])),
    ),
    req(
      'garbage request line',
      fc
        .oneof(
          bytes(200),
          fc.string({ unit: 'binary', maxLength: 80 }).map((s) => Buffer.from(s)),
        )
        .map((b) => Buffer.concat([b, Buffer.from('\r\n\r\n')])),
    ),
    req(
      'random method',
      fc.tuple(fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,20}$/), path).map(([m, p]) => head(`${m} ${p} HTTP/1.1`, H)),
    ),
    req(
      'bad request line',
      fc
        .constantFrom(
          'GET',
          'GET /api/tags',
          'GET /api/tags HTTP/9.9',
          'GET  /api/tags  HTTP/1.1',
          'GET /api/tags HTTP/1.1 extra',
          'GET api/tags HTTP/1.1',
          'GET http://evil/api/tags HTTP/1.1',
          '/api/tags HTTP/1.1',
          'GET /api/tags HTTP/1.0',
          ' GET /api/tags HTTP/1.1',
        )
        .map((l) => head(l, H)),
    ),
    req(
      'bad percent-encoding',
      fc
        .constantFrom('%zz', '%', '%E0%A4%A', '%C0%AF', '%ED%A0%80', '%FF', '%2', '%%')
        .chain((bad) => fc.constantFrom(`/api/profiles/${bad}`, `/api/articles/${bad}/comments`, `/api/articles?tag=${bad}`, `/api/${bad}`))
        .map((p) => head(`GET ${p} HTTP/1.1`, H)),
    ),
    req(
      'NUL byte',
      fc.constantFrom(
        head('GET /api/profiles/a\u0000b HTTP/1.1', H),
        head('GET /api/tags HTTP/1.1', [...H, 'X-Nul: a\u0000b']),
        head('GET /api/tags HTTP/1.1', [...H, 'X-\u0000: b']),
        Buffer.from('GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\u0000\r\n\r\n', 'latin1'),
        Buffer.concat([
          head('POST /api/users/login HTTP/1.1', json('{"user":{"email":"a\\u0000@b.c","password":"p"}}')),
          Buffer.from('{"user":{"email":"a\\u0000@b.c","password":"p"}}'),
        ]),
        Buffer.concat([
          head('POST /api/users/login HTTP/1.1', [...H, 'Content-Type: application/json', 'Content-Length: 4']),
          Buffer.from([0x7b, 0x00, 0x00, 0x7d]),
        ]),
      ),
    ),
    req(
      'bad framing',
      fc.constantFrom(
        head('POST /api/users HTTP/1.1', [...H, 'Content-Length: abc']),
        head('POST /api/users HTTP/1.1', [...H, 'Content-Length: -1']),
        head('POST /api/users HTTP/1.1', [...H, 'Content-Length: 1', 'Content-Length: 2']),
        head('POST /api/users HTTP/1.1', [...H, 'Content-Length: 99999999999999999999']),
        Buffer.from(
          'POST /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        ),
        Buffer.from(
          'POST /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
        ),
        Buffer.from('POST /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'),
        head('GET /api/tags HTTP/1.1', ['Connection: close']), // no Host
        head('GET /api/tags HTTP/1.1', [...H, 'Host: y']), // two Hosts
        head('GET /api/tags HTTP/1.1', [...H, 'Bad Header: x']),
        head('GET /api/tags HTTP/1.1', [...H, ' folded: x']),
        Buffer.from('GET /api/tags HTTP/1.1\nHost: x\nConnection: close\n\n'), // bare LF
        Buffer.from('GET /api/tags HTTP/1.1\rHost: x\r\r'), // bare CR
      ),
    ),
    req('reset at once', bytes(100), 'reset'),
  );
}

/** Writes the bytes; returns everything the server sent before the connection closed. */
function sendRaw(port: number, r: RawRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${r.kind}: the server neither answered nor closed within 15 s`));
    }, 15_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined); // a reset is an answer too: what was received counts
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.on('connect', () => {
      socket.write(r.bytes);
      if (r.then === 'end') socket.end();
      else if (r.then === 'reset') socket.resetAndDestroy();
    });
  });
}

/** Reads a single HTTP/1.1 response (Content-Length or chunked). */
function parseResponse(text: string): { status: number; headers: string; body: string } | undefined {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
  const end = text.indexOf('\r\n\r\n');
  if (!m || end === -1) return undefined;
  const headers = text.slice(0, end).toLowerCase();
  let body = text.slice(end + 4);
  if (/\ntransfer-encoding: chunked/.test(headers)) {
    let out = '';
    for (;;) {
      const nl = body.indexOf('\r\n');
      const size = parseInt(body.slice(0, nl), 16);
      if (!(size > 0)) break;
      out += body.slice(nl + 2, nl + 2 + size);
      body = body.slice(nl + 2 + size + 2);
    }
    body = out;
  } else {
    const length = /\ncontent-length: (\d+)/.exec(headers);
    if (length) body = body.slice(0, Number(length[1]));
  }
  return { status: Number(m[1]), headers, body };
}

function judgeRaw(text: string, r: RawRequest): string | undefined {
  if (text.length === 0) return undefined; // closed without an answer: reset, or the body never came
  const res = parseResponse(text);
  const what = `${r.kind}: ${JSON.stringify(r.bytes.toString('latin1').slice(0, 150))} -> ${JSON.stringify(text.slice(0, 300))}`;
  if (!res) return `not an HTTP response: ${what}`;
  if (res.status >= 500) return `5xx: ${what}`;
  if (res.status >= 400 && !/^(head|HEAD) /.test(r.bytes.toString('latin1'))) {
    // Compressed error bodies are not expected: raw requests send no Accept-Encoding.
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      body = undefined;
    }
    if (!isErrorShape(body)) return `outside the error shape: ${what}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------

describe('the response conformance check', () => {
  let t: TestApp;
  let conformance: Conformance;
  before(async () => {
    t = await createTestApp();
    conformance = createConformance((await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<OpenApiDocument>());
  });
  after(() => t?.close());

  const article = {
    slug: 'a',
    title: 'A',
    description: 'd',
    body: 'b',
    tagList: ['x'],
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    favorited: false,
    favoritesCount: 0,
    author: { username: 'u', bio: null, image: null, following: false },
  };

  test('accepts a body as documented, and refuses one with a field missing, of the wrong type or format', async () => {
    assert.deepEqual(conformance.validate('GET /api/articles/{slug}', 200, { article }), []);
    const { favoritesCount: _, ...withoutCount } = article;
    assert.notDeepEqual(conformance.validate('GET /api/articles/{slug}', 200, { article: withoutCount }), []);
    assert.notDeepEqual(conformance.validate('GET /api/articles/{slug}', 200, { article: { ...article, favoritesCount: '0' } }), []);
    assert.notDeepEqual(conformance.validate('GET /api/articles/{slug}', 200, { article: { ...article, createdAt: 'yesterday' } }), []);
    assert.notDeepEqual(
      conformance.validate('GET /api/articles/{slug}', 200, { article: { ...article, author: { ...article.author, bio: 3 } } }),
      [],
    );
    assert.notDeepEqual(conformance.validate('GET /api/articles', 200, { articles: [article] }), []); // articlesCount missing
  });

  test('refuses an undocumented success status, an error outside the error shape, and a body on a 204', async () => {
    const sample = { method: 'GET', url: '/api/tags', contentType: 'application/json', body: '{"tags":[]}' };
    assert.deepEqual(conformance.check({ ...sample, status: 200 }), []);
    assert.notDeepEqual(conformance.check({ ...sample, status: 201 }), []);
    assert.notDeepEqual(conformance.check({ ...sample, status: 200, body: '{"tags":"x"}' }), []);
    assert.notDeepEqual(conformance.check({ ...sample, url: '/api/articles/x', status: 404, body: '{"error":"Not Found"}' }), []);
    assert.notDeepEqual(conformance.check({ ...sample, url: '/nowhere', status: 404, body: '{"errors":{"route":"x"}}' }), []);
    assert.deepEqual(conformance.check({ ...sample, url: '/nowhere', status: 404, body: '{"errors":{"route":["not found"]}}' }), []);
    assert.notDeepEqual(conformance.check({ ...sample, method: 'DELETE', url: '/api/articles/x', status: 204, body: '{}' }), []);
    assert.equal(conformance.operationOf('GET', '/api/articles/feed?limit=1'), 'GET /api/articles/feed');
    assert.equal(conformance.operationOf('DELETE', '/api/articles/x/comments/3/'), 'DELETE /api/articles/{slug}/comments/{id}');
  });

  test("Client.request (test/harness.ts) fails a test whose response does not match the app's document", async () => {
    // An app whose document promises {"n": integer} and whose handler sends a string: every test
    // of the suite goes through this same check, so a service doing this would fail them.
    const app = Fastify();
    await app.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 'x', version: '1' } } });
    const schema = { response: { 200: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } } };
    app.get('/good', { schema }, async () => ({ n: 1 }));
    // Sent as text, bypassing the serializer: what a handler bug or a hand-written reply could do.
    app.get('/bad', { schema }, async (_request, reply) => reply.type('application/json').send('{"n":"one"}'));
    await app.ready();
    try {
      const client = new Client(app);
      assert.equal((await client.get('/good')).body.n, 1);
      await assert.rejects(client.get('/bad'), /does not conform to GET \/api\/openapi\.json[\s\S]*\/n must be integer/);
    } finally {
      await app.close();
    }
  });
});
