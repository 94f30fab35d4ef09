// What the request deadline's cancel (src/db/deadline.ts: pg_cancel_backend on a connection of
// its own, the backend's pid learnt once per connection) costs, on an ephemeral embedded
// PostgreSQL (or --url, a server on this machine):
//
//   node scripts/cancel-cost.ts [--url postgres://postgres@127.0.0.1:5432/postgres] [--rounds 20]
//                               [--src <another checkout's src/, to compare side by side>]
//
// 1. The once-per-connection cost: a fresh connection's first checkout inside a request scope
//    (which learns the backend's pid) against one outside any scope.
// 2. A checkout and a one-row statement inside a request scope (the deadline's timer armed and
//    cleared) against the same outside one, on warm connections: what every request pays.
// 3. A statement still running at its deadline: the time from the deadline to its failure with
//    query_canceled, the first cancel of a pool (which opens the cancelling connection) and later
//    ones (which reuse it).
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { freePort, startEmbeddedPostgres } from '../src/db/embedded.ts';

const { values } = parseArgs({
  options: { url: { type: 'string' }, rounds: { type: 'string', default: '20' }, src: { type: 'string' } },
});
const src = values.src ? pathToFileURL(path.resolve(values.src)).href + '/' : new URL('../src/', import.meta.url).href;
const { requestScope } = (await import(`${src}db/deadline.ts`)) as typeof import('../src/db/deadline.ts');
const { createPool } = (await import(`${src}db/pool.ts`)) as typeof import('../src/db/pool.ts');
const rounds = Number(values.rounds);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const fmt = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;

let url = values.url;
let stop: (() => Promise<void>) | undefined;
if (!url) {
  const dir = await mkdtemp(path.join(tmpdir(), 'conduit-cancel-'));
  // The server runs as the `postgres` user when this runs as root: it must reach the dir.
  await chmod(dir, 0o755);
  const pgServer = await startEmbeddedPostgres({ dir: path.join(dir, 'pg'), port: await freePort(), ephemeral: true });
  url = pgServer.url;
  stop = async () => {
    await pgServer.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
const hostname = new URL(url).hostname;
if (!['127.0.0.1', 'localhost', '[::1]'].includes(hostname)) throw new Error('only a server on this machine');

try {
  // 1. A fresh connection's first checkout, inside a request scope and outside one.
  const firstCheckout = async (inScope: boolean) => {
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const pool = createPool(url, { dbPoolMax: 1, dbAcquireTimeoutMs: 10_000, requestTimeoutMs: 60_000 });
      await pool.query('select 1');
      const started = performance.now();
      const run = () => pool.query('select 1');
      await (inScope ? requestScope.run({ deadline: performance.now() + 60_000, timeoutMs: 60_000 }, run) : run());
      times.push(performance.now() - started);
      await pool.end();
    }
    return median(times);
  };
  const unscoped = await firstCheckout(false);
  const scoped = await firstCheckout(true);
  console.log(`a connection's first statement in a request: ${fmt(scoped)}; outside one: ${fmt(unscoped)}`);

  // 2. Warm checkouts, with and without a deadline armed.
  const pool = createPool(url, { dbPoolMax: 1, dbAcquireTimeoutMs: 10_000, requestTimeoutMs: 60_000 });
  const perQuery = async (inScope: boolean) => {
    const n = 2000;
    const run = async () => {
      for (let i = 0; i < n; i++) await pool.query('select $1::int', [i]);
    };
    await run();
    const started = performance.now();
    await (inScope ? requestScope.run({ deadline: performance.now() + 60_000, timeoutMs: 60_000 }, run) : run());
    return (performance.now() - started) / n;
  };
  const samples: [number, number][] = [];
  for (let i = 0; i < 5; i++) samples.push([await perQuery(false), await perQuery(true)]);
  console.log(
    `warm statement, median of 5 x 2000: no deadline ${fmt(median(samples.map((s) => s[0])))}, deadline armed ${fmt(median(samples.map((s) => s[1])))}`,
  );
  await pool.end();

  // 3. From the deadline to the statement's failure.
  const cancels = async (n: number) => {
    const p = createPool(url, { dbPoolMax: 1, dbAcquireTimeoutMs: 10_000, requestTimeoutMs: 60_000 });
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const deadline = performance.now() + 100;
      await requestScope
        .run({ deadline, timeoutMs: 100 }, () => p.query('select pg_sleep(5)'))
        .then(
          () => times.push(NaN),
          () => times.push(performance.now() - deadline),
        );
    }
    await p.end();
    return times;
  };
  const firsts: number[] = [];
  const laters: number[] = [];
  for (let i = 0; i < Math.max(3, Math.floor(rounds / 4)); i++) {
    const [one, ...rest] = await cancels(5);
    firsts.push(one ?? NaN);
    laters.push(...rest);
  }
  console.log(`deadline to query_canceled: first cancel of a pool ${fmt(median(firsts))}, later ones ${fmt(median(laters))}`);
} finally {
  await stop?.();
}
