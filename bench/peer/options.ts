// The peer mode's flags: other RealWorld implementations to measure next to Conduit.
import { UsageError } from '../errors.ts';

export interface Peer {
  name: string;
  url: string;
}

export interface PeerOptions {
  peers: Peer[];
  /** Peer name -> its database's URL, for pg_stat_statements. */
  databases: Record<string, string>;
  /** Peer name -> the pid of its server, when it cannot be found from the port. */
  pids: Record<string, number>;
  /** The PostgreSQL server Conduit's throwaway database goes on (the peers' server, for a fair comparison). */
  pgUrl: string;
  /** Alternating rounds: each target measured once per round, the median reported. */
  rounds: number;
  /**
   * Then every target again, paced at this percentage of the slowest target's median req/s in the
   * scenario: latency and costs at the same load, where the closed loop compares them each at its
   * own saturation. null: not measured.
   */
  equalLoadPercent: number | null;
}

export const PEER_USAGE = `
Side by side with other RealWorld implementations (peer mode):
  --peer NAME=URL         another RealWorld API (repeatable): seeded through its public API with
                          the same data as Conduit, then measured in alternating rounds with
                          Conduit's configurations (--configs, default: default,cache-off); the
                          first peer is the ratio's reference. Data set default: 50 users, 500
                          articles; scenarios: read-anon, read-auth, list, article, write; 32
                          connections; 3 rounds of 5 s, 2 s warm-up before each
  --peer-database NAME=URL  the peer's database: PostgreSQL's time per request there
                          (pg_stat_statements, which must be preloaded on that server)
  --peer-pid NAME=PID     the peer's server process, for its CPU per response (default: the
                          process listening on the URL's port, from ss -ltnp)
  --peer-pg <url>         the server for Conduit's throwaway database in peer mode
                          (default postgres://postgres@127.0.0.1:5432/postgres)
  --rounds <n>            rounds in peer mode (default 3)
  --equal-load <pct>      then the same rounds again, every target paced (open loop) at pct% of
                          the slowest target's median req/s in that scenario: latency, CPU and
                          PostgreSQL's time per request at one load for all (default: not run)`;

function pairs(raw: readonly string[] | undefined, flag: string): [string, string][] {
  return (raw ?? []).map((item) => {
    const i = item.indexOf('=');
    if (i <= 0 || i === item.length - 1) throw new UsageError(`--${flag} takes NAME=VALUE, got "${item}"`);
    return [item.slice(0, i), item.slice(i + 1)];
  });
}

export function parsePeerOptions(v: {
  peer?: string[];
  'peer-database'?: string[];
  'peer-pid'?: string[];
  'peer-pg'?: string;
  rounds?: string;
  'equal-load'?: string;
}): PeerOptions | undefined {
  const peerFlags = [v['peer-database'], v['peer-pid'], v['peer-pg'], v.rounds, v['equal-load']].some((x) => x !== undefined);
  if (!v.peer?.length) {
    if (peerFlags) throw new UsageError('--peer-database, --peer-pid, --peer-pg, --rounds and --equal-load need --peer NAME=URL');
    return undefined;
  }
  const peers: Peer[] = [];
  for (const [name, url] of pairs(v.peer, 'peer')) {
    if (!/^[\w.-]+$/.test(name)) throw new UsageError(`--peer: a name is letters, digits, _ . -, got "${name}"`);
    if (peers.some((p) => p.name === name)) throw new UsageError(`--peer: "${name}" given twice`);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`--peer ${name}: "${url}" is not a URL`);
    }
    if (u.protocol !== 'http:') throw new UsageError(`--peer ${name}: only http:// URLs (the load generator speaks plain HTTP/1.1)`);
    peers.push({ name, url: u.origin });
  }
  const known = (flag: string, name: string) => {
    if (!peers.some((p) => p.name === name)) throw new UsageError(`--${flag} ${name}: no --peer of that name`);
  };
  const databases: Record<string, string> = {};
  for (const [name, url] of pairs(v['peer-database'], 'peer-database')) {
    known('peer-database', name);
    if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError(`--peer-database ${name}: a postgres:// URL, got "${url}"`);
    databases[name] = url;
  }
  const pids: Record<string, number> = {};
  for (const [name, pid] of pairs(v['peer-pid'], 'peer-pid')) {
    known('peer-pid', name);
    if (!/^\d+$/.test(pid)) throw new UsageError(`--peer-pid ${name}: a process id, got "${pid}"`);
    pids[name] = Number(pid);
  }
  const rounds = v.rounds === undefined ? 3 : Number(v.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`--rounds must be an integer >= 1, got "${v.rounds}"`);
  const equalLoad = v['equal-load'] === undefined ? null : Number(v['equal-load']);
  if (equalLoad !== null && !(equalLoad > 0 && equalLoad <= 100))
    throw new UsageError(`--equal-load is a percentage above 0 and at most 100, got "${v['equal-load']}"`);
  return {
    peers,
    databases,
    pids,
    pgUrl: v['peer-pg'] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    rounds,
    equalLoadPercent: equalLoad,
  };
}
