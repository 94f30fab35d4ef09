// Boots the real application against a fresh database for one test file, and gives tests typed
// helpers that speak HTTP (through Fastify's inject: the full request pipeline, no socket).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { buildApp } from '../src/app.ts';
import { loadConfig, type Config } from '../src/config.ts';
import { closeContext, createContext } from '../src/app-context.ts';
import type { App, AppContext } from '../src/context.ts';
import { listMigrations } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { conformanceOf } from './openapi-responses.ts';
import { throughServer } from './inject.ts';

export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123';

function serverUrl(): string {
  const url = process.env.CONDUIT_TEST_SERVER_URL;
  if (!url) throw new Error('run the tests with `npm test` (test/global-setup.ts provides the database)');
  return url;
}

export function databaseUrl(name: string): string {
  const u = new URL(serverUrl());
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A new database: migrated (copied from the template) unless `empty`. */
export async function createDatabase(opts: { empty?: boolean } = {}): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const template = opts.empty ? 'template1' : process.env.CONDUIT_TEST_TEMPLATE;
  await admin((c) => c.query(`create database ${name} template ${template}`));
  return {
    name,
    url: databaseUrl(name),
    drop: () => admin((c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

export interface TestApp {
  app: App;
  db: Pool;
  ctx: AppContext;
  config: Config;
  close(): Promise<void>;
}

export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const database = await createDatabase();
  const t = await createTestAppOn(database.url, env);
  return {
    ...t,
    close: async () => {
      await t.close();
      await database.drop();
    },
  };
}

/**
 * An app on an existing database (several apps on one database are several instances of the
 * service); close() leaves the database in place.
 */
export async function createTestAppOn(url: string, env: Record<string, string> = {}): Promise<TestApp> {
  const config = loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: TEST_JWT_SECRET,
    DATABASE_URL: url,
    // Tests register dozens of users from one address on a machine busy running other test
    // files: rate limits and load shedding would trip on that. The tests of those features
    // turn them on explicitly.
    RATE_LIMIT: 'off',
    SHED: 'off',
    // Tests scrape /metrics before and after what they measure: a fresh render each time. The
    // snapshot's own test sets it.
    METRICS_SNAPSHOT_MS: '0',
    // Test files register users concurrently from one address; the per-address share of the
    // hashing slots has its own test.
    ARGON2_PER_CLIENT: '0',
    // Test files share one Redis: each database gets its own cache namespace, so an app never
    // reads an entry another file's database produced.
    CACHE_REDIS_PREFIX: `conduit-test:${new URL(url).pathname.slice(1)}:cache:`,
    ...env,
  });
  const db = createPool(url, config);
  const ctx = await createContext({ config, db, databaseUrl: url, migrations: await listMigrations() });
  const app = await buildApp(ctx);
  await app.ready();
  return {
    app,
    db,
    ctx,
    config,
    close: async () => {
      await app.close();
      await closeContext(ctx);
      // A test may have ended the pool itself (to simulate the database going away).
      if (!db.ended) await db.end();
    },
  };
}

export interface Res<T = any> {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: T;
  text: string;
}

export interface RequestOptions {
  token?: string | undefined;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Typed HTTP helpers over one app. */
export class Client {
  #app: App;
  #seq = 0;
  constructor(app: App) {
    this.#app = app;
  }

  async request<T = any>(method: string, url: string, opts: RequestOptions = {}): Promise<Res<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Token ${opts.token}`;
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await throughServer(this.#app, { method: method, url, headers, ...(payload !== undefined ? { payload } : {}) });
    let body: T = undefined as T;
    if (res.body.length > 0 && String(res.headers['content-type'] ?? '').includes('json')) body = JSON.parse(res.body) as T;
    // Every response a test sees must be what the service's own OpenAPI document promises for
    // that operation and status (test/openapi-responses.ts): a 2xx against its response schema,
    // an error against its documented error schema. A mismatch fails the test that made the call.
    const problems = conformanceOf(this.#app).check({
      method,
      url,
      status: res.statusCode,
      contentType: res.headers['content-type'],
      body: res.body,
    });
    if (problems.length > 0)
      throw new Error(`response does not conform to GET /api/openapi.json:\n${problems.join('\n')}\nbody: ${res.body.slice(0, 500)}`);
    return { status: res.statusCode, headers: res.headers, body, text: res.body };
  }

  get = <T = any>(url: string, opts?: RequestOptions) => this.request<T>('GET', url, opts);
  post = <T = any>(url: string, opts?: RequestOptions) => this.request<T>('POST', url, opts);
  put = <T = any>(url: string, opts?: RequestOptions) => this.request<T>('PUT', url, opts);
  delete = <T = any>(url: string, opts?: RequestOptions) => this.request<T>('DELETE', url, opts);

  /** Registers a new user with unique name and email; returns the user (with token). */
  async register(overrides: Partial<{ username: string; email: string; password: string }> = {}) {
    const n = `${process.pid}${++this.#seq}${randomBytes(3).toString('hex')}`;
    const user = { username: `user${n}`, email: `user${n}@example.com`, password: 'password123', ...overrides };
    const res = await this.post('/api/users', { body: { user } });
    if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`);
    return {
      ...(res.body.user as { username: string; email: string; token: string; bio: string | null; image: string | null }),
      password: user.password,
    };
  }

  async createArticle(token: string, overrides: Partial<{ title: string; description: string; body: string; tagList: string[] }> = {}) {
    const article = { title: `Title ${++this.#seq}`, description: 'A description', body: 'The body', ...overrides };
    const res = await this.post('/api/articles', { token, body: { article } });
    if (res.status !== 201) throw new Error(`create article failed: ${res.status} ${res.text}`);
    return res.body.article as ArticleJson;
  }
}

export interface ProfileJson {
  username: string;
  bio: string | null;
  image: string | null;
  following: boolean;
}

export interface ArticleJson {
  slug: string;
  title: string;
  description: string;
  body?: string;
  tagList: string[];
  createdAt: string;
  updatedAt: string;
  favorited: boolean;
  favoritesCount: number;
  author: ProfileJson;
}
