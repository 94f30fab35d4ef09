// Runs the real process entry (src/main.ts) as a child process, the way `npm start` runs its build, and
// waits for it to listen. For the tests that only a real process can answer: signals, exit
// codes, the embedded database's lifetime, several instances at once.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { once } from 'node:events';
import readline from 'node:readline';

const MAIN = path.join(import.meta.dirname, '..', 'src', 'main.ts');
const RUNTIME_ENV = path.join(import.meta.dirname, '..', 'src', 'runtime.env');

export interface Service {
  proc: ChildProcess;
  port: number;
  url: string;
  /** Every log line so far (parsed JSON where possible). */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface SpawnOptions {
  /**
   * In a process group of its own, as a shell runs a foreground job: `process.kill(-pid, 'SIGINT')`
   * then signals the whole group, as Ctrl-C in a terminal does.
   */
  detached?: boolean;
}

export function spawnService(
  env: Record<string, string>,
  opts: SpawnOptions = {},
): { proc: ChildProcess; exited: Promise<number | null>; stderr: () => string; logs: Record<string, unknown>[] } {
  const proc = spawn(process.execPath, [`--env-file=${RUNTIME_ENV}`, MAIN], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'test', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const logs: Record<string, unknown>[] = [];
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
  });
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  return { proc, exited, stderr: () => err, logs };
}

export async function startService(env: Record<string, string>, timeoutMs = 30_000, opts: SpawnOptions = {}): Promise<Service> {
  const s = spawnService(env, opts);
  const deadline = Date.now() + timeoutMs;
  let port: number | undefined;
  while (port === undefined) {
    if (Date.now() > deadline) {
      s.proc.kill('SIGKILL');
      throw new Error(`service did not start in ${timeoutMs} ms; stderr: ${s.stderr()}`);
    }
    const exitCode = await Promise.race([s.exited, new Promise<'running'>((r) => setTimeout(r, 50, 'running'))]);
    if (exitCode !== 'running') throw new Error(`service exited with ${exitCode}; stderr: ${s.stderr()}`);
    if (env.PORT && env.PORT !== '0') {
      // A fixed port (and perhaps LOG_LEVEL=warn, which leaves out the "listening" line): ready
      // when /readyz says so.
      const ready = await fetch(`http://127.0.0.1:${env.PORT}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) port = Number(env.PORT);
      continue;
    }
    const line = s.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at http://127.0.0.1:'));
    if (line) port = Number(/:(\d+)$/.exec(line.msg as string)?.[1]);
  }
  return {
    ...s,
    port,
    url: `http://127.0.0.1:${port}`,
    stop: async (signal = 'SIGTERM') => {
      s.proc.kill(signal);
      return s.exited;
    },
  };
}
