// The harness's side of a measurement: start the load generator (a child process), sample the
// CPU and memory of the processes under test while it runs, collect its result. Also the
// platform server's lifecycle, and the plain HTTP calls made outside the timed runs (logging in
// the token pool, recording responses for the platform limit).
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HeapSample } from './heap.ts';
import type { LoadCommand, LoadMessage, LoadResult, LoadSpec, LoadStep } from './loadgen.ts';
import { NODE_OWN_HEADERS, type Recording } from './platform.ts';
import { built, exitWithin, ProcSampler, RUNTIME_ENV_ARG, spawnTracked, tail, type Usage } from './processes.ts';
import type { BenchRequest, TokenUser } from './scenarios.ts';
import { runWrk } from './wrk.ts';

const HERE = import.meta.dirname;

export type Engine = 'autocannon' | 'wrk';

export interface Measurement {
  result: LoadResult;
  usage: Record<string, Usage>;
}

export interface SessionOptions {
  url: string;
  connections: number;
  requestsFile: string;
  /** Closed-loop steps: autocannon (in the load generator process) or wrk. Paced steps always use the generator. */
  engine: Engine;
  /** Processes to sample during each step: name -> root pid. The generator is added as `loadgen`. */
  sample: Record<string, number | undefined>;
  /** Where spec files go. */
  workDir: string;
  /** Paced steps spin on the generator's core (--pin). */
  spin?: boolean;
}

let specSeq = 0;

/**
 * The load generator process for one target: several steps (warm-up, peak, sweep) in one
 * process, so a step costs no process start. CPU and memory are sampled during each step only.
 */
export class LoadSession {
  readonly #opts: SessionOptions;
  readonly #child: ChildProcess;
  readonly #stderr: () => string;
  #listener: ((m: LoadMessage) => void) | undefined;
  #exited = false;

  private constructor(opts: SessionOptions, child: ChildProcess) {
    this.#opts = opts;
    this.#child = child;
    this.#stderr = tail(child.stderr);
    child.on('message', (m: LoadMessage) => this.#listener?.(m));
    child.once('exit', () => {
      this.#exited = true;
      this.#listener?.({ type: 'error', message: `the load generator exited: ${this.#stderr()}` });
    });
  }

  static async open(opts: SessionOptions): Promise<LoadSession> {
    const spec: LoadSpec = {
      url: opts.url,
      connections: opts.connections,
      timeoutSec: 10,
      requestsFile: opts.requestsFile,
      spin: opts.spin === true,
    };
    const specFile = path.join(opts.workDir, `load-${++specSeq}.json`);
    await writeFile(specFile, JSON.stringify(spec));
    const child = spawnTracked(process.execPath, [path.join(HERE, 'loadgen.ts'), specFile], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const session = new LoadSession(opts, child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the load generator did not start: ${session.#stderr()}`)), 30_000);
      session.#listener = (m) => {
        clearTimeout(timer);
        session.#listener = undefined;
        if (m.type === 'ready') resolve();
        else reject(new Error(m.type === 'error' ? m.message : `unexpected ${m.type} from the load generator`));
      };
    });
    return session;
  }

  /** Runs one step; `onTick` about once a second with the responses so far. */
  async run(step: LoadStep, onTick?: (responses: number, elapsedSec: number) => void): Promise<Measurement> {
    if (this.#opts.engine === 'wrk' && !step.rate) {
      let sampler: ProcSampler | undefined;
      const result = await runWrk({ ...this.#opts, durationSec: step.durationSec }, (pid) => {
        sampler = new ProcSampler({ ...this.#opts.sample, loadgen: pid });
        sampler.start();
      });
      return { result, usage: sampler?.stop() ?? {} };
    }
    if (this.#exited) throw new Error(`the load generator is gone: ${this.#stderr()}`);
    const sampler = new ProcSampler({ ...this.#opts.sample, loadgen: this.#child.pid });
    let sampling = false;
    // The step's length, plus start-up, plus the longest a request may take to time out.
    const limitMs = (step.durationSec + 40) * 1000;
    const result = await new Promise<LoadResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#child.kill('SIGKILL');
        reject(new Error(`the load generator did not finish a ${step.durationSec} s step within ${limitMs / 1000} s: killed`));
      }, limitMs);
      this.#listener = (m) => {
        if (m.type === 'started' && !sampling) {
          sampling = true;
          sampler.start();
        } else if (m.type === 'tick') onTick?.(m.responses, m.elapsedSec);
        else if (m.type === 'result' || m.type === 'error') {
          clearTimeout(timer);
          this.#listener = undefined;
          if (m.type === 'result') resolve(m.result);
          else reject(new Error(`the load generator failed: ${m.message}`));
        }
      };
      this.#child.send({ type: 'step', step } satisfies LoadCommand);
    });
    return { result, usage: sampling ? sampler.stop() : {} };
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    if (this.#child.connected) this.#child.send({ type: 'end' } satisfies LoadCommand);
    await exitWithin(this.#child, 10_000, 'the load generator').catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// The platform server.

export interface PlatformHandle {
  pid: number;
  url: string;
  /** Its V8 heap by space, over IPC; null when it does not answer within a second. */
  heap: () => Promise<HeapSample | null>;
  stop(): Promise<void>;
}

export async function startPlatform(
  recordings: readonly Recording[],
  workDir: string,
  name: string,
  engine: 'node' | 'fastify' = 'node',
): Promise<PlatformHandle> {
  const file = path.join(workDir, `recordings-${name}.json`);
  await writeFile(file, JSON.stringify(recordings));
  // Built, as the service is (bench/run.ts): Node's type stripping is not what Node itself needs.
  // With the service's Node settings (its young generation's bound), as platform.ts has its runtime.
  const args = [RUNTIME_ENV_ARG, built(path.join(HERE, 'platform.ts')), file, ...(engine === 'fastify' ? ['--fastify'] : [])];
  const child = spawnTracked(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const stderr = tail(child.stderr);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the platform server did not start: ${stderr()}`)), 30_000);
    child.once('message', (m: { type: string; port: number }) => {
      clearTimeout(timer);
      resolve(m.port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the platform server exited (${code}): ${stderr()}`));
    });
  });
  return {
    pid: child.pid!,
    url: `http://127.0.0.1:${port}`,
    heap: () =>
      new Promise<HeapSample | null>((resolve) => {
        if (!child.connected) return resolve(null);
        const onMessage = (m: { type: string; sample?: HeapSample }) => {
          if (m.type !== 'heap') return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve(m.sample ?? null);
        };
        const timer = setTimeout(() => {
          child.off('message', onMessage);
          resolve(null);
        }, 1000);
        child.on('message', onMessage);
        child.send({ type: 'heap' });
      }),
    stop: async () => {
      child.kill('SIGTERM');
      await exitWithin(child, 10_000, 'the platform server').catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Plain requests, outside the timed runs.

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One request with node:http: the raw bytes of the body (nothing decoded or decompressed). */
export function request(base: string, r: Pick<BenchRequest, 'method' | 'path' | 'headers' | 'body'>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(r.path, base);
    const body = r.body === undefined ? undefined : Buffer.from(r.body);
    const req = http.request(
      u,
      { method: r.method, agent, headers: { ...r.headers, ...(body ? { 'content-length': body.length } : {}) }, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
          resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${r.method} ${r.path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** One request, retried (up to 3 times, after Retry-After) while it is answered 503 or 429, as a well-behaved client does. */
export async function requestPatiently(
  base: string,
  r: Pick<BenchRequest, 'method' | 'path' | 'headers' | 'body'>,
): Promise<RawResponse & { retries: number }> {
  let res = await request(base, r);
  let retries = 0;
  while (retries < 3 && (res.status === 503 || res.status === 429)) {
    retries++;
    await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 1000 * (Number(res.headers['retry-after']) || 1))));
    res = await request(base, r);
  }
  return { ...res, retries };
}

/**
 * The token pool: each user logged in through the service, four at a time (Argon2 makes each
 * login cost tens of ms), retried after a 503 or 429 as a well-behaved client does.
 */
export async function logIn(base: string, users: readonly Omit<TokenUser, 'token'>[], password: string): Promise<TokenUser[]> {
  return pool(users, 4, async (u) => {
    const res = await requestPatiently(base, {
      method: 'POST',
      path: '/api/users/login',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: { email: u.email, password } }),
    });
    if (res.status !== 200) throw new Error(`login as ${u.email} failed: ${res.status} ${res.body.toString()}`);
    const token = (JSON.parse(res.body.toString()) as { user: { token: string } }).user.token;
    return { username: u.username, email: u.email, token, ownSlugs: u.ownSlugs };
  });
}

/** Runs `work` over `items`, `concurrency` at a time, in order of start. */
export async function pool<T, R>(items: readonly T[], concurrency: number, work: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!, i);
      }
    }),
  );
  return out;
}

/**
 * Replays each distinct method + URL of the list once against the service and keeps its
 * response, as the platform server will serve it. Also a check of the scenario: the statuses
 * are returned so the caller can report anything but 2xx.
 */
export async function record(
  base: string,
  requests: readonly BenchRequest[],
): Promise<{ recordings: Recording[]; bad: { req: BenchRequest; status: number; body: string }[]; retried: number }> {
  const first = new Map<string, BenchRequest>();
  for (const r of requests) if (!first.has(`${r.method} ${r.path}`)) first.set(`${r.method} ${r.path}`, r);
  const bad: { req: BenchRequest; status: number; body: string }[] = [];
  let retried = 0;
  const recordings = await pool([...first.values()], 8, async (r) => {
    const res = await requestPatiently(base, r);
    retried += res.retries;
    if (res.status < 200 || res.status > 299) bad.push({ req: r, status: res.status, body: res.body.toString().slice(0, 300) });
    const headers = Object.fromEntries(Object.entries(res.headers).filter(([k]) => !NODE_OWN_HEADERS.has(k)));
    return { method: r.method, path: r.path, status: res.status, headers, bodyBase64: res.body.toString('base64') };
  });
  return { recordings, bad, retried };
}
