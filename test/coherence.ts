// The machinery of the cache coherence tests (src/cache/coherence*.test.ts): three instances
// of the service on one database (A and B cached, C with CACHE=off: the truth), the commands
// fast-check generates, and the checks after each of them.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import type { DeclaredRoute } from '../src/cache/response-cache.ts';
import { createDatabase, createTestAppOn, type TestApp } from './harness.ts';
import { throughServer } from './inject.ts';

// Small pools, so that slugs, tags and usernames collide and get reused.
const TITLES = ['Alpha', 'Beta', 'Gamma'];
const TAGS = ['red', 'green', 'blue', 'gold'];
const NAMES = ['ann', 'bob', 'cy', 'dee', 'eve'];
const USERS = 3;
const POLL_MS = 5;
const CONVERGE_WITHIN_MS = 2000;
const TIME_LIMIT_MS = 40_000;

interface Reply {
  status: number;
  body: unknown;
}

interface User {
  id: number;
  token: string;
  username: string;
}

/** What the test knows about the data, to aim commands at things that exist (or did). */
interface Model {
  users: User[];
  slugs: string[];
  gone: string[];
  comments: { slug: string; id: number }[];
  formerNames: string[];
}

interface Instance {
  name: string;
  t: TestApp;
  /** Bus messages this instance published (with at least one tag). */
  published: number;
  /** When the last publish started, until the other instance has received it. */
  publishedAt: number | undefined;
}

interface Cluster {
  a: Instance;
  b: Instance;
  c: Instance;
  busDelays: number[];
  convergeDelays: number[];
  staleReads: number;
  writes: number;
  reads: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function send(i: Instance, method: string, url: string, token?: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Token ${token}`;
  const res = await throughServer(i.t.app, { method: method, url, headers, ...(body === undefined ? {} : { payload: body as object }) });
  return { status: res.statusCode, body: res.body.length > 0 ? JSON.parse(res.body) : undefined };
}

type Viewer = number; // -1: anonymous, else an index into model.users

function tokenOf(model: Model, viewer: Viewer): string | undefined {
  return viewer < 0 ? undefined : model.users[viewer]!.token;
}

function differs(x: Reply, y: Reply): boolean {
  try {
    assert.deepStrictEqual(x, y);
    return false;
  } catch {
    return true;
  }
}

async function expectSame(cluster: Cluster, i: Instance, url: string, token: string | undefined, why: string): Promise<void> {
  const [got, truth] = [await send(i, 'GET', url, token), await send(cluster.c, 'GET', url, token)];
  cluster.reads++;
  assert.deepStrictEqual(got, truth, `${why}: GET ${url} on ${i.name} as ${token ? 'a user' : 'anonymous'} differs from CACHE=off`);
}

function pick<T>(xs: readonly T[], n: number): T | undefined {
  return xs.length === 0 ? undefined : xs[n % xs.length];
}

/** A live slug most of the time; now and then one that was deleted or renamed away. */
function slugAt(model: Model, n: number): string {
  if (n % 7 === 6 && model.gone.length > 0) return pick(model.gone, n)!;
  return pick(model.slugs, n) ?? pick(model.gone, n) ?? 'no-such-article';
}

/** What a write's check reads around: the writer, the slugs and tags it touched, former names. */
interface Probe {
  writer: User;
  slugs: readonly string[];
  tags: readonly string[];
  names: readonly string[];
  /** The reads are signed in (routes that need a token are probed only then). */
  signedIn: boolean;
}

type ReadSpec = { kind: 'read'; what: string; n: number; tag: number; limit: number; offset: number };

const page = (s: ReadSpec) => `limit=${[1, 2, 3, 20][s.limit % 4]}&offset=${[0, 1, 2, 5][s.offset % 4]}`;
const names = (model: Model) => [...model.users.map((u) => u.username), ...model.formerNames];

/**
 * The model of every cached route, by its template (as declared with cachedGet,
 * src/cache/cached-read.ts): the URLs checked after a write (`probe`) and the URL a read command
 * picks (`pick`). The test enumerates the declared routes (ResponseCache.routes) and fails on one
 * that is not here, and read commands choose among these: a new cached route is checked by this
 * model once it has an entry, and fails the test until then.
 */
export const MODELLED: Record<string, { probe: (p: Probe) => string[]; pick: (model: Model, s: ReadSpec) => string }> = {
  '/api/articles': {
    probe: (p) => [
      '/api/articles',
      '/api/articles?limit=2&offset=1',
      `/api/articles?author=${p.writer.username}`,
      `/api/articles?favorited=${p.writer.username}`,
      ...(p.tags.length ? p.tags : [TAGS[0]!]).map((tag) => `/api/articles?tag=${tag}`),
      ...p.names.map((name) => `/api/articles?author=${name}`),
    ],
    pick: (model, s) => {
      const filters: string[] = [];
      if (s.n % 4 === 1) filters.push(`tag=${TAGS[s.tag % TAGS.length]}`);
      if (s.n % 5 === 2) filters.push(`author=${pick(names(model), s.n)}`);
      if (s.n % 3 === 0) filters.push(`favorited=${pick(names(model), s.n + 1)}`);
      return `/api/articles?${[...filters, page(s)].join('&')}`;
    },
  },
  '/api/articles/feed': {
    probe: (p) => (p.signedIn ? ['/api/articles/feed'] : []),
    pick: (_, s) => `/api/articles/feed?${page(s)}`,
  },
  '/api/articles/:slug': {
    probe: (p) => p.slugs.map((slug) => `/api/articles/${slug}`),
    pick: (model, s) => `/api/articles/${slugAt(model, s.n)}`,
  },
  '/api/articles/:slug/comments': {
    probe: (p) => p.slugs.map((slug) => `/api/articles/${slug}/comments`),
    pick: (model, s) => `/api/articles/${slugAt(model, s.n)}/comments`,
  },
  '/api/profiles/:username': {
    probe: (p) => [p.writer.username, ...p.names].map((name) => `/api/profiles/${name}`),
    pick: (model, s) => `/api/profiles/${pick(names(model), s.n)}`,
  },
  '/api/tags': { probe: () => ['/api/tags'], pick: () => '/api/tags' },
  '/api/user': { probe: (p) => (p.signedIn ? ['/api/user'] : []), pick: () => '/api/user' },
};

/** The declared cached routes this model does not exercise (the test requires none). */
export function unmodelled(declared: readonly DeclaredRoute[]): string[] {
  return declared.filter((r) => !Object.hasOwn(MODELLED, r.url)).map((r) => `${r.method} ${r.url}`);
}

type Spec =
  | { kind: 'create'; title: number; tags: number[] }
  | { kind: 'update'; article: number; change: 'title' | 'body' | 'tags'; title: number; tags: number[] }
  | { kind: 'delete'; article: number }
  | { kind: 'favorite' | 'unfavorite'; article: number }
  | { kind: 'follow' | 'unfollow'; target: number }
  | { kind: 'comment'; article: number }
  | { kind: 'uncomment'; comment: number }
  | { kind: 'profile'; change: 'bio' | 'image' | 'username'; value: number }
  | ReadSpec;

class Step implements fc.AsyncCommand<Model, Cluster> {
  #done = '';
  readonly spec: Spec;
  readonly instance: 0 | 1;
  readonly user: number;
  readonly viewer: Viewer;
  constructor(spec: Spec, instance: 0 | 1, user: number, viewer: Viewer) {
    this.spec = spec;
    this.instance = instance;
    this.user = user;
    this.viewer = viewer;
  }

  check(): boolean {
    return true;
  }

  toString(): string {
    const who = this.spec.kind === 'read' ? (this.viewer < 0 ? 'anon' : `u${this.viewer}`) : `u${this.user}`;
    return `${'AB'[this.instance]}:${who}:${JSON.stringify(this.spec)}${this.#done ? ` => ${this.#done}` : ''}`;
  }

  async run(model: Model, cluster: Cluster): Promise<void> {
    const [self, other] = this.instance === 0 ? [cluster.a, cluster.b] : [cluster.b, cluster.a];
    const s = this.spec;
    if (s.kind === 'read') return this.#read(s, model, cluster, self);
    const writer = model.users[this.user]!;
    const token = writer.token;
    let slug: string | undefined;
    // Slugs to probe besides `slug` (the old one after a rename).
    const slugs: string[] = [];
    let tags: string[] = [];
    const names: string[] = [];
    let res: Reply;
    switch (s.kind) {
      case 'create': {
        tags = s.tags.map((t) => TAGS[t]!);
        res = await send(self, 'POST', '/api/articles', token, {
          article: { title: TITLES[s.title], description: 'd', body: 'b', tagList: tags },
        });
        if (res.status === 201) model.slugs.push((slug = (res.body as { article: { slug: string } }).article.slug));
        break;
      }
      case 'update': {
        slug = slugAt(model, s.article);
        const patch =
          s.change === 'title'
            ? { title: TITLES[s.title] }
            : s.change === 'body'
              ? { body: `body ${s.title}` }
              : { tagList: s.tags.map((t) => TAGS[t]!) };
        const old = await send(cluster.c, 'GET', `/api/articles/${slug}`);
        if (old.status === 200) tags = (old.body as { article: { tagList: string[] } }).article.tagList;
        res = await send(self, 'PUT', `/api/articles/${slug}`, token, { article: patch });
        if (res.status === 200) {
          const next = (res.body as { article: { slug: string; tagList: string[] } }).article;
          tags = [...new Set([...tags, ...next.tagList])];
          if (next.slug !== slug) {
            model.slugs = model.slugs.map((x) => (x === slug ? next.slug : x));
            model.comments = model.comments.map((c) => (c.slug === slug ? { ...c, slug: next.slug } : c));
            model.gone.push(slug);
            slugs.push(slug);
            slug = next.slug;
          }
        }
        break;
      }
      case 'delete': {
        slug = slugAt(model, s.article);
        const old = await send(cluster.c, 'GET', `/api/articles/${slug}`);
        if (old.status === 200) tags = (old.body as { article: { tagList: string[] } }).article.tagList;
        res = await send(self, 'DELETE', `/api/articles/${slug}`, token);
        if (res.status === 204) {
          model.slugs = model.slugs.filter((x) => x !== slug);
          model.comments = model.comments.filter((c) => c.slug !== slug);
          model.gone.push(slug);
        }
        break;
      }
      case 'favorite':
      case 'unfavorite':
        slug = slugAt(model, s.article);
        res = await send(self, s.kind === 'favorite' ? 'POST' : 'DELETE', `/api/articles/${slug}/favorite`, token);
        break;
      case 'follow':
      case 'unfollow': {
        const target = model.users[s.target % USERS]!;
        res = await send(self, s.kind === 'follow' ? 'POST' : 'DELETE', `/api/profiles/${target.username}/follow`, token);
        names.push(target.username);
        break;
      }
      case 'comment':
        slug = slugAt(model, s.article);
        res = await send(self, 'POST', `/api/articles/${slug}/comments`, token, { comment: { body: `comment by ${writer.username}` } });
        if (res.status === 201) model.comments.push({ slug, id: (res.body as { comment: { id: number } }).comment.id });
        break;
      case 'uncomment': {
        const c = pick(model.comments, s.comment);
        slug = c?.slug ?? slugAt(model, s.comment);
        res = await send(self, 'DELETE', `/api/articles/${slug}/comments/${c?.id ?? 1}`, token);
        if (res.status === 204) model.comments = model.comments.filter((x) => x !== c);
        break;
      }
      case 'profile': {
        const user =
          s.change === 'username'
            ? { username: NAMES[s.value % NAMES.length] }
            : s.change === 'bio'
              ? { bio: s.value % 3 === 0 ? null : `bio ${s.value}` }
              : { image: s.value % 3 === 0 ? null : `https://img.example/${s.value}.png` };
        res = await send(self, 'PUT', '/api/user', token, { user });
        if (res.status === 200) {
          const username = (res.body as { user: { username: string } }).user.username;
          if (username !== writer.username) {
            model.formerNames.push(writer.username);
            names.push(writer.username);
            writer.username = username;
          }
        }
        break;
      }
    }
    this.#done = `${res.status}${slug ? ` ${slug}` : ''}`;
    assert.ok(res.status < 500, `${this.toString()}: ${JSON.stringify(res.body)}`);
    cluster.writes++;
    await this.#probe(cluster, self, other, model, writer, slug ? [slug, ...slugs] : slugs, tags, names);
  }

  async #probe(
    cluster: Cluster,
    self: Instance,
    other: Instance,
    model: Model,
    writer: User,
    slugs: string[],
    tags: string[],
    names: string[],
  ) {
    const token = tokenOf(model, this.viewer);
    const probe: Probe = { writer, slugs, tags, names, signedIn: token !== undefined };
    const urls = Object.values(MODELLED).flatMap((route) => route.probe(probe));
    // C's answers, read once: nothing writes until this write is checked.
    const answers = new Map<string, Promise<Reply>>();
    const truth = (url: string) => {
      let answer = answers.get(url);
      if (!answer) answers.set(url, (answer = send(cluster.c, 'GET', url, token)));
      return answer;
    };
    const label = (i: Instance, url: string) => `GET ${url} on ${i.name} as ${this.viewer < 0 ? 'anonymous' : `u${this.viewer}`}`;
    // Both at once, from the moment the write is acknowledged:
    await Promise.all([
      // Read-your-writes: the writer's instance is fresh at once.
      (async () => {
        for (const url of urls) {
          const got = await send(self, 'GET', url, token);
          cluster.reads++;
          assert.deepStrictEqual(got, await truth(url), `${this.toString()}: read-your-writes: ${label(self, url)} differs from CACHE=off`);
        }
      })(),
      // The other instance: fresh within the bus delay. The delay counts from the write's
      // answer to the start of the first pass that found every probe fresh.
      (async () => {
        const acknowledged = performance.now();
        for (;;) {
          const pass = performance.now();
          let stale: string | undefined;
          for (const url of urls) {
            const got = await send(other, 'GET', url, token);
            cluster.reads++;
            const expected = await truth(url);
            if (differs(got, expected)) {
              stale = `${label(other, url)}: ${JSON.stringify(got)} vs ${JSON.stringify(expected)}`;
              break;
            }
          }
          if (!stale) {
            cluster.convergeDelays.push(pass - acknowledged);
            break;
          }
          cluster.staleReads++;
          const elapsed = performance.now() - acknowledged;
          assert.ok(elapsed < CONVERGE_WITHIN_MS, `${this.toString()}: ${other.name} still stale after ${elapsed.toFixed(0)} ms: ${stale}`);
          await sleep(POLL_MS);
        }
      })(),
    ]);
    await delivered(cluster);
  }

  async #read(s: ReadSpec, model: Model, cluster: Cluster, self: Instance): Promise<void> {
    const token = tokenOf(model, this.viewer);
    const url = MODELLED[s.what]!.pick(model, s);
    this.#done = url;
    await expectSame(cluster, self, url, token, this.toString());
  }
}

/** Waits until each instance has received every invalidation the other published. */
async function delivered(cluster: Cluster): Promise<void> {
  const started = performance.now();
  for (const [from, to] of [
    [cluster.a, cluster.b],
    [cluster.b, cluster.a],
  ] as const) {
    while (to.t.ctx.bus!.received < from.published) {
      assert.ok(
        performance.now() - started < CONVERGE_WITHIN_MS,
        `${to.name} never received ${from.name}'s invalidations (${to.t.ctx.bus!.received} of ${from.published})`,
      );
      await new Promise((r) => setImmediate(r));
    }
  }
}

const viewerArb = fc.integer({ min: -1, max: USERS - 1 });
const instanceArb = fc.constantFrom<0 | 1>(0, 1);
const userArb = fc.integer({ min: 0, max: USERS - 1 });
const n = fc.nat({ max: 1000 });
const tagsArb = fc.uniqueArray(fc.integer({ min: 0, max: TAGS.length - 1 }), { maxLength: 3 });

function step(spec: fc.Arbitrary<Spec>): fc.Arbitrary<Step> {
  return fc.tuple(spec, instanceArb, userArb, viewerArb).map(([s, i, u, v]) => new Step(s, i, u, v));
}

const commandArbs = [
  step(fc.record({ kind: fc.constant('create' as const), title: fc.nat({ max: TITLES.length - 1 }), tags: tagsArb })),
  step(
    fc.record({
      kind: fc.constant('update' as const),
      article: n,
      change: fc.constantFrom('title' as const, 'body' as const, 'tags' as const),
      title: fc.nat({ max: TITLES.length - 1 }),
      tags: tagsArb,
    }),
  ),
  step(fc.record({ kind: fc.constant('delete' as const), article: n })),
  step(fc.record({ kind: fc.constantFrom('favorite' as const, 'unfavorite' as const), article: n })),
  step(fc.record({ kind: fc.constantFrom('follow' as const, 'unfollow' as const), target: userArb })),
  step(fc.record({ kind: fc.constant('comment' as const), article: n })),
  step(fc.record({ kind: fc.constant('uncomment' as const), comment: n })),
  step(
    fc.record({
      kind: fc.constant('profile' as const),
      change: fc.constantFrom('bio' as const, 'image' as const, 'username' as const),
      value: n,
    }),
  ),
  // Reads weigh as much as all the writes together.
  ...Array.from({ length: 4 }, () =>
    step(
      fc.record({
        kind: fc.constant('read' as const),
        what: fc.constantFrom(...Object.keys(MODELLED)),
        n,
        tag: n,
        limit: n,
        offset: n,
      }),
    ),
  ),
];

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Counts each instance's publishes and times each one until the other instance has it. */
function instrument(self: Instance, other: Instance, cluster: Cluster): void {
  const bus = self.t.ctx.bus!;
  const publish = bus.publish.bind(bus);
  bus.publish = async (tags, distrustShared) => {
    if (tags.length > 0) {
      self.published++;
      self.publishedAt = performance.now();
    }
    return publish(tags, distrustShared);
  };
  const cache = other.t.ctx.cache!;
  const invalidate = cache.invalidate.bind(cache);
  cache.invalidate = (tags) => {
    // The other instance writes nothing while this one's write is being checked: an
    // invalidation arriving now is the bus delivering this one's message.
    if (self.publishedAt !== undefined) {
      cluster.busDelays.push(performance.now() - self.publishedAt);
      self.publishedAt = undefined;
    }
    invalidate(tags);
  };
}

/** The property and the concurrency check, for one bus (env: the instances' settings). */
export function coherence(name: string, env: Record<string, string>, runs: number, timeLimitMs = TIME_LIMIT_MS): void {
  describe(name, () => {
    let database: Awaited<ReturnType<typeof createDatabase>>;
    let cluster: Cluster;

    const apps: TestApp[] = [];
    before(async () => {
      database = await createDatabase();
      // Settled one by one into `apps`: whatever was built is closed by after(), whatever failed.
      const settled = await Promise.allSettled([env, env, { ...env, CACHE: 'off' }].map((e) => createTestAppOn(database.url, e)));
      for (const s of settled) if (s.status === 'fulfilled') apps.push(s.value);
      for (const s of settled) if (s.status === 'rejected') throw s.reason;
      const [a, b, c] = apps as [TestApp, TestApp, TestApp];
      const instance = (n: string, t: TestApp): Instance => ({ name: n, t, published: 0, publishedAt: undefined });
      cluster = {
        a: instance('A', a),
        b: instance('B', b),
        c: instance('C', c),
        busDelays: [],
        convergeDelays: [],
        staleReads: 0,
        writes: 0,
        reads: 0,
      };
      instrument(cluster.a, cluster.b, cluster);
      instrument(cluster.b, cluster.a, cluster);
      // On a busy machine the subscriptions may take longer than the service waits at start.
      const started = performance.now();
      while (!(a.ctx.bus!.connected && b.ctx.bus!.connected)) {
        assert.ok(performance.now() - started < 10_000, 'both buses listening');
        await sleep(10);
      }
    });
    after(async () => {
      try {
        const redis = apps[2]?.ctx.redis;
        if (redis) await deleteKeys(redis, apps[2]!.config.cacheRedisPrefix);
      } finally {
        await Promise.all(apps.map((t) => t.close()));
      }
      await database?.drop();
    });

    /** An empty database with USERS users, and empty caches (the reset is not an API write). */
    async function reset(): Promise<Model> {
      const db = cluster.c.t.db;
      await db.query('truncate users, articles, tags restart identity cascade');
      const { rows } = await db.query<{ id: number; username: string; token_key: string }>(
        `insert into users (username, email, password_hash)
         select 'user' || i, 'user' || i || '@example.com', 'not-a-hash' from generate_series(1, $1) i
         returning id, username, token_key`,
        [USERS],
      );
      for (const i of [cluster.a, cluster.b]) {
        i.t.ctx.cache!.clear();
        await i.t.ctx.cache!.shared?.reset();
      }
      const sign = cluster.c.t.ctx.auth.sign;
      return {
        users: rows.map(({ token_key, ...r }) => ({ ...r, token: sign({ id: r.id, token_key }) })),
        slugs: [],
        gone: [],
        comments: [],
        formerNames: [],
      };
    }

    test('every cached route the service declares is in the model', () => {
      const declared = cluster.a.t.ctx.cache!.routes;
      assert.ok(declared.length >= Object.keys(MODELLED).length, `${declared.length} cached routes declared`);
      assert.deepEqual(unmodelled(declared), [], 'cached routes test/coherence.ts does not exercise (add them to MODELLED)');
    });

    test('after every acknowledged write, both cached instances answer what the cache-off instance answers', async (t) => {
      const lengths: number[] = [];
      await fc.assert(
        // Up to 40 commands (20 on average); shrinking may go below that, to the shortest
        // sequence that still fails.
        fc.asyncProperty(fc.commands(commandArbs, { maxCommands: 40, size: 'max' }), async (cmds) => {
          const model = await reset();
          lengths.push([...cmds].length);
          await fc.asyncModelRun(() => ({ model, real: cluster }), cmds);
        }),
        // The time limit only matters on a machine busy with other work: fewer runs rather
        // than a test that takes minutes (at least 5 are required below).
        { numRuns: runs, interruptAfterTimeLimit: timeLimitMs },
      );
      const { busDelays: bus, convergeDelays: converge } = cluster;
      t.diagnostic(
        `${lengths.length} runs of ${Math.min(...lengths)}-${Math.max(...lengths)} commands: ${cluster.writes} writes, ${cluster.reads} compared reads, ${cluster.staleReads} stale polls of the other instance`,
      );
      assert.ok(lengths.length >= Math.min(5, runs), `only ${lengths.length} runs within ${timeLimitMs} ms`);
      t.diagnostic(
        `bus delay (publish to delivery), ${bus.length} messages: p50 ${percentile(bus, 50).toFixed(2)} ms, p99 ${percentile(bus, 99).toFixed(2)} ms, max ${Math.max(...bus).toFixed(2)} ms`,
      );
      t.diagnostic(
        `other instance fresh after the write's answer: p50 ${percentile(converge, 50).toFixed(2)} ms, max ${Math.max(...converge).toFixed(2)} ms`,
      );
      const stats = [cluster.a, cluster.b].map((i) => i.t.ctx.cache!.stats);
      t.diagnostic(`cache: ${stats.map((x) => JSON.stringify(x)).join(' ')}`);
      assert.ok(bus.length > 0, 'invalidations crossed the bus');
      // Each declared route answered through the cache, anonymous and signed in where the
      // viewer's flags go on top of the stored bytes: the model reached every declaration.
      for (const [i, route] of cluster.a.t.ctx.cache!.routes.entries()) {
        const served = [cluster.a, cluster.b].map((x) => x.t.ctx.cache!.routes[i]!.served);
        const anonymous = served.reduce((sum, x) => sum + x.anonymous, 0);
        const viewer = served.reduce((sum, x) => sum + x.viewer, 0);
        t.diagnostic(`${route.url}: served ${anonymous} anonymous, ${viewer} signed in`);
        assert.ok(anonymous + viewer > 0, `${route.url} was never answered through the cache`);
        if (route.viewerFlags) assert.ok(anonymous > 0 && viewer > 0, `${route.url}: both anonymous and signed-in reads`);
      }
      if (env.REDIS_URL) {
        // Not "no errors": on a loaded machine a stalled event loop can time a command out (the
        // tier then stands aside, correctly); the property above is what must hold regardless.
        assert.ok(
          stats.every((x) => x.redisHits > 0 && x.redisStores > 0),
          'both instances used the shared tier',
        );
      }
    });

    // The property above checks one command at a time, so no load is ever in flight while an
    // invalidation happens. Here loads and writes overlap on both instances; once the writes
    // are acknowledged and delivered, no instance may keep a stale entry (the race guard).
    test('under concurrent reads and writes on both instances, no stale entry outlives the writes', async (t) => {
      const model = await reset();
      const users = model.users;
      const writerApi = (i: Instance, user: User) => ({
        send: (method: string, url: string, body?: unknown) => send(i, method, url, user.token, body),
      });
      const slugs: string[] = [];
      for (let k = 0; k < 6; k++) {
        const res = await writerApi(cluster.a, users[k % USERS]!).send('POST', '/api/articles', {
          article: { title: TITLES[k % TITLES.length], description: 'd', body: 'b', tagList: [TAGS[k % TAGS.length]] },
        });
        slugs.push((res.body as { article: { slug: string } }).article.slug);
      }
      // Latency after each statement of the cached instances (as from a busy event loop or a
      // far database): a load's snapshot is taken, then its answer arrives late, so loads
      // overlap invalidations far more often than on an idle loopback.
      const restore = [cluster.a, cluster.b].map((i) => {
        const db = i.t.db as unknown as { query: (...args: unknown[]) => Promise<unknown> };
        const query = db.query;
        db.query = async function (this: unknown, ...args: unknown[]) {
          const result = await query.apply(this, args);
          await sleep(Math.random() * 4);
          return result;
        };
        return () => void delete (db as { query?: unknown }).query;
      });
      t.after(() => restore.forEach((r) => r()));
      const raced = () => cluster.a.t.ctx.cache!.stats.raced + cluster.b.t.ctx.cache!.stats.raced;
      const racedBefore = raced();
      let reads = 0;
      const writes = 24;
      for (let n = 0; n < writes; n++) {
        const i = n % 2 === 0 ? cluster.a : cluster.b;
        const k = (n >> 1) % slugs.length;
        const author = users[k % USERS]!;
        const other = users[(k + 1) % USERS]!;
        const slug = slugs[k]!;
        const [user, method, url, body]: [User, string, string, unknown?] = [
          [author, 'PUT', `/api/articles/${slug}`, { article: { body: `b${n}` } }],
          [other, 'POST', `/api/articles/${slug}/favorite`],
          [other, 'POST', `/api/articles/${slug}/comments`, { comment: { body: `c${n}` } }],
          [other, 'DELETE', `/api/articles/${slug}/favorite`],
          [author, 'PUT', '/api/user', { user: { bio: `bio ${n}` } }],
          [author, 'PUT', `/api/articles/${slug}`, { article: { tagList: [TAGS[n % TAGS.length]!] } }],
        ][n % 6] as [User, string, string, unknown?];
        const affected = [
          `/api/articles/${slug}`,
          `/api/articles/${slug}/comments`,
          '/api/articles',
          '/api/tags',
          `/api/profiles/${author.username}`,
          `/api/articles?favorited=${other.username}`,
          `/api/articles?author=${author.username}`,
          // A tag edit changes the lists it leaves and joins: all of them then.
          ...(n % 6 === 5 ? TAGS : [TAGS[k % TAGS.length]!]).map((tag) => `/api/articles?tag=${tag}`),
        ];
        // Empty caches, so that the reads below are loads, in flight while the write commits
        // and invalidates: some read the database before the commit and finish after.
        for (const x of [cluster.a, cluster.b]) x.t.ctx.cache!.clear();
        await cluster.a.t.ctx.cache!.shared?.reset();
        const read = async (x: Instance, u: string, delay: number) => {
          await sleep(delay);
          const res = await send(x, 'GET', u, delay > 2 ? users[n % USERS]!.token : undefined);
          assert.ok(res.status < 500, JSON.stringify(res));
          reads++;
        };
        const [res] = await Promise.all([
          writerApi(i, user).send(method, url, body),
          ...[cluster.a, cluster.b].flatMap((x) => affected.map((u) => read(x, u, Math.random() * 4))),
        ]);
        assert.ok(res.status < 300, `${method} ${url}: ${JSON.stringify(res)}`);
        await delivered(cluster);
        for (const x of [cluster.a, cluster.b]) {
          for (const u of affected) {
            assert.deepStrictEqual(
              await send(x, 'GET', u),
              await send(cluster.c, 'GET', u),
              `after ${method} ${url} on ${i.name}: GET ${u} on ${x.name} kept a stale entry`,
            );
          }
        }
      }
      t.diagnostic(
        `${writes} writes and ${reads} reads overlapping; ${raced() - racedBefore} loads raced an invalidation and were not stored`,
      );
    });
  });
}

/** Deletes this test's keys (its own prefix only: the Redis is shared with other test files). */
async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  if (redis.status !== 'ready') await once(redis, 'ready');
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}
