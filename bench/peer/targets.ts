// The targets of a peer run: the peers (running already, somewhere the harness does not manage)
// and Conduit's configurations (started here, each on its own copy of one database seeded
// through Conduit's API, on the peers' PostgreSQL server).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CONFIGS } from '../configs.ts';
import { loadTestEnv, startService, type ServiceHandle } from '../processes.ts';
import type { Catalog, TokenUser } from '../scenarios.ts';
import type { Plan } from './dataset.ts';
import type { Peer } from './options.ts';
import { catalogOf, loginTokens, seedThroughApi, verifySeeded } from './seed.ts';

export interface PeerTarget {
  /** The column's name: the peer's, or `Conduit <config>`. */
  name: string;
  kind: 'peer' | 'conduit';
  url: string;
  /** The server process, for its CPU per response; undefined: not known. */
  pid: number | undefined;
  /** The target's own database, for pg_stat_statements; undefined: not given. */
  databaseUrl: string | undefined;
  catalog: Catalog;
  tokens: TokenUser[];
}

// Fixed, as in the main bench: tokens logged in once stay valid.
const JWT_SECRET = 'bench-only-secret-bench-only-secret-0123456789';

export function conduitEnv(config: string, databaseUrl: string, dataDir: string): Record<string, string> {
  return loadTestEnv({ databaseUrl, dataDir, jwtSecret: JWT_SECRET }, CONFIGS[config]!.env);
}

/** The pid listening on the URL's port on this machine (`ss -ltnpH`), if there is exactly one. */
export function listeningPid(url: string, ssOutput?: string): number | undefined {
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]', '0.0.0.0'].includes(u.hostname)) return undefined;
  const port = u.port || '80';
  let out = ssOutput;
  try {
    out ??= execFileSync('ss', ['-ltnpH'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  const pids = new Set<number>();
  for (const line of out.split('\n')) {
    // LISTEN 0 1024 127.0.0.1:3105 0.0.0.0:* users:(("axum-realworld",pid=1234,fd=9))
    const local = line.trim().split(/\s+/)[3];
    if (!local?.endsWith(`:${port}`)) continue;
    for (const m of line.matchAll(/pid=(\d+)/g)) pids.add(Number(m[1]));
  }
  return pids.size === 1 ? [...pids][0] : undefined;
}

/** Seeds a peer through its API, checks it holds the plan, logs in its token users. */
export async function preparePeer(
  peer: Peer,
  plan: Plan,
  database: string | undefined,
  pid: number | undefined,
  log: (line: string) => void,
): Promise<PeerTarget> {
  const slugs = await seedThroughApi(peer.url, plan, (l) => log(`${peer.name}: ${l}`));
  const problems = await verifySeeded(peer.url, plan, slugs);
  if (problems.length) throw new Error(`${peer.name} does not hold the planned data after seeding:\n  ${problems.join('\n  ')}`);
  const found = pid ?? listeningPid(peer.url);
  if (found === undefined)
    log(
      `${peer.name}: no server pid (none listening on ${peer.url} here, or several; --peer-pid ${peer.name}=PID): its CPU per response stays blank`,
    );
  return {
    name: peer.name,
    kind: 'peer',
    url: peer.url,
    pid: found,
    databaseUrl: database,
    catalog: catalogOf(plan, slugs),
    tokens: await loginTokens(peer.url, plan, slugs),
  };
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function admin(serverUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export interface ConduitTargets {
  targets: PeerTarget[];
  /** Stops every service and drops every database this created. */
  close(): Promise<void>;
}

/**
 * Conduit's configurations on `serverUrl`: one database seeded through Conduit's API (by a
 * service in the first configuration), then a copy of it per configuration, each served by its
 * own running service, so one configuration's writes and cache never touch another's.
 */
export async function startConduits(
  serverUrl: string,
  configs: readonly string[],
  plan: Plan,
  dataDir: string,
  log: (line: string) => void,
): Promise<ConduitTargets> {
  const base = `bench_peer_${randomBytes(4).toString('hex')}`;
  const databases: string[] = [];
  const services: ServiceHandle[] = [];
  const close = async () => {
    for (const s of services.splice(0)) await s.stop();
    for (const d of databases.splice(0).reverse())
      await admin(serverUrl, `drop database if exists ${d} with (force)`).catch((e: unknown) => log(`cannot drop ${d}: ${String(e)}`));
  };
  try {
    await admin(serverUrl, `create database ${base}`);
    databases.push(base);
    const seeder = await startService(conduitEnv(configs[0]!, withDatabase(serverUrl, base), dataDir), 60_000, { built: true });
    let slugs: string[];
    try {
      slugs = await seedThroughApi(seeder.url, plan, (l) => log(`Conduit: ${l}`));
      const problems = await verifySeeded(seeder.url, plan, slugs);
      if (problems.length) throw new Error(`Conduit does not hold the planned data after seeding:\n  ${problems.join('\n  ')}`);
    } finally {
      await seeder.stop();
    }
    const targets: PeerTarget[] = [];
    for (const [i, config] of configs.entries()) {
      const name = `${base}_c${i}`;
      await admin(serverUrl, `create database ${name} template ${base}`);
      databases.push(name);
      const url = withDatabase(serverUrl, name);
      const service = await startService(conduitEnv(config, url, dataDir), 60_000, { built: true, nodeArgs: CONFIGS[config]!.nodeArgs });
      services.push(service);
      targets.push({
        name: `Conduit ${config}`,
        kind: 'conduit',
        url: service.url,
        pid: service.pid,
        databaseUrl: url,
        catalog: catalogOf(plan, slugs),
        tokens: await loginTokens(service.url, plan, slugs),
      });
    }
    return { targets, close };
  } catch (err) {
    await close();
    throw err;
  }
}
