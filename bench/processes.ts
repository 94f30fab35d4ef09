// Child processes of the harness (the service, the platform server, the load generator, pgbench)
// and their CPU and memory, read from /proc while they run. Every child is registered here and
// killed when the harness exits, however it exits: a benchmark leaves nothing running.
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../src/db/embedded.ts';

const ROOT = path.join(import.meta.dirname, '..');
const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills every child still running (SIGKILL: used on the way out, when waiting is no option). */
export function killAllChildren(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  }
}
process.on('exit', () => killAllChildren());

export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return track(spawn(command, args, options));
}

/** Resolves with the exit code; kills the child (SIGTERM, then SIGKILL) if it outlives `ms`. */
export function exitWithin(child: ChildProcess, ms: number, what: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const term = setTimeout(() => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      reject(new Error(`${what} did not finish within ${Math.round(ms / 1000)} s: killed`));
    }, ms);
    child.once('exit', (code) => {
      clearTimeout(term);
      resolve(code);
    });
  });
}

/** Keeps the last `max` characters a stream wrote (for error messages). */
export function tail(stream: NodeJS.ReadableStream | null | undefined, max = 16_384): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => {
    text += d.toString();
    if (text.length > max * 2) text = text.slice(-max);
  });
  return () => text.slice(-max);
}

// ---------------------------------------------------------------------------------------------
// The service.

export interface ServiceHandle {
  pid: number;
  url: string;
  port: number;
  /** The service's recent stdout and stderr (its log lines: warnings and errors only). */
  logs: () => string;
  stop(): Promise<void>;
}

/**
 * The environment of a service under a load test, as production runs it: `NODE_ENV=production`,
 * request logging off the hot path, /metrics and the admin endpoints on the API port (where the
 * harness reads them; production's default is one METRICS_PORT per host, which several services
 * at once cannot share), and the per-address limits out of reach: one client address sends
 * everything, so they would answer 429 within a second, and the limiter stays on the path with
 * its cost. `overrides` last.
 */
export function loadTestEnv(
  base: { databaseUrl: string; dataDir: string; jwtSecret: string },
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    NODE_ENV: 'production',
    METRICS_PORT: 'api',
    JWT_SECRET: base.jwtSecret,
    DATABASE_URL: base.databaseUrl,
    LOG_LEVEL: 'warn',
    DATA_DIR: base.dataDir,
    RATE_LIMIT_MAX: '100000000',
    RATE_LIMIT_LOGIN_MAX: '100000000',
    RATE_LIMIT_REGISTER_MAX: '100000000',
    RATE_LIMIT_PASSWORD_MAX: '100000000',
    ...overrides,
  };
}

let builtOnce = false;

/**
 * Where the built JavaScript of a source file is (tsconfig.build.json's outDir, the same tree).
 * The first call in a process builds dist/ (`npm run build`) from the sources as they are now, so
 * whatever a harness starts built is what its checkout holds; scripts/build.mjs puts the new build
 * in place whole, so a process starting meanwhile finds the old one or the new one.
 */
export function built(source: string): string {
  if (!builtOnce) {
    const res = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`npm run build failed (${res.status ?? res.signal}):\n${res.stdout}${res.stderr}`);
    builtOnce = true;
  }
  return path.join(ROOT, 'dist', path.relative(ROOT, source)).replace(/\.ts$/, '.js');
}

export interface StartOptions {
  /** Runs the command through a wrapper that execs it (same pid), e.g. into a memory cgroup (bench/cgroup.ts). */
  wrap?: (command: string, args: readonly string[]) => { command: string; args: string[] };
  /**
   * The built JavaScript (dist/, built()), as `npm start` and the image run it, rather than
   * the TypeScript sources through Node's type stripping (~27 MB more RSS, docs/memory.md): for
   * whatever measures the service's memory.
   */
  built?: boolean;
  /** Node or V8 flags on the command line, before the entry (BenchConfig.nodeArgs). */
  nodeArgs?: readonly string[];
  /** How long stop() waits for the process to exit after SIGTERM before it kills it (default 20 s). */
  stopTimeoutMs?: number;
}

/**
 * Node's settings for the service (src/runtime.env: its young generation's bound), as `npm start`
 * passes them. The platform server is started with them too, so that it stands for what the same
 * Node needs: without them V8 grows its young generation to 32 MB in a minute of load.
 */
export const RUNTIME_ENV_ARG = `--env-file=${path.join(ROOT, 'src', 'runtime.env')}`;

export async function startService(env: Record<string, string>, timeoutMs = 60_000, opts: StartOptions = {}): Promise<ServiceHandle> {
  // LOG_LEVEL=warn keeps request logging off the hot path, so the "Server listening at" line
  // (info) is not written: the harness picks the port and waits for /readyz instead.
  const port = await freePort();
  // As `npm start` runs it: Node's settings (a configuration's NODE_OPTIONS wins over the file's),
  // then the tracing module (near-zero cost without an OTLP endpoint).
  const entry = (source: string) => (opts.built ? built(source) : source);
  const direct = {
    command: process.execPath,
    args: [
      RUNTIME_ENV_ARG,
      ...(opts.nodeArgs ?? []),
      '--import',
      entry(path.join(ROOT, 'src', 'telemetry', 'tracing.ts')),
      entry(path.join(ROOT, 'src', 'main.ts')),
    ],
  };
  const { command, args } = opts.wrap ? opts.wrap(direct.command, direct.args) : direct;
  const child = spawnTracked(command, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...env,
      HOST: '127.0.0.1',
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = tail(child.stdout);
  const err = tail(child.stderr);
  const logs = () => `${out()}${err()}`.trim();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`the service exited (${child.exitCode ?? child.signalCode}) while starting:\n${logs()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the service was not ready within ${timeoutMs / 1000} s:\n${logs()}`);
    }
    const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    url,
    port,
    logs,
    stop: async () => {
      child.kill('SIGTERM');
      await exitWithin(child, opts.stopTimeoutMs ?? 20_000, 'the service').catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// CPU and memory from /proc.

const CLK_TCK = 100; // USER_HZ: 100 on every Linux architecture Node runs on
const PAGE = 4096;

interface ProcStat {
  ppid: number;
  ticks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its closing one.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/**
 * Puts a process, every thread of it and every process under it (cluster workers) on the given
 * CPUs (`taskset`); threads and processes they start later inherit it.
 */
export function pinTree(root: number, cpus: string): void {
  for (const pid of tree(root)) execFileSync('taskset', ['--all-tasks', '--pid', '--cpu-list', cpus, String(pid)], { stdio: 'ignore' });
}

/** The CPUs a process may run on, as taskset lists them ("1", "0,1", "0-3"). */
export function cpuList(pid: number): string {
  const out = execFileSync('taskset', ['--cpu-list', '--pid', String(pid)], { encoding: 'utf8' });
  return out.slice(out.lastIndexOf(':') + 1).trim();
}

/** CPU seconds (user + system) the process has used so far, all its threads; NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  const st = readStat(pid);
  return st === undefined ? Number.NaN : st.ticks / CLK_TCK;
}

function readRssBytes(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE;
  } catch {
    return 0;
  }
}

/** The pid and all its descendants. */
function tree(root: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = byParent.get(st.ppid);
    if (list) list.push(Number(name));
    else byParent.set(st.ppid, [Number(name)]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.pop()!;
    out.push(pid);
    queue.push(...(byParent.get(pid) ?? []));
  }
  return out;
}

export interface Usage {
  /** Mean CPU over the window, in % of one core (200% = both cores of this machine). */
  cpuPercent: number;
  /** The busiest sampling interval. */
  cpuPercentPeak: number;
  /** Largest resident set of any one process of the tree. */
  rssPeakMB: number;
  /** Largest sum over the tree (shared pages counted once per process). */
  treeRssPeakMB: number;
  processes: number;
}

/** Samples the CPU and RSS of process trees (e.g. the service, the database, the load generator). */
export class ProcSampler {
  readonly #roots: Map<string, number>;
  readonly #last = new Map<string, Map<number, number>>();
  readonly #acc = new Map<string, { ticks: number; peak: number; rss: number; treeRss: number; procs: Set<number> }>();
  #timer: NodeJS.Timeout | undefined;
  #started = 0;
  #lastAt = 0;

  readonly intervalMs: number;

  constructor(roots: Record<string, number | undefined>, intervalMs = 500) {
    this.intervalMs = intervalMs;
    this.#roots = new Map(Object.entries(roots).filter((e): e is [string, number] => typeof e[1] === 'number' && e[1] > 0));
  }

  start(): void {
    this.#started = this.#lastAt = performance.now();
    for (const [name, root] of this.#roots) {
      const m = new Map<number, number>();
      for (const pid of tree(root)) m.set(pid, readStat(pid)?.ticks ?? 0);
      this.#last.set(name, m);
      this.#acc.set(name, { ticks: 0, peak: 0, rss: 0, treeRss: 0, procs: new Set(m.keys()) });
    }
    this.#timer = setInterval(() => this.#sample(), this.intervalMs);
    this.#timer.unref();
  }

  #sample(): void {
    const now = performance.now();
    const dt = (now - this.#lastAt) / 1000;
    this.#lastAt = now;
    for (const [name, root] of this.#roots) {
      const last = this.#last.get(name)!;
      const acc = this.#acc.get(name)!;
      let delta = 0;
      let treeRss = 0;
      for (const pid of tree(root)) {
        const st = readStat(pid);
        if (!st) continue;
        // A process that appeared since the last sample started inside the window.
        delta += st.ticks - (last.get(pid) ?? 0);
        last.set(pid, st.ticks);
        acc.procs.add(pid);
        const rss = readRssBytes(pid);
        treeRss += rss;
        acc.rss = Math.max(acc.rss, rss);
      }
      acc.ticks += delta;
      acc.treeRss = Math.max(acc.treeRss, treeRss);
      if (dt > 0) acc.peak = Math.max(acc.peak, (delta / CLK_TCK / dt) * 100);
    }
  }

  stop(): Record<string, Usage> {
    if (this.#timer) clearInterval(this.#timer);
    this.#sample();
    const elapsed = (performance.now() - this.#started) / 1000;
    const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
    const out: Record<string, Usage> = {};
    for (const [name, acc] of this.#acc) {
      out[name] = {
        cpuPercent: elapsed > 0 ? Math.round((acc.ticks / CLK_TCK / elapsed) * 1000) / 10 : 0,
        cpuPercentPeak: Math.round(acc.peak * 10) / 10,
        rssPeakMB: mb(acc.rss),
        treeRssPeakMB: mb(acc.treeRss),
        processes: acc.procs.size,
      };
    }
    return out;
  }
}
