// PostgreSQL's own time per request, from pg_stat_statements: reset for one database before a
// measured run, summed for it after, divided by the responses. It tells how much of a request's
// cost sits in the database (and how many statements a request takes), whatever the client.
//
// pg_stat_statements must be in shared_preload_libraries (a restart); the bench's embedded
// server preloads it. Planning time is only counted with pg_stat_statements.track_planning = on
// (off by default): without it, the figures are execution time alone, and say so.
import pg from 'pg';
import { cpuSeconds } from './processes.ts';

export interface PgStatTotals {
  calls: number;
  /** Milliseconds, summed over the database's statements. */
  execMs: number;
  planMs: number;
  plans: number;
  /**
   * CPU milliseconds (user + system, /proc) the database's client backends used since the reset:
   * what the statements cost the server's cores, where the time above is wall time and grows
   * while a backend waits for a CPU. A backend that started since counts whole, one that ended is
   * missed (a pool keeps its connections). Null when the server's processes are not readable here.
   */
  backendCpuMs: number | null;
}

export interface PgPerRequest {
  /** Execution + planning, µs per response. */
  usPerRequest: number;
  execUsPerRequest: number;
  planUsPerRequest: number;
  /** Statements per response. */
  callsPerRequest: number;
  /** false: track_planning was off, planning time is not in usPerRequest. */
  planningTracked: boolean;
  /** The database's backends' CPU per response, µs (PgStatTotals.backendCpuMs); null when not readable. */
  cpuUsPerRequest?: number | null | undefined;
}

/** What to write when a server cannot tell: its host and port and how to fix it. */
export function unavailableMessage(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  return `pg_stat_statements not available on ${u.hostname}:${u.port || '5432'} (add shared_preload_libraries = 'pg_stat_statements' and restart)`;
}

export class PgStatements {
  readonly #client: pg.Client;
  readonly dbid: number;
  readonly database: string;
  readonly planningTracked: boolean;
  /** Each client backend's CPU ticks at the last reset (undefined: not readable here). */
  #before: Map<number, number> | undefined;

  private constructor(client: pg.Client, dbid: number, database: string, planningTracked: boolean) {
    this.#client = client;
    this.dbid = dbid;
    this.database = database;
    this.planningTracked = planningTracked;
  }

  /**
   * A reader for the database `databaseUrl` names (the extension is created there if missing:
   * its view and functions live per database, its counters per server). A string says why not.
   */
  static async open(databaseUrl: string): Promise<PgStatements | string> {
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      const preload = (await client.query<{ v: string }>("select current_setting('shared_preload_libraries') as v")).rows[0]!.v;
      if (!preload.split(',').some((l) => l.trim().replace(/^"|"$/g, '') === 'pg_stat_statements')) {
        await client.end();
        return unavailableMessage(databaseUrl);
      }
      try {
        await client.query('create extension if not exists pg_stat_statements');
      } catch (err) {
        await client.end();
        return `pg_stat_statements: cannot create the extension in ${new URL(databaseUrl).pathname.slice(1)}: ${(err as Error).message}`;
      }
      const r = await client.query<{ dbid: number; db: string; planning: string }>(
        "select oid::int as dbid, datname as db, current_setting('pg_stat_statements.track_planning') as planning from pg_database where datname = current_database()",
      );
      const row = r.rows[0]!;
      return new PgStatements(client, row.dbid, row.db, row.planning === 'on');
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  /** Forgets this database's statements (only this database's: others on the server keep theirs). */
  async reset(): Promise<void> {
    // (userid, dbid, queryid): the same three arguments on PostgreSQL 13 to 18 (17 added a
    // fourth with a default, and a timestamptz result instead of void).
    await this.#client.query('select pg_stat_statements_reset(0::oid, $1::oid, 0::bigint)', [this.dbid]);
    this.#before = await this.#backendCpu();
  }

  /** CPU seconds of each client backend of this database but this reader's own. */
  async #backendCpu(): Promise<Map<number, number> | undefined> {
    const r = await this.#client.query<{ pid: number }>(
      "select pid from pg_stat_activity where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid() /* the bench's reader */",
    );
    const cpu = new Map<number, number>();
    for (const { pid } of r.rows) {
      const s = cpuSeconds(pid);
      // Not readable: the server is on another machine (or its processes are another user's).
      if (Number.isNaN(s)) return undefined;
      cpu.set(pid, s);
    }
    return cpu;
  }

  /** The totals since the last reset, without this reader's own statements. */
  async read(): Promise<PgStatTotals> {
    const r = await this.#client.query<{ calls: string | null; exec: number | null; plan: number | null; plans: string | null }>(
      `select sum(calls) as calls, sum(total_exec_time)::float8 as exec, sum(total_plan_time)::float8 as plan, sum(plans) as plans
         from pg_stat_statements where dbid = $1 and query not ilike '%pg_stat_statements%' and query not like '%/* the bench''s reader */%'`,
      [this.dbid],
    );
    const row = r.rows[0]!;
    const before = this.#before;
    const now = before && (await this.#backendCpu());
    let backendCpuMs: number | null = null;
    if (before && now) {
      backendCpuMs = 0;
      for (const [pid, s] of now) backendCpuMs += (s - (before.get(pid) ?? 0)) * 1000;
    }
    return { calls: Number(row.calls ?? 0), execMs: row.exec ?? 0, planMs: row.plan ?? 0, plans: Number(row.plans ?? 0), backendCpuMs };
  }

  async close(): Promise<void> {
    await this.#client.end().catch(() => undefined);
  }
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function perRequest(t: PgStatTotals, responses: number, planningTracked: boolean): PgPerRequest | null {
  if (responses <= 0) return null;
  return {
    usPerRequest: round(((t.execMs + t.planMs) * 1000) / responses, 1),
    execUsPerRequest: round((t.execMs * 1000) / responses, 1),
    planUsPerRequest: round((t.planMs * 1000) / responses, 1),
    callsPerRequest: round(t.calls / responses, 2),
    planningTracked,
    cpuUsPerRequest: t.backendCpuMs === null ? null : round((t.backendCpuMs * 1000) / responses, 1),
  };
}

/** The server's CPU per response in µs, from its mean CPU (% of a core) and its throughput. */
export function cpuUsPerResponse(cpuPercent: number | undefined, requestsPerSec: number): number | null {
  if (cpuPercent === undefined || requestsPerSec <= 0) return null;
  return round(((cpuPercent / 100) * 1e6) / requestsPerSec, 1);
}

/** Servers already reported as unable to tell (so each is reported once per run). */
const noted = new Set<string>();

/**
 * A reader for a run's database, or undefined after saying why (once per server, through `note`:
 * the run goes on without PostgreSQL's figures).
 */
export async function openPgStatements(databaseUrl: string, note: (line: string) => void): Promise<PgStatements | undefined> {
  const r = await PgStatements.open(databaseUrl).catch(
    (err: unknown) => `pg_stat_statements on ${new URL(databaseUrl).host}: ${(err as Error).message}`,
  );
  const server = new URL(databaseUrl).host;
  if (typeof r === 'string') {
    if (!noted.has(server)) note(r);
    noted.add(server);
    return undefined;
  }
  if (!r.planningTracked && !noted.has(`${server} planning`)) {
    noted.add(`${server} planning`);
    note(
      `pg_stat_statements.track_planning is off on ${server}: PostgreSQL's time per request there is execution only (alter system set pg_stat_statements.track_planning = on; select pg_reload_conf())`,
    );
  }
  return r;
}
